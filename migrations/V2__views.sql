-- keysync schema v2: views that make hand-written SQL pleasant. They add columns computed from
-- the tables on every read, so they never go stale and cost nothing to store.
--
-- Every time a view adds is ISO-8601 UTC text named after the unix-seconds column it renders,
-- with `_iso` in place of `_time` / `_at` (`created_time` -> `created_iso`).
--
-- "Now" comes from one place, the `clock` view: SQLite's current time, so these views work the
-- same in the sqlite3 shell or Datasette. `keysync query` shadows every view here with a TEMP
-- twin of the same name (built from this file) whose clock is fixed to `--now` when it is given,
-- which is why no view names `unixepoch()` except `clock`. Keep every statement here a
-- `CREATE VIEW`: src/store/views.rs turns them into `CREATE TEMP VIEW`.

-- One row, one column: the current time in unix seconds.
CREATE VIEW clock AS SELECT unixepoch() AS now;

-- `keys`, plus names for what its integers mean. `status` is what upstream last recorded, and
-- upstream only flips a key to expired (3) or exhausted (4) when the key is used; `is_expired`
-- and `is_exhausted` are derived from `expired_time` and `remain_quota` by upstream's own rules,
-- and `effective_status` combines them into what the key would do if used now.
CREATE VIEW key_info AS
SELECT d.*,
       CASE
           WHEN d.is_removed THEN 'removed'
           WHEN d.status = 1 AND d.is_expired THEN 'expired'
           WHEN d.status = 1 AND d.is_exhausted THEN 'exhausted'
           ELSE d.status_name
       END AS effective_status
FROM (
    SELECT k.*,
           CASE k.status
               WHEN 1 THEN 'enabled'
               WHEN 2 THEN 'disabled'
               WHEN 3 THEN 'expired'
               WHEN 4 THEN 'exhausted'
               ELSE 'unknown'
           END AS status_name,
           k.removed_sync IS NOT NULL AS is_removed,
           k.expired_time <> -1 AND k.expired_time <= c.now AS is_expired,
           k.unlimited_quota = 0 AND k.remain_quota <= 0 AS is_exhausted,
           k.accessed_time = k.created_time AND k.used_quota = 0 AS is_never_used,
           strftime('%Y-%m-%dT%H:%M:%SZ', k.created_time, 'unixepoch') AS created_iso,
           strftime('%Y-%m-%dT%H:%M:%SZ', k.accessed_time, 'unixepoch') AS accessed_iso,
           CASE WHEN k.expired_time <> -1
                THEN strftime('%Y-%m-%dT%H:%M:%SZ', k.expired_time, 'unixepoch')
           END AS expired_iso
    FROM keys AS k
    CROSS JOIN clock AS c
) AS d;

-- `syncs`, with readable times and how long each pull took.
CREATE VIEW sync_info AS
SELECT s.*,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.started_at, 'unixepoch') AS started_iso,
       strftime('%Y-%m-%dT%H:%M:%SZ', s.finished_at, 'unixepoch') AS finished_iso,
       s.finished_at - s.started_at AS duration_s
FROM syncs AS s;
