-- keysync schema v1. All times are INTEGER unix seconds (UTC); booleans are INTEGER 0/1.
-- There are no foreign keys to `syncs` on purpose: `prune` deletes old syncs while versions
-- that are still valid keep naming the sync they started at.

-- One row per pull, written before the pull starts and finished in its transaction.
CREATE TABLE syncs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    base_url    TEXT    NOT NULL,
    pages       INTEGER NOT NULL DEFAULT 0,
    keys_seen   INTEGER NOT NULL DEFAULT 0,
    added       INTEGER NOT NULL DEFAULT 0,
    changed     INTEGER NOT NULL DEFAULT 0,
    removed     INTEGER NOT NULL DEFAULT 0,
    error       TEXT
);

-- The current state: one row for every key ever seen.
CREATE TABLE keys (
    id                   INTEGER PRIMARY KEY,
    user_id              INTEGER,
    name                 TEXT,
    status               INTEGER,
    created_time         INTEGER,
    accessed_time        INTEGER,
    expired_time         INTEGER,
    remain_quota         INTEGER,
    used_quota           INTEGER,
    unlimited_quota      INTEGER,
    model_limits_enabled INTEGER,
    model_limits         TEXT,
    allow_ips            TEXT,
    "group"              TEXT,
    cross_group_retry    INTEGER,
    key_hint             TEXT,
    key_sha256           TEXT,
    key                  TEXT,
    extra                TEXT    NOT NULL DEFAULT '{}',
    first_seen_sync      INTEGER NOT NULL,
    removed_sync         INTEGER
);

-- The history (type-2 slowly changing dimension): one row per distinct observed state.
-- State at sync S: valid_from_sync <= S AND (valid_to_sync IS NULL OR valid_to_sync > S).
CREATE TABLE key_versions (
    key_id               INTEGER NOT NULL,
    valid_from_sync      INTEGER NOT NULL,
    valid_to_sync        INTEGER,
    user_id              INTEGER,
    name                 TEXT,
    status               INTEGER,
    created_time         INTEGER,
    accessed_time        INTEGER,
    expired_time         INTEGER,
    remain_quota         INTEGER,
    used_quota           INTEGER,
    unlimited_quota      INTEGER,
    model_limits_enabled INTEGER,
    model_limits         TEXT,
    allow_ips            TEXT,
    "group"              TEXT,
    cross_group_retry    INTEGER,
    key_hint             TEXT,
    key_sha256           TEXT,
    extra                TEXT    NOT NULL DEFAULT '{}',
    changed              TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (key_id, valid_from_sync)
) WITHOUT ROWID;

-- "State at sync S" reads versions that started at or before S and had not ended by S.
CREATE INDEX key_versions_by_from ON key_versions (valid_from_sync, valid_to_sync);
CREATE INDEX key_versions_by_to ON key_versions (valid_to_sync);
-- "History of key K" is served by the primary key (key_id, valid_from_sync).
-- The open version of each key, found on every pull that changes it.
CREATE UNIQUE INDEX key_versions_open ON key_versions (key_id) WHERE valid_to_sync IS NULL;
CREATE INDEX syncs_by_status ON syncs (status, id);
