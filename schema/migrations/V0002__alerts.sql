-- fleetwatch schema 0002: threshold profiles and per-bot overrides, alerts as state, silences,
-- and the notification ledger.

-- A profile is a built-in rule set (`base`) with limits changed by key (the reference system's
-- threshold names, e.g. {"memory_usage_mb": 450}). Bots follow one profile (bots.profile).
CREATE TABLE threshold_profiles (
    name                      text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:/-]{1,64}$'),
    base                      text NOT NULL CHECK (base IN ('default', 'production', 'development')),
    limits                    jsonb NOT NULL DEFAULT '{}',
    enable_emergency_shutdown boolean NOT NULL DEFAULT false,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

INSERT INTO threshold_profiles (name, base, enable_emergency_shutdown) VALUES
    ('default', 'default', false), ('production', 'production', true), ('development', 'development', false);

-- An operator's override of one threshold for one bot; applies to the next batch.
CREATE TABLE bot_thresholds (
    bot_id      integer NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
    rule_id     text NOT NULL,
    limit_value float8 NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT 'api',
    PRIMARY KEY (bot_id, rule_id)
);

-- One row per alert: fired → (repeated) → resolved. At most one firing alert per (bot, rule): the
-- partial unique index is what lets several replicas evaluate the same bot without double notifying.
CREATE TABLE alerts (
    id               bigserial PRIMARY KEY,
    bot_id           integer NOT NULL,
    rule_id          text NOT NULL,
    metric           text NOT NULL,
    level            text NOT NULL CHECK (level IN ('INFO', 'WARNING', 'CRITICAL')),
    state            text NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary          text NOT NULL,
    limit_value      float8 NOT NULL,
    value            float8,               -- the value that fired it
    state_value      text,                 -- the state string, for state rules
    last_value       float8,
    fired_at         timestamptz NOT NULL DEFAULT now(),
    last_notified_at timestamptz NOT NULL DEFAULT now(),
    notify_count     integer NOT NULL DEFAULT 1,
    resolved_at      timestamptz,
    resolved_value   float8,
    acknowledged_at  timestamptz,
    acknowledged_by  text
);
CREATE UNIQUE INDEX alerts_one_firing ON alerts (bot_id, rule_id) WHERE state = 'firing';
CREATE INDEX alerts_bot_time ON alerts (bot_id, fired_at DESC);
CREATE INDEX alerts_time ON alerts (fired_at DESC);

-- A silence mutes notifications for a bot (metric NULL) or one of its metrics until a time.
CREATE TABLE silences (
    id         bigserial PRIMARY KEY,
    bot_id     integer NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
    metric     text,
    until      timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT '',
    created_by text NOT NULL DEFAULT 'api',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silences_bot ON silences (bot_id, until);

-- Every delivery attempt of every alert event on every channel.
CREATE TABLE notifications (
    id          bigserial PRIMARY KEY,
    alert_id    bigint NOT NULL,
    event       text NOT NULL CHECK (event IN ('fired', 'repeated', 'resolved')),
    channel     text NOT NULL,
    attempt     integer NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'retrying', 'silenced', 'skipped')),
    error       text,
    hub         text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    duration_ms float8
);
CREATE INDEX notifications_alert ON notifications (alert_id);
CREATE INDEX notifications_time ON notifications (at DESC);
