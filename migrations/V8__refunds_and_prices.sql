-- keysync schema v8: the price each pull read from the gateway, and a use ledger that records
-- refunds as negative use.
--
-- The price: every pull reads the gateway's `GET /api/status` once and keeps, on its `syncs`
-- row, what it published then: `quota_per_unit` (quota units per US dollar), its
-- `quota_display_type` and `usd_exchange_rate`, and the gateway's `version`. A pull that could
-- not read them (no such endpoint, an error, no numeric `quota_per_unit`) leaves them NULL.
ALTER TABLE syncs ADD COLUMN quota_per_unit INTEGER;
ALTER TABLE syncs ADD COLUMN quota_display_type TEXT;
ALTER TABLE syncs ADD COLUMN usd_exchange_rate REAL;
ALTER TABLE syncs ADD COLUMN gateway_version TEXT;

-- The ledger is rebuilt from the history by the corrected rule (README, "Usage and dollars"),
-- so the history recorded so far is corrected too. Readers of older files build the same
-- ledger as TEMP from everything below this line (src/store/usage.rs).
-- LEDGER
DROP TABLE IF EXISTS use_ledger;

-- One row per key and good sync B at which the key's use was not zero. Between B and the good
-- sync A before it, a key live at both used `used_quota(B) - used_quota(A)`, signed: the
-- gateway never resets `used_quota`, it only lowers it when it refunds (a request is charged
-- an estimate and settled after it runs; a failed async task is given back), so a negative
-- difference is a refund, negative use on B's day. A key not live at A (new, or restored)
-- used its whole `used_quota(B)` when it was created after A started, else nothing. A version
-- without a `used_quota` (null or absent upstream) observed nothing: the next version that has
-- one is compared with the last one before it that had one, while the key stayed live, and
-- that interval is dated at the sync that brought the value. The first good sync is never B.
--
-- `running_total` is the key's `used` summed over its rows up to this one, so the key's use in
-- any range of syncs is the difference of two running totals: two primary-key seeks per key,
-- however many syncs the range holds. A pull writes its rows in its own transaction; prune
-- deletes the rows of the syncs it deletes (and of the oldest kept, which becomes the first).
CREATE TABLE use_ledger (
    key_id        INTEGER NOT NULL,
    sync_id       INTEGER NOT NULL,
    -- Never a REAL: SQLite turns an INTEGER sum past 64 bits into one.
    used          INTEGER NOT NULL CHECK (typeof(used) = 'integer' AND used <> 0),
    running_total INTEGER NOT NULL CHECK (typeof(running_total) = 'integer'),
    PRIMARY KEY (key_id, sync_id)
) WITHOUT ROWID;

-- A run is a stretch of versions during which the key stayed live: it starts at a version
-- whose previous version did not end exactly where it starts (or that has none). Within a run,
-- each version with a `used_quota` is compared with the previous one that had one; the first
-- of a run counts by the rule for new keys, at the run's first version and its A.
INSERT INTO use_ledger (key_id, sync_id, used, running_total)
SELECT key_id, sync_id, used, sum(used) OVER (PARTITION BY key_id ORDER BY sync_id)
FROM (
    SELECT o.key_id,
           o.valid_from_sync AS sync_id,
           CASE
               WHEN o.before_used IS NOT NULL THEN o.used_quota - o.before_used
               WHEN r.created_time > (SELECT a.started_at FROM good_syncs AS a
                                      WHERE a.id < o.run_start ORDER BY a.id DESC LIMIT 1)
                   THEN o.used_quota
               ELSE 0
           END AS used
    FROM (
        SELECT key_id, valid_from_sync, used_quota, run_start,
               lag(used_quota) OVER (PARTITION BY key_id, run_start
                                     ORDER BY valid_from_sync) AS before_used
        FROM (
            SELECT key_id, valid_from_sync, used_quota,
                   max(CASE WHEN before_to IS valid_from_sync THEN NULL
                            ELSE valid_from_sync END)
                       OVER (PARTITION BY key_id ORDER BY valid_from_sync) AS run_start
            FROM (
                SELECT key_id, valid_from_sync, used_quota,
                       lag(valid_to_sync) OVER (PARTITION BY key_id
                                                ORDER BY valid_from_sync) AS before_to
                FROM key_versions
            )
        )
        WHERE used_quota IS NOT NULL
    ) AS o
    JOIN key_versions AS r ON r.key_id = o.key_id AND r.valid_from_sync = o.run_start
    WHERE o.valid_from_sync IN (SELECT id FROM good_syncs)
      AND EXISTS (SELECT 1 FROM good_syncs AS a WHERE a.id < o.valid_from_sync)
)
WHERE used <> 0;
