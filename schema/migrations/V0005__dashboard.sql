-- fleetwatch schema 0005: dashboard users and their sign-in sessions.

-- People who sign in to the dashboard. Passwords are stored as PBKDF2-SHA256 (salted, 210,000 rounds),
-- never in clear. `viewer` reads; `operator` also stops and resumes bots and changes alerts and thresholds.
CREATE TABLE users (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role          text NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    disabled_at   timestamptz
);

-- One row per sign-in. The cookie holds a random secret; only its SHA-256 is stored, so a copy of the
-- database signs nobody in. Any replica accepts any session: the row is the truth. Sign-out sets
-- `revoked_at` and NOTIFYs `fleetwatch_sessions`, which closes the session's live WebSockets everywhere.
CREATE TABLE sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    remote       text
);

CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;
