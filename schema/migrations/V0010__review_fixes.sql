-- Review fixes found by reading the views as an analyst would:
-- * fleetwatch_review (and so review_bot_day / review_bot_week) kept only the bot-periods that had one of its ten
--   named metrics: a bot reporting only its own metrics, or stopped on a day it sent nothing, was missing. Now
--   every bot-period with any sample, alert or stop has a row (figures it has no data for are NULL).
-- * uptime_percent could pass 100 (an hour cut by the range's end counted whole) and a period that had not begun
--   (a sample from up to hub.max_sample_future ahead, just before midnight) divided by zero, failing the whole
--   view. Now it is capped at 100 and NULL for a period with no elapsed minutes.
-- * review_command_history gains liquidation_requested and liquidation_refused (why the hub did not send the
--   liquidate step), added to commands by 0006.
-- * Analysts may read rollup_progress (how far the rollups have got).

CREATE OR REPLACE FUNCTION fleetwatch_review(unit text, from_ts timestamptz, to_ts timestamptz)
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
    ), al AS (
        SELECT a.bot_id, (date_trunc(unit, a.fired_at AT TIME ZONE 'UTC'))::date AS p,
               count(*) FILTER (WHERE level = 'INFO') AS info, count(*) FILTER (WHERE level = 'WARNING') AS warning,
               count(*) FILTER (WHERE level = 'CRITICAL') AS critical
        FROM alerts a WHERE a.fired_at >= from_ts AND a.fired_at < to_ts GROUP BY 1, 2
    ), st AS (
        SELECT c.bot_id, (date_trunc(unit, c.created_at AT TIME ZONE 'UTC'))::date AS p, count(*) AS stops
        FROM commands c WHERE c.kind = 'emergency_stop' AND c.created_at >= from_ts AND c.created_at < to_ts GROUP BY 1, 2
    ), periods AS (
        -- Every bot and period with any sample (any metric), alert or stop: not only those with the ten named metrics.
        SELECT bot_id, p FROM up UNION SELECT bot_id, p FROM al UNION SELECT bot_id, p FROM st
    ), spans AS (
        -- Minutes of each period inside [from_ts, to_ts) and not in the future; 0 or less for a period that has
        -- not begun (a sample up to hub.max_sample_future ahead can open tomorrow's hour before midnight).
        SELECT bot_id, p,
               EXTRACT(EPOCH FROM (LEAST(to_ts, now(), (p::timestamp AT TIME ZONE 'UTC') + ('1 ' || unit)::interval)
                                   - GREATEST(from_ts, p::timestamp AT TIME ZONE 'UTC'))) / 60 AS minutes
        FROM periods
    )
    SELECT b.name, pr.p, agg.trades, agg.failed,
           CASE WHEN agg.trades > 0 AND agg.failed IS NOT NULL THEN 100 * (agg.trades - agg.failed) / agg.trades
                ELSE agg.success_gauge END,
           agg.total_pnl, dl.pnl, dd.max_drawdown, agg.calls, agg.errors,
           CASE WHEN agg.calls > 0 THEN 100 * COALESCE(agg.errors, 0) / agg.calls END,
           agg.nonce_failures, agg.reconnects, agg.peak_memory,
           -- An hour cut by the range's end (or the hour now) counts whole: never more than 100.
           CASE WHEN sp.minutes > 0 THEN LEAST(100.0, 100.0 * COALESCE(up.minutes, 0) / sp.minutes) END,
           COALESCE(al.info, 0), COALESCE(al.warning, 0), COALESCE(al.critical, 0), COALESCE(st.stops, 0)
    FROM periods pr
    JOIN bots b ON b.id = pr.bot_id
    JOIN spans sp ON sp.bot_id = pr.bot_id AND sp.p = pr.p
    LEFT JOIN agg ON agg.bot_id = pr.bot_id AND agg.p = pr.p
    LEFT JOIN dd ON dd.bot_id = pr.bot_id AND dd.p = pr.p
    LEFT JOIN up ON up.bot_id = pr.bot_id AND up.p = pr.p
    LEFT JOIN daily_last dl ON dl.bot_id = pr.bot_id AND dl.p = pr.p
    LEFT JOIN al ON al.bot_id = pr.bot_id AND al.p = pr.p
    LEFT JOIN st ON st.bot_id = pr.bot_id AND st.p = pr.p
$$;

CREATE OR REPLACE VIEW review_command_history AS
SELECT c.id, b.name AS bot, c.kind, c.origin, c.issued_by, c.reason, c.liquidate, c.state, c.detail, c.created_at,
       c.delivered_at, c.acknowledged_at, c.completed_at, c.failed_at,
       COALESCE(c.completed_at, c.failed_at) - c.created_at AS time_to_finish,
       (SELECT count(*) FROM command_steps s WHERE s.command_id = c.id) AS step_results,
       c.liquidation_requested, c.liquidation_refused
FROM commands c JOIN bots b ON b.id = c.bot_id;

-- The analysts' grants, with what 0010 adds (call it again after creating the role by hand).
CREATE OR REPLACE FUNCTION fleetwatch_grant_analyst() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO fleetwatch_analyst;
    GRANT SELECT ON review_metric_hour, review_metric_minute, review_bot_day, review_bot_week, review_alert_history,
                    review_command_history, review_notification_history, sample_points, rollup_1m, rollup_1h, samples,
                    metrics, alerts, commands, command_steps, notifications, audit_log, silences, threshold_profiles,
                    bot_thresholds, ingest_streams, bot_metrics, fleet_settings, rollup_progress TO fleetwatch_analyst;
    GRANT SELECT (id, name, profile, created_at, first_seen_at, last_seen_at, agent_version, connected_hub,
                  emergency_since, health_status, health_message, health_checked_at) ON bots TO fleetwatch_analyst;
    GRANT EXECUTE ON FUNCTION fleetwatch_review(text, timestamptz, timestamptz) TO fleetwatch_analyst;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleetwatch_analyst') THEN
        PERFORM fleetwatch_grant_analyst();
    END IF;
END
$$;
