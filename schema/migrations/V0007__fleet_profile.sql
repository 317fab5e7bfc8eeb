-- fleetwatch schema 0007: the fleet's default threshold profile, levels per rule, and the periodic health
-- check's result per bot.

-- Settings of the whole fleet that every replica reads: `default_profile` is the profile every bot without its
-- own follows (set from `--config` at hub start, changeable at run time).
CREATE TABLE fleet_settings (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT 'hub'
);
INSERT INTO fleet_settings (key, value) VALUES ('default_profile', 'default');

-- A bot follows its own profile, or (NULL) the fleet's default. Bots on 'default' were following the default.
ALTER TABLE bots ALTER COLUMN profile DROP NOT NULL, ALTER COLUMN profile DROP DEFAULT;
UPDATE bots SET profile = NULL WHERE profile = 'default';

-- The level of a rule can be changed by a profile (`levels`: rule id → INFO | WARNING | CRITICAL) and by a
-- per-bot override (`level`, with or without a limit).
ALTER TABLE threshold_profiles ADD COLUMN levels jsonb NOT NULL DEFAULT '{}';
ALTER TABLE bot_thresholds
    ALTER COLUMN limit_value DROP NOT NULL,
    ADD COLUMN level text CHECK (level IN ('INFO', 'WARNING', 'CRITICAL')),
    ADD CONSTRAINT bot_thresholds_limit_or_level CHECK (limit_value IS NOT NULL OR level IS NOT NULL);

-- The periodic health check (`monitoring.health_check_interval`): its last result per bot.
ALTER TABLE bots
    ADD COLUMN health_status     text CHECK (health_status IN ('healthy', 'warning', 'critical', 'emergency')),
    ADD COLUMN health_message    text,
    ADD COLUMN health_checked_at timestamptz;

-- The analysts' grants, with what 0006 and 0007 added (call it again after creating the role by hand).
CREATE OR REPLACE FUNCTION fleetwatch_grant_analyst() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    GRANT USAGE ON SCHEMA public TO fleetwatch_analyst;
    GRANT SELECT ON review_metric_hour, review_metric_minute, review_bot_day, review_bot_week, review_alert_history,
                    review_command_history, review_notification_history, sample_points, rollup_1m, rollup_1h, samples,
                    metrics, alerts, commands, command_steps, notifications, audit_log, silences, threshold_profiles,
                    bot_thresholds, ingest_streams, bot_metrics, fleet_settings TO fleetwatch_analyst;
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
