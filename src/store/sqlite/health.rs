//! A live recorder's health, as `pfstatelog status` reports it: the recorder writes its
//! running totals once per wall-clock minute (the `health` table, with every commit), and
//! a status check reads two rows of it instead of counting lifetimes.

use super::writer::RunCounters;
use super::{sq, Result};
use crate::store::{Health, RunFacts};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const MINUTE_US: i64 = 60_000_000;
/// Rows are kept this long: a day's growth and an hour's rates need far less.
const KEEP_MINUTES: i64 = 8 * 24 * 60;

/// Record the run's totals in the current minute's row (inside the flush's transaction).
pub(crate) fn sample(tx: &Connection, run_id: i64, c: &RunCounters) -> rusqlite::Result<()> {
    let wall = crate::time::wall_us();
    let minute = wall.div_euclid(MINUTE_US);
    let db_bytes: i64 = tx.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO health (run_id, minute, wall_us, packets, opened, open_states,
                                        drops, decode_errors, last_packet_us, db_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        run_id,
        minute,
        wall,
        c.packets as i64,
        c.opened as i64,
        c.open_states as i64,
        c.drops as i64,
        c.decode_errors as i64,
        c.last_packet_us,
        db_bytes
    ])?;
    // Once an hour is enough to keep the table small.
    if minute % 60 == 0 {
        tx.prepare_cached("DELETE FROM health WHERE minute < ?1")?
            .execute([minute - KEEP_MINUTES])?;
    }
    Ok(())
}

/// One minute's row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    wall_us: i64,
    opened: i64,
    open_states: i64,
    drops: i64,
    decode_errors: i64,
    last_packet_us: Option<i64>,
    db_bytes: i64,
}

fn sample_row(r: &rusqlite::Row) -> rusqlite::Result<Sample> {
    Ok(Sample {
        wall_us: r.get(0)?,
        opened: r.get(1)?,
        open_states: r.get(2)?,
        drops: r.get(3)?,
        decode_errors: r.get(4)?,
        last_packet_us: r.get(5)?,
        db_bytes: r.get(6)?,
    })
}

const SAMPLE_COLS: &str =
    "wall_us, opened, open_states, drops, decode_errors, last_packet_us, db_bytes";

/// Which row next to a minute.
#[derive(Clone, Copy)]
enum Side {
    /// The newest at or before it (`i64::MAX`: the newest of all).
    AtOrBefore,
    /// The oldest at or after it.
    AtOrAfter,
}

fn row_near(
    conn: &Connection,
    run: i64,
    minute: i64,
    side: Side,
) -> rusqlite::Result<Option<Sample>> {
    let (cmp, order) = match side {
        Side::AtOrBefore => ("<=", "DESC"),
        Side::AtOrAfter => (">=", "ASC"),
    };
    conn.query_row(
        &format!(
            "SELECT {SAMPLE_COLS} FROM health WHERE run_id = ?1 AND minute {cmp} ?2
             ORDER BY minute {order} LIMIT 1"
        ),
        params![run, minute],
        sample_row,
    )
    .optional()
}

/// A rate between two rows; `base` None: counted from the run's start (totals start at 0).
fn rate(now: &Sample, base: Option<&Sample>, started: i64, f: fn(&Sample) -> i64) -> Option<f64> {
    let (t0, v0) = base.map_or((started, 0), |b| (b.wall_us, f(b)));
    let secs = (now.wall_us - t0) as f64 / 1e6;
    (secs > 0.5).then(|| (f(now) - v0).max(0) as f64 / secs)
}

/// What `status` reports on the database at `path`, read through `conn` (read-only).
pub(crate) fn read(conn: &Connection, path: &str, now_us: i64) -> Result<Health> {
    let q = |e| sq(path)(e);
    let run: Option<RunFacts> = conn
        .query_row(
            "SELECT id, source, pid, version, started_wall, stopped_wall, status FROM runs
             WHERE kind = 'record' ORDER BY id DESC LIMIT 1",
            [],
            |r| {
                Ok(RunFacts {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    pid: r.get(2)?,
                    version: r.get(3)?,
                    started_wall: r.get(4)?,
                    stopped_wall: r.get(5)?,
                    status: r.get(6)?,
                })
            },
        )
        .optional()
        .map_err(q)?;
    let gaps_since = |t: i64| {
        conn.query_row("SELECT count(*) FROM gaps WHERE end_us >= ?1", [t], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(q)
    };
    let gaps_hour = gaps_since(now_us - 60 * MINUTE_US)?;
    let gaps_day = gaps_since(now_us - 24 * 60 * MINUTE_US)?;
    let mut h = Health {
        writer_pid: writer_pid(path),
        run: run.clone(),
        states_per_s_minute: None,
        states_per_s_hour: None,
        open_states: None,
        last_packet_us: None,
        drops_hour: 0,
        decode_errors_hour: 0,
        gaps_hour,
        gaps_day,
        db_bytes: file_len(path) + file_len(&format!("{path}-wal")),
        growth_per_day: None,
    };
    let Some(run) = run else {
        return Ok(h);
    };
    let Some(last) = row_near(conn, run.id, i64::MAX, Side::AtOrBefore).map_err(q)? else {
        return Ok(h);
    };
    let minute = last.wall_us.div_euclid(MINUTE_US);
    let minute_ago = row_near(conn, run.id, minute - 1, Side::AtOrBefore).map_err(q)?;
    let hour_ago = row_near(conn, run.id, minute - 60, Side::AtOrBefore).map_err(q)?;
    let opened = |s: &Sample| s.opened;
    h.states_per_s_minute = rate(&last, minute_ago.as_ref(), run.started_wall, opened);
    h.states_per_s_hour = rate(&last, hour_ago.as_ref(), run.started_wall, opened);
    h.open_states = Some(last.open_states);
    h.last_packet_us = last.last_packet_us;
    // Within the last hour of the wall clock, not of the run's last row: a recorder that
    // stopped two hours ago had no drops in the last hour.
    let now_minute = now_us.div_euclid(MINUTE_US);
    if minute > now_minute - 60 {
        let base = row_near(conn, run.id, now_minute - 60, Side::AtOrBefore).map_err(q)?;
        h.drops_hour = last.drops - base.map_or(0, |b| b.drops);
        h.decode_errors_hour = last.decode_errors - base.map_or(0, |b| b.decode_errors);
    }
    if let Some(first) = row_near(conn, run.id, minute - 24 * 60, Side::AtOrAfter).map_err(q)? {
        let days = (last.wall_us - first.wall_us) as f64 / (86_400.0 * 1e6);
        if days * 24.0 >= 1.0 {
            h.growth_per_day = Some((last.db_bytes - first.db_bytes) as f64 / days);
        }
    }
    Ok(h)
}

fn file_len(p: &str) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The pid of the writer (record or import) that holds the database's lock, if one does.
/// Reads the lock file only: takes a shared lock for an instant and never creates it.
pub(crate) fn writer_pid(db: &str) -> Option<u32> {
    use std::os::unix::io::AsRawFd;
    let path = format!("{db}.lock");
    let f = std::fs::File::open(Path::new(&path)).ok()?;
    // SAFETY: flock on a descriptor we own; no memory is shared.
    let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        return None;
    }
    let pid = std::fs::read_to_string(&path).ok()?;
    // A holder that has not written its pid yet is still a holder.
    Some(pid.trim().parse().unwrap_or(0))
}
