-- keysync schema v5: the use ledger, what `keysync usage` and `keysync html` read.
--
-- One row per key and good sync B at which the key used something, by the attribution rule
-- (README, "Usage and dollars"): between B and the good sync A before it, a key live at both
-- used `used_quota(B) - used_quota(A)`, or `used_quota(B)` when that is negative (the counter
-- was reset); a key not live at A (new, or restored) used its whole `used_quota(B)` when it was
-- created after A started, else nothing. The first good sync is never B.
--
-- `running_total` is the key's `used` summed over its rows up to this one, so the key's use in
-- any range of syncs is the difference of two running totals: two primary-key seeks per key,
-- however many syncs the range holds. A pull writes its rows in its own transaction; prune
-- deletes the rows of the syncs it deletes (and of the oldest kept, which becomes the first).
CREATE TABLE use_ledger (
    key_id        INTEGER NOT NULL,
    sync_id       INTEGER NOT NULL,
    used          INTEGER NOT NULL CHECK (used > 0),
    running_total INTEGER NOT NULL,
    PRIMARY KEY (key_id, sync_id)
) WITHOUT ROWID;

-- "The latest good sync that started by time T", once per day boundary of a usage window.
CREATE INDEX syncs_by_start ON syncs (started_at);

-- The ledger of the history recorded so far. A version that starts at B is the key's state
-- at B; the version before it ended exactly at B when the key was live at A.
INSERT INTO use_ledger (key_id, sync_id, used, running_total)
SELECT key_id, sync_id, used, sum(used) OVER (PARTITION BY key_id ORDER BY sync_id)
FROM (
    SELECT v.key_id,
           v.valid_from_sync AS sync_id,
           CASE
               WHEN p.a_start IS NULL THEN 0
               WHEN v.before_to IS v.valid_from_sync THEN
                   CASE WHEN v.used_quota >= v.before_used THEN v.used_quota - v.before_used
                        ELSE v.used_quota
                   END
               WHEN v.created_time > p.a_start THEN v.used_quota
               ELSE 0
           END AS used
    FROM (
        SELECT key_id, valid_from_sync, created_time,
               coalesce(used_quota, 0) AS used_quota,
               lag(coalesce(used_quota, 0)) OVER key_order AS before_used,
               lag(valid_to_sync) OVER key_order AS before_to
        FROM key_versions
        WINDOW key_order AS (PARTITION BY key_id ORDER BY valid_from_sync)
    ) AS v
    JOIN (
        SELECT id AS b_id, lag(started_at) OVER (ORDER BY id) AS a_start FROM good_syncs
    ) AS p ON p.b_id = v.valid_from_sync
)
WHERE used > 0;
