//! `pfstatelog sql`: SQLite's own SQL over the store, in a readable form.
//!
//! The user's statements run on an in-memory connection that holds only what a reader
//! should see: the virtual table `lifetimes` (every lifetime, wherever the store keeps it:
//! open, journal, archive), and `runs`, `gaps`, `creators` copied from the store in the same
//! readable form (addresses and times as text). The store itself is read through separate
//! read-only connections, so nothing the user writes can reach it, and the packed archive is
//! only ever decoded by the store's own functions.
//!
//! `lifetimes` hands constraints to the store's indexes (xBestIndex): `public_ip =` with
//! `public_port =` reads what `who` reads, `private_ip =` what `history` reads, and bounds
//! on `start_us`/`end_us` narrow the range any of them walks. SQLite re-checks every
//! constraint on the rows returned (none is marked omitted), so a plan only has to return a
//! superset of the answer.

use super::export::{count_lifetimes, each_lifetime};
use super::query;
use crate::model::{Lifetime, Micros};
use crate::report::rows::{
    lifetime_cell, lifetimes_ddl, Cell, COL_END_US, COL_PRIVATE_IP, COL_PUBLIC_IP, COL_PUBLIC_PORT,
    COL_START_US, COL_UNTIL_US, LIFETIME_COLUMNS,
};
use crate::store::WhoFilter;
use crate::time::format_rfc3339;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::vtab::{
    Context, CreateVTab, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection,
    VTabCursor, VTabKind,
};
use rusqlite::{params, Connection};
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_int, CStr, CString};
use std::net::IpAddr;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};

/// What every cursor of one `sql` run shares: where the store is, read-only connections to
/// it not in use, and the damage the walks met (for the warnings at the end).
pub struct Shared {
    path: String,
    pool: Mutex<Vec<Connection>>,
    damage: Mutex<Vec<String>>,
}

impl Shared {
    fn take(&self) -> rusqlite::Result<Connection> {
        if let Some(c) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(c);
        }
        super::open_ro(&self.path).map_err(|e| rusqlite::Error::ModuleError(e.to_string()))
    }

    fn give(&self, c: Connection) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(c);
        }
    }

    fn note_damage(&self, d: impl IntoIterator<Item = String>) {
        if let Ok(mut v) = self.damage.lock() {
            v.extend(d);
        }
    }

    /// Damaged groups and rows the answer left out, once each.
    pub fn damage(&self) -> Vec<String> {
        let mut v = self
            .damage
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default();
        v.extend(
            super::archive::damage_seen()
                .into_iter()
                .map(|d| d.to_string()),
        );
        let mut seen = std::collections::HashSet::new();
        v.retain(|d| seen.insert(d.clone()));
        v
    }
}

/// The in-memory connection `sql` runs statements on, with `lifetimes`, `runs`, `gaps`
/// and `creators`, and the functions `us(TEXT)` and `rfc3339(INTEGER)`. `store` is an open
/// read-only connection to the database at `path` (it becomes the first of the pool).
pub fn open(store: Connection, path: &str) -> rusqlite::Result<(Connection, Arc<Shared>)> {
    let conn = Connection::open_in_memory()?;
    // No temporary files outside the database directory (as for the store).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    readable_tables(&store, &conn, path)?;
    let shared = Arc::new(Shared {
        path: path.to_string(),
        pool: Mutex::new(vec![store]),
        damage: Mutex::new(Vec::new()),
    });
    const MODULE: Module<LifetimesTab> = Module::read_only_module();
    conn.create_module(c"pfstatelog_lifetimes", &MODULE, Some(shared.clone()))?;
    conn.execute_batch("CREATE VIRTUAL TABLE main.lifetimes USING pfstatelog_lifetimes")?;
    time_functions(&conn)?;
    // SQLite's csv module, for joining a file of complaints (README).
    rusqlite::vtab::csvtab::load_module(&conn)?;
    Ok((conn, shared))
}

/// `us(TIME)`: RFC 3339 (or `YYYY-MM-DD HH:MM:SS`, read as UTC, or `@EPOCH`) to integer
/// microseconds, as `start_us` holds them; `rfc3339(US)` the other way.
pub fn time_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("us", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Integer(i) => Some(i),
            v => {
                let s = v
                    .as_str()
                    .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                let t = crate::time::parse_time(s, &crate::time::Zone::Utc)
                    .map_err(|e| rusqlite::Error::UserFunctionError(format!("us(): {e}").into()))?;
                Some(t)
            }
        })
    })?;
    conn.create_scalar_function("rfc3339", 1, flags, |ctx| {
        Ok(ctx.get::<Option<i64>>(0)?.map(format_rfc3339))
    })?;
    Ok(())
}

/// `runs`, `gaps` and `creators` as a reader should see them, copied from `store` into
/// `dest` (the `sql` connection, or the file `export --format sqlite` writes).
pub fn readable_tables(store: &Connection, dest: &Connection, path: &str) -> rusqlite::Result<()> {
    dest.execute_batch(SIDE_TABLES)?;
    let tx = dest.unchecked_transaction()?;
    let t = |v: Option<i64>| v.map(format_rfc3339);
    {
        let newest: Option<i64> = store.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?;
        let mut alive = None;
        let mut ins = tx.prepare(
            "INSERT INTO runs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        let mut st = store.prepare(
            "SELECT id, kind, source, status, first_us, last_us, started_wall, stopped_wall,
                    packets, messages, drops, decode_errors, skipped, pid, version
             FROM runs ORDER BY id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let mut status: String = r.get(3)?;
            // As `stats` reads it: a run left `running` by a writer that died is abnormal.
            if status == "running" {
                let live =
                    Some(id) == newest && *alive.get_or_insert_with(|| super::writer_alive(path));
                if !live {
                    status = "abnormal".into();
                }
            }
            let (first, last): (Option<i64>, Option<i64>) = (r.get(4)?, r.get(5)?);
            ins.execute(params![
                id,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                status,
                t(first),
                t(last),
                first,
                last,
                t(r.get(6)?),
                t(r.get(7)?),
                r.get::<_, i64>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, i64>(11)?,
                r.get::<_, i64>(12)?,
                r.get::<_, Option<i64>>(13)?,
                r.get::<_, Option<String>>(14)?,
            ])?;
        }
    }
    {
        let mut ins = tx.prepare("INSERT INTO gaps VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
        let mut st = store.prepare(
            "SELECT id, run_id, kind, start_us, end_us, count, detail FROM gaps ORDER BY start_us, id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (a, b): (i64, i64) = (r.get(3)?, r.get(4)?);
            ins.execute(params![
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                format_rfc3339(a),
                format_rfc3339(b),
                a,
                b,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
            ])?;
        }
    }
    {
        let mut ins = tx.prepare("INSERT INTO creators VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")?;
        let mut st = store.prepare(
            "SELECT creator_id, flavor, version, record_version, first_us, last_us
             FROM creators ORDER BY creator_id",
        )?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let (a, b): (i64, i64) = (r.get(4)?, r.get(5)?);
            ins.execute(params![
                crate::report::hex_creator(r.get::<_, i64>(0)? as u32),
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                format_rfc3339(a),
                format_rfc3339(b),
                a,
                b,
            ])?;
        }
    }
    tx.commit()
}

const SIDE_TABLES: &str = "
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY, -- the run's number in the database
    kind          TEXT,    -- record (a live recorder) or import (a capture file)
    source        TEXT,    -- interface or capture path
    status        TEXT,    -- running, stopped, failed, abnormal (a writer that died)
    first_packet  TEXT,    -- RFC 3339 UTC: the run watched from here...
    last_packet   TEXT,    -- ...to here (a live recorder: its last commit)
    first_us      INTEGER, -- the same, microseconds since 1970-01-01 UTC
    last_us       INTEGER,
    started       TEXT,    -- wall clock when the run began
    stopped       TEXT,    -- wall clock when it ended; NULL while running or after a crash
    packets       INTEGER,
    messages      INTEGER,
    drops         INTEGER, -- libpcap drops
    decode_errors INTEGER,
    skipped       INTEGER,
    pid           INTEGER,
    version       TEXT     -- pfstatelog version of the run
);
CREATE TABLE gaps (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER,   -- runs.id
    kind     TEXT,      -- pcap-drop, decode-error, bad-ttl, time-jump
    \"start\"  TEXT,    -- RFC 3339 UTC: the recorder was partly blind from here...
    \"end\"    TEXT,    -- ...to here
    start_us INTEGER,
    end_us   INTEGER,
    count    INTEGER,   -- packets or messages lost
    detail   TEXT
);
CREATE TABLE creators (
    creator_id     TEXT PRIMARY KEY, -- firewall (pfsync creator id), 8 hex digits
    flavor         TEXT,    -- openbsd or freebsd
    header_version INTEGER, -- pfsync header version
    record_version INTEGER, -- FreeBSD state record version
    first_seen     TEXT,    -- RFC 3339 UTC
    last_seen      TEXT,
    first_us       INTEGER,
    last_us        INTEGER
);
";

/// The `lifetimes` virtual table.
#[repr(C)]
struct LifetimesTab {
    /// Must come first (SQLite's own part of the table).
    base: rusqlite::vtab::sqlite3_vtab,
    shared: Arc<Shared>,
}

/// What each argument xFilter receives stands for, one letter per argument in idxStr.
const ARG_PUBLIC_IP: u8 = b'I';
const ARG_PUBLIC_PORT: u8 = b'P';
const ARG_PRIVATE_IP: u8 = b'H';
/// An upper bound on the start (start_us <= v, or end_us <= v: the start is before it).
const ARG_UPPER: u8 = b'U';
/// A lower bound on the end (end_us >= v, or start_us >= v: the end is after it).
const ARG_LOWER: u8 = b'L';
/// Both (start_us = v, end_us = v).
const ARG_BOTH: u8 = b'B';

/// idxNum: which of the store's reads xFilter makes.
const PLAN_WALK: c_int = 0;
const PLAN_WHO: c_int = 1;
const PLAN_HISTORY: c_int = 2;
/// A walk that reads no column (`count(*)`): rows are counted, not built.
const PLAN_COUNT: c_int = 3;

unsafe impl<'vtab> VTab<'vtab> for LifetimesTab {
    type Aux = Arc<Shared>;
    type Cursor = LifetimesCursor;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Arc<Shared>>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        let shared = aux
            .cloned()
            .ok_or_else(|| rusqlite::Error::ModuleError("no store to read".into()))?;
        let ddl = CString::new(lifetimes_ddl("CREATE TABLE x"))
            .map_err(|e| rusqlite::Error::ModuleError(e.to_string()))?;
        Ok((
            Cow::Owned(ddl),
            LifetimesTab {
                base: rusqlite::vtab::sqlite3_vtab::default(),
                shared,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        use IndexConstraintOp::*;
        let (mut ip, mut port, mut host) = (None, None, None);
        let mut bounds: Vec<(usize, u8)> = Vec::new();
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() {
                continue;
            }
            let col = usize::try_from(c.column()).unwrap_or(usize::MAX);
            let op = c.operator();
            match (col, op) {
                (COL_PUBLIC_IP, SQLITE_INDEX_CONSTRAINT_EQ) => {
                    ip.get_or_insert(i);
                }
                (COL_PUBLIC_PORT, SQLITE_INDEX_CONSTRAINT_EQ) => {
                    port.get_or_insert(i);
                }
                (COL_PRIVATE_IP, SQLITE_INDEX_CONSTRAINT_EQ) => {
                    host.get_or_insert(i);
                }
                (COL_START_US | COL_END_US | COL_UNTIL_US, SQLITE_INDEX_CONSTRAINT_EQ) => {
                    bounds.push((i, ARG_BOTH))
                }
                (
                    COL_START_US | COL_END_US | COL_UNTIL_US,
                    SQLITE_INDEX_CONSTRAINT_LE | SQLITE_INDEX_CONSTRAINT_LT,
                ) => bounds.push((i, ARG_UPPER)),
                (
                    COL_START_US | COL_END_US | COL_UNTIL_US,
                    SQLITE_INDEX_CONSTRAINT_GE | SQLITE_INDEX_CONSTRAINT_GT,
                ) => bounds.push((i, ARG_LOWER)),
                _ => {}
            }
        }
        let mut args: Vec<(usize, u8)> = Vec::new();
        // Costs by what the store reads, not by the time bounds alone: a plan that ORs two
        // bounded walks must never look cheaper than one walk (SQLite would then merge
        // the two by rowid).
        let (plan, cost, rows) = match (ip, port, host) {
            (Some(ip), Some(port), _) => {
                args.push((ip, ARG_PUBLIC_IP));
                args.push((port, ARG_PUBLIC_PORT));
                (PLAN_WHO, 20.0, 10)
            }
            (_, _, Some(h)) => {
                args.push((h, ARG_PRIVATE_IP));
                (PLAN_HISTORY, 2_000.0, 1_000)
            }
            _ => {
                let both = bounds.iter().any(|b| b.1 != ARG_LOWER)
                    && bounds.iter().any(|b| b.1 != ARG_UPPER);
                if both {
                    (PLAN_WALK, 1e6, 100_000)
                } else {
                    (PLAN_WALK, 1e8, 10_000_000)
                }
            }
        };
        args.extend(bounds);
        let mut codes = String::new();
        for (n, (i, code)) in args.iter().enumerate() {
            // Not omitted: SQLite checks every row again, so the store may return more.
            info.constraint_usage(*i).set_argv_index(n as c_int + 1);
            codes.push(char::from(*code));
        }
        // No column asked (colUsed counts every column a statement names, constraints
        // included): the walk need only count. The rowid is not in colUsed, so a counted
        // row is still built if xRowid asks for it (LifetimesCursor::built_row).
        let plan = if plan == PLAN_WALK && info.col_used() == 0 {
            PLAN_COUNT
        } else {
            plan
        };
        info.set_idx_num(plan);
        info.set_idx_str(&codes);
        info.set_estimated_cost(cost);
        info.set_estimated_rows(rows);
        Ok(true)
    }

    fn open(&'vtab mut self) -> rusqlite::Result<LifetimesCursor> {
        Ok(LifetimesCursor {
            base: rusqlite::vtab::sqlite3_vtab_cursor::default(),
            shared: self.shared.clone(),
            rows: Vec::new().into_iter(),
            walk: None,
            row: None,
            counted: None,
            range: (i64::MIN, i64::MAX),
            built: RefCell::new(None),
        })
    }
}

impl CreateVTab<'_> for LifetimesTab {
    const KIND: VTabKind = VTabKind::Default;
}

/// What a walk's thread sends: lifetimes in batches (or, counting, how many), then how it
/// ended.
enum Batch {
    Rows(Vec<Lifetime>),
    Count(u64),
    Done(Result<(), String>),
}

/// Rows per message from a walk: large enough that the channel costs nothing per row.
const BATCH: usize = 2048;

#[repr(C)]
struct LifetimesCursor {
    /// Must come first (SQLite's own part of the cursor).
    base: rusqlite::vtab::sqlite3_vtab_cursor,
    shared: Arc<Shared>,
    /// Rows in hand: a who/history answer, or the current batch of a walk.
    rows: std::vec::IntoIter<Lifetime>,
    /// A full walk runs on a thread of its own (each_lifetime calls back, SQLite pulls),
    /// on a connection of its own; dropping the receiver stops it at its next batch.
    walk: Option<Receiver<Batch>>,
    row: Option<Lifetime>,
    /// A counted scan (PLAN_COUNT), while on a row.
    counted: Option<Counted>,
    /// The range of the current scan.
    range: (Micros, Micros),
    /// A counted scan's rows built after all, up to the current one (xRowid asked).
    built: RefCell<Option<Built>>,
}

/// Where a counted scan is: the counts still to come, the rows of the last count not yet
/// passed, and the number of the current row (from 1).
struct Counted {
    walk: Option<Receiver<Batch>>,
    left: u64,
    at: u64,
}

/// A full walk of the same range, positioned at a counted scan's current row.
struct Built {
    walk: Option<Receiver<Batch>>,
    rows: std::vec::IntoIter<Lifetime>,
    row: Option<Lifetime>,
    at: u64,
}

/// A time bound from a constraint's value; `None` when it cannot narrow anything (NULL,
/// text: SQLite compares those itself, and the walk then stays wider).
fn bound(v: &Value, upper: bool) -> Option<i64> {
    match v {
        Value::Integer(i) => Some(*i),
        Value::Real(f) if f.is_finite() => Some(if upper { f.ceil() } else { f.floor() } as i64),
        _ => None,
    }
}

/// What a `public_port =` value asks, as the store reads ports: `Err(())` when no row
/// can equal it, `Ok(None)` when it is not plainly a port (then a walk, which SQLite
/// filters).
#[allow(clippy::result_unit_err)]
fn port_of(v: &Value) -> Result<Option<u16>, ()> {
    match v {
        Value::Integer(i) => u16::try_from(*i).map(Some).map_err(|_| ()),
        Value::Real(f) if f.fract() == 0.0 && (0.0..=65535.0).contains(f) => Ok(Some(*f as u16)),
        Value::Real(_) | Value::Null | Value::Blob(_) => Err(()),
        Value::Text(_) => Ok(None),
    }
}

/// An address column compared with `v`: only text that reads as an address can equal one.
fn addr_of(v: &Value) -> Option<IpAddr> {
    match v {
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
}

/// Start a walk of [from, to] on a thread of its own, on a connection of its own: all its
/// lifetimes in batches or, `count`, only how many (export::count_lifetimes).
fn start_walk(shared: &Arc<Shared>, from: i64, to: i64, count: bool) -> Receiver<Batch> {
    let (tx, rx) = sync_channel::<Batch>(4);
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("sql-walk".into())
        .spawn(move || {
            let conn = match shared.take() {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Batch::Done(Err(e.to_string())));
                    return;
                }
            };
            let mut batch = Vec::new();
            let walked = if count {
                count_lifetimes(&conn, from, to, |n| -> anyhow::Result<()> {
                    tx.send(Batch::Count(n))
                        .map_err(|_| anyhow::anyhow!("stopped"))
                })
            } else {
                batch.reserve(BATCH);
                each_lifetime(&conn, from, to, |l| -> anyhow::Result<()> {
                    batch.push(l.clone());
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        // The cursor went away: stop reading.
                        tx.send(Batch::Rows(full))
                            .map_err(|_| anyhow::anyhow!("stopped"))?;
                    }
                    Ok(())
                })
            };
            let mut damage: Vec<String> = super::archive::damage_seen()
                .into_iter()
                .map(|d| d.to_string())
                .collect();
            let end = match walked {
                Ok(w) => {
                    if w.damaged > 0 {
                        damage.push(format!("{} rows whose addresses do not decode", w.damaged));
                    }
                    Ok(())
                }
                Err(e) => Err(format!("{e:#}")),
            };
            shared.note_damage(damage);
            shared.give(conn);
            if !batch.is_empty() && tx.send(Batch::Rows(batch)).is_err() {
                return;
            }
            let _ = tx.send(Batch::Done(end));
        });
    match spawned {
        Ok(_) => rx,
        Err(e) => {
            let (tx, rx) = sync_channel::<Batch>(1);
            let _ = tx.send(Batch::Done(Err(format!("cannot start a walk: {e}"))));
            rx
        }
    }
}

/// A walk's next message; `walk` becomes `None` once it has ended.
fn receive(walk: &mut Option<Receiver<Batch>>) -> rusqlite::Result<Option<Batch>> {
    let Some(rx) = walk else {
        return Ok(None);
    };
    let got = match rx.try_recv() {
        Ok(b) => Ok(b),
        Err(TryRecvError::Empty) => rx.recv().map_err(|_| ()),
        Err(TryRecvError::Disconnected) => Err(()),
    };
    match got {
        Ok(Batch::Done(Ok(()))) => {
            *walk = None;
            Ok(None)
        }
        Ok(Batch::Done(Err(e))) => {
            *walk = None;
            Err(rusqlite::Error::ModuleError(e))
        }
        Ok(b) => Ok(Some(b)),
        Err(()) => {
            *walk = None;
            Err(rusqlite::Error::ModuleError(
                "the walk over the lifetimes ended without finishing".into(),
            ))
        }
    }
}

/// The next lifetime of a walk (after the rows in hand), or `None` at its end.
fn next_lifetime(
    walk: &mut Option<Receiver<Batch>>,
    rows: &mut std::vec::IntoIter<Lifetime>,
) -> rusqlite::Result<Option<Lifetime>> {
    loop {
        if let Some(l) = rows.next() {
            return Ok(Some(l));
        }
        match receive(walk)? {
            Some(Batch::Rows(v)) => *rows = v.into_iter(),
            Some(_) => {}
            None => return Ok(None),
        }
    }
}

impl LifetimesCursor {
    /// The next row, from the rows in hand or the walk's next batch (or count).
    fn advance(&mut self) -> rusqlite::Result<()> {
        // A counted scan whose rows had to be built goes on as a walk from there.
        if let Some(b) = self.built.get_mut().take() {
            self.counted = None;
            self.walk = b.walk;
            self.rows = b.rows;
        }
        if let Some(c) = &mut self.counted {
            loop {
                if c.left > 0 {
                    c.left -= 1;
                    c.at += 1;
                    return Ok(());
                }
                match receive(&mut c.walk) {
                    Ok(Some(Batch::Count(n))) => c.left = n,
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        self.counted = None;
                        return Ok(());
                    }
                    Err(e) => {
                        self.counted = None;
                        return Err(e);
                    }
                }
            }
        }
        match next_lifetime(&mut self.walk, &mut self.rows) {
            Ok(l) => {
                self.row = l;
                Ok(())
            }
            Err(e) => {
                self.row = None;
                Err(e)
            }
        }
    }

    /// The store's answer for one plan, or `None` for a walk.
    fn answer(
        &self,
        plan: c_int,
        ip: Option<&Value>,
        port: Option<&Value>,
        host: Option<&Value>,
        from: i64,
        to: i64,
    ) -> rusqlite::Result<Option<Vec<Lifetime>>> {
        match plan {
            PLAN_WHO => {
                let (Some(ip), Some(port)) = (ip, port) else {
                    return Ok(None);
                };
                let Some(ip) = addr_of(ip) else {
                    return Ok(Some(Vec::new()));
                };
                let port = match port_of(port) {
                    Ok(Some(p)) => p,
                    Ok(None) => return Ok(None),
                    Err(()) => return Ok(Some(Vec::new())),
                };
                let conn = self.shared.take()?;
                let rows = query::who(&conn, &ip, port, from, to, from, &WhoFilter::default());
                self.shared.give(conn);
                rows.map(Some)
            }
            PLAN_HISTORY => {
                let Some(host) = host else {
                    return Ok(None);
                };
                let Some(host) = addr_of(host) else {
                    return Ok(Some(Vec::new()));
                };
                let conn = self.shared.take()?;
                let rows = query::history(&conn, &host, &host, from, to, None);
                self.shared.give(conn);
                rows.map(Some)
            }
            _ => Ok(None),
        }
    }
}

unsafe impl VTabCursor for LifetimesCursor {
    fn filter(
        &mut self,
        idx_num: c_int,
        idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        // A new scan: a walk still running for the last one stops at its next batch.
        self.walk = None;
        self.rows = Vec::new().into_iter();
        self.row = None;
        self.counted = None;
        *self.built.get_mut() = None;
        let codes = idx_str.unwrap_or("").as_bytes();
        let (mut from, mut to) = (i64::MIN, i64::MAX);
        let (mut ip, mut port, mut host) = (None, None, None);
        let mut vals = Vec::with_capacity(codes.len());
        for i in 0..codes.len().min(args.len()) {
            vals.push(args.get::<Value>(i)?);
        }
        for (code, v) in codes.iter().zip(&vals) {
            match *code {
                ARG_PUBLIC_IP => ip = Some(v),
                ARG_PUBLIC_PORT => port = Some(v),
                ARG_PRIVATE_IP => host = Some(v),
                ARG_UPPER | ARG_LOWER | ARG_BOTH => {
                    if *code != ARG_LOWER {
                        if let Some(b) = bound(v, true) {
                            to = to.min(b);
                        }
                    }
                    if *code != ARG_UPPER {
                        if let Some(b) = bound(v, false) {
                            from = from.max(b);
                        }
                    }
                }
                _ => {}
            }
        }
        if from > to {
            return Ok(());
        }
        match self.answer(idx_num, ip, port, host, from, to)? {
            Some(rows) => self.rows = rows.into_iter(),
            None if idx_num == PLAN_COUNT => {
                self.range = (from, to);
                self.counted = Some(Counted {
                    walk: Some(start_walk(&self.shared, from, to, true)),
                    left: 0,
                    at: 0,
                });
            }
            None => self.walk = Some(start_walk(&self.shared, from, to, false)),
        }
        self.advance()
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.advance()
    }

    fn eof(&self) -> bool {
        self.row.is_none() && self.counted.is_none()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        if self.counted.is_some() {
            let built = self.built_row()?;
            return set_column(ctx, built.as_ref().and_then(|b| b.row.as_ref()), i);
        }
        set_column(ctx, self.row.as_ref(), i)
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        if self.counted.is_some() {
            let built = self.built_row()?;
            return Ok(rowid_of(built.as_ref().and_then(|b| b.row.as_ref())));
        }
        Ok(rowid_of(self.row.as_ref()))
    }
}

fn set_column(ctx: &mut Context, l: Option<&Lifetime>, i: c_int) -> rusqlite::Result<()> {
    let Some(l) = l else {
        return ctx.set_result(Value::Null);
    };
    let i = usize::try_from(i).unwrap_or(usize::MAX);
    if i >= LIFETIME_COLUMNS.len() {
        return ctx.set_result(Value::Null);
    }
    let mut text = String::new();
    match lifetime_cell(l, i, &mut text) {
        Cell::Null => ctx.set_result(Value::Null),
        Cell::Int(v) => ctx.set_result(v),
        Cell::Text(..) => ctx.set_result(text),
        Cell::Time(us) => ctx.set_result(format_rfc3339(us)),
    }
}

/// A lifetime is (creator, state id, start); a fixed hash of it, so that SQLite's own
/// de-duplication by rowid, if a plan uses it, tells lifetimes apart.
fn rowid_of(l: Option<&Lifetime>) -> i64 {
    let Some(l) = l else { return 0 };
    let h = ahash::RandomState::with_seeds(0x7066, 0x7374, 0x6c6f, 0x6773).hash_one((
        l.creator_id,
        l.state_id,
        l.start,
    ));
    h as i64
}

impl LifetimesCursor {
    /// The current row of a counted scan, built: a full walk of the same range, brought
    /// to the same row (counted and walked rows come in the same order). Only a statement
    /// that reads the rowid and no column gets here.
    fn built_row(&self) -> rusqlite::Result<std::cell::Ref<'_, Option<Built>>> {
        let at = self.counted.as_ref().map_or(0, |c| c.at);
        {
            let mut built = self
                .built
                .try_borrow_mut()
                .map_err(|_| rusqlite::Error::ModuleError("lifetimes: cursor in use".into()))?;
            let b = built.get_or_insert_with(|| Built {
                walk: Some(start_walk(&self.shared, self.range.0, self.range.1, false)),
                rows: Vec::new().into_iter(),
                row: None,
                at: 0,
            });
            while b.at < at {
                b.row = next_lifetime(&mut b.walk, &mut b.rows)?;
                if b.row.is_none() {
                    break;
                }
                b.at += 1;
            }
        }
        self.built
            .try_borrow()
            .map_err(|_| rusqlite::Error::ModuleError("lifetimes: cursor in use".into()))
    }
}

/// Refuse, at prepare time, whatever would write outside the connection's own `temp`
/// schema: the lifetimes and the copied tables stay as read, ATTACH (a file to write) and
/// every pragma that could change a setting are refused. `refused` gets what was refused,
/// for the one-line error.
pub fn read_only_guard(
    conn: &mut Connection,
    refused: Arc<Mutex<Option<String>>>,
) -> rusqlite::Result<()> {
    use rusqlite::hooks::{AuthAction as A, Authorization};
    const PRAGMAS: &[&str] = &[
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "database_list",
        "function_list",
        "module_list",
        "pragma_list",
        "collation_list",
        "compile_options",
    ];
    conn.authorizer(Some(move |ctx: rusqlite::hooks::AuthContext<'_>| {
        let temp = ctx.database_name == Some("temp");
        let what: Option<String> = match ctx.action {
            A::Select | A::Read { .. } | A::Function { .. } | A::Recursive => None,
            A::Transaction { .. } | A::Savepoint { .. } => None,
            A::CreateTempTable { .. }
            | A::CreateTempIndex { .. }
            | A::CreateTempView { .. }
            | A::CreateTempTrigger { .. }
            | A::DropTempTable { .. }
            | A::DropTempIndex { .. }
            | A::DropTempView { .. }
            | A::DropTempTrigger { .. } => None,
            A::Insert { table_name } | A::Delete { table_name } if !temp => {
                Some(if table_name.starts_with("sqlite_") {
                    "a change to the schema".to_string()
                } else {
                    format!("a write to {table_name}")
                })
            }
            A::Update { table_name, .. } if !temp => Some(format!("a write to {table_name}")),
            A::Insert { .. } | A::Delete { .. } | A::Update { .. } => None,
            A::CreateVtable { module_name, .. } | A::DropVtable { module_name, .. }
                if temp && module_name == "csv" =>
            {
                None
            }
            A::Pragma {
                pragma_name,
                pragma_value: None,
            } if PRAGMAS.contains(&pragma_name.to_ascii_lowercase().as_str()) => None,
            A::Pragma { pragma_name, .. } => Some(format!("PRAGMA {pragma_name}")),
            A::Attach { .. } => Some("ATTACH".into()),
            A::Detach { .. } => Some("DETACH".into()),
            A::CreateTable { table_name } => Some(format!("CREATE TABLE {table_name}")),
            A::CreateVtable { table_name, .. } => {
                Some(format!("CREATE VIRTUAL TABLE {table_name}"))
            }
            other => Some(format!("{other:?}")),
        };
        match what {
            None => Authorization::Allow,
            Some(w) => {
                if let Ok(mut r) = refused.lock() {
                    r.get_or_insert(w);
                }
                Authorization::Deny
            }
        }
    }))
}
