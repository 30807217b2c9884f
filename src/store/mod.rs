//! The SQLite store: schema and migrations, the batched writer, and the queries.
//! All SQL of pfstatelog lives under this module.

pub mod compact;
pub mod export;
pub mod pack;
pub mod query;
pub mod sealed;
pub mod unloaded;
pub mod writer;
pub mod young;

use rusqlite::{Connection, OpenFlags};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// `PRAGMA application_id` of a pfstatelog database ("pfst"), so another program's SQLite
/// file is recognised and left alone.
pub const APPLICATION_ID: i32 = 0x7066_7374;

/// Migrations, applied in order; `PRAGMA user_version` = how many are applied.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../../migrations/0001_init.sql")),
    (
        "0002_duration_buckets",
        include_str!("../../migrations/0002_duration_buckets.sql"),
    ),
    (
        "0003_drop_states_open",
        include_str!("../../migrations/0003_drop_states_open.sql"),
    ),
    (
        "0004_sealed",
        include_str!("../../migrations/0004_sealed.sql"),
    ),
    (
        "0005_young",
        include_str!("../../migrations/0005_young.sql"),
    ),
    (
        "0006_hashed_groups",
        include_str!("../../migrations/0006_hashed_groups.sql"),
    ),
    (
        "0007_spots",
        include_str!("../../migrations/0007_spots.sql"),
    ),
    (
        "0008_checksums",
        include_str!("../../migrations/0008_checksums.sql"),
    ),
];

pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: no such database (record or import creates one)")]
    Missing { path: String },
    #[error("{path}: not a pfstatelog database ({why})")]
    Foreign { path: String, why: String },
    #[error("{path}: database schema {found} is newer than this pfstatelog understands ({known}); upgrade pfstatelog")]
    TooNew {
        path: String,
        found: i32,
        known: i32,
    },
    #[error("{path}: database schema {found} is older than this pfstatelog ({known}); run `pfstatelog migrate --db {path}` (or restart the recorder) to upgrade it")]
    TooOld {
        path: String,
        found: i32,
        known: i32,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn sq(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    }
}

/// Open for writing (record, import, prune): creates the file and applies migrations.
pub fn open_rw(path: &str) -> Result<Connection> {
    if let Some(dir) = Path::new(path).parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                why: format!("cannot create the database directory: {e}"),
            })?;
        }
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(sq(path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sq(path))?;
    stable_plans(&conn, path)?;
    check_identity(&conn, path, true)?;
    // WAL so queries never wait for the recorder; NORMAL sync: a power cut may lose the
    // last transaction but never corrupts.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sq(path))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sq(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sq(path))?;
    // A page cache that holds what a writer touches again and again: the recent buckets of
    // the indexes and the rows of the states still open (UPD_C, DEL_C). At 20,000 states/s
    // 64 MiB missed 8,000 pages a second (soak run); fixed, whatever the database's size.
    conn.pragma_update(None, "cache_size", -262_144)
        .map_err(sq(path))?;
    // Checkpoint every 64 MiB of WAL, not every 4 MiB: a hot page rewritten by many commits
    // is copied into the database once per checkpoint, and fsynced far less often.
    conn.pragma_update(None, "wal_autocheckpoint", 16_384)
        .map_err(sq(path))?;
    conn.set_prepared_statement_cache_capacity(64);
    // No temporary files outside the database directory (unveil on OpenBSD, chroot).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sq(path))?;
    migrate(&conn, path)?;
    Ok(conn)
}

/// Open for queries: never creates, never writes.
pub fn open_ro(path: &str) -> Result<Connection> {
    if !Path::new(path).exists() {
        return Err(StoreError::Missing { path: path.into() });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sq(path))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sq(path))?;
    stable_plans(&conn, path)?;
    check_identity(&conn, path, false)?;
    let v: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sq(path))?;
    if v == 0 {
        return Err(StoreError::Foreign {
            path: path.into(),
            why: "no pfstatelog schema in it".into(),
        });
    }
    if v < SCHEMA_VERSION {
        return Err(StoreError::TooOld {
            path: path.into(),
            found: v,
            known: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// The query planner stability guarantee: one plan per statement, whatever the bound
/// values. Without it the bundled SQLite (built with STAT4) re-plans a statement on every
/// call when a bound value meets an indexed column in a range or ORDER BY, which once cost
/// most of an import's time (BENCHMARKS.md).
fn stable_plans(conn: &Connection, path: &str) -> Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(sq(path))?;
    Ok(())
}

/// The schema version of a database, and the one this binary writes.
pub fn schema_versions(conn: &Connection) -> rusqlite::Result<(i32, i32)> {
    let v = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok((v, SCHEMA_VERSION))
}

/// Refuse files that are not SQLite, SQLite files of other programs, and newer schemas.
fn check_identity(conn: &Connection, path: &str, writable: bool) -> Result<()> {
    let foreign = |why: String| StoreError::Foreign {
        path: path.into(),
        why,
    };
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                foreign("not an SQLite database, or a damaged one".into())
            }
            e => StoreError::Sqlite {
                path: path.into(),
                source: e,
            },
        })?;
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sq(path))?;
    if app == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(sq(path))?;
        if tables > 0 || version != 0 {
            return Err(foreign("it is an SQLite file of another program".into()));
        }
        if !writable {
            return Err(foreign("empty database".into()));
        }
    } else if app != APPLICATION_ID {
        return Err(foreign(format!("application id 0x{app:08x}")));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}

fn migrate(conn: &Connection, path: &str) -> Result<()> {
    let version: i32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sq(path))?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let n = i as i32 + 1;
        if n <= version {
            continue;
        }
        let tx = conn.unchecked_transaction().map_err(sq(path))?;
        tx.execute_batch(sql)
            .and_then(|()| match *name {
                "0008_checksums" => sealed::sum_existing(&tx),
                _ => Ok(()),
            })
            .map_err(|e| StoreError::Io {
                path: path.into(),
                why: format!("migration {name} failed: {e}"),
            })?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sq(path))?;
        tx.pragma_update(None, "user_version", n)
            .map_err(sq(path))?;
        tx.commit().map_err(sq(path))?;
    }
    Ok(())
}

/// Move every sealed lifetime back into `states`, one row each (tests compare whole
/// databases this way, whichever path each lifetime took); how many moved.
pub fn unseal_all(conn: &Connection) -> rusqlite::Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let names = sealed::Names::load(&tx)?;
    let n = sealed::unseal_all(&tx, &names, |tx, s| writer::insert_stored(tx, s, true))?;
    tx.commit()?;
    Ok(n)
}

/// An address as stored: 4 bytes for IPv4, 16 for IPv6.
pub fn addr_blob(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

/// The inverse of [`addr_blob`]; anything else is damage in the database.
pub fn blob_addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from([b[0], b[1], b[2], b[3]])),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Some(IpAddr::from(a))
        }
        _ => None,
    }
}

/// The one-writer rule: `record` and `import` hold an exclusive flock(2) on `DB.lock` for
/// as long as they write; a second writer is refused at once. Readers take no lock (WAL).
pub struct WriterLock {
    _file: std::fs::File,
}

impl WriterLock {
    pub fn acquire(db: &str) -> Result<WriterLock> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::io::AsRawFd;
        let path = format!("{db}.lock");
        let io = |why: String| StoreError::Io {
            path: path.clone(),
            why,
        };
        if let Some(dir) = Path::new(db).parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| io(format!("cannot create the database directory: {e}")))?;
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(format!("cannot open the lock file: {e}")))?;
        // SAFETY: flock on a descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = f.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(StoreError::Io {
                path: db.into(),
                why: format!(
                    "another pfstatelog record or import is writing this database{}; only one writer at a time (queries are fine)",
                    if holder.is_empty() { String::new() } else { format!(" (pid {holder})") }
                ),
            });
        }
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = writeln!(f, "{}", std::process::id());
        Ok(WriterLock { _file: f })
    }
}

/// Copies the WAL into the database on a thread of its own. A writer's commits are then
/// only sequential appends to the WAL (synchronous=NORMAL: no fsync), and never wait for a
/// checkpoint's scattered page writes and its fsyncs, which otherwise stall the recorder
/// once a second under load (BENCHMARKS.md "Soak").
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the checkpointer copies what the WAL holds.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// The writer checkpoints by itself only when the WAL passes this (1 GiB of 4 KiB pages):
/// a safety valve if the checkpointer falls behind, never the normal path.
const WRITER_CHECKPOINT_PAGES: i64 = 262_144;

impl Checkpointer {
    /// Start checkpointing `path`, whose writer is `writer`.
    pub fn start(path: &str, writer: &Connection) -> Result<Checkpointer> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sq(path))?;
        // A checkpoint never waits: what a reader still uses is copied next time.
        conn.busy_timeout(Duration::ZERO).map_err(sq(path))?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(sq(path))?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    // Errors (disk full, a busy lock) are the writer's to report: its own
                    // writes meet the same condition. Retried on the next round.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })
            .map_err(|e| StoreError::Io {
                path: path.into(),
                why: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
