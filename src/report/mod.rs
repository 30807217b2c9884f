//! Output: decode lines, syslog lines, and the tables / JSON / CSV of the query commands.

pub(crate) mod decode;
pub mod line;
pub(crate) mod manifest;
pub(crate) mod proof;
pub mod rows;
pub mod table;

use std::net::IpAddr;

/// Protocol names as `who --format json` promises them (README) (`tcp`, `udp`, `icmp`, `ipv6-icmp`, else the number).
pub fn proto_name(p: u8) -> String {
    proto_known(p).map_or_else(|| p.to_string(), str::to_string)
}

/// The name of a protocol [`proto_name`] names, `None` for one it shows as a number.
pub fn proto_known(p: u8) -> Option<&'static str> {
    Some(match p {
        1 => "icmp",
        6 => "tcp",
        17 => "udp",
        58 => "ipv6-icmp",
        132 => "sctp",
        47 => "gre",
        50 => "esp",
        _ => return None,
    })
}

pub(crate) fn parse_proto(s: &str) -> Option<u8> {
    match s.to_ascii_lowercase().as_str() {
        "icmp" => Some(1),
        "tcp" => Some(6),
        "udp" => Some(17),
        "ipv6-icmp" | "icmp6" | "icmpv6" => Some(58),
        "sctp" => Some(132),
        "gre" => Some(47),
        "esp" => Some(50),
        n => n.parse().ok(),
    }
}

/// pfctl style: `a.b.c.d:port` for IPv4, `addr[port]` for IPv6.
pub(crate) fn endpoint(a: &IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(_) => format!("{a}:{port}"),
        IpAddr::V6(_) => format!("{a}[{port}]"),
    }
}

pub fn hex_id(id: u64) -> String {
    format!("{id:016x}")
}

pub fn hex_creator(c: u32) -> String {
    format!("{c:08x}")
}

pub(crate) fn stats_text(s: &crate::store::Stats) -> String {
    let mut t = format!(
        "database      {} ({:.1} MiB)\nstates        {} ({} open, {} archived, {} ended not archived yet), {} evidence-only rows\nreplaced      {} (ended by another state under the same id)\ntime span     {} .. {}\n",
        s.path,
        s.size_bytes as f64 / 1048576.0,
        s.states,
        s.open,
        s.archived,
        s.ended_unarchived,
        s.evidence_only,
        s.replaced,
        s.first_start.as_deref().unwrap_or("-"),
        s.last_seen.as_deref().unwrap_or("-"),
    );
    for c in &s.creators {
        t.push_str(&format!(
            "creator       {} {} v{} {} states, seen {} .. {}\n",
            c["creator_id"].as_str().unwrap_or("?"),
            c["flavor"].as_str().unwrap_or("?"),
            c["record_version"]
                .as_i64()
                .or(c["header_version"].as_i64())
                .unwrap_or(0),
            c["states"],
            c["first_seen"].as_str().unwrap_or("-"),
            c["last_seen"].as_str().unwrap_or("-"),
        ));
    }
    for r in &s.runs {
        t.push_str(&format!(
            "run           {} {} {} .. {} {} packets, {} drops, {} decode errors ({})\n",
            r["kind"].as_str().unwrap_or("?"),
            r["source"].as_str().unwrap_or("?"),
            r["from"].as_str().unwrap_or("-"),
            r["to"].as_str().unwrap_or("-"),
            r["packets"],
            r["drops"],
            r["decode_errors"],
            match r["status"].as_str().unwrap_or("?") {
                "abnormal" => "ended abnormally",
                st => st,
            },
        ));
    }
    t.push_str(&format!(
        "gaps          {} recorded; decode errors {}; pcap drops {}; time jumps {}",
        s.gaps, s.decode_errors, s.pcap_drops, s.time_jumps
    ));
    t
}
