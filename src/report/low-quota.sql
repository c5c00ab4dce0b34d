-- low-quota: enabled keys with a quota limit whose remaining quota is below a threshold;
-- exhausted ones (remain_quota <= 0, which upstream refuses) first, then the lowest.
--
-- Parameters: :below, in quota units (keysync: --below, default 500000, which is $1 at the
-- gateway's default of 500000 units per US dollar).
-- Run it yourself: keysync query --file low-quota.sql --param below=500000
SELECT id,
       name,
       remain_quota,
       used_quota,
       is_exhausted
FROM key_info
WHERE NOT is_removed
  AND status = 1
  AND unlimited_quota = 0
  AND remain_quota < :below
ORDER BY is_exhausted DESC, remain_quota, id;
