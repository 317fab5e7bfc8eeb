-- fleetwatch schema 0011: each row says when its last sample is, so a rollup reads only the rows of its window.
--
-- A batch's row starts at its first sample, and its samples may run past that minute, so `fleetwatch_rollup` read
-- every row that started up to an hour before its window, and unpacked all their samples. For the review upkeep's
-- pass over the newest 3 minutes that was 63 minutes of samples: twice the time of reading only its own rows at 100
-- bots with 50 metrics a second (scripts/bench upkeep), and a pass cancelled at the statement timeout at a few
-- hundred bots.
--
-- Now every row written carries `t_end` (its last sample's time; the hub writes it, and the minute merge), a row
-- that spans more than a minute is found through the small partial index `samples_long_rows`, and every other row
-- that can hold samples of the window starts at most a minute before it. Rows stored before this migration have no
-- t_end: over ranges that they can reach (up to an hour after the migration) the rollup reads an hour back, as
-- before, so every range gives the same answer as before.
--
-- Upgrading builds the partial index on every samples partition: one read of the table, with writes to it
-- waiting meanwhile (the index itself stays empty until a row longer than a minute arrives).

ALTER TABLE samples ADD COLUMN t_end timestamptz;
CREATE INDEX samples_long_rows ON samples (t_end) WHERE t_end - t_start > interval '1 minute';

-- When rows began to carry t_end (one row).
CREATE TABLE samples_t_end_since (
    id    boolean PRIMARY KEY DEFAULT true CHECK (id),
    since timestamptz NOT NULL
);
INSERT INTO samples_t_end_since (since) VALUES (now());

CREATE OR REPLACE FUNCTION fleetwatch_rollup(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    f timestamptz := date_trunc('minute', from_ts);
    t timestamptz := date_trunc('minute', to_ts - interval '1 microsecond') + interval '1 minute';
    d timestamptz;
    n integer;
    -- How long before the window a row may start and still hold samples in it: a minute (a longer row is found by
    -- its t_end), or an hour over a range that rows stored before schema 0011 (no t_end) may reach.
    slack interval := interval '1 minute';
BEGIN
    IF t <= f THEN RETURN 0; END IF;
    IF f < (SELECT since FROM samples_t_end_since) + interval '1 hour' THEN slack := interval '1 hour'; END IF;
    d := date_trunc('day', f AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    WHILE d < t LOOP
        PERFORM fleetwatch_ensure_partition('rollup_1m', 'day', d);
        PERFORM fleetwatch_ensure_partition('rollup_1h', 'month', d);
        d := d + interval '1 day';
    END LOOP;

    WITH rows AS (
        -- Rows that start in the window or up to `slack` before it (batches may start before their samples' minute).
        SELECT s.bot_id, s.epoch, s.t_start, s.metric_ids, s.offsets_ms, s.vals FROM samples s
        WHERE s.t_start >= f - slack AND s.t_start < t
        UNION ALL
        -- Rows longer than a minute that start earlier and reach into the window (the partial index samples_long_rows).
        SELECT s.bot_id, s.epoch, s.t_start, s.metric_ids, s.offsets_ms, s.vals FROM samples s
        WHERE s.t_end >= f AND s.t_end - s.t_start > interval '1 minute' AND s.t_start < f - slack
    ), pts AS (
        SELECT s.bot_id, u.metric_id, s.epoch, s.t_start + u.offset_ms * interval '1 millisecond' AS ts, u.value
        FROM rows s
        CROSS JOIN LATERAL unnest(s.metric_ids, s.offsets_ms, s.vals) AS u(metric_id, offset_ms, value)
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

CREATE OR REPLACE FUNCTION fleetwatch_rechunk(from_ts timestamptz, to_ts timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    f timestamptz := date_trunc('minute', from_ts);
    t timestamptz := date_trunc('minute', to_ts);
    n integer;
BEGIN
    IF t <= f THEN RETURN 0; END IF;
    WITH groups AS (
        SELECT s.bot_id, date_trunc('minute', s.t_start) AS minute
        FROM samples s WHERE s.t_start >= f AND s.t_start < t
        GROUP BY 1, 2 HAVING count(*) > count(DISTINCT s.epoch)   -- already one row per epoch: nothing to gain
    ), gone AS (
        DELETE FROM samples s USING groups g
        WHERE s.bot_id = g.bot_id AND s.t_start >= g.minute AND s.t_start < g.minute + interval '1 minute'
        RETURNING s.*
    ), points AS (
        SELECT g.bot_id, g.epoch, u.metric_id, g.t_start + u.offset_ms * interval '1 millisecond' AS ts, u.value,
               COALESCE(u.seq, g.seq) AS seq
        FROM gone g CROSS JOIN LATERAL unnest(g.metric_ids, g.offsets_ms, g.vals, g.seqs) AS u(metric_id, offset_ms, value, seq)
        WHERE u.metric_id IS NOT NULL
    ), state_points AS (
        SELECT g.bot_id, g.epoch, u.metric_id, g.t_start + u.offset_ms * interval '1 millisecond' AS ts, u.state,
               COALESCE(u.seq, g.seq) AS seq
        FROM gone g CROSS JOIN LATERAL unnest(g.state_metric_ids, g.state_offsets_ms, g.states, g.state_seqs)
             AS u(metric_id, offset_ms, state, seq)
        WHERE u.metric_id IS NOT NULL
    ), numbers AS (
        SELECT bot_id, epoch, date_trunc('minute', ts) AS minute, max(seq) AS last_seq, max(ts) AS last_ts,
               array_agg(metric_id ORDER BY metric_id, ts, seq) AS ids,
               array_agg(round(extract(epoch FROM ts - date_trunc('minute', ts)) * 1000)::integer ORDER BY metric_id, ts, seq) AS offsets,
               array_agg(value ORDER BY metric_id, ts, seq) AS vals,
               array_agg(seq ORDER BY metric_id, ts, seq) AS seqs
        FROM points GROUP BY 1, 2, 3
    ), states AS (
        SELECT bot_id, epoch, date_trunc('minute', ts) AS minute, max(seq) AS last_seq, max(ts) AS last_ts,
               array_agg(metric_id ORDER BY metric_id, ts, seq) AS ids,
               array_agg(round(extract(epoch FROM ts - date_trunc('minute', ts)) * 1000)::integer ORDER BY metric_id, ts, seq) AS offsets,
               array_agg(state ORDER BY metric_id, ts, seq) AS states,
               array_agg(seq ORDER BY metric_id, ts, seq) AS seqs
        FROM state_points GROUP BY 1, 2, 3
    )
    INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, seqs,
                         state_metric_ids, state_offsets_ms, states, state_seqs, t_end)
    SELECT bot_id, minute, epoch, GREATEST(nu.last_seq, st.last_seq),
           COALESCE(nu.ids, '{}'), COALESCE(nu.offsets, '{}'), COALESCE(nu.vals, '{}'), nu.seqs,
           st.ids, st.offsets, st.states, st.seqs, GREATEST(nu.last_ts, st.last_ts)
    FROM numbers nu FULL JOIN states st USING (bot_id, epoch, minute);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
