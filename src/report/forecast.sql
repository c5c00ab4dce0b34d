-- forecast: enabled keys with a quota limit that run out of quota within the window ahead at
-- their recent rate of use, soonest first.
--
-- The rate is measured as in top-consumers-since.sql: used_quota at the latest good sync
-- minus used_quota when the window (:since seconds back) first saw the key, per day between
-- those two syncs. Keys with no positive rate are not forecast. days_left = remain_quota / rate
-- (0 for a key already exhausted), counted from now; runs_out_iso = now + days_left.
--
-- Parameters: :since, the window the rate is measured over, in seconds (keysync: --since,
-- default 7d); :within, the window ahead, in seconds (keysync: --within, default 7d).
-- "Now" comes from the `clock` view, which `keysync --now` pins.
-- Run it yourself:
--   keysync query --file forecast.sql --param since=604800 --param within=604800
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
),
rates AS (
    SELECT k.id,
           k.name,
           k.remain_quota,
           (k.used_quota - base.used_quota) * 86400.0
               / (end_sync.started_at - start_sync.started_at) AS per_day
    FROM key_info AS k
    JOIN baselines AS base ON base.key_id = k.id
    JOIN syncs AS start_sync ON start_sync.id = base.from_sync
    JOIN syncs AS end_sync ON end_sync.id = (SELECT last_sync FROM bounds)
    WHERE NOT k.is_removed
      AND k.status = 1
      AND k.unlimited_quota = 0
      AND end_sync.started_at > start_sync.started_at
),
forecasts AS (
    SELECT r.*, max(r.remain_quota, 0) / r.per_day AS days_left
    FROM rates AS r
    WHERE r.per_day > 0
)
SELECT fc.id,
       fc.name,
       fc.remain_quota,
       round(fc.per_day, 2) AS per_day,
       round(fc.days_left, 2) AS days_left,
       strftime('%Y-%m-%dT%H:%M:%SZ', c.now + fc.days_left * 86400, 'unixepoch') AS runs_out_iso
FROM forecasts AS fc
CROSS JOIN clock AS c
WHERE fc.days_left * 86400 <= :within
ORDER BY fc.days_left, fc.id;
