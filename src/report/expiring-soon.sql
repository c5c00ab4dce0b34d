-- expiring-soon: enabled keys whose expiry falls within the window ahead, soonest first, and
-- enabled keys already past their expiry (is_expired = 1, which sorts them first). A key
-- expires at `expired_time` itself, as upstream decides it; days_left is negative once past.
--
-- Parameters: :within, the window ahead in seconds (keysync: --within, default 7d).
-- "Now" comes from the `clock` view, which `keysync --now` pins.
-- Run it yourself: keysync query --file expiring-soon.sql --param within=604800
SELECT k.id,
       k.name,
       k.expired_iso,
       round((k.expired_time - c.now) / 86400.0, 2) AS days_left,
       k.is_expired
FROM key_info AS k
CROSS JOIN clock AS c
WHERE NOT k.is_removed
  AND k.status = 1
  AND k.expired_time <> -1
  AND k.expired_time <= c.now + :within
ORDER BY k.expired_time, k.id;
