-- fleetwatch schema 0003: the emergency-stop command ledger, its step results, the audit log, the
-- latched emergency mode of each bot, and the API tokens that say who may do what.

-- Who may use the HTTP API. `viewer` reads; `operator` also stops and resumes bots and changes alerts
-- and thresholds. The token itself is never stored, only its SHA-256.
CREATE TABLE api_tokens (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@:/-]{1,64}$'),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator')),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Emergency mode is latched here: set by an emergency stop, sent to the bot on every reconnect, cleared
-- only by an operator's resume. Liquidation must be allowed per bot before a stop may ask for it.
ALTER TABLE bots
    ADD COLUMN emergency_command_id uuid,
    ADD COLUMN emergency_since      timestamptz,
    ADD COLUMN allow_liquidation    boolean NOT NULL DEFAULT false;

-- One row per command. The table is the truth; NOTIFY on `fleetwatch_commands` only wakes the replica
-- that holds the bot's connection. State only moves forward:
--   pending → delivered → acknowledged → completed | failed
CREATE TABLE commands (
    id                uuid PRIMARY KEY,
    bot_id            integer NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
    kind              text NOT NULL CHECK (kind IN ('emergency_stop', 'resume')),
    origin            text NOT NULL CHECK (origin IN ('operator', 'rule', 'bot')),
    issued_by         text NOT NULL,          -- API token name, rule id, or the bot's own name
    reason            text NOT NULL,
    actions           smallint NOT NULL,      -- protocol bits: 1 stop trading, 2 cancel orders, 4 liquidate, 8 latch, 16 resume
    liquidate         boolean NOT NULL DEFAULT false,
    state             text NOT NULL DEFAULT 'pending'
                      CHECK (state IN ('pending', 'delivered', 'acknowledged', 'completed', 'failed')),
    detail            text,                   -- why it failed, or the agent's final word
    idempotency_key   text,
    request_hash      bytea,
    remote            text,                   -- where the request came from
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    acknowledged_at   timestamptz,
    completed_at      timestamptz,
    failed_at         timestamptz,
    last_delivered_at timestamptz,
    delivered_by      text,                   -- hub replica that last sent it
    deliveries        integer NOT NULL DEFAULT 0,
    overdue_alerted_at timestamptz            -- when the "not acknowledged" alert was raised
);
CREATE UNIQUE INDEX commands_idempotency ON commands (issued_by, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX commands_bot_time ON commands (bot_id, created_at DESC);
CREATE INDEX commands_open ON commands (bot_id) WHERE state IN ('pending', 'delivered', 'acknowledged');

-- What the agent reported, step by step. (command, step, status) is unique, so a result the agent sends
-- again after a reconnect is recorded once.
CREATE TABLE command_steps (
    command_id  uuid NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
    step        text NOT NULL CHECK (step IN ('command', 'stop_trading', 'cancel_orders', 'liquidate', 'latch_emergency', 'resume')),
    status      text NOT NULL CHECK (status IN ('received', 'succeeded', 'failed', 'skipped', 'completed', 'refused')),
    detail      text NOT NULL DEFAULT '',
    agent_at    timestamptz NOT NULL,         -- when the agent finished the step (its clock)
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (command_id, step, status)
);

-- Every state change of every command and every refused attempt: who, when, from where, why.
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,                 -- token name, rule id, bot name, hub replica, or 'anonymous'
    actor_kind text NOT NULL CHECK (actor_kind IN ('operator', 'viewer', 'rule', 'bot', 'hub', 'anonymous')),
    action     text NOT NULL,                 -- e.g. emergency_stop.requested, command.completed, resume.refused
    outcome    text NOT NULL CHECK (outcome IN ('ok', 'refused')),
    bot        text,
    command_id uuid,
    remote     text,
    detail     text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_time ON audit_log (at DESC);
CREATE INDEX audit_log_command ON audit_log (command_id) WHERE command_id IS NOT NULL;
