//! `pfstatelog sql`: run the analyst's statements, in SQLite's dialect, over the store's
//! readable tables (vtab.rs), read-only. The command formats what this hands it; SQLite's
//! types stay here.

use super::vtab;
use anyhow::{bail, Context};
use rusqlite::fallible_iterator::FallibleIterator as _;
use rusqlite::types::ValueRef;
use std::sync::{Arc, Mutex};

/// One value of a result row.
#[derive(Debug, Clone, Copy)]
pub enum SqlValue<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// Where the rows of each statement go.
pub trait SqlOut {
    /// A statement that returns rows begins; its column names.
    fn columns(&mut self, names: &[String]) -> anyhow::Result<()>;
    fn row(&mut self, values: &[SqlValue<'_>]) -> anyhow::Result<()>;
    /// The statement's rows are all given.
    fn end(&mut self) -> anyhow::Result<()>;
}

/// Run every statement of `sql` against the database at `db`. Returns the damaged data
/// left out of the answers, for a warning. A write is refused with one line.
pub fn run(db: &str, sql: &str, out: &mut dyn SqlOut) -> anyhow::Result<Vec<String>> {
    let store_conn = super::open_ro(db)?;
    let (mut conn, shared) = vtab::open(store_conn, db).with_context(|| format!("reading {db}"))?;
    let refused = Arc::new(Mutex::new(None));
    vtab::read_only_guard(&mut conn, refused.clone())?;
    if let Err(e) = run_all(&conn, sql, out) {
        let Some(sq) = e.downcast_ref::<rusqlite::Error>() else {
            return Err(e);
        };
        let msg = one_line(sq);
        let denied =
            sq.sqlite_error_code() == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied);
        // A virtual table without a write method says so itself.
        if denied || msg.ends_with("may not be modified") {
            let what = refused
                .lock()
                .ok()
                .and_then(|r| r.clone())
                .unwrap_or_else(|| {
                    let t = msg.strip_prefix("table ").and_then(|m| m.split(' ').next());
                    format!("a write to {}", t.unwrap_or("a table"))
                });
            bail!("sql is read-only: {what} refused (only temp tables may be written)");
        }
        bail!("sql: {msg}");
    }
    Ok(shared.damage())
}

fn run_all(conn: &rusqlite::Connection, sql: &str, out: &mut dyn SqlOut) -> anyhow::Result<()> {
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        if stmt.column_count() == 0 {
            stmt.execute([])?;
            continue;
        }
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        out.columns(&names)?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let values: Vec<SqlValue<'_>> = (0..names.len())
                .map(|i| match r.get_ref(i) {
                    Ok(ValueRef::Null) | Err(_) => SqlValue::Null,
                    Ok(ValueRef::Integer(i)) => SqlValue::Int(i),
                    Ok(ValueRef::Real(f)) => SqlValue::Real(f),
                    Ok(ValueRef::Text(t)) => SqlValue::Text(t),
                    Ok(ValueRef::Blob(b)) => SqlValue::Blob(b),
                })
                .collect();
            out.row(&values)?;
        }
        out.end()?;
    }
    Ok(())
}

/// SQLite's message alone ("no such column: x"), without rusqlite's wrapping.
fn one_line(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        e => e.to_string(),
    }
}
