//! Read side: who, history, coverage, stats, prune.

use super::archive::{self, Names};
use super::codec::{Stored, REASONS};
use super::{addr_blob, blob_addr, sq, Result};
use crate::model::Lifetime;
use crate::model::Micros;
use crate::store::{Coverage, Stats, WhoFilter};
use rusqlite::types::ValueRef;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use std::net::IpAddr;

impl From<&Stored> for Lifetime {
    fn from(s: &Stored) -> Lifetime {
        Lifetime {
            private_ip: s.s_addr[1],
            private_port: s.s_port[1],
            public_ip: s.w_addr[1],
            public_port: s.w_port[1],
            remote_ip: s.w_addr[0],
            remote_port: s.w_port[0],
            proto: s.proto,
            af: s.af,
            direction: s.direction,
            ifname: s.ifname.to_string(),
            nat: s.nat,
            start: s.start,
            end: Some(s.end),
            end_reason: REASONS.get(usize::from(s.reason)).map(|r| r.to_string()),
            last_seen: s.last,
            state_id: s.state_id,
            creator_id: s.creator_id,
            packets: s.packets,
            bytes: s.bytes,
        }
    }
}

/// The columns [`lifetime`] reads, in its order.
pub(crate) const COLS: &str =
    "s_addr1, s_port1, w_addr1, w_port1, w_addr0, w_port0, proto, af, direction,
    ifname, nat, start_us, end_us, end_reason, last_us, state_id, creator_id,
    packets0, packets1, bytes0, bytes1";
/// How many columns [`COLS`] names.
pub(crate) const COLS_N: usize = 21;

pub(crate) fn lifetime(r: &Row) -> rusqlite::Result<Option<Lifetime>> {
    // Borrowed, not copied: this runs once per lifetime of every walk.
    let addr = |i: usize| -> rusqlite::Result<Option<IpAddr>> {
        match r.get_ref(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(blob_addr(b)),
            v => Err(rusqlite::Error::InvalidColumnType(
                i,
                r.as_ref().column_name(i)?.to_string(),
                v.data_type(),
            )),
        }
    };
    let int = |i: usize| -> rusqlite::Result<i64> { Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0)) };
    // A row whose addresses do not decode is damage: skip it rather than print garbage.
    let (Some(p), Some(w), Some(rm)) = (addr(0)?, addr(2)?, addr(4)?) else {
        return Ok(None);
    };
    Ok(Some(Lifetime {
        private_ip: p,
        private_port: int(1)? as u16,
        public_ip: w,
        public_port: int(3)? as u16,
        remote_ip: rm,
        remote_port: int(5)? as u16,
        proto: int(6)? as u8,
        af: int(7)? as u8,
        direction: int(8)? as u8,
        ifname: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        nat: int(10)? != 0,
        start: int(11)?,
        end: r.get(12)?,
        end_reason: r.get(13)?,
        last_seen: int(14)?,
        state_id: int(15)? as u64,
        creator_id: int(16)? as u32,
        packets: [int(17)? as u64, int(18)? as u64],
        bytes: [int(19)? as u64, int(20)? as u64],
    }))
}

/// A read transaction unless one is open, so that every statement of one answer sees the
/// same commit: the recorder moves lifetimes between tables (journal, states, batches) as it
/// commits. Dropped (rolled back) when the answer is read.
pub(crate) fn snapshot(conn: &Connection) -> rusqlite::Result<Option<rusqlite::Transaction<'_>>> {
    if conn.is_autocommit() {
        Ok(Some(conn.unchecked_transaction()?))
    } else {
        Ok(None)
    }
}

/// The longest lifetime of each duration class `dur_class` (migrations/0001_schema.sql):
/// 2^(20+2c) µs for classes 0..=12; class 13 (longer) and 14 (open) have no bound.
pub const CLASS_MAX_US: [i64; 15] = {
    let mut m = [UNBOUNDED; 15];
    let mut c = 0;
    while c < 13 {
        m[c] = 1 << (20 + 2 * c);
        c += 1;
    }
    m
};
/// Far enough back for any start, small enough that `t0 - UNBOUNDED` cannot overflow.
const UNBOUNDED: i64 = 1 << 62;

/// The width of a class's time buckets (generated column `start_bucket`) as a shift of the start;
/// `None`: one bucket (0) for the whole class.
pub(crate) fn bucket_shift(class: usize) -> Option<u32> {
    match class {
        0..=5 => Some(32),
        6..=12 => Some(22 + 2 * class as u32),
        _ => None,
    }
}

/// The duration class of a closed lifetime (the SQL of `dur_class`, for archived lifetimes).
pub(crate) fn class_of(dur: Micros) -> i64 {
    (0..13)
        .find(|c| dur <= CLASS_MAX_US[*c])
        .map_or(13, |c| c as i64)
}

/// Archived groups are filed in buckets four times their class's longest duration (4 s for
/// class 0 up to 72 min for class 5; from class 6 as `start_bucket` of states). A bucket then gets a
/// few batches before no later packet can add to it and it is merged; with 72-minute buckets
/// for every short class, each batch rewrote most of the leaves of one large bucket (22 GB
/// of WAL for a 10 M-state import, BENCHMARKS.md).
pub(crate) fn archive_shift(class: usize) -> Option<u32> {
    match class {
        0..=12 => Some(22 + 2 * class as u32),
        _ => None,
    }
}

/// The archived bucket of a start in class `c`.
pub(crate) fn archive_bucket_of(start: Micros, c: i64) -> i64 {
    match usize::try_from(c).ok().and_then(archive_shift) {
        Some(shift) => start >> shift,
        None => 0,
    }
}

/// Where `each_range` finds the buckets that exist: hot rows through either index, or the
/// archived groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranges {
    Who,
    Private,
    Archived,
    ArchiveHosts,
}

impl Ranges {
    fn shift(self, class: usize) -> Option<u32> {
        match self {
            Ranges::Who | Ranges::Private | Ranges::ArchiveHosts => bucket_shift(class),
            Ranges::Archived => archive_shift(class),
        }
    }

    fn from(self) -> &'static str {
        match self {
            Ranges::Who => "states INDEXED BY states_who",
            Ranges::Private => "states INDEXED BY states_private",
            Ranges::Archived => "archive",
            Ranges::ArchiveHosts => "archive_hosts",
        }
    }
}

/// Calls `f(class, bucket, longest duration)` for every range of `index` that may hold
/// lifetimes overlapping [t0, t1]: the ranges `who` and `history` read. Where a class's
/// start range spans more than a few buckets, the buckets are found in the index itself, so
/// an open-ended range costs what the database holds, not what the calendar spans.
pub fn each_range(
    conn: &Connection,
    index: Ranges,
    t0: Micros,
    t1: Micros,
    mut f: impl FnMut(i64, i64, i64) -> rusqlite::Result<()>,
) -> rusqlite::Result<()> {
    let mut next = conn.prepare_cached(&format!(
        "SELECT start_bucket FROM {}
          WHERE dur_class = ?1 AND start_bucket >= ?2 AND start_bucket <= ?3 ORDER BY dur_class, start_bucket LIMIT 1",
        index.from()
    ))?;
    for (c, max) in CLASS_MAX_US.iter().enumerate() {
        let class = c as i64;
        let Some(shift) = index.shift(c) else {
            f(class, 0, *max)?;
            continue;
        };
        let first = t0.saturating_sub(*max) >> shift;
        let last = (t1 >> shift).max(first);
        if last - first < 4 {
            for b in first..=last {
                f(class, b, *max)?;
            }
            continue;
        }
        let mut b = first;
        while b <= last {
            let found: Option<i64> = next
                .query_row(params![class, b, last], |r| r.get(0))
                .optional()?;
            let Some(found) = found else { break };
            f(class, found, *max)?;
            b = found + 1;
        }
    }
    Ok(())
}

/// States whose WIRE key addr[1]:port[1] is ip:port and whose [start, end] overlaps
/// [t0, t1] (README, "What the answers mean"); ordered by distance from `at`.
pub fn who(
    conn: &Connection,
    ip: &IpAddr,
    port: u16,
    t0: Micros,
    t1: Micros,
    at: Micros,
    f: &WhoFilter,
) -> rusqlite::Result<Vec<Lifetime>> {
    let _read = snapshot(conn)?;
    // Damaged groups are left out of the answer and named (archive::damage_seen).
    let _tolerant = archive::tolerate();
    let mut extra = String::new();
    // ?5 = class, ?6 = its longest duration, ?7 = time bucket.
    let mut args: Vec<rusqlite::types::Value> = vec![
        addr_blob(ip).into(),
        (port as i64).into(),
        t0.into(),
        t1.into(),
        0i64.into(),
        0i64.into(),
        0i64.into(),
    ];
    if let Some(p) = f.proto {
        args.push((p as i64).into());
        extra.push_str(&format!(" AND proto = ?{}", args.len()));
    }
    if let Some(r) = f.remote_ip {
        args.push(addr_blob(&r).into());
        extra.push_str(&format!(" AND w_addr0 = ?{}", args.len()));
    }
    if let Some(p) = f.remote_port {
        args.push((p as i64).into());
        extra.push_str(&format!(" AND w_port0 = ?{}", args.len()));
    }
    // One bounded index range per duration class and time bucket: a pair reused 100,000
    // times costs about the states alive near t0, not its whole history.
    let sql = format!(
        "SELECT {COLS} FROM states INDEXED BY states_who
           WHERE dur_class = ?5 AND start_bucket = ?7 AND w_addr1 = ?1 AND w_port1 = ?2
             AND start_us >= ?3 - ?6 AND start_us <= ?4
             AND (end_us IS NULL OR end_us >= ?3){extra}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut out = Vec::new();
    each_range(conn, Ranges::Who, t0, t1, |c, b, max| {
        args[4] = c.into();
        args[5] = max.into();
        args[6] = b.into();
        let mut rows = stmt.query(params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            if let Some(l) = lifetime(r)? {
                out.push(l);
            }
        }
        Ok(())
    })?;
    // Archived lifetimes: one group per class and bucket, filtered as the SQL above filters.
    let names = Names::load(conn)?;
    each_range(conn, Ranges::Archived, t0, t1, |c, b, max| {
        for s in archive::group(conn, &names, c, b, ip, port)? {
            if s.start >= t0.saturating_sub(max)
                && s.start <= t1
                && s.end >= t0
                && f.proto.is_none_or(|p| p == s.proto)
                && f.remote_ip.is_none_or(|r| r == s.w_addr[0])
                && f.remote_port.is_none_or(|p| p == s.w_port[0])
            {
                out.push(Lifetime::from(&s));
            }
        }
        Ok(())
    })?;
    // The recorder's journal lifetimes (journal).
    out.extend(
        super::journal::Journal::open(conn)?
            .who(conn, ip, port, t0, t1)?
            .into_iter()
            .filter(|l| {
                f.proto.is_none_or(|p| p == l.proto)
                    && f.remote_ip.is_none_or(|r| r == l.remote_ip)
                    && f.remote_port.is_none_or(|p| p == l.remote_port)
            }),
    );
    out.sort_by_key(|l| (l.distance(at), l.start, l.state_id));
    Ok(out)
}

/// States whose private (STACK key index 1) address lies in [lo, hi] (same family), and
/// whose lifetime overlaps [from, to].
pub fn history(
    conn: &Connection,
    lo: &IpAddr,
    hi: &IpAddr,
    from: Micros,
    to: Micros,
    port: Option<u16>,
) -> rusqlite::Result<Vec<Lifetime>> {
    use rusqlite::types::Value;
    let _read = snapshot(conn)?;
    // Damaged groups are left out of the answer and named (archive::damage_seen).
    let _tolerant = archive::tolerate();
    let port_test = if port.is_some() {
        " AND s_port1 = ?8"
    } else {
        ""
    };
    // ?1 lowest address, ?2 from, ?3 to, ?4 class, ?5 its longest duration, ?6 time bucket,
    // ?7 highest address, ?8 port if asked.
    let mut args: Vec<Value> = vec![
        addr_blob(lo).into(),
        from.into(),
        to.into(),
        0i64.into(),
        0i64.into(),
        0i64.into(),
        addr_blob(hi).into(),
    ];
    if let Some(p) = port {
        args.push(i64::from(p).into());
    }
    let mut out: Vec<(i64, Lifetime)> = Vec::new();
    let mut push = |rows: &mut rusqlite::Rows| -> rusqlite::Result<()> {
        while let Some(r) = rows.next()? {
            if let Some(l) = lifetime(r)? {
                out.push((r.get(COLS_N)?, l));
            }
        }
        Ok(())
    };
    // One host is an equality, a prefix a range of addresses (both ends the same length,
    // so one family); either way, per duration class and time bucket as `who` reads.
    let addr_test = if lo == hi {
        "s_addr1 = ?1 AND ?7 = ?1" // (?7 is the same address; named so it binds)
    } else {
        "s_addr1 >= ?1 AND s_addr1 <= ?7 AND length(s_addr1) = length(?1)"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLS}, id FROM states INDEXED BY states_private
           WHERE dur_class = ?4 AND start_bucket = ?6 AND {addr_test}
             AND start_us >= ?2 - ?5 AND start_us <= ?3
             AND (end_us IS NULL OR end_us >= ?2){port_test}"
    ))?;
    each_range(conn, Ranges::Private, from, to, |c, b, max| {
        args[3] = c.into();
        args[4] = max.into();
        args[5] = b.into();
        push(&mut stmt.query(params_from_iter(args.iter()))?)
    })?;
    // Archived lifetimes: the host's public pairs per class and bucket, then those groups.
    let names = Names::load(conn)?;
    let (lo_b, hi_b) = (addr_blob(lo), addr_blob(hi));
    let mut archived_out = Vec::new();
    each_range(conn, Ranges::ArchiveHosts, from, to, |c, b, max| {
        let mut pairs = archive::private_pairs(conn, c, b, &lo_b, &hi_b)?;
        pairs.sort();
        pairs.dedup();
        for bucket in pairs.chunk_by(|x, y| x.0 == y.0) {
            let spots: Vec<_> = bucket.iter().map(|p| p.1).collect();
            for s in archive::at_spots(conn, &names, c, bucket[0].0, &spots)? {
                let host = addr_blob(&s.s_addr[1]);
                if host.len() == lo_b.len()
                    && host >= lo_b
                    && host <= hi_b
                    && s.start >= from.saturating_sub(max)
                    && s.start <= to
                    && s.end >= from
                    && port.is_none_or(|p| p == s.s_port[1])
                {
                    archived_out.push(Lifetime::from(&s));
                }
            }
        }
        Ok(())
    })?;
    // The recorder's journal open lifetimes (journal), newest of all.
    archived_out
        .extend(super::journal::Journal::open(conn)?.history(conn, lo, hi, from, to, port)?);
    // Rows in the order they were written, archived ones after the stored rows of the same start.
    let mut all: Vec<(Micros, i64, u64, Lifetime)> = out
        .into_iter()
        .map(|(id, l)| (l.start, id, 0, l))
        .chain(
            archived_out
                .into_iter()
                .map(|l| (l.start, i64::MAX, l.state_id, l)),
        )
        .collect();
    all.sort_by_key(|a| (a.0, a.1, a.2));
    Ok(all.into_iter().map(|(_, _, _, l)| l).collect())
}

/// A run's state as readers should take it: `running` only while its writer is alive (the
/// newest run, and the pid in the lock file exists); a run left `running` by a writer that
/// died (SIGKILL, OOM, power loss) is `abnormal`, as the next writer marks it.
fn status_now(status: String, newest: bool, alive: &mut Option<bool>, db: Option<&str>) -> String {
    if status != "running" {
        return status;
    }
    let live = newest && *alive.get_or_insert_with(|| db.is_some_and(super::writer_alive));
    if live {
        status
    } else {
        "abnormal".into()
    }
}

pub fn coverage(conn: &Connection, t0: Micros, t1: Micros) -> Result<Coverage> {
    use crate::store::coverage::{assemble, DiedRun, RunRow};
    let path = "database";
    let db = conn.path().filter(|p| !p.is_empty()).map(str::to_string);
    let newest: Option<i64> = conn
        .query_row("SELECT max(id) FROM runs", [], |r| r.get(0))
        .map_err(sq(path))?;
    let mut alive = None;
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, kind, source, first_us, last_us, status FROM runs
             WHERE first_us IS NOT NULL AND last_us IS NOT NULL AND first_us <= ?2 AND last_us >= ?1
             ORDER BY first_us",
        )
        .map_err(sq(path))?;
    let rows = stmt
        .query_map(params![t0, t1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Micros>(3)?,
                r.get::<_, Micros>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(sq(path))?;
    let mut runs = Vec::new();
    for r in rows {
        let (id, kind, source, first, last, status) = r.map_err(sq(path))?;
        let status = status_now(status, Some(id) == newest, &mut alive, db.as_deref());
        runs.push(RunRow {
            kind,
            source,
            first,
            last,
            status,
        });
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT start_us, end_us, kind, count, coalesce(detail, '') FROM gaps
             WHERE start_us <= ?2 AND end_us >= ?1 ORDER BY start_us LIMIT 100",
        )
        .map_err(sq(path))?;
    let rows = stmt
        .query_map(params![t0, t1], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(sq(path))?;
    let mut gaps = Vec::new();
    for g in rows {
        gaps.push(g.map_err(sq(path))?);
    }
    // A recorder that died: from its last commit to the next run's start, nothing watched.
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.id, r.source, r.last_us, r.status,
                    (SELECT min(n.first_us) FROM runs n WHERE n.id > r.id AND n.first_us IS NOT NULL)
             FROM runs r
             WHERE r.kind = 'record' AND r.status IN ('running', 'abnormal')
               AND r.last_us IS NOT NULL AND r.last_us <= ?2",
        )
        .map_err(sq(path))?;
    let rows = stmt
        .query_map(params![t0, t1], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Micros>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<Micros>>(4)?,
            ))
        })
        .map_err(sq(path))?;
    let mut died = Vec::new();
    for d in rows {
        let (id, source, last, status, next) = d.map_err(sq(path))?;
        if status_now(status, Some(id) == newest, &mut alive, db.as_deref()) == "abnormal" {
            died.push(DiedRun { source, last, next });
        }
    }
    Ok(assemble(t0, t1, runs, gaps, died))
}

pub fn stats(conn: &Connection, path: &str) -> rusqlite::Result<Stats> {
    use crate::time::format_rfc3339;
    let mut s = Stats {
        path: path.into(),
        ..Default::default()
    };
    for suffix in ["", "-wal"] {
        s.size_bytes += std::fs::metadata(format!("{path}{suffix}"))
            .map(|m| m.len())
            .unwrap_or(0);
    }
    s.states = conn.query_row(
        "SELECT count(*) FROM states WHERE start_us IS NOT NULL",
        [],
        |r| r.get(0),
    )?;
    s.open = conn.query_row(
        "SELECT count(*) FROM states WHERE dur_class = 14",
        [],
        |r| r.get(0),
    )?;
    s.evidence_only = conn.query_row(
        "SELECT count(*) FROM states WHERE start_us IS NULL",
        [],
        |r| r.get(0),
    )?;
    let (archived_n, archived_first, archived_last): (i64, Option<i64>, Option<i64>) = conn
        .query_row(
        "SELECT coalesce(sum(n), 0), min(first_us), max(last_us) FROM archive_buckets WHERE n > 0",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    s.states += archived_n;
    s.archived = archived_n;
    s.ended_unarchived = conn.query_row(
        "SELECT count(*) FROM states WHERE dur_class < 14",
        [],
        |r| r.get(0),
    )?;
    // A running (or crashed) recorder's journal lifetimes (journal), open or ended.
    let journal = super::journal::Journal::open(conn)?.summary(conn)?;
    s.states += journal.n;
    s.open += journal.open;
    s.ended_unarchived += journal.n - journal.open;
    s.replaced = conn.query_row("SELECT count(*) FROM replacements", [], |r| r.get(0))?;
    let first: Option<i64> =
        conn.query_row("SELECT min(start_us) FROM states", [], |r| r.get(0))?;
    let last: Option<i64> = conn.query_row("SELECT max(last_us) FROM states", [], |r| r.get(0))?;
    let first = first
        .into_iter()
        .chain(archived_first)
        .chain(journal.first)
        .min();
    let last = last
        .into_iter()
        .chain(archived_last)
        .chain(journal.last)
        .max();
    s.first_start = first.map(format_rfc3339);
    s.last_seen = last.map(format_rfc3339);
    let mut st = conn.prepare(
        "SELECT c.creator_id, c.flavor, c.version, c.record_version, c.first_us, c.last_us,
                (SELECT count(*) FROM states s WHERE s.creator_id = c.creator_id AND s.start_us IS NOT NULL)
                + coalesce((SELECT n FROM archive_creators z WHERE z.creator_id = c.creator_id), 0)
         FROM creators c ORDER BY c.creator_id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(serde_json::json!({
            "creator_id": format!("{:08x}", r.get::<_, i64>(0)? as u32),
            "flavor": r.get::<_, String>(1)?,
            "header_version": r.get::<_, i64>(2)?,
            "record_version": r.get::<_, Option<i64>>(3)?,
            "first_seen": format_rfc3339(r.get(4)?),
            "last_seen": format_rfc3339(r.get(5)?),
            "states": r.get::<_, i64>(6)?,
        }))
    })?;
    for r in rows {
        s.creators.push(r?);
    }
    let newest: Option<i64> = conn.query_row("SELECT max(id) FROM runs", [], |r| r.get(0))?;
    let mut alive = None;
    let mut st = conn.prepare(
        "SELECT kind, source, first_us, last_us, packets, messages, drops, decode_errors, skipped, status, id
         FROM runs ORDER BY id DESC LIMIT 20",
    )?;
    let rows = st.query_map([], |r| {
        let status = status_now(
            r.get(9)?,
            Some(r.get::<_, i64>(10)?) == newest,
            &mut alive,
            Some(path),
        );
        Ok(serde_json::json!({
            "kind": r.get::<_, String>(0)?,
            "source": r.get::<_, String>(1)?,
            "from": r.get::<_, Option<i64>>(2)?.map(format_rfc3339),
            "to": r.get::<_, Option<i64>>(3)?.map(format_rfc3339),
            "packets": r.get::<_, i64>(4)?,
            "messages": r.get::<_, i64>(5)?,
            "drops": r.get::<_, i64>(6)?,
            "decode_errors": r.get::<_, i64>(7)?,
            "skipped": r.get::<_, i64>(8)?,
            "status": status,
        }))
    })?;
    for r in rows {
        s.runs.push(r?);
    }
    s.gaps = conn.query_row("SELECT count(*) FROM gaps", [], |r| r.get(0))?;
    s.time_jumps = conn.query_row(
        "SELECT count(*) FROM gaps WHERE kind = 'time-jump'",
        [],
        |r| r.get(0),
    )?;
    s.decode_errors = conn.query_row(
        "SELECT coalesce(sum(decode_errors), 0) FROM runs",
        [],
        |r| r.get(0),
    )?;
    s.pcap_drops = conn.query_row("SELECT coalesce(sum(drops), 0) FROM runs", [], |r| r.get(0))?;
    Ok(s)
}

/// Delete lifetimes that ended before `before`, in short transactions so a running recorder
/// never waits long, then hand freed pages back.
///
/// A file that ships keeps what some destination it ships to has not been sent yet
/// (migrations/0002_ship.sql): (deleted, kept because unshipped).
pub fn prune(conn: &Connection, before: Micros) -> rusqlite::Result<(u64, u64)> {
    // Archived groups first: one that does not read back stops the prune (it would be
    // deleted with its bucket, unread) before anything else is deleted.
    let tx = conn.unchecked_transaction()?;
    let unshipped = super::shipped::unshipped(&tx)?;
    let (mut total, mut kept) = archive::prune_keeping(
        &tx,
        &Names::load(&tx)?,
        before,
        unshipped.as_ref().map(|u| (&u.archived, u.oldest.batch)),
    )?;
    tx.commit()?;
    let chg = unshipped.as_ref().map_or(i64::MAX, |u| u.oldest.states_chg);
    kept += conn.query_row(
        "SELECT count(*) FROM states WHERE end_us < ?1 AND chg > ?2",
        params![before, chg],
        |r| r.get::<_, i64>(0),
    )? as u64;
    loop {
        let n = conn.execute(
            "DELETE FROM states WHERE id IN (SELECT id FROM states WHERE end_us < ?1 AND chg <= ?2 LIMIT 5000)",
            params![before, chg],
        )?;
        total += n as u64;
        if n == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // The closed days it took lifetimes from get a new version (reason `prune`) at the
    // next close: retention is a change the roots record, not one they hide.
    conn.execute(
        "INSERT OR IGNORE INTO digest_dirty (creator_id, day, reason)
         SELECT DISTINCT creator_id, day, 'prune' FROM digests WHERE day <= ?1",
        [crate::model::digest::day_of(before)],
    )?;
    conn.execute("DELETE FROM gaps WHERE end_us < ?1", [before])?;
    conn.execute("DELETE FROM replacements WHERE ts_us < ?1", [before])?;
    conn.execute("DELETE FROM bus WHERE ts_us < ?1", [before])?;
    conn.execute("DELETE FROM runs WHERE last_us < ?1 AND status != 'running' AND id NOT IN (SELECT run_id FROM gaps)", [before])?;
    conn.execute_batch("PRAGMA incremental_vacuum;")?;
    Ok((total, kept))
}
