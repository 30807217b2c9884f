//! `export --format sqlite OUT.db`: a plain SQLite file that describes itself, for DB
//! Browser, Datasette or a colleague without pfstatelog: one `lifetimes` table with the
//! columns of `pfstatelog sql` (report/rows.rs), `runs`, `gaps` and `creators` in the same
//! readable form, and `export_info` (what was exported, from where, when, and the coverage).
//! Every column's meaning is a comment in its CREATE TABLE, which SQLite keeps.
//!
//! Written through SQLite's default VFS (no pfstatelog page checksums: any SQLite reads
//! it), under a temporary name renamed into place once complete, so a file named OUT.db
//! is always whole.

use super::export::each_lifetime;
use super::vtab::readable_tables;
use crate::report::rows::{lifetime_cell, lifetimes_ddl, Cell, LIFETIME_COLUMNS};
use crate::store::Walked;
use crate::time::{format_rfc3339, rfc3339_into};
use anyhow::{bail, Context};
use rusqlite::types::Null;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

/// Write every lifetime overlapping [from, to] of `store` (at `path`) into a new SQLite
/// file `out`, with `info` as the rows of `export_info`. Refuses to replace a file.
pub fn write(
    store: &Connection,
    path: &str,
    from: i64,
    to: i64,
    out: &Path,
    info: &[(&str, String)],
) -> anyhow::Result<Walked> {
    if out.exists() {
        bail!("{}: already exists; not overwritten", out.display());
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // create_new: never write into a file someone else made under that name.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let walked = fill(store, path, from, to, &partial, info);
    if walked.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let walked = walked.with_context(|| format!("writing {}", partial.display()))?;
    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {}", partial.display()))?;
    if out.exists() {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "{}: appeared while exporting; not overwritten",
            out.display()
        );
    }
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    Ok(walked)
}

/// Lifetimes per message from the walk to the thread that writes them.
const BATCH: usize = 1024;

/// A batch of lifetimes as SQL values, their text in one buffer.
struct Rows {
    text: String,
    cells: Vec<Cell>,
}

impl Rows {
    fn new(cols: usize) -> Rows {
        Rows {
            text: String::with_capacity(BATCH * 256),
            cells: Vec::with_capacity(BATCH * cols),
        }
    }
}

fn fill(
    store: &Connection,
    path: &str,
    from: i64,
    to: i64,
    file: &Path,
    info: &[(&str, String)],
) -> anyhow::Result<Walked> {
    let conn = Connection::open(file)?;
    // One writer, a new file: no rollback journal (a failed export is deleted whole), no
    // fsync per commit (one at the end), so the file is the rows and nothing else. No
    // index: building them would take longer than the export itself, and a reader who
    // wants them creates them in a minute (README, `export --format sqlite`).
    conn.execute_batch(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         PRAGMA locking_mode = EXCLUSIVE; PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;",
    )?;
    conn.execute_batch(&format!(
        "{};\n{}",
        lifetimes_ddl("CREATE TABLE lifetimes"),
        "CREATE TABLE export_info (
            key   TEXT PRIMARY KEY, -- what pfstatelog wrote this file from, and when
            value TEXT
        );"
    ))?;
    readable_tables(store, &conn, path)?;
    conn.execute_batch("BEGIN")?;
    let cols = LIFETIME_COLUMNS.len();
    // The walk (and turning lifetimes into text) on this thread, SQLite's inserts on
    // another: each is about half of the work.
    let (conn, walked) = std::thread::scope(|scope| -> anyhow::Result<(Connection, Walked)> {
        let (tx, rx) = sync_channel::<Rows>(8);
        let writer = scope.spawn(move || -> anyhow::Result<Connection> {
            {
                let marks = vec!["?"; cols].join(", ");
                let mut ins = conn.prepare(&format!("INSERT INTO lifetimes VALUES ({marks})"))?;
                for batch in rx {
                    for row in batch.cells.chunks_exact(cols) {
                        for (i, c) in row.iter().enumerate() {
                            match *c {
                                Cell::Null => ins.raw_bind_parameter(i + 1, Null)?,
                                Cell::Int(v) => ins.raw_bind_parameter(i + 1, v)?,
                                Cell::Text(a, b) => {
                                    ins.raw_bind_parameter(i + 1, batch.text.get(a..b))?
                                }
                                Cell::Time(us) => {
                                    let mut buf = [0u8; 27];
                                    match rfc3339_into(us, &mut buf) {
                                        Some(t) => ins.raw_bind_parameter(i + 1, t)?,
                                        None => {
                                            ins.raw_bind_parameter(i + 1, format_rfc3339(us))?
                                        }
                                    }
                                }
                            }
                        }
                        ins.raw_execute()?;
                    }
                }
            }
            Ok(conn)
        });
        let mut batch = Rows::new(cols);
        let walked = each_lifetime(store, from, to, |l| -> anyhow::Result<()> {
            for i in 0..cols {
                let c = lifetime_cell(l, i, &mut batch.text);
                batch.cells.push(c);
            }
            if batch.cells.len() == BATCH * cols {
                let full = std::mem::replace(&mut batch, Rows::new(cols));
                // The writer stopped: its error is the one to report.
                tx.send(full)
                    .map_err(|_| anyhow::anyhow!("the writer stopped"))?;
            }
            Ok(())
        });
        if walked.is_ok() && !batch.cells.is_empty() {
            let _ = tx.send(batch);
        }
        drop(tx);
        let conn = match writer.join() {
            Ok(r) => r?,
            Err(_) => anyhow::bail!("the thread writing the export failed"),
        };
        Ok((conn, walked?))
    })?;
    {
        let mut ins = conn.prepare("INSERT INTO export_info VALUES (?1, ?2)")?;
        for (k, v) in info {
            ins.execute([k, v.as_str()])?;
        }
        ins.execute(["rows", walked.rows.to_string().as_str()])?;
        ins.execute(["damaged_rows_skipped", walked.damaged.to_string().as_str()])?;
    }
    conn.execute_batch("COMMIT")?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(walked)
}

/// Rows of an SQLite export as its own tables say: (rows of `lifetimes`, `export_info`'s
/// `rows`). Opened read-only and immutable: checking the file leaves it byte for byte.
pub fn rows_of(file: &Path) -> Result<(u64, u64), String> {
    let mut uri = String::from("file:");
    for b in file.display().to_string().bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| e.to_string())?;
    let n: i64 = conn
        .query_row("SELECT count(*) FROM lifetimes", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let said: String = conn
        .query_row(
            "SELECT value FROM export_info WHERE key = 'rows'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| e.to_string())?;
    let said = said
        .parse::<u64>()
        .map_err(|_| "export_info rows is not a number".to_string())?;
    Ok((n.max(0) as u64, said))
}
