-- keysync schema v3: the account whose keys this database holds. One database is one
-- account's record: a pull whose listing has keys, none of them this account's, is refused.

-- At most one row. Written by the first pull that sees keys, in that pull's transaction.
CREATE TABLE account (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    user_id    INTEGER NOT NULL,
    bound_sync INTEGER NOT NULL
);

-- A database that already holds keys is bound now, to the account most of its live keys
-- belong to, so that the very next pull is checked too.
INSERT INTO account (id, user_id, bound_sync)
SELECT 1, user_id, min(first_seen_sync)
FROM keys
WHERE user_id IS NOT NULL
GROUP BY user_id
ORDER BY sum(removed_sync IS NULL) DESC, count(*) DESC, user_id
LIMIT 1;
