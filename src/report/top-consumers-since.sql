-- top-consumers --since: live keys of any status by the quota they used inside the window,
-- measured from the history, most first.
--
-- The window runs from the earliest good sync (`ok` or `partial`: a failed sync recorded no
-- state) that started at most :since seconds before now, to the latest good sync. A key's
-- usage is its used_quota at the latest sync minus its used_quota when the window first saw it:
-- at the window's first sync, or, for a key first seen later, at its first observation.
-- per_day divides that by the days between those two syncs' started_at, and is NULL when no
-- time passed between them (a single sync in the window, or a key first seen at the last one).
-- The value at the latest sync is read from `keys`, which holds every live key's state as of
-- the latest good sync. forecast.sql measures its rate the same way.
--
-- Parameters: :since, the window in seconds (keysync: --since); :limit (keysync: --limit, 10).
-- Run it yourself:
--   keysync query --file top-consumers-since.sql --param since=604800 --param limit=10
WITH good_syncs AS (
    SELECT id, started_at FROM syncs WHERE status IN ('ok', 'partial')
),
bounds AS (
    SELECT (SELECT g.id FROM good_syncs AS g CROSS JOIN clock AS c
            WHERE g.started_at >= c.now - :since
            ORDER BY g.started_at, g.id LIMIT 1) AS first_sync,
           (SELECT max(id) FROM good_syncs) AS last_sync
),
-- Each live key's baseline: the version current at the window's first sync or, for a key
-- first seen later, its first version after it. Two primary-key seeks per key: no scan of
-- the history, however long it is.
starts AS (
    SELECT k.id AS key_id,
           (SELECT x.valid_from_sync FROM key_versions AS x
            WHERE x.key_id = k.id AND x.valid_from_sync <= b.first_sync
            ORDER BY x.valid_from_sync DESC LIMIT 1) AS at_first,
           (SELECT x.valid_from_sync FROM key_versions AS x
            WHERE x.key_id = k.id AND x.valid_from_sync > b.first_sync
            ORDER BY x.valid_from_sync LIMIT 1) AS after_first
    FROM keys AS k
    CROSS JOIN bounds AS b
    WHERE k.removed_sync IS NULL AND b.first_sync IS NOT NULL
),
baselines AS (
    SELECT v.key_id,
           v.used_quota,
           max(v.valid_from_sync, b.first_sync) AS from_sync
    FROM starts AS s
    CROSS JOIN bounds AS b
    JOIN key_versions AS v
      ON v.key_id = s.key_id
     AND v.valid_from_sync = coalesce(
             (SELECT y.valid_from_sync FROM key_versions AS y
              WHERE y.key_id = s.key_id AND y.valid_from_sync = s.at_first
                AND (y.valid_to_sync IS NULL OR y.valid_to_sync > b.first_sync)),
             s.after_first)
)
SELECT k.id,
       k.name,
       k.status_name,
       k.used_quota - base.used_quota AS used_in_window,
       CASE WHEN end_sync.started_at > start_sync.started_at
            THEN round((k.used_quota - base.used_quota) * 86400.0
                       / (end_sync.started_at - start_sync.started_at), 2)
       END AS per_day,
       k.used_quota,
       start_sync.id AS from_sync,
       start_sync.started_iso AS from_iso,
       end_sync.id AS to_sync,
       end_sync.started_iso AS to_iso
FROM key_info AS k
JOIN baselines AS base ON base.key_id = k.id
JOIN sync_info AS start_sync ON start_sync.id = base.from_sync
JOIN sync_info AS end_sync ON end_sync.id = (SELECT last_sync FROM bounds)
WHERE NOT k.is_removed
ORDER BY used_in_window DESC, k.id
LIMIT :limit;
