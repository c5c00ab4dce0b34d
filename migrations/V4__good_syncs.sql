-- keysync schema v4: the rules the history is read by, defined once. keysync's Rust code and
-- its report SQL read these views rather than spelling the rules again.
--
-- Like V2, every statement here is a `CREATE VIEW` that names no `unixepoch()`: readers get
-- TEMP twins of them (src/store/views.rs), so they work the same on a file last written by an
-- older keysync, which a reader never migrates.

-- The syncs that recorded a state of the account: `ok` (a consistent listing) and `partial`
-- (the keys listed, without removals). A `failed` or still `running` sync recorded nothing, so
-- it is no point in the history: no diff, report or prune decision may rest on it.
CREATE VIEW good_syncs AS
SELECT * FROM syncs WHERE status IN ('ok', 'partial');

-- How much quota each live key used in a window that starts at good sync `window_sync` and ends
-- at the latest good sync (`to_sync`): the reports top-consumers --since and forecast read it.
-- A key's use is its `used_quota` now (`keys` holds every live key's state as of the latest
-- good sync) minus its baseline: its version current at `window_sync` or, for a key first seen
-- later, its first version after it. `from_sync` is the sync that baseline stands for
-- (`window_sync`, or the later sync that first saw the key); `per_day` divides `used` by the
-- days between `from_sync` and `to_sync`, and is NULL when no time passed between them.
-- Select one window (`WHERE window_sync = ?`): then it costs two primary-key seeks per live
-- key and never scans the history, however long it is.
CREATE VIEW key_usage AS
SELECT w.id AS window_sync,
       k.id AS key_id,
       f.id AS from_sync,
       t.id AS to_sync,
       k.used_quota - v.used_quota AS used,
       CASE WHEN t.started_at > f.started_at
            THEN (k.used_quota - v.used_quota) * 86400.0 / (t.started_at - f.started_at)
       END AS per_day
FROM good_syncs AS w
CROSS JOIN keys AS k
JOIN key_versions AS v
  ON v.key_id = k.id
 AND v.valid_from_sync = coalesce(
         (SELECT y.valid_from_sync FROM key_versions AS y
          WHERE y.key_id = k.id
            AND y.valid_from_sync = (SELECT x.valid_from_sync FROM key_versions AS x
                                     WHERE x.key_id = k.id AND x.valid_from_sync <= w.id
                                     ORDER BY x.valid_from_sync DESC LIMIT 1)
            AND (y.valid_to_sync IS NULL OR y.valid_to_sync > w.id)),
         (SELECT x.valid_from_sync FROM key_versions AS x
          WHERE x.key_id = k.id AND x.valid_from_sync > w.id
          ORDER BY x.valid_from_sync LIMIT 1))
JOIN syncs AS f ON f.id = max(v.valid_from_sync, w.id)
JOIN syncs AS t ON t.id = (SELECT max(id) FROM good_syncs)
WHERE k.removed_sync IS NULL;
