-- unrestricted: enabled keys that are exposed in at least one way, most exposed first. Each
-- risk has its own 0/1 column, and `risks` names the ones a key has:
--   unlimited-quota  no spending cap (unlimited_quota = 1)
--   any-ip           no IP allowlist (allow_ips NULL, empty or blank)
--   any-model        no model limits (model_limits_enabled is not 1)
--   never-expires    expired_time = -1
--
-- Parameters: none.
-- Run it yourself: keysync query --file unrestricted.sql
SELECT id,
       name,
       substr(CASE WHEN unlimited_quota THEN ', unlimited-quota' ELSE '' END
              || CASE WHEN any_ip THEN ', any-ip' ELSE '' END
              || CASE WHEN any_model THEN ', any-model' ELSE '' END
              || CASE WHEN never_expires THEN ', never-expires' ELSE '' END, 3) AS risks,
       unlimited_quota,
       any_ip,
       any_model,
       never_expires
FROM (
    SELECT id,
           name,
           unlimited_quota = 1 AS unlimited_quota,
           ifnull(trim(allow_ips, char(32, 9, 10, 13)), '') = '' AS any_ip,
           ifnull(model_limits_enabled, 0) <> 1 AS any_model,
           expired_time = -1 AS never_expires
    FROM key_info
    WHERE NOT is_removed
      AND status = 1
)
WHERE unlimited_quota OR any_ip OR any_model OR never_expires
ORDER BY unlimited_quota + any_ip + any_model + never_expires DESC, id;
