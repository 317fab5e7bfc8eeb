/// What PostgreSQL holds, batch by batch, whether a batch's samples are still in its own row or were merged into
/// a minute's row (schema 0009 keeps each merged sample's batch sequence in `seqs`/`state_seqs`).
///
/// Columns: bot name, epoch, seq, samples (int8), sum of the numeric values (float8), copies (int8: the batch's
/// own rows; a batch stored twice shows 2, or twice its samples once its minute was merged).
public enum StoredBatches {
    public static let sql = """
        WITH points AS (
            SELECT s.bot_id, s.epoch, COALESCE(u.seq, s.seq) AS seq, u.v, s.seqs IS NULL AS own_row,
                   s.tableoid::text || s.ctid::text AS row_id
            FROM samples s CROSS JOIN LATERAL unnest(s.vals, s.seqs) AS u(v, seq)
            UNION ALL
            SELECT s.bot_id, s.epoch, COALESCE(u.seq, s.seq), NULL, s.state_seqs IS NULL, s.tableoid::text || s.ctid::text
            FROM samples s CROSS JOIN LATERAL unnest(s.states, s.state_seqs) AS u(st, seq)
        )
        SELECT b.name, p.epoch, p.seq, count(*)::int8, COALESCE(sum(p.v), 0)::float8,
               GREATEST(1, count(DISTINCT p.row_id) FILTER (WHERE p.own_row))::int8
        FROM points p JOIN bots b ON b.id = p.bot_id
        GROUP BY b.name, p.epoch, p.seq
        """
}
