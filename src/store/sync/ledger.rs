//! The use ledger's rows of one sync, in SQL: the signed use of every added, restored or
//! changed key since the good sync before, checked to stay a 64-bit integer.

use rusqlite::{OptionalExtension, Transaction};

use crate::error::{DbContext, Error, Result};

/// The use ledger's rows for this sync `?1` (B), by the rule migrations/V8__refunds_and_prices.sql
/// states: a changed key was live at A (its `keys` row is its state there) and used the signed
/// difference of its `used_quota` (negative: the gateway refunded); an added or restored one was
/// not, and counts its whole use only when created after A started (never when there is no A:
/// the first good sync only opens the record). A `used_quota` that is NULL observed nothing: a
/// key listed without one writes no row, and the next value is compared with the last one its
/// versions hold since it was last added or restored (`baselines`, read only for those rare
/// keys). SQLite turns an integer overflow into a REAL, which the ledger's CHECK refuses.
const LEDGER_SQL: &str = "
WITH runs AS (
    SELECT d.id,
           (SELECT max(v.valid_from_sync) FROM main.key_versions AS v
            WHERE v.key_id = d.id
              AND NOT EXISTS (SELECT 1 FROM main.key_versions AS w
                              WHERE w.key_id = d.id AND w.valid_to_sync = v.valid_from_sync))
               AS run_start
    FROM temp.delta AS d
    JOIN main.keys AS k ON k.id = d.id
    WHERE d.kind = 'changed' AND k.used_quota IS NULL
),
baselines AS (
    SELECT r.id,
           coalesce(
               (SELECT v.used_quota FROM main.key_versions AS v
                WHERE v.key_id = r.id AND v.valid_from_sync >= r.run_start
                  AND v.used_quota IS NOT NULL
                ORDER BY v.valid_from_sync DESC LIMIT 1),
               CASE WHEN (SELECT v.created_time FROM main.key_versions AS v
                          WHERE v.key_id = r.id AND v.valid_from_sync = r.run_start)
                         > (SELECT a.started_at FROM main.good_syncs AS a
                            WHERE a.id < r.run_start ORDER BY a.id DESC LIMIT 1)
                    THEN 0 END) AS used_quota
    FROM runs AS r
)
INSERT INTO main.use_ledger (key_id, sync_id, used, running_total)
SELECT u.id, ?1, u.used,
       u.used + coalesce((SELECT l.running_total FROM main.use_ledger AS l
                          WHERE l.key_id = u.id ORDER BY l.sync_id DESC LIMIT 1), 0)
FROM (
    SELECT d.id,
           CASE
               WHEN d.kind = 'changed' THEN s.used_quota - coalesce(k.used_quota, b.used_quota)
               WHEN s.created_time > (SELECT a.started_at FROM main.good_syncs AS a
                                      WHERE a.id < ?1 ORDER BY a.id DESC LIMIT 1)
                   THEN s.used_quota
               ELSE 0
           END AS used
    FROM temp.delta AS d
    JOIN temp.staged AS s ON s.neg = -d.id
    LEFT JOIN main.keys AS k ON k.id = d.id
    LEFT JOIN baselines AS b ON b.id = d.id
    WHERE d.kind IN ('added', 'changed', 'restored')
      AND s.used_quota IS NOT NULL
      -- The first good sync has no A: SQLite tests this once, and skips the join.
      AND EXISTS (SELECT 1 FROM main.good_syncs AS a WHERE a.id < ?1)
) AS u
WHERE u.used <> 0";

/// Writes this sync's rows of the use ledger ([`LEDGER_SQL`]). Use that leaves 64-bit integers
/// (SQLite would make it a REAL, which the ledger refuses) fails the pull with one line.
pub(super) fn write_ledger(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    match tx.execute(LEDGER_SQL, [sync]) {
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
            Err(Error::DatabaseState(
                "cannot record the keys' use: a key's used_quota moved by more than a 64-bit \
                 integer holds since the last pull (see `keysync history` for its values); \
                 nothing was written"
                    .to_string(),
            ))
        }
        done => done.map(drop).db("cannot record the keys' use"),
    }
}

/// The ledger's rows for a database's first keys, by the rule of [`LEDGER_SQL`] for added keys:
/// all of a key's use, when it was created after the good sync before this one started (an
/// account that had no keys then).
pub(super) fn write_first_ledger(tx: &Transaction<'_>, sync: i64) -> Result<()> {
    let context = "cannot write the first keys";
    let before: Option<i64> = tx
        .query_row(
            "SELECT started_at FROM main.good_syncs WHERE id < ?1 ORDER BY id DESC LIMIT 1",
            [sync],
            |row| row.get(0),
        )
        .optional()
        .db(context)?;
    if let Some(before) = before {
        tx.execute(
            "INSERT INTO main.use_ledger (key_id, sync_id, used, running_total)
             SELECT id, ?1, used_quota, used_quota FROM main.keys
             WHERE created_time > ?2 AND used_quota <> 0",
            [sync, before],
        )
        .db(context)?;
    }
    Ok(())
}
