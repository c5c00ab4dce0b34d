-- top-consumers: live keys of any status by the quota they have used in all, most first.
-- (With --since, keysync runs top-consumers-since.sql instead, which measures a window.)
--
-- Parameters: :limit, how many keys (keysync: --limit, default 10).
-- Run it yourself: keysync query --file top-consumers.sql --param limit=10
SELECT id,
       name,
       status_name,
       used_quota,
       remain_quota,
       unlimited_quota,
       accessed_iso
FROM key_info
WHERE NOT is_removed
ORDER BY used_quota DESC, id
LIMIT :limit;
