-- fleetwatch schema 0009: a bot's closed minutes re-chunked into one row each.
--
-- Bots flush about once a second, so `samples` gets a row per bot per second: a row header, an index entry
-- and array headers for 15–50 samples, about 20 bytes a sample. Once a minute is closed, the review upkeep
-- (one replica at a time) merges a bot's rows of that minute into one row per (minute, epoch), its arrays
-- ordered by metric then time, which PostgreSQL's TOAST compression then shrinks to about 4–5 bytes a sample.
--
-- Nothing that reads samples changes its answer: each sample keeps its bot, metric, time, value or state,
-- epoch and the sequence number of the batch it came in (kept per sample in `seqs`/`state_seqs`, which are
-- NULL in a batch's own row: every sample of it has the row's `seq`). `sample_points` returns the same rows.
-- Exactly-once storage is decided by `ingest_streams`, never by these rows, so merging does not touch it.

ALTER TABLE samples ADD COLUMN seqs bigint[], ADD COLUMN state_seqs bigint[];

-- The same columns as before; the batch's sequence comes from the per-sample array when the row has one.
CREATE OR REPLACE VIEW sample_points AS
SELECT s.bot_id, b.name AS bot, m.name AS metric, m.kind,
       s.t_start + u.offset_ms * interval '1 millisecond' AS ts,
       u.value, NULL::text AS state, s.epoch, COALESCE(u.seq, s.seq) AS seq
FROM samples s
CROSS JOIN LATERAL unnest(s.metric_ids, s.offsets_ms, s.vals, s.seqs) AS u(metric_id, offset_ms, value, seq)
JOIN metrics m ON m.id = u.metric_id
JOIN bots b ON b.id = s.bot_id
WHERE u.metric_id IS NOT NULL
UNION ALL
SELECT s.bot_id, b.name, m.name, m.kind,
       s.t_start + u.offset_ms * interval '1 millisecond',
       NULL::float8, u.state, s.epoch, COALESCE(u.seq, s.seq)
FROM samples s
CROSS JOIN LATERAL unnest(s.state_metric_ids, s.state_offsets_ms, s.states, s.state_seqs) AS u(metric_id, offset_ms, state, seq)
JOIN metrics m ON m.id = u.metric_id
JOIN bots b ON b.id = s.bot_id
WHERE u.metric_id IS NOT NULL;

-- Merges, for every bot, the rows that start within each minute of [from_ts, to_ts) into one row per (minute of
-- each sample, epoch), when the minute has more rows than epochs. One statement: a failure or a kill leaves every
-- row as it was. Returns the rows written. Safe to run again over any range (a merged minute with no late rows
-- is left alone; one with late rows is merged again, late rows included).
CREATE FUNCTION fleetwatch_rechunk(from_ts timestamptz, to_ts timestamptz) RETURNS integer
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
        SELECT bot_id, epoch, date_trunc('minute', ts) AS minute, max(seq) AS last_seq,
               array_agg(metric_id ORDER BY metric_id, ts, seq) AS ids,
               array_agg(round(extract(epoch FROM ts - date_trunc('minute', ts)) * 1000)::integer ORDER BY metric_id, ts, seq) AS offsets,
               array_agg(value ORDER BY metric_id, ts, seq) AS vals,
               array_agg(seq ORDER BY metric_id, ts, seq) AS seqs
        FROM points GROUP BY 1, 2, 3
    ), states AS (
        SELECT bot_id, epoch, date_trunc('minute', ts) AS minute, max(seq) AS last_seq,
               array_agg(metric_id ORDER BY metric_id, ts, seq) AS ids,
               array_agg(round(extract(epoch FROM ts - date_trunc('minute', ts)) * 1000)::integer ORDER BY metric_id, ts, seq) AS offsets,
               array_agg(state ORDER BY metric_id, ts, seq) AS states,
               array_agg(seq ORDER BY metric_id, ts, seq) AS seqs
        FROM state_points GROUP BY 1, 2, 3
    )
    INSERT INTO samples (bot_id, t_start, epoch, seq, metric_ids, offsets_ms, vals, seqs,
                         state_metric_ids, state_offsets_ms, states, state_seqs)
    SELECT bot_id, minute, epoch, GREATEST(nu.last_seq, st.last_seq),
           COALESCE(nu.ids, '{}'), COALESCE(nu.offsets, '{}'), COALESCE(nu.vals, '{}'), nu.seqs,
           st.ids, st.offsets, st.states, st.seqs
    FROM numbers nu FULL JOIN states st USING (bot_id, epoch, minute);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
