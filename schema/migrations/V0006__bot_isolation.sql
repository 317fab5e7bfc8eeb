-- fleetwatch schema 0006: what one bot may do to the rest of the fleet is bounded here, in PostgreSQL, so
-- that every replica and every restart agrees: metric names per bot and for the fleet, ids that never run
-- out, the liquidation asked for and refused, and how long the audit log is kept.

-- Metric ids become 4 bytes (2 billion names) instead of 2 (32,767). The three views that read the columns
-- whose type changes are dropped and created again from their own definitions, with every privilege granted on
-- them (to the analyst role or anyone else). A view of your own over them blocks this migration: drop it first.
CREATE TEMPORARY TABLE fleetwatch_saved_views ON COMMIT DROP AS
SELECT c.oid, c.relname, pg_get_viewdef(c.oid) AS def,
       ARRAY(SELECT format('GRANT %s ON %I TO %s', a.privilege_type, c.relname,
                           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
             FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) AS grants
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'v' AND n.nspname = current_schema()
  AND c.relname IN ('sample_points', 'review_metric_hour', 'review_metric_minute');

DO $$
DECLARE v record;
BEGIN
    FOR v IN SELECT relname FROM fleetwatch_saved_views ORDER BY oid DESC LOOP
        EXECUTE format('DROP VIEW %I', v.relname);
    END LOOP;
END
$$;

ALTER TABLE metrics ALTER COLUMN id TYPE integer;
ALTER SEQUENCE metrics_id_seq AS integer MAXVALUE 2147483647;
ALTER TABLE samples ALTER COLUMN metric_ids TYPE integer[], ALTER COLUMN state_metric_ids TYPE integer[];
ALTER TABLE rollup_1m ALTER COLUMN metric_id TYPE integer;
ALTER TABLE rollup_1h ALTER COLUMN metric_id TYPE integer;

DO $$
DECLARE v record; g text;
BEGIN
    FOR v IN SELECT relname, def, grants FROM fleetwatch_saved_views ORDER BY oid LOOP
        EXECUTE format('CREATE VIEW %I AS %s', v.relname, v.def);
        FOREACH g IN ARRAY v.grants LOOP
            EXECUTE g;
        END LOOP;
    END LOOP;
END
$$;

-- The metric names each bot has used. A bot may use at most its limit of names (`bots.max_metric_names`,
-- else the hub's `ingest.max_metric_names_per_bot`); the fleet at most `ingest.max_metric_names`.
CREATE TABLE bot_metrics (
    bot_id        integer NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
    metric_id     integer NOT NULL REFERENCES metrics (id),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, metric_id)
);

INSERT INTO bot_metrics (bot_id, metric_id)
SELECT DISTINCT s.bot_id, u.id FROM samples s CROSS JOIN LATERAL unnest(s.metric_ids) AS u(id)
UNION
SELECT DISTINCT s.bot_id, u.id FROM samples s CROSS JOIN LATERAL unnest(s.state_metric_ids) AS u(id)
WHERE s.state_metric_ids IS NOT NULL
UNION
SELECT DISTINCT bot_id, metric_id FROM rollup_1h
ON CONFLICT DO NOTHING;

ALTER TABLE bots
    ADD COLUMN max_metric_names integer CHECK (max_metric_names BETWEEN 1 AND 1000000),  -- NULL: the hub's default
    ADD COLUMN metric_names_refused_at timestamptz;   -- last time a batch of the bot had names over its limit

-- Admits the names a batch of `bot` uses: returns (name, id) for every name the bot may store, within its
-- limit and the fleet's; names past either limit are left out (refused). Never draws an id for a name that
-- exists or is refused, so ids cannot run out through restarts or refusals. Safe from several replicas.
CREATE FUNCTION fleetwatch_admit_metrics(bot integer, names text[], kinds text[], bot_limit integer, fleet_limit integer)
RETURNS TABLE (metric text, metric_id integer)
LANGUAGE plpgsql AS $$
DECLARE
    lim integer;
    room bigint;
    fresh text[];
    fresh_kinds text[];
    unknown text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('fleetwatch_bot_metrics'), bot);
    SELECT COALESCE(b.max_metric_names, bot_limit) INTO lim FROM bots b WHERE b.id = bot;
    IF lim IS NULL THEN RETURN; END IF;

    -- Names the bot has used before.
    RETURN QUERY SELECT m.name, m.id FROM metrics m JOIN bot_metrics bm ON bm.metric_id = m.id AND bm.bot_id = bot
                 WHERE m.name = ANY (names);

    -- New to the bot, in the order the batch names them, as far as the bot's limit allows.
    room := lim - (SELECT count(*) FROM bot_metrics bm WHERE bm.bot_id = bot);
    SELECT array_agg(d.name ORDER BY d.n), array_agg(d.kind ORDER BY d.n) INTO fresh, fresh_kinds
    FROM (SELECT u.name, min(u.kind) AS kind, min(u.n) AS n
          FROM unnest(names, kinds) WITH ORDINALITY AS u(name, kind, n)
          WHERE NOT EXISTS (SELECT 1 FROM metrics m JOIN bot_metrics bm ON bm.metric_id = m.id AND bm.bot_id = bot
                            WHERE m.name = u.name)
          GROUP BY u.name ORDER BY min(u.n) LIMIT greatest(room, 0)) d;
    IF fresh IS NULL THEN RETURN; END IF;

    -- New to the fleet: registered one replica at a time, within the fleet's limit.
    SELECT array_agg(f.name) INTO unknown FROM unnest(fresh) AS f(name)
    WHERE NOT EXISTS (SELECT 1 FROM metrics m WHERE m.name = f.name);
    IF unknown IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('fleetwatch_metrics'), 0);
        room := fleet_limit - (SELECT count(*) FROM metrics);
        INSERT INTO metrics (name, kind)
        SELECT f.name, f.kind FROM unnest(fresh, fresh_kinds) WITH ORDINALITY AS f(name, kind, n)
        WHERE NOT EXISTS (SELECT 1 FROM metrics m WHERE m.name = f.name)
        ORDER BY f.n LIMIT greatest(room, 0);
    END IF;

    RETURN QUERY
    WITH ins AS (
        INSERT INTO bot_metrics (bot_id, metric_id)
        SELECT bot, m.id FROM metrics m WHERE m.name = ANY (fresh)
        ON CONFLICT DO NOTHING
        RETURNING bot_metrics.metric_id)
    SELECT m.name, m.id FROM ins JOIN metrics m ON m.id = ins.metric_id;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetwatch_analyst') THEN
        PERFORM fleetwatch_grant_analyst();
        GRANT SELECT ON bot_metrics TO fleetwatch_analyst;
    END IF;
END
$$;

-- Liquidation asked for and refused: a stop, a rule or the bot's own declaration may ask; the hub grants it
-- only where the bot allows it (`monitor-hub bots liquidation BOT on`), at request and again at each send.
ALTER TABLE commands
    ADD COLUMN liquidation_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN liquidation_refused   text;    -- why the hub did not send the liquidate step; NULL: not refused
UPDATE commands SET liquidation_requested = liquidate;

-- Refused attempts are aggregated (one row per kind, address and minute, with a count) and the log is
-- pruned after `audit.retention_days` by the hub.
ALTER TABLE audit_log ADD COLUMN repeats integer NOT NULL DEFAULT 1;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_outcome_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_outcome_check CHECK (outcome IN ('ok', 'refused', 'accepted'));

-- Indexes that keep /metrics free of full scans: open commands are indexed already (commands_open).
CREATE INDEX alerts_firing ON alerts (level) WHERE state = 'firing';
CREATE INDEX bots_in_emergency ON bots (id) WHERE emergency_command_id IS NOT NULL;
