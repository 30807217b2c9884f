//! `pfstatelog status`: is a recorder writing this database, and is it well? For operators,
//! cron jobs, Nagios-style checks and Prometheus (node_exporter's textfile collector).
//! Exit 0 healthy, 1 degraded, 2 error.

use crate::cli::{StatusArgs, StatusFormat};
use crate::store::{self, Health};
use crate::time::{format_duration, format_rfc3339};
use std::io::Write;

/// The health facts and, when degraded, why.
struct Verdict {
    problems: Vec<String>,
    running: bool,
    /// Microseconds since the newest pfsync packet (or since the run started, if none yet).
    silent_us: Option<i64>,
}

fn judge(h: &Health, now: i64, silent_after: i64) -> Verdict {
    let mut problems = Vec::new();
    let run = h.run.as_ref();
    let recording = run.is_some_and(|r| r.status == "running");
    let running = h.writer_pid.is_some() && recording;
    match (h.writer_pid, recording) {
        (Some(_), true) => {}
        (Some(pid), false) => problems.push(format!(
            "no recorder running (pid {pid} writes the database: an import)"
        )),
        (None, _) => problems.push("no recorder running".into()),
    }
    let silent_us = run.filter(|_| running).map(|r| {
        now - h
            .last_packet_us
            .map_or(r.started_wall, |t| t.max(r.started_wall))
    });
    if let Some(s) = silent_us.filter(|s| *s > silent_after) {
        problems.push(format!(
            "no pfsync packet for {} (--silent-after {})",
            format_duration(s),
            format_duration(silent_after)
        ));
    }
    if h.drops_hour > 0 {
        problems.push(format!(
            "libpcap dropped {} packets in the last hour",
            h.drops_hour
        ));
    }
    if h.gaps_hour > 0 {
        problems.push(format!("{} gaps in coverage in the last hour", h.gaps_hour));
    }
    Verdict {
        problems,
        running,
        silent_us,
    }
}

pub(crate) fn run(a: StatusArgs) -> anyhow::Result<u8> {
    let db = a.db.path();
    let now = super::wall_us();
    let h = store::open_read(&db)?.health(now)?;
    let v = judge(&h, now, a.silent_after);
    let mut out = super::out::stdout();
    match a.format {
        StatusFormat::Text => text(&mut out, &h, &v)?,
        StatusFormat::Json => json(&mut out, &db, &h, &v)?,
        StatusFormat::Prometheus => prometheus(&mut out, &db, &h, &v)?,
    }
    out.flush()?;
    Ok(if v.problems.is_empty() { 0 } else { 1 })
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}"))
}

fn bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn text(out: &mut impl Write, h: &Health, v: &Verdict) -> std::io::Result<()> {
    match (&h.run, v.running) {
        (Some(r), true) => writeln!(
            out,
            "recorder:        running on {}, pid {}, since {}, pfstatelog {}",
            r.source,
            h.writer_pid.unwrap_or(0),
            format_rfc3339(r.started_wall),
            r.version.as_deref().unwrap_or("?")
        )?,
        (Some(r), false) => writeln!(
            out,
            "recorder:        not running (last run on {} from {}: {})",
            r.source,
            format_rfc3339(r.started_wall),
            match (r.status.as_str(), r.stopped_wall) {
                // Its lock is free, yet it never said it stopped: killed, or the host died.
                ("running", _) => "ended without stopping".to_string(),
                (st, Some(t)) => format!("{st} at {}", format_rfc3339(t)),
                (st, None) => st.to_string(),
            }
        )?,
        (None, _) => writeln!(out, "recorder:        never ran on this database")?,
    }
    match (h.last_packet_us, v.silent_us) {
        (Some(t), Some(s)) => writeln!(
            out,
            "last pfsync:     {} ago ({})",
            format_duration(s.max(0)),
            format_rfc3339(t)
        )?,
        (Some(t), None) => writeln!(out, "last pfsync:     {}", format_rfc3339(t))?,
        (None, Some(s)) => writeln!(
            out,
            "last pfsync:     none since the recorder started {} ago",
            format_duration(s.max(0))
        )?,
        (None, None) => writeln!(out, "last pfsync:     -")?,
    }
    writeln!(
        out,
        "new states/s:    {} (last minute), {} (last hour)",
        rate(h.states_per_s_minute),
        rate(h.states_per_s_hour)
    )?;
    writeln!(
        out,
        "open states:     {}",
        h.open_states.map_or_else(|| "-".into(), |n| n.to_string())
    )?;
    writeln!(
        out,
        "last hour:       {} libpcap drops, {} decode errors, {} gaps",
        h.drops_hour, h.decode_errors_hour, h.gaps_hour
    )?;
    writeln!(out, "last day:        {} gaps", h.gaps_day)?;
    writeln!(
        out,
        "database:        {}{}",
        bytes(h.db_bytes as f64),
        h.growth_per_day
            .map(|g| format!(", growing {}/day", bytes(g)))
            .unwrap_or_default()
    )?;
    if v.problems.is_empty() {
        writeln!(out, "health:          ok")
    } else {
        writeln!(out, "health:          degraded: {}", v.problems.join("; "))
    }
}

fn json(out: &mut impl Write, db: &str, h: &Health, v: &Verdict) -> std::io::Result<()> {
    let doc = serde_json::json!({
        "database": db,
        "healthy": v.problems.is_empty(),
        "problems": v.problems,
        "recorder_running": v.running,
        "writer_pid": h.writer_pid,
        "run": h.run.as_ref().map(|r| serde_json::json!({
            "source": r.source,
            "pid": r.pid,
            "version": r.version,
            "since": format_rfc3339(r.started_wall),
            "stopped": r.stopped_wall.map(format_rfc3339),
            "status": r.status,
        })),
        "last_packet": h.last_packet_us.map(format_rfc3339),
        "silent_seconds": v.silent_us.map(|s| s as f64 / 1e6),
        "states_per_second_minute": h.states_per_s_minute,
        "states_per_second_hour": h.states_per_s_hour,
        "open_states": h.open_states,
        "drops_last_hour": h.drops_hour,
        "decode_errors_last_hour": h.decode_errors_hour,
        "gaps_last_hour": h.gaps_hour,
        "gaps_last_day": h.gaps_day,
        "database_bytes": h.db_bytes,
        "database_growth_bytes_per_day": h.growth_per_day,
    });
    writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)
}

/// Label values escape `\`, `"` and newlines (the exposition format's rule).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn prometheus(out: &mut impl Write, db: &str, h: &Health, v: &Verdict) -> std::io::Result<()> {
    let l = format!("db=\"{}\"", label(db));
    let mut gauge = |name: &str, help: &str, samples: &[(&str, Option<f64>)]| {
        writeln!(out, "# HELP pfstatelog_{name} {help}")?;
        writeln!(out, "# TYPE pfstatelog_{name} gauge")?;
        for (extra, value) in samples {
            // An unknown value is left out rather than reported as 0.
            if let Some(x) = value {
                writeln!(out, "pfstatelog_{name}{{{l}{extra}}} {x}")?;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let b = |x: bool| Some(if x { 1.0 } else { 0.0 });
    gauge(
        "healthy",
        "1 when status finds nothing wrong.",
        &[("", b(v.problems.is_empty()))],
    )?;
    gauge(
        "recorder_running",
        "1 when a recorder holds the database.",
        &[("", b(v.running))],
    )?;
    gauge(
        "silent_seconds",
        "Seconds since the newest pfsync packet (or the recorder's start).",
        &[("", v.silent_us.map(|s| s as f64 / 1e6))],
    )?;
    gauge(
        "new_states_per_second",
        "Lifetimes begun per second.",
        &[
            (",window=\"1m\"", h.states_per_s_minute),
            (",window=\"1h\"", h.states_per_s_hour),
        ],
    )?;
    gauge(
        "open_states",
        "Lifetimes open now.",
        &[("", h.open_states.map(|n| n as f64))],
    )?;
    gauge(
        "pcap_drops",
        "Packets libpcap dropped in the window.",
        &[(",window=\"1h\"", Some(h.drops_hour as f64))],
    )?;
    gauge(
        "decode_errors",
        "Damaged pfsync frames, sections or messages in the window.",
        &[(",window=\"1h\"", Some(h.decode_errors_hour as f64))],
    )?;
    gauge(
        "gaps",
        "Gaps in coverage ending in the window.",
        &[
            (",window=\"1h\"", Some(h.gaps_hour as f64)),
            (",window=\"1d\"", Some(h.gaps_day as f64)),
        ],
    )?;
    gauge(
        "database_bytes",
        "Database and WAL size.",
        &[("", Some(h.db_bytes as f64))],
    )?;
    gauge(
        "database_growth_bytes_per_day",
        "Growth of the database per day, over the last day.",
        &[("", h.growth_per_day)],
    )
}
