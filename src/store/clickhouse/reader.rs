//! The read side on ClickHouse: the same answers as from a local file, read with the
//! newest copy of each lifetime (and run, gap, creator) kept at query time.

use super::rowbinary::{addr16, Decoder};
use super::schema::{self, IDENTITY, LIFETIME_COLS, SCHEMA_VERSION};
use super::{fixed16, quote, Client, Target};
use crate::model::{Lifetime, Micros};
use crate::store::coverage::{assemble, DiedRun, GapRow, RunRow};
use crate::store::{
    Answer, CheckReport, Coverage, Health, Pruned, ReadStore, Retention, Stats, Walked, WhoFilter,
};
use anyhow::{bail, Context};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::IpAddr;

/// The longest lifetime of duration class c, as the local store classes them:
/// 2^(20+2c) µs for classes 0..=12; 13 (longer) and 14 (open) have no bound.
pub const CLASS_MAX_US: [i64; 13] = {
    let mut m = [0i64; 13];
    let mut c = 0;
    while c < 13 {
        m[c] = 1 << (20 + 2 * c);
        c += 1;
    }
    m
};
/// The class of an open lifetime.
pub const OPEN_CLASS: u8 = 14;

/// The duration class of a lifetime (open: [`OPEN_CLASS`]).
pub fn class_of(start: Micros, end: Option<Micros>) -> u8 {
    match end {
        None => OPEN_CLASS,
        Some(e) => {
            let dur = e.saturating_sub(start);
            (0..13).find(|c| dur <= CLASS_MAX_US[*c]).unwrap_or(13) as u8
        }
    }
}

/// Times written into SQL stay where a literal cannot overflow.
fn lit(t: Micros) -> Micros {
    t.clamp(-(1 << 62), 1 << 62)
}

/// The start ranges that may hold lifetimes overlapping [t0, t1]: per class c, a start in
/// [t0 - max(c), t1]; the unbounded classes, any start up to t1. Each is one range of the
/// sort key once the pair is fixed.
fn class_ranges(t0: Micros, t1: Micros) -> String {
    let mut parts: Vec<String> = CLASS_MAX_US
        .iter()
        .enumerate()
        .map(|(c, max)| {
            format!(
                "(dur_class = {c} AND start_us >= {} AND start_us <= {})",
                lit(t0.saturating_sub(*max)),
                lit(t1)
            )
        })
        .collect();
    parts.push(format!("(dur_class >= 13 AND start_us <= {})", lit(t1)));
    parts.join(" OR ")
}

/// One lifetime in [`LIFETIME_COLS`] order.
fn read_lifetime<R: Read>(d: &mut Decoder<R>) -> std::io::Result<Lifetime> {
    let public_ip = d.addr()?;
    let public_port = d.u16()?;
    let _class = d.u8()?;
    let start = d.i64()?;
    let creator_id = d.u32()?;
    let state_id = d.u64()?;
    let end = d.opt_i64()?;
    let end_reason = d.opt_str()?;
    let last_seen = d.i64()?;
    let private_ip = d.addr()?;
    let private_port = d.u16()?;
    let remote_ip = d.addr()?;
    let remote_port = d.u16()?;
    let proto = d.u8()?;
    let af = d.u8()?;
    let direction = d.u8()?;
    let ifname = d.str()?;
    let nat = d.u8()? != 0;
    let packets = [d.u64()?, d.u64()?];
    let bytes = [d.u64()?, d.u64()?];
    Ok(Lifetime {
        private_ip,
        private_port,
        public_ip,
        public_port,
        remote_ip,
        remote_port,
        proto,
        af,
        direction,
        ifname,
        nat,
        start,
        end,
        end_reason,
        last_seen,
        state_id,
        creator_id,
        packets,
        bytes,
    })
}

/// Every row of a stream, each read by `f` and handed to `out`.
fn each_row<R: Read, T>(
    r: R,
    mut f: impl FnMut(&mut Decoder<R>) -> std::io::Result<T>,
    mut out: impl FnMut(T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut d = Decoder::new(r);
    while !d.at_end()? {
        out(f(&mut d)?)?;
    }
    Ok(())
}

/// Every row of a whole answer.
fn rows<'b, T>(
    body: &'b [u8],
    f: impl FnMut(&mut Decoder<&'b [u8]>) -> std::io::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut v = Vec::new();
    each_row(body, f, |t| {
        v.push(t);
        Ok(())
    })?;
    Ok(v)
}

/// A ClickHouse database opened to read.
pub struct ClickhouseReader {
    c: Client,
    shown: String,
}

/// Connect, and check the database holds pfstatelog tables this build can read.
pub fn connect(url: &str, password: Option<String>) -> anyhow::Result<Client> {
    let target = Target::parse(url)?;
    Client::new(target, password)
}

impl ClickhouseReader {
    pub fn open(url: &str) -> anyhow::Result<ClickhouseReader> {
        let c = connect(url, super::password(None)?)?;
        let shown = c.target.shown();
        match schema::read_version(&c)? {
            None => bail!("{shown}: the database holds no pfstatelog tables (pfstatelog ship creates them)"),
            Some(v) if v > SCHEMA_VERSION => bail!(
                "{shown}: the tables are at schema {v}, newer than this pfstatelog knows ({SCHEMA_VERSION}): upgrade pfstatelog"
            ),
            Some(_) => {}
        }
        Ok(ClickhouseReader {
            c,
            shown: url.to_string(),
        })
    }

    /// Lifetimes a SELECT of [`LIFETIME_COLS`] returns.
    fn lifetimes(&self, sql: &str) -> anyhow::Result<Vec<Lifetime>> {
        let body = self.c.select_all(sql)?;
        rows(&body, read_lifetime).with_context(|| format!("reading the answer of {}", self.shown))
    }

    /// The newest copy of each lifetime among the rows `cond` selects, then those
    /// overlapping from `t0` on.
    fn newest_where(&self, cond: &str, t0: Micros) -> anyhow::Result<Vec<Lifetime>> {
        self.lifetimes(&format!(
            "SELECT {LIFETIME_COLS} FROM (
               SELECT {LIFETIME_COLS}, version FROM lifetimes WHERE {cond}
               ORDER BY version DESC LIMIT 1 BY {IDENTITY})
             WHERE isNull(end_us) OR end_us >= {}",
            lit(t0)
        ))
    }

    /// Drop open lifetimes whose end the server also holds: an ended copy is in a closed
    /// class, which a bounded read of the range may not have met (it ended before the
    /// range). `scope` narrows the search (the public pair).
    fn drop_ended(&self, rows: &mut Vec<Lifetime>, scope: &str) -> anyhow::Result<()> {
        let open: Vec<(u32, u64, i64)> = rows
            .iter()
            .filter(|l| l.end.is_none())
            .map(|l| (l.creator_id, l.state_id, l.start))
            .collect();
        let mut ended = HashSet::new();
        for chunk in open.chunks(1000) {
            let mut starts: Vec<i64> = chunk.iter().map(|k| k.2).collect();
            starts.sort_unstable();
            starts.dedup();
            let list: Vec<String> = starts.iter().map(i64::to_string).collect();
            let body = self.c.select_all(&format!(
                "SELECT DISTINCT {IDENTITY} FROM lifetimes
                  WHERE {scope} AND dur_class < {OPEN_CLASS} AND start_us IN ({})",
                list.join(", ")
            ))?;
            for k in rows_of_identity(&body)? {
                ended.insert(k);
            }
        }
        if !ended.is_empty() {
            rows.retain(|l| {
                l.end.is_some() || !ended.contains(&(l.creator_id, l.state_id, l.start))
            });
        }
        Ok(())
    }

    /// Every run, newest copy, with its status as readers take it: a `running` run that is
    /// not its recorder's newest was left so by a recorder that died.
    fn runs(&self) -> anyhow::Result<Vec<ShippedRun>> {
        let body = self.c.select_all(
            "SELECT recorder, id, kind, source, first_us, last_us, started_wall, stopped_wall,
                    packets, messages, drops, decode_errors, skipped, status
               FROM runs ORDER BY version DESC LIMIT 1 BY recorder, id",
        )?;
        let mut runs = rows(&body, |d| {
            Ok(ShippedRun {
                recorder: d.str()?,
                id: d.i64()?,
                kind: d.str()?,
                source: d.str()?,
                first: d.opt_i64()?,
                last: d.opt_i64()?,
                started_wall: d.i64()?,
                stopped_wall: d.opt_i64()?,
                counts: [d.i64()?, d.i64()?, d.i64()?, d.i64()?, d.i64()?],
                status: d.str()?,
            })
        })?;
        let mut newest: HashMap<String, i64> = HashMap::new();
        for r in &runs {
            let n = newest.entry(r.recorder.clone()).or_insert(r.id);
            *n = (*n).max(r.id);
        }
        for r in &mut runs {
            if r.status == "running" && newest.get(&r.recorder) != Some(&r.id) {
                r.status = "abnormal".into();
            }
        }
        Ok(runs)
    }
}

/// A run as shipped: which recorder, its id there, and what it watched.
#[derive(Debug, Clone)]
struct ShippedRun {
    recorder: String,
    id: i64,
    kind: String,
    source: String,
    first: Option<Micros>,
    last: Option<Micros>,
    started_wall: i64,
    stopped_wall: Option<i64>,
    /// packets, messages, drops, decode_errors, skipped.
    counts: [i64; 5],
    status: String,
}

fn rows_of_identity(body: &[u8]) -> anyhow::Result<Vec<(u32, u64, i64)>> {
    rows(body, |d| Ok((d.u32()?, d.u64()?, d.i64()?)))
}

impl ReadStore for ClickhouseReader {
    fn day_roots(&self) -> anyhow::Result<Vec<crate::model::digest::DayRoot>> {
        anyhow::bail!(
            "{}: verify against ClickHouse is not yet supported; verify the recorder's file",
            self.location()
        )
    }

    /// A central store gathers many recorders' files: it has no one identity of its own.
    fn identity(&self) -> anyhow::Result<Option<String>> {
        Ok(None)
    }

    fn export_sqlite(
        &self,
        _from: Micros,
        _to: Micros,
        _out: &std::path::Path,
        _info: &[(&str, String)],
    ) -> anyhow::Result<Walked> {
        anyhow::bail!(
            "{}: export --format sqlite reads a local file; export --format csv or json from ClickHouse",
            self.location()
        )
    }

    fn location(&self) -> &str {
        &self.shown
    }

    fn schema_version(&self) -> anyhow::Result<i64> {
        Ok(schema::read_version(&self.c)?.unwrap_or(SCHEMA_VERSION))
    }

    fn who(
        &self,
        ip: &IpAddr,
        port: u16,
        (t0, t1): (Micros, Micros),
        at: Micros,
        f: &WhoFilter,
    ) -> anyhow::Result<Answer> {
        let pair = format!(
            "public_ip = {} AND public_port = {port}",
            fixed16(&addr16(ip))
        );
        let mut extra = String::new();
        if let Some(p) = f.proto {
            extra.push_str(&format!(" AND proto = {p}"));
        }
        if let Some(r) = f.remote_ip {
            extra.push_str(&format!(" AND remote_ip = {}", fixed16(&addr16(&r))));
        }
        if let Some(p) = f.remote_port {
            extra.push_str(&format!(" AND remote_port = {p}"));
        }
        let mut out =
            self.newest_where(&format!("{pair} AND ({}){extra}", class_ranges(t0, t1)), t0)?;
        self.drop_ended(&mut out, &pair)?;
        out.sort_by_key(|l| (l.distance(at), l.start, l.state_id));
        Ok(Answer {
            rows: out,
            damage: Vec::new(),
        })
    }

    fn history(
        &self,
        (lo, hi): (&IpAddr, &IpAddr),
        (from, to): (Micros, Micros),
        port: Option<u16>,
    ) -> anyhow::Result<Answer> {
        let port_test = port.map_or(String::new(), |p| format!(" AND private_port = {p}"));
        // Both ends are of one family (a host or a prefix); IPv4 is stored mapped, so an
        // IPv4 range stays inside ::ffff:0:0/96.
        let mut out = self.newest_where(
            &format!(
                "private_ip >= {} AND private_ip <= {} AND ({}){port_test}",
                fixed16(&addr16(lo)),
                fixed16(&addr16(hi)),
                class_ranges(from, to)
            ),
            from,
        )?;
        self.drop_ended(&mut out, "1")?;
        out.sort_by_key(|l| (l.start, l.creator_id, l.state_id));
        Ok(Answer {
            rows: out,
            damage: Vec::new(),
        })
    }

    fn coverage(&self, t0: Micros, t1: Micros) -> anyhow::Result<Coverage> {
        let all = self.runs()?;
        let mut runs: Vec<RunRow> = all
            .iter()
            .filter_map(|r| match (r.first, r.last) {
                (Some(a), Some(b)) if a <= t1 && b >= t0 => Some(RunRow {
                    kind: r.kind.clone(),
                    source: r.source.clone(),
                    first: a,
                    last: b,
                    status: r.status.clone(),
                }),
                _ => None,
            })
            .collect();
        runs.sort_by_key(|r| r.first);
        // A recorder that died: from its last commit to its next run's first packet.
        let died = all
            .iter()
            .filter(|r| r.kind == "record" && r.status == "abnormal")
            .filter_map(|r| {
                let last = r.last.filter(|l| *l <= t1)?;
                let next = all
                    .iter()
                    .filter(|n| n.recorder == r.recorder && n.id > r.id)
                    .filter_map(|n| n.first)
                    .min();
                Some(DiedRun {
                    source: r.source.clone(),
                    last,
                    next,
                })
            })
            .collect();
        let body = self.c.select_all(&format!(
            "SELECT start_us, end_us, kind, count, detail FROM (
               SELECT start_us, end_us, kind, count, detail, version FROM gaps
                WHERE start_us <= {}
                ORDER BY version DESC LIMIT 1 BY recorder, run_id, start_us, kind)
              WHERE end_us >= {} ORDER BY start_us LIMIT 100",
            lit(t1),
            lit(t0)
        ))?;
        let gaps: Vec<GapRow> = rows(&body, |d| {
            Ok((d.i64()?, d.i64()?, d.str()?, d.i64()?, d.str()?))
        })?;
        Ok(assemble(t0, t1, runs, gaps, died))
    }

    fn each_lifetime(
        &self,
        from: Micros,
        to: Micros,
        f: &mut dyn FnMut(&Lifetime) -> anyhow::Result<()>,
    ) -> anyhow::Result<Walked> {
        // Every copy of a lifetime has its start, so the newest copy is among these rows;
        // the server sorts on disk past 1 GB rather than failing on a long range.
        let stream = self.c.select(
            &format!(
                "SELECT {LIFETIME_COLS} FROM (
                   SELECT {LIFETIME_COLS}, version FROM lifetimes WHERE start_us <= {}
                   ORDER BY version DESC LIMIT 1 BY {IDENTITY})
                 WHERE isNull(end_us) OR end_us >= {}",
                lit(to),
                lit(from)
            ),
            &[("max_bytes_before_external_sort", "1000000000")],
        )?;
        let mut w = Walked::default();
        each_row(std::io::BufReader::new(stream), read_lifetime, |l| {
            f(&l)?;
            w.rows += 1;
            Ok(())
        })
        .with_context(|| format!("reading lifetimes from {}", self.shown))?;
        Ok(w)
    }

    fn stats(&self) -> anyhow::Result<Stats> {
        use crate::time::format_rfc3339;
        let mut s = Stats {
            path: self.shown.clone(),
            ..Default::default()
        };
        // Bytes on the server's disks (a server without this column: 0, not an error).
        if let Ok(body) = self.c.select_all(&format!(
            "SELECT toUInt64(sum(bytes_on_disk)) FROM system.parts WHERE database = {} AND active",
            quote(&self.c.target.database)
        )) {
            s.size_bytes = rows(&body, |d| d.u64())
                .ok()
                .and_then(|v| v.first().copied())
                .unwrap_or(0);
        }
        let newest = format!(
            "SELECT creator_id, state_id, start_us, end_us, last_us FROM lifetimes
              ORDER BY version DESC LIMIT 1 BY {IDENTITY}"
        );
        let body = self.c.select_all(&format!(
            "SELECT toInt64(count()), toInt64(countIf(isNull(end_us))),
                    toInt64(min(start_us)), toInt64(max(last_us)) FROM ({newest})"
        ))?;
        if let Some((n, open, first, last)) =
            rows(&body, |d| Ok((d.i64()?, d.i64()?, d.i64()?, d.i64()?)))?.first()
        {
            s.states = *n;
            s.open = *open;
            s.ended_unarchived = n - open;
            if *n > 0 {
                s.first_start = Some(format_rfc3339(*first));
                s.last_seen = Some(format_rfc3339(*last));
            }
        }
        let body = self.c.select_all(&format!(
            "SELECT creator_id, toInt64(count()) FROM ({newest}) GROUP BY creator_id"
        ))?;
        let per_creator: HashMap<u32, i64> = rows(&body, |d| Ok((d.u32()?, d.i64()?)))?
            .into_iter()
            .collect();
        let body = self.c.select_all(
            "SELECT creator_id, flavor, header_version, record_version, first_us, last_us
               FROM creators ORDER BY version DESC LIMIT 1 BY recorder, creator_id",
        )?;
        // One creator seen by several recorders: its widest span.
        let mut creators: std::collections::BTreeMap<u32, (String, i64, Option<i64>, i64, i64)> =
            Default::default();
        for (id, flavor, hv, rv, a, b) in rows(&body, |d| {
            Ok((
                d.u32()?,
                d.str()?,
                d.i64()?,
                d.opt_i64()?,
                d.i64()?,
                d.i64()?,
            ))
        })? {
            let e = creators.entry(id).or_insert((flavor, hv, rv, a, b));
            e.3 = e.3.min(a);
            e.4 = e.4.max(b);
        }
        for (id, (flavor, hv, rv, a, b)) in creators {
            s.creators.push(serde_json::json!({
                "creator_id": format!("{id:08x}"),
                "flavor": flavor,
                "header_version": hv,
                "record_version": rv,
                "first_seen": format_rfc3339(a),
                "last_seen": format_rfc3339(b),
                "states": per_creator.get(&id).copied().unwrap_or(0),
            }));
        }
        let mut runs = self.runs()?;
        for r in &runs {
            s.decode_errors += r.counts[3];
            s.pcap_drops += r.counts[2];
        }
        runs.sort_by_key(|r| std::cmp::Reverse((r.started_wall, r.id)));
        for r in runs.iter().take(20) {
            s.runs.push(serde_json::json!({
                "kind": r.kind,
                "source": r.source,
                "recorder": r.recorder,
                "from": r.first.map(format_rfc3339),
                "to": r.last.map(format_rfc3339),
                "packets": r.counts[0],
                "messages": r.counts[1],
                "drops": r.counts[2],
                "decode_errors": r.counts[3],
                "skipped": r.counts[4],
                "status": r.status,
                "stopped": r.stopped_wall.map(format_rfc3339),
            }));
        }
        let body = self.c.select_all(
            "SELECT toInt64(count()), toInt64(countIf(kind = 'time-jump')) FROM (
               SELECT kind FROM gaps ORDER BY version DESC LIMIT 1 BY recorder, run_id, start_us, kind)",
        )?;
        if let Some((g, tj)) = rows(&body, |d| Ok((d.i64()?, d.i64()?)))?.first() {
            s.gaps = *g;
            s.time_jumps = *tj;
        }
        Ok(s)
    }

    fn health(&self, _now_us: Micros) -> anyhow::Result<Health> {
        bail!(
            "{}: status reads a recorder's own database file; ask it on the log host",
            self.shown
        )
    }

    fn check(&self) -> anyhow::Result<CheckReport> {
        bail!(
            "{}: check reads a local database file; ClickHouse checks its own parts (CHECK TABLE)",
            self.shown
        )
    }
}

/// Retention on the server: whole months of lifetimes (partitions by start) are dropped
/// once every lifetime in them ended before the cut.
pub struct ClickhousePruner {
    c: Client,
}

impl ClickhousePruner {
    pub fn open(url: &str) -> anyhow::Result<ClickhousePruner> {
        let r = ClickhouseReader::open(url)?;
        Ok(ClickhousePruner { c: r.c })
    }
}

impl Retention for ClickhousePruner {
    fn prune(&self, before: Micros) -> anyhow::Result<Pruned> {
        let mut total = 0u64;
        for table in ["lifetimes", "gaps"] {
            let end = if table == "lifetimes" {
                // An open lifetime keeps its month.
                format!("max(ifNull(end_us, toInt64({})))", lit(i64::MAX))
            } else {
                "max(end_us)".to_string()
            };
            let body = self.c.select_all(&format!(
                "SELECT toString(toYYYYMM(toDateTime(intDiv(start_us, 1000000)))) AS p,
                        toUInt64(count()), toInt64({end}) AS e
                   FROM {table} GROUP BY p HAVING e < {} ORDER BY p",
                lit(before)
            ))?;
            for (p, n, _) in rows(&body, |d| Ok((d.str()?, d.u64()?, d.i64()?)))? {
                if !p.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                self.c
                    .exec(&format!("ALTER TABLE {table} DROP PARTITION {p}"))?;
                if table == "lifetimes" {
                    total += n;
                }
            }
        }
        Ok(Pruned {
            lifetimes: total,
            kept_unshipped: 0,
        })
    }
}
