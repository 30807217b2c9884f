//! Output: decode lines, syslog lines, and the tables / JSON / CSV of the query commands.

pub mod decode;
pub mod line;
pub mod manifest;
pub mod rows;
pub mod table;

use std::net::IpAddr;

/// Protocol names as `who --format json` promises them (README) (`tcp`, `udp`, `icmp`, `ipv6-icmp`, else the number).
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        132 => "sctp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        other => other.to_string(),
    }
}

pub fn parse_proto(s: &str) -> Option<u8> {
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
pub fn endpoint(a: &IpAddr, port: u16) -> String {
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
