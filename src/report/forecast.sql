-- forecast: enabled keys with a quota limit that run out of quota within the window ahead at
-- their recent rate of use, soonest first.
--
-- The rate is measured as in top-consumers-since.sql, by the same `key_usage` view: used_quota
-- at the latest good sync minus used_quota when the window (:since seconds back) first saw the
-- key, per day between those two syncs. Keys with no positive rate are not forecast.
-- days_left = remain_quota / rate (0 for a key already exhausted), counted from now;
-- runs_out_iso = now + days_left.
--
-- Parameters: :since, the window the rate is measured over, in seconds (keysync: --since,
-- default 7d); :within, the window ahead, in seconds (keysync: --within, default 7d).
-- "Now" comes from the `clock` view, which `keysync --now` pins.
-- Run it yourself:
--   keysync query --file forecast.sql --param since=604800 --param within=604800
WITH forecasts AS (
    SELECT k.id,
           k.name,
           k.remain_quota,
           u.per_day,
           max(k.remain_quota, 0) / u.per_day AS days_left
    FROM key_info AS k
    JOIN key_usage AS u ON u.key_id = k.id
    WHERE NOT k.is_removed
      AND k.status = 1
      AND k.unlimited_quota = 0
      AND u.per_day > 0
      AND u.window_sync = (SELECT g.id FROM good_syncs AS g CROSS JOIN clock AS c
                           WHERE g.started_at >= c.now - :since
                           ORDER BY g.started_at, g.id LIMIT 1)
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
