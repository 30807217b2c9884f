//! `who`, `history`, `stats`, `prune`: the read side (prune is the one that deletes).

use crate::cli::{HistoryArgs, OutFormat, PruneArgs, StatsArgs, TzArg, WhoArgs};
use crate::model::Lifetime;
use crate::model::Micros;
use crate::report::parse_proto;
use crate::report::table::{
    coverage_json, coverage_warnings, csv_record, lifetime_json, table, CSV_FIELDS,
};
use crate::store::{self, Coverage, DamagedGroup, WhoFilter};
use crate::time::{format_duration, format_in, format_rfc3339, parse_duration, parse_time, Zone};
use anyhow::{anyhow, bail, Context};
use serde_json::json;
use std::io::{BufRead, Write};
use std::net::IpAddr;

pub(crate) fn parse_ip(s: &str) -> anyhow::Result<IpAddr> {
    s.trim().parse().map_err(|_| {
        anyhow!("invalid IP address \"{s}\": expected IPv4 (203.0.113.5) or IPv6 (2001:db8::1)")
    })
}

pub(crate) fn parse_port(s: &str) -> anyhow::Result<u16> {
    s.trim().parse().map_err(|_| {
        if s.trim().parse::<i128>().is_ok() {
            anyhow!("invalid port \"{s}\": out of range 0-65535")
        } else {
            anyhow!("invalid port \"{s}\": expected a number from 0 to 65535")
        }
    })
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`.
pub(crate) fn parse_remote(s: &str) -> anyhow::Result<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok((sa.ip(), Some(sa.port())));
    }
    bail!("invalid remote \"{s}\": expected IP, IP:PORT or [IPv6]:PORT")
}

/// `IP` or `IP/LEN` -> the first and last address of the prefix.
pub(crate) fn parse_cidr(s: &str) -> anyhow::Result<(IpAddr, IpAddr)> {
    let bad = || {
        anyhow!("invalid host \"{s}\": expected an address or a prefix like 192.168.1.0/24 or 2001:db8::/64")
    };
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().map_err(|_| bad())?)),
        None => (s, None),
    };
    let ip: IpAddr = a.trim().parse().map_err(|_| bad())?;
    let (bits, n) = match ip {
        IpAddr::V4(v) => (32, u128::from(u32::from(v))),
        IpAddr::V6(v) => (128, u128::from(v)),
    };
    let len = len.unwrap_or(bits);
    if len > bits {
        return Err(bad());
    }
    // The host part: the low bits - len bits (none for a whole address).
    let host = u128::MAX.checked_shr(128 - (bits - len)).unwrap_or(0);
    let addr = |x: u128| match ip {
        IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::from(x as u32)),
        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::from(x)),
    };
    Ok((addr(n & !host), addr(n | host)))
}

/// Input zone (naive times) and output zone (UTC unless --tz).
fn zones(tz: &TzArg) -> anyhow::Result<(Zone, Zone)> {
    match &tz.tz {
        Some(z) => {
            let z = Zone::parse(z).map_err(|e| anyhow!("--tz: {e}"))?;
            Ok((z, z))
        }
        None => Ok((Zone::Local, Zone::Utc)),
    }
}

fn print_rows(
    out: &mut super::out::Out,
    rows: &[Lifetime],
    format: OutFormat,
    zone: &Zone,
    at: Option<Micros>,
    (cov, damage): (&Coverage, &[DamagedGroup]),
    q: serde_json::Value,
) -> anyhow::Result<()> {
    match format {
        OutFormat::Json => {
            let v: Vec<_> = rows.iter().map(lifetime_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::JsonReport => {
            let mut v = json!({
                "query": q,
                "matches": rows.iter().map(lifetime_json).collect::<Vec<_>>(),
                "coverage": coverage_json(cov),
            });
            mark_damage(&mut v, damage);
            writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        }
        OutFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record(CSV_FIELDS)?;
            for l in rows {
                w.write_record(csv_record(l))?;
            }
            w.flush()?;
        }
        OutFormat::Table => {
            if rows.is_empty() && !damage.is_empty() {
                writeln!(
                    out,
                    "no intact state matched (the range holds damaged data)"
                )?;
            } else if rows.is_empty() {
                writeln!(out, "no state matched")?;
            } else {
                writeln!(out, "{}", table(rows, zone, at))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn warn_coverage(cov: &Coverage) {
    for w in coverage_warnings(cov) {
        eprintln!("pfstatelog: {w}");
    }
}

/// Say on stderr each damaged group a query met.
fn warn_damage(db: &str, line: Option<u64>, damage: &[DamagedGroup]) {
    let at = line.map_or(String::new(), |l| format!("--batch line {l}: "));
    for d in damage {
        eprintln!("pfstatelog: warning: {at}{db}: damaged data in the range, left out of this answer: {d}");
    }
}

fn damage_json(d: &DamagedGroup) -> serde_json::Value {
    json!({
        "group": d.what,
        "from": d.from.map(format_rfc3339),
        "to": d.to.map(format_rfc3339),
        "why": d.why,
    })
}

/// Damaged data in the range: the answer is not complete, whatever the runs.
fn mark_damage(v: &mut serde_json::Value, damage: &[DamagedGroup]) {
    if !damage.is_empty() {
        v["coverage"]["complete"] = json!(false);
        v["damage"] = damage.iter().map(damage_json).collect();
    }
}

/// A batch answer's coverage cells, saying so when the range holds damaged data.
fn batch_coverage_cells(cov: &Coverage, damage: &[DamagedGroup]) -> [String; 2] {
    let [state, detail] = coverage_cells(cov);
    if damage.is_empty() {
        return [state, detail];
    }
    let said = format!("{} damaged group(s) left out", damage.len());
    let detail = if detail.is_empty() {
        said
    } else {
        format!("{detail}; {said}")
    };
    ["incomplete".into(), detail]
}

/// The exit code of one answer: found, nothing, or nothing intact with damage in the range.
fn answer_code(found: bool, damaged: bool) -> u8 {
    match (found, damaged) {
        (true, _) => super::FOUND,
        (false, true) => super::DAMAGED,
        (false, false) => super::NOTHING,
    }
}

pub(crate) fn who(a: WhoArgs) -> anyhow::Result<u8> {
    let (zin, zout) = zones(&a.tz)?;
    if let Some(batch) = &a.batch {
        return who_batch(&a, batch, &zin, &zout);
    }
    let (Some(ip), Some(port), Some(at)) = (&a.ip, &a.port, &a.at) else {
        bail!("--ip, --port and --at are required (or --batch FILE)");
    };
    let ip = parse_ip(ip)?;
    let port = parse_port(port)?;
    let at = parse_time(at, &zin).map_err(|e| anyhow!("--at: {e}"))?;
    let window = parse_duration(&a.window).map_err(|e| anyhow!("--window: {e}"))?;
    let filter = who_filter(a.proto.as_deref(), a.remote.as_deref())?;
    let db = a.db.path();
    let st = store::open_read(&db)?;
    let (t0, t1) = (at.saturating_sub(window), at.saturating_add(window));
    let store::Answer { rows, damage } = st.who(&ip, port, (t0, t1), at, &filter)?;
    warn_damage(&db, None, &damage);
    let cov = st.coverage(t0, t1)?;
    warn_coverage(&cov);
    let q = json!({"ip": ip.to_string(), "port": port, "at": format_rfc3339(at), "window_s": window / 1_000_000});
    print_rows(
        &mut super::out::stdout(),
        &rows,
        a.format,
        &zout,
        Some(at),
        (&cov, &damage),
        q,
    )?;
    Ok(answer_code(!rows.is_empty(), !damage.is_empty()))
}

fn who_filter(proto: Option<&str>, remote: Option<&str>) -> anyhow::Result<WhoFilter> {
    let mut f = WhoFilter::default();
    if let Some(p) = proto {
        f.proto = Some(parse_proto(p).ok_or_else(|| {
            anyhow!(
                "invalid protocol \"{p}\": expected tcp, udp, icmp, ipv6-icmp or a number 0-255"
            )
        })?);
    }
    if let Some(r) = remote {
        let (ip, port) = parse_remote(r)?;
        f.remote_ip = Some(ip);
        f.remote_port = port;
    }
    Ok(f)
}

/// The coverage columns appended to each batch CSV row (after the input, the match count
/// and the lifetime fields, so scripts that read the older columns by position still work).
const BATCH_COVERAGE_FIELDS: &[&str] = &["coverage", "coverage_detail"];

/// `complete` or `incomplete`, and the warnings that say why, for one CSV cell each.
fn coverage_cells(cov: &Coverage) -> [String; 2] {
    let detail: Vec<String> = coverage_warnings(cov)
        .into_iter()
        .map(|w| w.strip_prefix("warning: ").map(str::to_string).unwrap_or(w))
        .collect();
    [
        if cov.is_clean() {
            "complete"
        } else {
            "incomplete"
        }
        .to_string(),
        detail.join("; "),
    ]
}

/// One CSV record, quoted as the csv crate quotes.
fn csv_line<S: AsRef<[u8]>>(fields: &[S]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner()
        .map_err(|e| anyhow!("formatting a CSV line: {}", e.error()))
}

/// `--batch FILE`: CSV lines `ip,port,time[,window[,remote]]`, a header line allowed. Each
/// answer carries the same coverage facts as a single `who`: a warning on stderr, and in
/// the output (CSV columns, a JSON object, a line under the table).
fn who_batch(a: &WhoArgs, path: &str, zin: &Zone, zout: &Zone) -> anyhow::Result<u8> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("--batch {path}"))?,
        ))
    };
    let db = a.db.path();
    let st = store::open_read(&db)?;
    let mut csv_in = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(reader);
    let mut out = super::out::stdout();
    if a.format == OutFormat::Csv {
        let mut h = vec![
            "query_ip",
            "query_port",
            "query_time",
            "query_window",
            "query_remote",
            "matches",
        ];
        h.extend_from_slice(CSV_FIELDS);
        h.extend_from_slice(BATCH_COVERAGE_FIELDS);
        out.write_all(&csv_line(&h)?)?;
    }
    let (mut any, mut bad, mut unknown) = (false, 0u64, false);
    for (i, rec) in csv_in.records().enumerate() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(i as u64 + 1, |p| p.line());
                eprintln!("pfstatelog: --batch line {line}: {e}");
                bad += 1;
                continue;
            }
        };
        // The file's own line number, comments and blank lines counted.
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        let f = |k: usize| rec.get(k).unwrap_or("").to_string();
        if i == 0 && f(0).parse::<IpAddr>().is_err() && f(0).eq_ignore_ascii_case("ip") {
            continue; // header
        }
        let parsed = (|| -> anyhow::Result<_> {
            let ip = parse_ip(&f(0))?;
            let port = parse_port(&f(1))?;
            let at = parse_time(&f(2), zin)?;
            let win = if f(3).is_empty() {
                0
            } else {
                parse_duration(&f(3))?
            };
            let filt = who_filter(None, Some(f(4)).filter(|s| !s.is_empty()).as_deref())?;
            Ok((ip, port, at, win, filt))
        })();
        let (ip, port, at, win, filt) = match parsed {
            Ok(p) => p,
            Err(e) => {
                eprintln!("pfstatelog: --batch line {line}: {e:#}");
                bad += 1;
                continue;
            }
        };
        // The same range and the same coverage check as a single `who`.
        let (t0, t1) = (at.saturating_sub(win), at.saturating_add(win));
        let store::Answer { rows, damage } = st.who(&ip, port, (t0, t1), at, &filt)?;
        warn_damage(&db, Some(line), &damage);
        let cov = st.coverage(t0, t1)?;
        for warning in coverage_warnings(&cov) {
            eprintln!("pfstatelog: --batch line {line}: {warning}");
        }
        any |= !rows.is_empty();
        unknown |= rows.is_empty() && !damage.is_empty();
        match a.format {
            OutFormat::Csv => {
                let cells = batch_coverage_cells(&cov, &damage);
                // No match is still a line, its lifetime fields empty.
                let lifetimes = if rows.is_empty() {
                    vec![vec![String::new(); CSV_FIELDS.len()]]
                } else {
                    rows.iter().map(csv_record).collect()
                };
                for l in lifetimes {
                    let mut r = vec![f(0), f(1), f(2), f(3), f(4), rows.len().to_string()];
                    r.extend(l);
                    r.extend(cells.iter().cloned());
                    out.write_all(&csv_line(&r)?)?;
                }
            }
            OutFormat::Json => {
                let mut v = json!({
                    "ip": f(0), "port": f(1), "time": f(2), "window": f(3), "remote": f(4),
                    "matches": rows.iter().map(lifetime_json).collect::<Vec<_>>(),
                    "coverage": coverage_json(&cov),
                });
                mark_damage(&mut v, &damage);
                writeln!(out, "{v}")?;
            }
            OutFormat::JsonReport => {
                // One line per answer, each the object a single `who --format json-report`
                // prints, its query naming the batch line.
                let mut v = json!({
                    "query": {
                        "line": line,
                        "ip": ip.to_string(),
                        "port": port,
                        "at": format_rfc3339(at),
                        "window_s": win / 1_000_000,
                        "remote": Some(f(4)).filter(|s| !s.is_empty()),
                    },
                    "matches": rows.iter().map(lifetime_json).collect::<Vec<_>>(),
                    "coverage": coverage_json(&cov),
                });
                mark_damage(&mut v, &damage);
                writeln!(out, "{v}")?;
            }
            OutFormat::Table => {
                let o = &mut out;
                let mut asked = format!(
                    "line {line}: {} at {}",
                    crate::report::endpoint(&ip, port),
                    format_in(at, zout)
                );
                if win > 0 {
                    asked.push_str(&format!(" ± {}", format_duration(win)));
                }
                if !f(4).is_empty() {
                    asked.push_str(&format!(", remote {}", f(4)));
                }
                match rows.len() {
                    0 => writeln!(o, "{asked}: no state matched")?,
                    1 => writeln!(o, "{asked}: 1 match")?,
                    n => writeln!(o, "{asked}: {n} matches")?,
                }
                if !rows.is_empty() {
                    writeln!(o, "{}", table(&rows, zout, Some(at)))?;
                }
                let [state, detail] = batch_coverage_cells(&cov, &damage);
                if detail.is_empty() {
                    writeln!(o, "coverage: {state}\n")?;
                } else {
                    writeln!(o, "coverage: {state}: {detail}\n")?;
                }
            }
        }
    }
    out.flush()?;
    if bad > 0 {
        bail!("--batch {path}: {bad} line(s) could not be read (see above)");
    }
    // A line with nothing intact but damage in its range is not "nobody": say so.
    Ok(if unknown {
        super::DAMAGED
    } else if any {
        super::FOUND
    } else {
        super::NOTHING
    })
}

pub(crate) fn history(a: HistoryArgs) -> anyhow::Result<u8> {
    let (zin, zout) = zones(&a.tz)?;
    let (lo, hi) = parse_cidr(&a.host)?;
    let time = |t: &Option<String>, flag: &str, none: Micros| match t {
        Some(t) => parse_time(t, &zin).map_err(|e| anyhow!("--{flag}: {e}")),
        None => Ok(none),
    };
    let from = time(&a.from, "from", i64::MIN)?;
    let to = time(&a.to, "to", i64::MAX)?;
    if from > to {
        bail!("--from is after --to");
    }
    let port = a.port.as_deref().map(parse_port).transpose()?;
    let filter = who_filter(a.proto.as_deref(), a.remote.as_deref())?;
    let db = a.db.path();
    let st = store::open_read(&db)?;
    let store::Answer { mut rows, damage } = st.history((&lo, &hi), (from, to), port)?;
    // Filtered on the rows the host query already read: one SQL shape for history.
    rows.retain(|l| {
        filter.proto.is_none_or(|p| l.proto == p)
            && filter.remote_ip.is_none_or(|ip| l.remote_ip == ip)
            && filter.remote_port.is_none_or(|p| l.remote_port == p)
    });
    warn_damage(&db, None, &damage);
    let cov = if from > i64::MIN && to < i64::MAX {
        st.coverage(from, to)?
    } else {
        Coverage::default()
    };
    warn_coverage(&cov);
    let q = json!({"host": a.host, "from": a.from, "to": a.to, "port": port, "proto": a.proto, "remote": a.remote});
    print_rows(
        &mut super::out::stdout(),
        &rows,
        a.format,
        &zout,
        None,
        (&cov, &damage),
        q,
    )?;
    Ok(answer_code(!rows.is_empty(), !damage.is_empty()))
}

pub(crate) fn stats(a: StatsArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let s = store::open_read(&db)?.stats()?;
    let mut out = super::out::stdout();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s)?)?;
    } else {
        writeln!(out, "{}", crate::report::stats_text(&s))?;
    }
    out.flush()?;
    Ok(0)
}

pub(crate) fn prune(a: PruneArgs) -> anyhow::Result<u8> {
    let zin = Zone::Local;
    let before = match (&a.before, &a.older_than) {
        (Some(t), _) => parse_time(t, &zin).map_err(|e| anyhow!("--before: {e}"))?,
        (None, Some(d)) => {
            super::wall_us() - parse_duration(d).map_err(|e| anyhow!("--older-than: {e}"))?
        }
        (None, None) => bail!("--before TIME or --older-than DUR is required"),
    };
    let db = a.db.path();
    let p = store::open_retention(&db)?.prune(before)?;
    eprintln!(
        "pfstatelog: pruned {} lifetimes that ended before {}",
        p.lifetimes,
        format_rfc3339(before)
    );
    if p.kept_unshipped > 0 {
        eprintln!(
            "pfstatelog: kept {} lifetimes that ended before then: not yet shipped to every central database this file ships to (pfstatelog ship)",
            p.kept_unshipped
        );
    }
    Ok(0)
}
