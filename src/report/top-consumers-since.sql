-- top-consumers --since: live keys of any status by the quota they used inside the window,
-- measured from the history, most first.
--
-- The window runs from the earliest good sync (`ok` or `partial`: a failed sync recorded no
-- state) that started at most :since seconds before now, to the latest good sync. A key's
-- usage is its used_quota at the latest sync minus its used_quota when the window first saw it:
-- at the window's first sync, or, for a key first seen later, at its first observation.
-- per_day divides that by the days between those two syncs' started_at, and is NULL when no
-- time passed between them (a single sync in the window, or a key first seen at the last one).
-- The `key_usage` view measures it (forecast.sql reads the same view); this file picks the
-- window.
--
-- Parameters: :since, the window in seconds (keysync: --since); :limit (keysync: --limit, 10).
-- Run it yourself:
--   keysync query --file top-consumers-since.sql --param since=604800 --param limit=10
SELECT k.id,
       k.name,
       k.status_name,
       u.used AS used_in_window,
       round(u.per_day, 2) AS per_day,
       k.used_quota,
       start_sync.id AS from_sync,
       start_sync.started_iso AS from_iso,
       end_sync.id AS to_sync,
       end_sync.started_iso AS to_iso
FROM key_info AS k
JOIN key_usage AS u ON u.key_id = k.id
JOIN sync_info AS start_sync ON start_sync.id = u.from_sync
JOIN sync_info AS end_sync ON end_sync.id = u.to_sync
WHERE NOT k.is_removed
  AND u.window_sync = (SELECT g.id FROM good_syncs AS g CROSS JOIN clock AS c
                       WHERE g.started_at >= c.now - :since
                       ORDER BY g.started_at, g.id LIMIT 1)
ORDER BY used_in_window DESC, k.id
LIMIT :limit;
