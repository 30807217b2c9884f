//! Query results for people (comfy-table) and for scripts (JSON, CSV).

use super::{endpoint, hex_creator, hex_id, proto_name};
use crate::model::Lifetime;
use crate::store::Coverage;
use crate::time::{format_duration, format_in, format_rfc3339, Zone};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde_json::{json, Value};

pub const CSV_FIELDS: &[&str] = &[
    "private_ip",
    "private_port",
    "public_ip",
    "public_port",
    "remote_ip",
    "remote_port",
    "proto",
    "af",
    "direction",
    "ifname",
    "nat",
    "start",
    "end",
    "state_id",
    "creator_id",
    "end_reason",
    "last_seen",
    "packets_out",
    "packets_in",
    "bytes_out",
    "bytes_in",
];

pub(crate) fn af_name(af: u8) -> &'static str {
    if af == 24 {
        "inet6"
    } else {
        "inet"
    }
}

pub(crate) fn dir_name(d: u8) -> &'static str {
    match d {
        1 => "in",
        2 => "out",
        _ => "?",
    }
}

/// The JSON object `who --format json` promises (README, "What the answers mean") (IPv6 in RFC 5952 form, which Rust's Display gives).
pub(crate) fn lifetime_json(l: &Lifetime) -> Value {
    json!({
        "private_ip": l.private_ip.to_string(),
        "private_port": l.private_port,
        "public_ip": l.public_ip.to_string(),
        "public_port": l.public_port,
        "remote_ip": l.remote_ip.to_string(),
        "remote_port": l.remote_port,
        "proto": proto_name(l.proto),
        "af": af_name(l.af),
        "direction": dir_name(l.direction),
        "ifname": l.ifname,
        "nat": l.nat,
        "start": format_rfc3339(l.start),
        "end": l.end.map(format_rfc3339),
        "state_id": hex_id(l.state_id),
        "creator_id": hex_creator(l.creator_id),
        "end_reason": l.end_reason,
        "last_seen": format_rfc3339(l.last_seen),
        "packets": [l.packets[0], l.packets[1]],
        "bytes": [l.bytes[0], l.bytes[1]],
    })
}

pub(crate) fn csv_record(l: &Lifetime) -> Vec<String> {
    vec![
        l.private_ip.to_string(),
        l.private_port.to_string(),
        l.public_ip.to_string(),
        l.public_port.to_string(),
        l.remote_ip.to_string(),
        l.remote_port.to_string(),
        proto_name(l.proto),
        af_name(l.af).into(),
        dir_name(l.direction).into(),
        l.ifname.clone(),
        l.nat.to_string(),
        format_rfc3339(l.start),
        l.end.map(format_rfc3339).unwrap_or_default(),
        hex_id(l.state_id),
        hex_creator(l.creator_id),
        l.end_reason.clone().unwrap_or_default(),
        format_rfc3339(l.last_seen),
        l.packets[0].to_string(),
        l.packets[1].to_string(),
        l.bytes[0].to_string(),
        l.bytes[1].to_string(),
    ]
}

/// A table for people; `at` marks rows that match only thanks to the window.
pub(crate) fn table(rows: &[Lifetime], zone: &Zone, at: Option<i64>) -> String {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let mut header = vec![
        "private".to_string(),
        "public".into(),
        "remote".into(),
        "proto".into(),
        format!("start ({})", zone.name()),
        "end".into(),
        "duration".into(),
        "if".into(),
        "creator".into(),
    ];
    if at.is_some() {
        header.push("match".into());
    }
    t.set_header(header);
    for l in rows {
        let mut r = vec![
            endpoint(&l.private_ip, l.private_port),
            endpoint(&l.public_ip, l.public_port),
            endpoint(&l.remote_ip, l.remote_port),
            proto_name(l.proto),
            format_in(l.start, zone),
            l.end
                .map(|e| format_in(e, zone))
                .unwrap_or_else(|| "open".into()),
            l.end
                .map(|e| format_duration(e - l.start))
                .unwrap_or_else(|| "-".into()),
            l.ifname.clone(),
            hex_creator(l.creator_id),
        ];
        if let Some(at) = at {
            let d = l.distance(at);
            r.push(if d == 0 {
                "exact".into()
            } else {
                format!("window ({} away)", format_duration(d))
            });
        }
        t.add_row(r);
    }
    t.to_string()
}

pub(crate) fn coverage_json(c: &Coverage) -> Value {
    json!({
        "complete": c.is_clean(),
        "uncovered": c.uncovered.iter().map(|(a, b)| json!({"from": format_rfc3339(*a), "to": format_rfc3339(*b)})).collect::<Vec<_>>(),
        "gaps": c.gaps.iter().map(|(a, b, k, n, d)| json!({"from": format_rfc3339(*a), "to": format_rfc3339(*b), "kind": k, "count": n, "detail": d})).collect::<Vec<_>>(),
        "runs": c.runs.iter().map(|(k, s, a, b)| json!({"kind": k, "source": s, "from": format_rfc3339(*a), "to": format_rfc3339(*b)})).collect::<Vec<_>>(),
    })
}

/// Warning lines for stderr, empty when the recorder saw the whole range.
pub(crate) fn coverage_warnings(c: &Coverage) -> Vec<String> {
    let mut w = Vec::new();
    for (a, b) in &c.uncovered {
        w.push(format!(
            "warning: no recorder was watching from {} to {}: an empty answer there means nothing",
            format_rfc3339(*a),
            format_rfc3339(*b)
        ));
    }
    for (a, _, kind, n, d) in &c.gaps {
        w.push(format!(
            "warning: the recorder was partly blind at {} ({kind}, {n}): {d}",
            format_rfc3339(*a)
        ));
    }
    w
}
