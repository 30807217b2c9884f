//! `pfstatelog sql [--format table|json|csv] QUERY`: the analyst's own questions, in
//! SQLite's SQL, over a readable view of the store (src/store/vtab.rs). Read-only: a
//! statement that would write anything but a temp table is refused before it runs (exit 2,
//! one line).

use crate::cli::{SqlArgs, SqlFormat};
use crate::store::sqlite::{self as store, vtab};
use anyhow::{bail, Context};
use rusqlite::fallible_iterator::FallibleIterator as _;
use rusqlite::types::ValueRef;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

pub fn run(a: SqlArgs) -> anyhow::Result<u8> {
    let sql = if a.query == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the query from standard input")?;
        s
    } else {
        a.query.clone()
    };
    if sql.trim().is_empty() {
        bail!("empty query");
    }
    let db = a.db.path();
    let store_conn = store::open_ro(&db)?;
    let (mut conn, shared) =
        vtab::open(store_conn, &db).with_context(|| format!("reading {db}"))?;
    let refused = Arc::new(Mutex::new(None));
    vtab::read_only_guard(&mut conn, refused.clone())?;
    let mut out = super::out::stdout();
    let ran = run_all(&conn, &sql, a.format, &mut out);
    out.flush()?;
    if let Err(e) = ran {
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
    for d in shared.damage() {
        eprintln!("pfstatelog: warning: {db}: damaged data, left out of this answer: {d}");
    }
    Ok(super::FOUND)
}

/// Every statement of `sql` in turn; the rows of each that returns rows are printed.
fn run_all(
    conn: &rusqlite::Connection,
    sql: &str,
    format: SqlFormat,
    out: &mut super::out::Out,
) -> anyhow::Result<()> {
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        if stmt.column_count() == 0 {
            stmt.execute([])?;
            continue;
        }
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let mut rows = stmt.query([])?;
        match format {
            SqlFormat::Table => {
                let mut t = comfy_table::Table::new();
                t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
                t.set_header(names.clone());
                let mut n = 0u64;
                while let Some(r) = rows.next()? {
                    t.add_row((0..names.len()).map(|i| text(r.get_ref(i), "NULL")));
                    n += 1;
                }
                writeln!(out, "{t}")?;
                writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })?;
            }
            SqlFormat::Csv => {
                let mut w = csv::Writer::from_writer(&mut *out);
                w.write_record(&names)?;
                while let Some(r) = rows.next()? {
                    w.write_record((0..names.len()).map(|i| text(r.get_ref(i), "")))?;
                }
                w.flush()?;
            }
            SqlFormat::Json => {
                out.write_all(b"[")?;
                let mut first = true;
                while let Some(r) = rows.next()? {
                    let mut o = serde_json::Map::new();
                    for (i, n) in names.iter().enumerate() {
                        o.insert(n.clone(), json(r.get_ref(i)));
                    }
                    out.write_all(if first { b"\n" } else { b",\n" })?;
                    first = false;
                    serde_json::to_writer(&mut *out, &o)?;
                }
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
            }
        }
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

fn text(v: rusqlite::Result<ValueRef<'_>>, null: &str) -> String {
    match v {
        Ok(ValueRef::Null) | Err(_) => null.to_string(),
        Ok(ValueRef::Integer(i)) => i.to_string(),
        Ok(ValueRef::Real(f)) => f.to_string(),
        Ok(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Ok(ValueRef::Blob(b)) => hex(b),
    }
}

fn json(v: rusqlite::Result<ValueRef<'_>>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Ok(ValueRef::Null) | Err(_) => J::Null,
        Ok(ValueRef::Integer(i)) => J::from(i),
        Ok(ValueRef::Real(f)) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        Ok(ValueRef::Text(t)) => J::String(String::from_utf8_lossy(t).into_owned()),
        Ok(ValueRef::Blob(b)) => J::String(hex(b)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
