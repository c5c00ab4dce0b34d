-- keysync schema v9: the state of `keysync check`'s alarms, and what each webhook was told.
--
-- Bookkeeping, not history: `check` writes it in one transaction under the pull lock, and a
-- reader never needs it to know the keys.
--
-- One row per episode of an alarm: a rule firing for one subject (a key id as text, or
-- `account`) from `started_at` (the first check that saw it) to `resolved_at` (the first check
-- that did not; NULL while it fires). `last_seen_at` is the latest check that saw it, and
-- name, value, threshold and message are what that check measured. An alarm that fires again
-- after it resolved is a new episode.
CREATE TABLE IF NOT EXISTS alarms (
    id           INTEGER PRIMARY KEY,
    rule         TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    name         TEXT,
    value        REAL,
    threshold    REAL,
    message      TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    resolved_at  INTEGER,
    CHECK (resolved_at IS NULL OR resolved_at >= started_at)
);

-- At most one firing episode per rule and subject.
CREATE UNIQUE INDEX IF NOT EXISTS alarms_firing ON alarms (rule, subject) WHERE resolved_at IS NULL;

-- Each webhook `check --notify` delivers to, known by the SHA-256 of its URL (hex): the URL
-- often holds a secret and is never stored. `since` is the first check that knew it; the
-- episodes that had resolved by then are none of its business, and are marked as told.
CREATE TABLE IF NOT EXISTS notify_targets (
    url_sha256 TEXT    PRIMARY KEY,
    since      INTEGER NOT NULL
) WITHOUT ROWID;

-- What each webhook has been told of each episode: that it fires, or that it resolved. What
-- it has not been told is pending, and the next check sends it.
CREATE TABLE IF NOT EXISTS alarm_deliveries (
    url_sha256 TEXT    NOT NULL REFERENCES notify_targets (url_sha256),
    alarm_id   INTEGER NOT NULL REFERENCES alarms (id) ON DELETE CASCADE,
    delivered  TEXT    NOT NULL CHECK (delivered IN ('firing', 'resolved')),
    PRIMARY KEY (url_sha256, alarm_id)
) WITHOUT ROWID;
