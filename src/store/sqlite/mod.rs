//! The SQLite store: schema and migrations, the batched writer, and the queries.
//! All SQL of pfstatelog lives under this module.

pub mod archive;
pub mod codec;
pub mod digest;
pub mod export;
pub mod export_sqlite;
pub mod health;
pub mod identity;
pub mod journal;
pub mod pagesum;
pub mod query;
pub mod reader;
pub mod shipped;
pub mod sink;
pub mod sql;
pub mod vtab;
pub mod writer;

use rusqlite::{Connection, OpenFlags};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// `PRAGMA application_id` of a pfstatelog database ("pfst"), so another program's SQLite
/// file is recognised and left alone.
pub const APPLICATION_ID: i32 = 0x7066_7374;

/// Migrations, applied in order; schema n (n of them applied) is stored as `PRAGMA
/// user_version` = [`USER_VERSION_BASE`] + n.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_schema",
        include_str!("../../../migrations/0001_schema.sql"),
    ),
    (
        "0002_ship",
        include_str!("../../../migrations/0002_ship.sql"),
    ),
    (
        "0003_digests",
        include_str!("../../../migrations/0003_digests.sql"),
    ),
];

/// Development builds before the first release numbered their schemas 1 to 10 in
/// `user_version`, under the same application id. Counting ours from 100 keeps such a file
/// from passing for a current one (it is refused, see [`StoreError::EarlierBuild`]), and
/// those builds refuse ours as newer than they understand instead of migrating it.
const USER_VERSION_BASE: i32 = 199;

pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The oldest schema queries read as it is: later schemas only add what `ship` and the
/// day roots keep (migrations/0002_ship.sql, 0003_digests.sql), so a file not yet upgraded is answered, not refused; the
/// first writer or `ship` upgrades it in place.
const READABLE_FROM: i32 = 1;

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
    #[error("{path}: written by an earlier development build of pfstatelog (schema {found}); re-import its captures into a new file")]
    EarlierBuild { path: String, found: i32 },
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

impl StoreError {
    /// Damage in the file (a page that fails its checksum, a malformed B-tree): a writer
    /// stops rather than retry or write around it.
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Sqlite { source, .. } if archive::is_damage(source))
    }
    /// What went wrong, without the path.
    pub fn cause(&self) -> String {
        match self {
            StoreError::Sqlite { source, .. } => source.to_string(),
            e => e.to_string(),
        }
    }
}

pub(crate) fn sq(path: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_string(),
        source,
    }
}

/// Open for writing (record, import, prune): creates the file and applies migrations.
pub fn open_rw(path: &str) -> Result<Connection> {
    check_path(path)?;
    if let Some(dir) = Path::new(path).parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                why: format!("cannot create the database directory: {e}"),
            })?;
        }
    }
    // A new file (or an empty one) gets the reserved bytes of the page checksums before
    // its first page is written; an older file without them stays unchecked.
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let mut conn = pagesum::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )
    .map_err(sq(path))?;
    if new {
        pagesum::reserve_on_create(&conn).map_err(sq(path))?;
    }
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sq(path))?;
    // Transactions take the write lock when they begin (IMMEDIATE), waiting for it as
    // long as the busy timeout allows. A DEFERRED one that reads first cannot wait: when
    // another connection commits between its first read and its first write (prune beside
    // an import), SQLite fails it at once with "database is locked".
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
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

/// At the end of a writer's work (import, closing days, prune): the whole WAL into the
/// file, and the file back in rollback mode when no one else has it open. A later lone
/// reader (`who` during an incident) then opens one file instead of building a WAL index
/// in `-shm` and tearing it down again (~0.8 ms of every query). The next writer turns WAL
/// on again; with another connection open (a recorder, a reader) the switch fails and WAL
/// stays. Never on a recorder's own connection while it records.
pub fn hand_back(conn: &Connection) {
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = conn.pragma_update(None, "journal_mode", "DELETE");
}

/// Refuse, with a line naming the problem, a `--db` that is a directory or a file this
/// user may not read (SQLite says only "disk I/O error" or "unable to open database file").
/// A path that does not exist yet is fine here (writers create it).
pub fn check_path(path: &str) -> Result<()> {
    let io = |why: String| StoreError::Io {
        path: path.into(),
        why,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(io(
                "permission denied: this user may not reach the database file".into(),
            ))
        }
        Err(e) => return Err(io(format!("cannot read the database file: {e}"))),
    };
    if meta.is_dir() {
        return Err(io(
            "is a directory; --db names the database file (e.g. DIR/pfstatelog.db)".into(),
        ));
    }
    // A FIFO would block the open below (and SQLite) for ever; a device is no database.
    if !meta.is_file() {
        return Err(io("not a regular file, so not a database".into()));
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(io(if e.kind() == std::io::ErrorKind::PermissionDenied {
            "permission denied: this user may not read the database file".into()
        } else {
            format!("cannot read the database file: {e}")
        }));
    }
    Ok(())
}

/// Open for queries: never creates, never writes.
///
/// Evidence is often a write-protected copy: a read-only file, folder or mount. SQLite's
/// ordinary read-only open of a WAL database needs to create or write the `-shm` index
/// beside it, and fails there. Then the file is opened `immutable` (SQLite takes no lock
/// and reads only the database file), with a note on stderr when that may miss something:
/// a `-wal` holding commits not copied into the database yet, or a writer at work.
pub fn open_ro(path: &str) -> Result<Connection> {
    if !Path::new(path).exists() {
        check_path(path)?;
        return Err(StoreError::Missing { path: path.into() });
    }
    check_path(path)?;
    match open_ro_as(path, false) {
        Err(StoreError::Sqlite {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        }) if matches!(
            f.code,
            rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly
        ) =>
        {
            let conn = open_ro_as(path, true)?;
            if let Some(note) = immutable_note(path) {
                eprintln!("pfstatelog: note: {path}: {note}");
            }
            Ok(conn)
        }
        r => r,
    }
}

fn open_ro_as(path: &str, immutable: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if immutable {
        pagesum::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)
    } else {
        pagesum::open_with_flags(path, flags)
    }
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
    if v - USER_VERSION_BASE < READABLE_FROM {
        return Err(StoreError::TooOld {
            path: path.into(),
            found: v - USER_VERSION_BASE,
            known: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// `file:PATH?mode=ro&immutable=1`, the path percent-encoded (a `?`, `#` or `%` in a file
/// name would otherwise be read as URI syntax).
fn immutable_uri(path: &str) -> String {
    let mut uri = String::from("file:");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// What an immutable open of `path` may not see, if anything: commits still in the
/// `-wal` file (SQLite reads them only through a `-shm` index it can write), or a writer
/// holding the one-writer lock (its changes during the query are not seen, and a
/// checkpoint under the query may be misread).
fn immutable_note(path: &str) -> Option<String> {
    let mut notes = Vec::new();
    if writer_active(path) {
        notes.push(
            "a pfstatelog writer holds this database's lock: what it writes while this query runs is not seen and may be misread; query a copy, or where the -shm file can be written".to_string(),
        );
    }
    let wal = format!("{path}-wal");
    if let Ok(m) = std::fs::metadata(&wal) {
        if m.len() > 0 {
            notes.push(format!(
                "its write-ahead log {wal} ({} bytes) is not read here, so the latest commits may be missing: copy the database with its -wal file into a writable folder to read them",
                m.len()
            ));
        }
    }
    if notes.is_empty() {
        None
    } else {
        Some(format!(
            "opened read-only as immutable (the folder or mount cannot be written); {}",
            notes.join("; ")
        ))
    }
}

/// Whether a writer holds [`WriterLock`]: a shared flock(2) tried and released at once, on
/// a descriptor opened read-only (nothing is created; a writer is never kept waiting).
fn writer_active(db: &str) -> bool {
    use std::os::unix::io::AsRawFd;
    let Ok(f) = std::fs::File::open(format!("{db}.lock")) else {
        return false;
    };
    // SAFETY: flock on a descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc != 0 {
        return true;
    }
    // SAFETY: as above.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
    false
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
    let v: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(((v - USER_VERSION_BASE).max(0), SCHEMA_VERSION))
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
    // Before anything is written: a writer must leave such a file as it is.
    if app == APPLICATION_ID && (1..=USER_VERSION_BASE).contains(&version) {
        return Err(StoreError::EarlierBuild {
            path: path.into(),
            found: version,
        });
    }
    if version - USER_VERSION_BASE > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.into(),
            found: version - USER_VERSION_BASE,
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
        let n = USER_VERSION_BASE + i as i32 + 1;
        if n <= version {
            continue;
        }
        let tx = conn.unchecked_transaction().map_err(sq(path))?;
        tx.execute_batch(sql).map_err(|e| StoreError::Io {
            path: path.into(),
            why: format!("migration {name} failed: {e}"),
        })?;
        if version == 0 {
            // A new file: its identity, for the manifests of its exports.
            identity::give(&tx).map_err(sq(path))?;
        }
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(sq(path))?;
        tx.pragma_update(None, "user_version", n)
            .map_err(sq(path))?;
        tx.commit().map_err(sq(path))?;
    }
    Ok(())
}

/// Move every archived lifetime back into `states`, one row each (tests compare whole
/// databases this way, whichever path each lifetime took); how many moved.
pub fn unarchive_all(conn: &Connection) -> rusqlite::Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let names = archive::Names::load(&tx)?;
    let n = archive::unarchive_all(&tx, &names, |tx, s| writer::insert_stored(tx, s, true))?;
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
        // Before the lock file is made beside a directory or a file that cannot be read.
        check_path(db)?;
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

/// Whether a writer (`record`, `import`) is alive on `db`, for readers, which take no lock:
/// the lock file names the pid of its last holder. Testing the flock itself would take it
/// for a moment and could refuse a writer starting then. A pid reused since reads as alive:
/// the run then shows as running, which claims nothing (its coverage ends at its last
/// commit either way).
pub fn writer_alive(db: &str) -> bool {
    let Ok(s) = std::fs::read_to_string(format!("{db}.lock")) else {
        return false;
    };
    let Ok(pid) = s.trim().parse::<libc::pid_t>() else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Copies the WAL into the database on a thread of its own. A writer's commits are then
/// only sequential appends to the WAL (synchronous=NORMAL: no fsync), and never wait for a
/// checkpoint's scattered page writes and its fsyncs, which otherwise stall the recorder
/// once a second under load (BENCHMARKS.md, "The live recorder").
pub struct Checkpointer {
    /// Dropping it wakes the thread at once and ends it: a stop never waits out a round,
    /// which every import would otherwise pay at its end.
    stop: Option<std::sync::mpsc::Sender<()>>,
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
        Self::start_every(path, writer, CHECKPOINT_EVERY)
    }

    fn start_every(path: &str, writer: &Connection, every: Duration) -> Result<Checkpointer> {
        use std::sync::mpsc::RecvTimeoutError;
        let conn = pagesum::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sq(path))?;
        // A checkpoint never waits: what a reader still uses is copied next time.
        conn.busy_timeout(Duration::ZERO).map_err(sq(path))?;
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(sq(path))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                // No last round on stop: the writer's own closing checkpoint follows.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
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
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Whether an error is damage in the database file, with a note naming a page that fails
/// its checksum (SQLite itself says only "disk I/O error").
pub fn damage_in(e: &anyhow::Error) -> Option<String> {
    let mut sqlite = e
        .chain()
        .filter_map(|c| c.downcast_ref::<rusqlite::Error>());
    let damaged = sqlite.clone().any(archive::is_damage);
    damaged.then(|| {
        sqlite
            .find_map(pagesum::mismatch)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    })
}

/// Bring the file at `db` to this binary's schema: (schema before, schema after).
pub fn migrate_file(db: &str) -> Result<(i32, i32)> {
    if !Path::new(db).exists() {
        return Err(StoreError::Missing { path: db.into() });
    }
    // A migration rebuilds indexes: no recorder may write meanwhile.
    let _lock = WriterLock::acquire(db)?;
    let before = match open_ro(db) {
        Ok(c) => schema_versions(&c).map_err(sq(db))?.0,
        Err(StoreError::TooOld { found, .. }) => found,
        Err(e) => return Err(e),
    };
    let conn = open_rw(db)?;
    let (now, _) = schema_versions(&conn).map_err(sq(db))?;
    Ok((before, now))
}

#[cfg(test)]
mod checkpointer_tests {
    use super::*;

    /// Every import and every stop waits for this drop: it must not sit out the period.
    #[test]
    fn stopping_does_not_wait_for_the_next_round() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("c.db");
        let db = db.to_str().expect("utf-8 path");
        let writer = open_rw(db).expect("open");
        let c = Checkpointer::start_every(db, &writer, Duration::from_secs(3600)).expect("start");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(c);
            let _ = tx.send(());
        });
        // A hang guard, not a speed claim: the period is an hour, the guard a minute.
        assert!(
            rx.recv_timeout(Duration::from_secs(60)).is_ok(),
            "dropping the checkpointer waited for its period"
        );
    }
}
