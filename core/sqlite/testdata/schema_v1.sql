-- schema.sql — the one source of truth for Presence's SQLite tables.
-- Applied by `presence migrate` (and at every `presence serve`); the version
-- applied is recorded in schema_migrations. Times are Unix nanoseconds (UTC).

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
);

-- A person, by the stable subject the identity provider vouches for
-- (an email in dev/browserid mode, the FxA uid under oidc).
CREATE TABLE IF NOT EXISTS users (
    id         TEXT PRIMARY KEY,
    email      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- A registered AppService. The API key is never stored in plain text:
-- key_hash (SHA-256) checks WebSocket and HTTP keys; key_sealed (AES-GCM
-- under the node key kept outside the database) lets the XMPP listener
-- compute the XEP-0114 handshake digest.
CREATE TABLE IF NOT EXISTS apps (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    domain           TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    owner_email      TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'unverified', -- unverified, verified, active, disabled
    verification_key TEXT NOT NULL,
    key_hash         BLOB,
    key_sealed       BLOB,
    created_at       INTEGER NOT NULL,
    verified_at      INTEGER,
    activated_at     INTEGER
);
CREATE INDEX IF NOT EXISTS apps_owner ON apps(owner_email);

-- A user's grant of an app: the PUID is the only user id the app sees.
CREATE TABLE IF NOT EXISTS grants (
    puid       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app_id     INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    userstring TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, app_id, userstring)
);
CREATE INDEX IF NOT EXISTS grants_app ON grants(app_id);

-- Status updates waiting for an app that has no channel connected:
-- per PUID only the newest waits (presence is state).
CREATE TABLE IF NOT EXISTS waiting_status (
    app_id  INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    puid    TEXT NOT NULL REFERENCES grants(puid) ON DELETE CASCADE,
    status  TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    at      INTEGER NOT NULL,
    PRIMARY KEY (app_id, puid)
) WITHOUT ROWID;

-- Live notifications, one FIFO per PUID, removed only when a device acks.
CREATE TABLE IF NOT EXISTS notifications (
    seq        INTEGER PRIMARY KEY,    -- max+1: always after every queued row (no AUTOINCREMENT: it costs a sqlite_sequence write per row)
    id         TEXT NOT NULL,          -- 128 random bits: unique without an index (acks go by user)
    app_id     INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    puid       TEXT NOT NULL REFERENCES grants(puid) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    message    TEXT NOT NULL,
    action     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- One index: a user's queues are found through grants (a user has few),
-- and every other index would cost each notification one more B-tree
-- insert, delete and page written (see core/sqlite's userQueues). The
-- hourly purge by created_at scans the table (about 20-27 ms per 100,000
-- items, BenchmarkPurgeNotifications). Clustering the table by queue
-- (WITHOUT ROWID, key (puid, seq)) was measured and is worse: 2-3.5x the
-- pages written per item (commit 49e1cf4, reverted; figures in `git log
-- -- schema.sql`).
CREATE INDEX IF NOT EXISTS notifications_puid ON notifications(puid, seq);
