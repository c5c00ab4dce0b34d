//! Running SQL that must not change the database: the connection, the guard, binding and rows.
//!
//! Four layers keep a query from writing, each covering what the one before cannot see:
//! 1. the connection is opened read-only (SQLite refuses any write to the file);
//! 2. a statement SQLite reports as writing (`sqlite3_stmt_readonly`) is refused before it runs,
//!    so even writes that would only touch TEMP objects get the same clear message;
//! 3. ATTACH and DETACH, which `sqlite3_stmt_readonly` calls read-only because they change the
//!    connection rather than a file, are denied by an authorizer;
//! 4. a write SQLite only notices while running (`SQLITE_READONLY`) gets the same refusal.
//!
//! Everything the user typed wrong (syntax, unknown table, parameters) is a usage error, exit 2;
//! a database that cannot be read is exit 6.

use std::path::Path;

use rusqlite::hooks::{AuthAction, Authorization};
use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, Statement};

use crate::error::{Error, Result};
use crate::store::{Store, open_read_only, views};

/// What a refused write says, wherever it was caught.
const WRITE_REFUSED: &str = "keysync query only reads the database: this statement would \
     change it, so it was not run (to try writes, copy the file and open the copy with sqlite3)";
const ATTACH_REFUSED: &str = "keysync query only reads the keysync database: ATTACH and DETACH \
     are refused. Open other files with the sqlite3 shell";

/// Opens `path` for queries: read-only, with the views' TEMP twins pinned at `now`, and the
/// ATTACH/DETACH guard installed.
pub(crate) fn open_for_query(path: &Path, now: i64) -> Result<Connection> {
    let mut conn = open_read_only(path)?;
    views::install_temp_views(&conn, now)?;
    conn.authorizer(Some(
        |context: rusqlite::hooks::AuthContext<'_>| match context.action {
            AuthAction::Attach { .. } | AuthAction::Detach { .. } => Authorization::Deny,
            _ => Authorization::Allow,
        },
    ))
    .map_err(|e| Error::Internal(format!("cannot install the read-only guard: {e}")))?;
    Ok(conn)
}

/// Prepares exactly one statement that reads and returns rows.
fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<Statement<'c>> {
    if sql.trim().is_empty() {
        return Err(Error::Usage(
            "no SQL given: pass it as an argument, `-` to read stdin, or --file PATH".into(),
        ));
    }
    let statement = conn.prepare(sql).map_err(sql_error)?;
    if !statement.readonly() {
        return Err(Error::Usage(WRITE_REFUSED.into()));
    }
    if statement.column_count() == 0 {
        return Err(Error::Usage(
            "this SQL returns no rows: keysync query runs one SELECT (or WITH, VALUES, or a \
             PRAGMA that reads)"
                .into(),
        ));
    }
    Ok(statement)
}

/// Binds `--param` values to the statement's `:name` parameters. Every parameter the SQL uses
/// must be given, once, and every one given must be used: SQLite would silently take a missing
/// one as NULL, and a misspelt one would go unnoticed.
pub(crate) fn bind(statement: &mut Statement<'_>, params: &[SqlParam]) -> Result<()> {
    refuse_repeated(params)?;
    for index in 1..=statement.parameter_count() {
        let name = statement.parameter_name(index).unwrap_or("?");
        let param = given_param(name, params)?;
        statement
            .raw_bind_parameter(index, &param.value)
            .map_err(sql_error)?;
    }
    refuse_unused(statement, params)
}

fn refuse_repeated(params: &[SqlParam]) -> Result<()> {
    for (i, param) in params.iter().enumerate() {
        if params[..i].iter().any(|earlier| earlier.name == param.name) {
            return Err(Error::Usage(format!(
                "--param {} is given twice: give each parameter once",
                param.name
            )));
        }
    }
    Ok(())
}

/// The `--param` for the SQL parameter `name` (`:id`; `?`, `?2`, `@id` and `$id` are refused).
fn given_param<'p>(name: &str, params: &'p [SqlParam]) -> Result<&'p SqlParam> {
    let Some(bare) = name.strip_prefix(':') else {
        return Err(Error::Usage(format!(
            "the SQL has the parameter {name}: use named parameters such as :id, bound with \
             --param id=VALUE"
        )));
    };
    params
        .iter()
        .find(|p| p.name == bare)
        .ok_or_else(|| Error::Usage(format!("the SQL uses {name}: pass --param {bare}=VALUE")))
}

fn refuse_unused(statement: &Statement<'_>, params: &[SqlParam]) -> Result<()> {
    for param in params {
        let index = statement
            .parameter_index(&format!(":{}", param.name))
            .map_err(sql_error)?;
        if index.is_none() {
            return Err(Error::Usage(format!(
                "--param {0}: the SQL has no :{0} parameter",
                param.name
            )));
        }
    }
    Ok(())
}

/// The statement's column names, in order.
pub(crate) fn column_names(statement: &Statement<'_>) -> Vec<String> {
    statement.column_names().map(String::from).collect()
}

/// Runs a prepared and bound statement; its rows, as they come. The first error ends them.
pub(crate) fn rows<'s>(
    statement: &'s mut Statement<'_>,
) -> impl Iterator<Item = Result<Vec<Value>>> + 's {
    let width = statement.column_count();
    let mut rows = statement.raw_query();
    // A statement that failed must not be stepped again, so the first error is the last item.
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let row = match rows.next() {
            Ok(Some(row)) => (0..width).map(|i| row.get::<_, Value>(i)).collect(),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        failed = row.is_err();
        Some(row.map_err(sql_error))
    })
}

/// Sorts SQLite's errors into the user's mistakes (exit 2) and the database's (exit 6).
fn sql_error(error: rusqlite::Error) -> Error {
    let code = error.sqlite_error_code();
    match (&error, code) {
        (_, Some(ErrorCode::AuthorizationForStatementDenied)) => {
            Error::Usage(ATTACH_REFUSED.into())
        }
        // Plain SQLITE_READONLY is a write attempt; its extended codes (a WAL file that cannot
        // be set up in a read-only folder, ...) are trouble with the database, below.
        (rusqlite::Error::SqliteFailure(failure, _), _)
            if failure.extended_code == rusqlite::ffi::SQLITE_READONLY =>
        {
            Error::Usage(WRITE_REFUSED.into())
        }
        (rusqlite::Error::MultipleStatement, _) => Error::Usage(
            "the SQL holds more than one statement: keysync query runs one at a time".into(),
        ),
        (rusqlite::Error::SqlInputError { msg, offset, .. }, _) => Error::Usage(format!(
            "the SQL does not run: {msg} (at byte {offset} of the SQL)"
        )),
        // SQLITE_ERROR: a missing table or column, a bad function call, an overflow.
        (_, Some(ErrorCode::Unknown)) => Error::Usage(format!("the SQL does not run: {error}")),
        _ => Error::Database {
            context: "cannot run the query".into(),
            source: error,
        },
    }
}

impl Store {
    /// One read-only statement, checked as [`prepare`] does; for a store opened with
    /// [`Store::open_for_query`].
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        prepare(self.conn(), sql)
    }
}

/// One `--param NAME=VALUE`, bound to `:NAME` in a query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SqlParam {
    /// Without the leading `:`.
    pub name: String,
    pub value: Value,
}

/// `NAME=VALUE` (or `:NAME=VALUE`). The value's type is read from its text, so that SQL like
/// `:n + 1` or `LIMIT :n` works: an integer written the canonical way (`42`, `-7`) binds as
/// INTEGER, a plain decimal (`0.5`, `-2.25`) as REAL, anything else as TEXT, including `007`,
/// `+1`, `1e3` and the empty string. Compared with a column, SQLite converts a value to the
/// column's type anyway, so `WHERE id = :id` matches with `007` too.
pub(crate) fn parse_param(text: &str) -> Result<SqlParam, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, e.g. id=42, got {text:?}"))?;
    let name = name.strip_prefix(':').unwrap_or(name);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "the parameter name {name:?} must be letters, digits and _ (it binds :NAME)"
        ));
    }
    Ok(SqlParam {
        name: name.to_string(),
        value: typed_value(value),
    })
}

fn typed_value(text: &str) -> Value {
    if let Ok(integer) = text.parse::<i64>()
        && integer.to_string() == text
    {
        return Value::Integer(integer);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if let Some((whole, fraction)) = unsigned.split_once('.')
        && digits(whole)
        && digits(fraction)
        && let Ok(real) = text.parse::<f64>()
    {
        return Value::Real(real);
    }
    Value::Text(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_bind_canonical_integers_and_decimals_by_type_and_the_rest_as_text() {
        let param = |text: &str| parse_param(text).map(|p| (p.name, p.value));
        let named = |value: Value| Ok(("n".to_string(), value));
        assert_eq!(param("n=42"), named(Value::Integer(42)));
        assert_eq!(param(":n=-7"), named(Value::Integer(-7)));
        assert_eq!(
            param("n=9223372036854775807"),
            named(Value::Integer(i64::MAX))
        );
        assert_eq!(param("n=0.5"), named(Value::Real(0.5)));
        assert_eq!(param("n=-2.25"), named(Value::Real(-2.25)));
        for text in [
            "007",
            "+1",
            "-0",
            "1e3",
            ".5",
            "5.",
            "",
            "abc",
            "9223372036854775808",
        ] {
            assert_eq!(param(&format!("n={text}")), named(Value::Text(text.into())));
        }
        assert_eq!(param("n=a=b"), named(Value::Text("a=b".into())));
        assert!(parse_param("n").is_err());
        assert!(parse_param("=1").is_err());
        assert!(parse_param("bad name=1").is_err());
        assert!(parse_param("@n=1").is_err());
    }
}
