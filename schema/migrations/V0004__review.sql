-- fleetwatch schema 0004: rollups, retention by partition, the weekly-review views (a public contract:
-- columns are only ever added) and the read-only analyst role. See docs/weekly-review.md.

-- 1-minute and 1-hour rollups of numeric samples, per bot and metric. `increase` is set for counters:
-- the sum of the counter's increases in the bucket (a counter that goes down, or starts a new boot epoch,
-- counts from 0). `drawdown` is the largest fall from a running peak inside the bucket, in sample order;
-- together with min/max it composes exactly into longer periods (see review_bot_day).
CREATE TABLE rollup_1m (
    bot_id     integer NOT NULL,
    metric_id  smallint NOT NULL,
    bucket     timestamptz NOT NULL,
    samples    integer NOT NULL,
    min        float8 NOT NULL,
    max        float8 NOT NULL,
    sum        float8 NOT NULL,
    first      float8 NOT NULL,
    last       float8 NOT NULL,
    increase   float8,
    drawdown   float8 NOT NULL,
    last_epoch bigint NOT NULL,      -- boot epoch of `last`, to continue counters across buckets
    PRIMARY KEY (bot_id, metric_id, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE rollup_1h (
    bot_id     integer NOT NULL,
    metric_id  smallint NOT NULL,
    bucket     timestamptz NOT NULL,
    samples    integer NOT NULL,
    minutes    smallint NOT NULL,    -- minutes of the hour with at least one sample
    min        float8 NOT NULL,
    max        float8 NOT NULL,
    sum        float8 NOT NULL,
    first      float8 NOT NULL,
    last       float8 NOT NULL,
    increase   float8,
    drawdown   float8 NOT NULL,
    PRIMARY KEY (bot_id, metric_id, bucket)
) PARTITION BY RANGE (bucket);

-- Creates the partition of `parent` holding `at` unless it exists: daily (`parent_YYYYMMDD`) or monthly
-- (`parent_YYYYMM`). Safe to call from several replicas at once.
CREATE FUNCTION fleetwatch_ensure_partition(parent text, unit text, at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    start timestamptz := date_trunc(unit, at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    stop timestamptz := (date_trunc(unit, at AT TIME ZONE 'UTC') + ('1 ' || unit)::interval) AT TIME ZONE 'UTC';
    part text := parent || '_' || to_char(date_trunc(unit, at AT TIME ZONE 'UTC'), CASE unit WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
BEGIN
    IF to_regclass(part) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, parent, start, stop);
        EXCEPTION WHEN duplicate_table THEN
            NULL;
        END;
    END IF;
    RETURN part;
END
$$;

-- Recomputes the rollups of every minute that [from_ts, to_ts) touches (and their hours entirely) from the
-- raw samples. A minute still in progress is rolled up with what has arrived and recomputed by the next
-- call. Idempotent: run it again over any range, e.g. after late batches arrived.
CREATE FUNCTION fleetwatch_rollup(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    f timestamptz := date_trunc('minute', from_ts);
    t timestamptz := date_trunc('minute', to_ts - interval '1 microsecond') + interval '1 minute';
    d timestamptz;
    n integer;
BEGIN
    IF t <= f THEN RETURN 0; END IF;
    d := date_trunc('day', f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE d < t LOOP
        PERFORM fleetwatch_ensure_partition('rollup_1m', 'day', d);
        PERFORM fleetwatch_ensure_partition('rollup_1h', 'month', d);
        d := d + interval '1 day';
    END LOOP;

    WITH pts AS (
        SELECT s.bot_id, u.metric_id, s.epoch, s.t_start + u.offset_ms * interval '1 millisecond' AS ts, u.value
        FROM samples s
        CROSS JOIN LATERAL unnest(s.metric_ids, s.offsets_ms, s.vals) AS u(metric_id, offset_ms, value)
        WHERE s.t_start >= f - interval '1 hour' AND s.t_start < t   -- batches may start before their samples' minute
    ), win AS (
        SELECT * FROM pts WHERE ts >= f AND ts < t
    ), ordered AS (
        SELECT w.*, m.kind,
               lag(w.value) OVER (PARTITION BY w.bot_id, w.metric_id, w.epoch ORDER BY w.ts) AS prev,
               max(w.value) OVER (PARTITION BY w.bot_id, w.metric_id, date_trunc('minute', w.ts) ORDER BY w.ts
                                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS peak
        FROM win w JOIN metrics m ON m.id = w.metric_id
    ), carried AS (
        -- The first sample of a (bot, metric, epoch) in the window continues from the bucket before it.
        SELECT o.*,
               CASE WHEN o.prev IS NOT NULL THEN o.prev
                    ELSE (SELECT r.last FROM rollup_1m r
                          WHERE r.bot_id = o.bot_id AND r.metric_id = o.metric_id AND r.bucket < f
                            AND r.bucket >= f - interval '7 days' AND r.last_epoch = o.epoch
                          ORDER BY r.bucket DESC LIMIT 1)
               END AS before
        FROM ordered o
    )
    INSERT INTO rollup_1m AS r (bot_id, metric_id, bucket, samples, min, max, sum, first, last, increase, drawdown, last_epoch)
    SELECT bot_id, metric_id, date_trunc('minute', ts), count(*), min(value), max(value), sum(value),
           (array_agg(value ORDER BY ts))[1], (array_agg(value ORDER BY ts DESC))[1],
           CASE WHEN min(kind) = 'counter' THEN
                sum(CASE WHEN before IS NULL OR value < before THEN value ELSE value - before END) END,
           max(peak - value), (array_agg(epoch ORDER BY ts DESC))[1]
    FROM carried
    GROUP BY bot_id, metric_id, date_trunc('minute', ts)
    ON CONFLICT (bot_id, metric_id, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum, first = EXCLUDED.first,
        last = EXCLUDED.last, increase = EXCLUDED.increase, drawdown = EXCLUDED.drawdown, last_epoch = EXCLUDED.last_epoch;
    GET DIAGNOSTICS n = ROW_COUNT;

    WITH m AS (
        SELECT r.*, date_trunc('hour', r.bucket) AS hour,
               max(r.max) OVER (PARTITION BY r.bot_id, r.metric_id, date_trunc('hour', r.bucket) ORDER BY r.bucket
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior_peak
        FROM rollup_1m r
        WHERE r.bucket >= date_trunc('hour', f) AND r.bucket < date_trunc('hour', t - interval '1 microsecond') + interval '1 hour'
    )
    INSERT INTO rollup_1h (bot_id, metric_id, bucket, samples, minutes, min, max, sum, first, last, increase, drawdown)
    SELECT bot_id, metric_id, hour, sum(samples), count(*), min(min), max(max), sum(sum),
           (array_agg(first ORDER BY bucket))[1], (array_agg(last ORDER BY bucket DESC))[1], sum(increase),
           max(GREATEST(drawdown, prior_peak - min))
    FROM m GROUP BY bot_id, metric_id, hour
    ON CONFLICT (bot_id, metric_id, bucket) DO UPDATE SET
        samples = EXCLUDED.samples, minutes = EXCLUDED.minutes, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
        first = EXCLUDED.first, last = EXCLUDED.last, increase = EXCLUDED.increase, drawdown = EXCLUDED.drawdown;
    RETURN n;
END
$$;

-- Where the rollup job stands (one row).
CREATE TABLE rollup_progress (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    rolled_to  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------------------
-- Review views. Days and ISO weeks are UTC. Every figure comes from the rollups (fast for any range) and
-- the alert/command ledgers.

-- One row per bot, metric and hour, with names.
CREATE VIEW review_metric_hour AS
SELECT b.name AS bot, m.name AS metric, m.kind, r.bucket AS hour, r.samples, r.minutes, r.min, r.max,
       r.sum / NULLIF(r.samples, 0) AS avg, r.first, r.last, r.increase, r.drawdown
FROM rollup_1h r JOIN bots b ON b.id = r.bot_id JOIN metrics m ON m.id = r.metric_id;

-- One row per bot, metric and minute, with names.
CREATE VIEW review_metric_minute AS
SELECT b.name AS bot, m.name AS metric, m.kind, r.bucket AS minute, r.samples, r.min, r.max,
       r.sum / NULLIF(r.samples, 0) AS avg, r.first, r.last, r.increase, r.drawdown
FROM rollup_1m r JOIN bots b ON b.id = r.bot_id JOIN metrics m ON m.id = r.metric_id;

-- Per bot and period (day or ISO week) from the hourly rollups. `period_start` is the UTC day or the Monday.
CREATE FUNCTION fleetwatch_review(unit text, from_ts timestamptz, to_ts timestamptz)
RETURNS TABLE (bot text, period_start date, trades_executed float8, trades_failed float8, success_rate_percent float8,
               total_pnl float8, period_pnl float8, max_drawdown float8, api_calls float8, api_errors float8,
               api_error_rate_percent float8, nonce_failures float8, websocket_reconnects float8, peak_memory_mb float8,
               uptime_percent float8, alerts_info bigint, alerts_warning bigint, alerts_critical bigint, emergency_stops bigint)
LANGUAGE sql STABLE AS $$
    WITH h AS (
        SELECT r.bot_id, m.name AS metric, r.bucket, r.minutes, r.min, r.max, r.first, r.last, r.increase, r.drawdown,
               (date_trunc(unit, r.bucket AT TIME ZONE 'UTC'))::date AS p
        FROM rollup_1h r JOIN metrics m ON m.id = r.metric_id
        WHERE r.bucket >= from_ts AND r.bucket < to_ts
          AND m.name IN ('trades_executed', 'trades_failed', 'total_pnl', 'daily_pnl', 'api_calls', 'api_errors',
                         'nonce_failures', 'websocket_reconnects', 'memory_usage_mb', 'success_rate')
    ), dd AS (
        SELECT bot_id, p, max(GREATEST(drawdown, prior_peak - min)) AS max_drawdown FROM (
            SELECT h.*, max(h.max) OVER (PARTITION BY bot_id, p ORDER BY bucket
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prior_peak
            FROM h WHERE metric = 'total_pnl') x
        GROUP BY bot_id, p
    ), up AS (
        SELECT bot_id, p, sum(mins) AS minutes FROM (
            SELECT r.bot_id, (date_trunc(unit, r.bucket AT TIME ZONE 'UTC'))::date AS p, r.bucket, max(r.minutes) AS mins
            FROM rollup_1h r WHERE r.bucket >= from_ts AND r.bucket < to_ts GROUP BY 1, 2, 3) y
        GROUP BY bot_id, p
    ), daily_last AS (
        -- PnL of a period: the sum over its days of each day's last daily_pnl.
        SELECT bot_id, (date_trunc(unit, d AT TIME ZONE 'UTC'))::date AS p, sum(last) AS pnl FROM (
            SELECT DISTINCT ON (bot_id, date_trunc('day', bucket AT TIME ZONE 'UTC'))
                   bot_id, date_trunc('day', bucket AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS d, last
            FROM h WHERE metric = 'daily_pnl' ORDER BY bot_id, date_trunc('day', bucket AT TIME ZONE 'UTC'), bucket DESC) z
        GROUP BY 1, 2
    ), agg AS (
        SELECT bot_id, p,
               sum(increase) FILTER (WHERE metric = 'trades_executed') AS trades,
               sum(increase) FILTER (WHERE metric = 'trades_failed') AS failed,
               (array_agg(last ORDER BY bucket DESC) FILTER (WHERE metric = 'total_pnl'))[1] AS total_pnl,
               (array_agg(last ORDER BY bucket DESC) FILTER (WHERE metric = 'success_rate'))[1] AS success_gauge,
               sum(increase) FILTER (WHERE metric = 'api_calls') AS calls,
               sum(increase) FILTER (WHERE metric = 'api_errors') AS errors,
               sum(increase) FILTER (WHERE metric = 'nonce_failures') AS nonce_failures,
               sum(increase) FILTER (WHERE metric = 'websocket_reconnects') AS reconnects,
               max(max) FILTER (WHERE metric = 'memory_usage_mb') AS peak_memory
        FROM h GROUP BY bot_id, p
    ), periods AS (
        SELECT bot_id, p FROM agg
    ), al AS (
        SELECT a.bot_id, (date_trunc(unit, a.fired_at AT TIME ZONE 'UTC'))::date AS p,
               count(*) FILTER (WHERE level = 'INFO') AS info, count(*) FILTER (WHERE level = 'WARNING') AS warning,
               count(*) FILTER (WHERE level = 'CRITICAL') AS critical
        FROM alerts a WHERE a.fired_at >= from_ts AND a.fired_at < to_ts GROUP BY 1, 2
    ), st AS (
        SELECT c.bot_id, (date_trunc(unit, c.created_at AT TIME ZONE 'UTC'))::date AS p, count(*) AS stops
        FROM commands c WHERE c.kind = 'emergency_stop' AND c.created_at >= from_ts AND c.created_at < to_ts GROUP BY 1, 2
    )
    SELECT b.name, pr.p, agg.trades, agg.failed,
           CASE WHEN agg.trades > 0 AND agg.failed IS NOT NULL THEN 100 * (agg.trades - agg.failed) / agg.trades
                ELSE agg.success_gauge END,
           agg.total_pnl, dl.pnl, dd.max_drawdown, agg.calls, agg.errors,
           CASE WHEN agg.calls > 0 THEN 100 * COALESCE(agg.errors, 0) / agg.calls END,
           agg.nonce_failures, agg.reconnects, agg.peak_memory,
           100.0 * up.minutes / (EXTRACT(EPOCH FROM (LEAST(to_ts, now(), (pr.p::timestamp AT TIME ZONE 'UTC') + ('1 ' || unit)::interval)
                                                   - GREATEST(from_ts, pr.p::timestamp AT TIME ZONE 'UTC'))) / 60),
           COALESCE(al.info, 0), COALESCE(al.warning, 0), COALESCE(al.critical, 0), COALESCE(st.stops, 0)
    FROM periods pr
    JOIN bots b ON b.id = pr.bot_id
    JOIN agg ON agg.bot_id = pr.bot_id AND agg.p = pr.p
    LEFT JOIN dd ON dd.bot_id = pr.bot_id AND dd.p = pr.p
    LEFT JOIN up ON up.bot_id = pr.bot_id AND up.p = pr.p
    LEFT JOIN daily_last dl ON dl.bot_id = pr.bot_id AND dl.p = pr.p
    LEFT JOIN al ON al.bot_id = pr.bot_id AND al.p = pr.p
    LEFT JOIN st ON st.bot_id = pr.bot_id AND st.p = pr.p
$$;

-- Per bot per UTC day, the last 35 days (older days: call fleetwatch_review('day', from, to)).
CREATE VIEW review_bot_day AS
SELECT bot, period_start AS day, trades_executed, trades_failed, success_rate_percent, total_pnl,
       period_pnl AS daily_pnl, max_drawdown, api_calls, api_errors, api_error_rate_percent, nonce_failures,
       websocket_reconnects, peak_memory_mb, uptime_percent, alerts_info, alerts_warning, alerts_critical, emergency_stops
FROM fleetwatch_review('day', date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '35 days', now() + interval '1 hour');

-- Per bot per ISO week (Monday, UTC), the last 13 weeks (older: fleetwatch_review('week', from, to)). `week` is
-- the ISO week as YYYY-Www.
CREATE VIEW review_bot_week AS
SELECT bot, to_char(period_start, 'IYYY-"W"IW') AS week, period_start AS week_start, trades_executed, trades_failed,
       success_rate_percent, total_pnl, period_pnl AS week_pnl, max_drawdown, api_calls, api_errors, api_error_rate_percent,
       nonce_failures, websocket_reconnects, peak_memory_mb, uptime_percent, alerts_info, alerts_warning, alerts_critical,
       emergency_stops
FROM fleetwatch_review('week', date_trunc('week', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '13 weeks', now() + interval '1 hour');

-- Every alert with its bot, newest first by default.
CREATE VIEW review_alert_history AS
SELECT a.id, b.name AS bot, a.rule_id AS rule, a.metric, a.level, a.state, a.summary, a.limit_value, a.value,
       a.state_value, a.fired_at, a.resolved_at, a.resolved_at - a.fired_at AS duration, a.notify_count,
       a.acknowledged_at, a.acknowledged_by
FROM alerts a JOIN bots b ON b.id = a.bot_id;

-- Every command (emergency stop or resume) with its outcome and step count.
CREATE VIEW review_command_history AS
SELECT c.id, b.name AS bot, c.kind, c.origin, c.issued_by, c.reason, c.liquidate, c.state, c.detail, c.created_at,
       c.delivered_at, c.acknowledged_at, c.completed_at, c.failed_at,
       COALESCE(c.completed_at, c.failed_at) - c.created_at AS time_to_finish,
       (SELECT count(*) FROM command_steps s WHERE s.command_id = c.id) AS step_results
FROM commands c JOIN bots b ON b.id = c.bot_id;

-- Every notification attempt with its alert.
CREATE VIEW review_notification_history AS
SELECT n.id, n.at, b.name AS bot, a.rule_id AS rule, a.level, n.event, n.channel, n.attempt, n.outcome, n.error,
       n.duration_ms, n.hub
FROM notifications n JOIN alerts a ON a.id = n.alert_id JOIN bots b ON b.id = a.bot_id;

-- The analysts' role: reads the review views, rollups, raw samples and ledgers; writes nothing. Give a person
-- a login in it with `CREATE ROLE alice LOGIN PASSWORD '…' IN ROLE fleetwatch_analyst` (or
-- `monitor-hub analysts add alice`). Tokens and password hashes are not readable.
-- Grants the analysts' role what it reads. Called below; call it again after creating the role by hand.
CREATE FUNCTION fleetwatch_grant_analyst() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO fleetwatch_analyst;
    GRANT SELECT ON review_metric_hour, review_metric_minute, review_bot_day, review_bot_week, review_alert_history,
                    review_command_history, review_notification_history, sample_points, rollup_1m, rollup_1h, samples,
                    metrics, alerts, commands, command_steps, notifications, audit_log, silences, threshold_profiles,
                    bot_thresholds, ingest_streams TO fleetwatch_analyst;
    GRANT SELECT (id, name, profile, created_at, first_seen_at, last_seen_at, agent_version, connected_hub,
                  emergency_since) ON bots TO fleetwatch_analyst;
    GRANT EXECUTE ON FUNCTION fleetwatch_review(text, timestamptz, timestamptz) TO fleetwatch_analyst;
END
$$;

-- Roles belong to the whole cluster: another database may be creating it at the same moment, and a database
-- user without CREATEROLE cannot create it. Then the migration goes on without it and says so; a superuser
-- can later run `CREATE ROLE fleetwatch_analyst NOLOGIN; SELECT fleetwatch_grant_analyst();`.
DO $$
BEGIN
    BEGIN
        CREATE ROLE fleetwatch_analyst NOLOGIN;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN NULL;
        WHEN insufficient_privilege THEN
            RAISE NOTICE 'fleetwatch: cannot create role fleetwatch_analyst (no CREATEROLE); see docs/weekly-review.md';
    END;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleetwatch_analyst') THEN
        PERFORM fleetwatch_grant_analyst();
    END IF;
END
$$;

-- Drops every partition of `parent` whose whole range ends at or before `cutoff` (named parent_YYYYMMDD for
-- `day`, parent_YYYYMM for `month`); returns the dropped names. Expired data goes a whole partition at a time.
CREATE FUNCTION fleetwatch_drop_expired_partitions(parent text, unit text, cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part text;
    suffix text;
    stop timestamptz;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent::regclass ORDER BY c.relname
    LOOP
        suffix := substring(part FROM length(parent) + 2);
        IF unit = 'day' AND suffix ~ '^[0-9]{8}$' THEN
            stop := (to_date(suffix, 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
        ELSIF unit = 'month' AND suffix ~ '^[0-9]{6}$' THEN
            stop := (to_date(suffix, 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        ELSE
            CONTINUE;
        END IF;
        IF stop <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part);
            RETURN NEXT part;
        END IF;
    END LOOP;
END
$$;

-- Creates a read-only login in fleetwatch_analyst (used by `monitor-hub analysts add`). Needs CREATEROLE.
CREATE FUNCTION fleetwatch_create_analyst(login text, password text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE fleetwatch_analyst', login, password);
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', login);
END
$$;
