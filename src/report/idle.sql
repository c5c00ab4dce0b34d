-- idle: enabled keys not used within the window, and enabled keys never used at all (upstream
-- leaves accessed_time = created_time and used_quota = 0 until the first use), longest idle
-- first. idle_days counts from the last use, or from creation for a key never used.
--
-- Parameters: :for, the window in seconds (keysync: --for, default 30d).
-- "Now" comes from the `clock` view, which `keysync --now` pins.
-- Run it yourself: keysync query --file idle.sql --param for=2592000
SELECT k.id,
       k.name,
       CASE WHEN NOT k.is_never_used THEN k.accessed_iso END AS last_used_iso,
       round((c.now - k.accessed_time) / 86400.0, 2) AS idle_days,
       k.is_never_used,
       round((c.now - k.created_time) / 86400.0, 2) AS age_days
FROM key_info AS k
CROSS JOIN clock AS c
WHERE NOT k.is_removed
  AND k.status = 1
  AND (k.accessed_time < c.now - :for OR k.is_never_used)
ORDER BY k.accessed_time, k.id;
