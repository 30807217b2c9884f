//! A lifetime as one row of SQL values: the columns of `who --format json` (addresses as
//! text, RFC 5952 for IPv6; times RFC 3339 UTC; `end` NULL while open), the two counter
//! pairs split as the CSV splits them, the integer times `start_us` and `end_us`, and
//! `until_us` (`end_us`, or the largest integer while open: the overlap in one column).
//! `pfstatelog sql` and `export --format sqlite` both show lifetimes this way, so a query
//! written against one runs unchanged against the other.

use super::table::{af_name, dir_name};
use super::{hex_creator, hex_id, proto_name};
use crate::model::Lifetime;
use crate::time::format_rfc3339;
use rusqlite::types::Value;

/// (name, SQL type, what it holds), in column order.
pub const LIFETIME_COLUMNS: &[(&str, &str, &str)] = &[
    (
        "private_ip",
        "TEXT",
        "inside host: stack key addr[1] (README, What the answers mean)",
    ),
    (
        "private_port",
        "INTEGER",
        "inside host's port (ICMP: the echo id)",
    ),
    ("public_ip", "TEXT", "translated address: wire key addr[1]"),
    (
        "public_port",
        "INTEGER",
        "translated port: wire key port[1]",
    ),
    ("remote_ip", "TEXT", "remote peer: wire key addr[0]"),
    ("remote_port", "INTEGER", "remote peer's port"),
    (
        "proto",
        "TEXT",
        "tcp, udp, icmp, ipv6-icmp, sctp, gre, esp, else the number",
    ),
    ("af", "TEXT", "inet or inet6"),
    ("direction", "TEXT", "in or out"),
    ("ifname", "TEXT", "pf interface name (all = floating)"),
    ("nat", "INTEGER", "1 when the state was translated"),
    ("start", "TEXT", "RFC 3339 UTC, microseconds"),
    ("end", "TEXT", "RFC 3339 UTC; NULL while the state is open"),
    ("state_id", "TEXT", "pf state id, 16 hex digits"),
    (
        "creator_id",
        "TEXT",
        "firewall (pfsync creator id), 8 hex digits",
    ),
    (
        "end_reason",
        "TEXT",
        "delete, delete-full, clear, replaced; NULL while open",
    ),
    (
        "last_seen",
        "TEXT",
        "RFC 3339 UTC: last message that named the state",
    ),
    (
        "packets_out",
        "INTEGER",
        "packets, first direction of the state",
    ),
    ("packets_in", "INTEGER", "packets, other direction"),
    ("bytes_out", "INTEGER", "bytes, first direction"),
    ("bytes_in", "INTEGER", "bytes, other direction"),
    (
        "start_us",
        "INTEGER",
        "start, microseconds since 1970-01-01 UTC",
    ),
    (
        "end_us",
        "INTEGER",
        "end, microseconds since 1970-01-01 UTC; NULL while open",
    ),
    (
        "until_us",
        "INTEGER",
        "end_us, or 9223372036854775807 while open: start_us <= T1 AND until_us >= T0 is the overlap who uses",
    ),
];

/// Column numbers the virtual table's planner needs.
pub const COL_PRIVATE_IP: usize = 0;
pub const COL_PUBLIC_IP: usize = 2;
pub const COL_PUBLIC_PORT: usize = 3;
pub const COL_START_US: usize = 21;
pub const COL_END_US: usize = 22;
pub const COL_UNTIL_US: usize = 23;

/// Column `i` of [`LIFETIME_COLUMNS`] for `l` (NULL past the last).
pub fn lifetime_value(l: &Lifetime, i: usize) -> Value {
    let int = |v: u64| Value::Integer(v as i64);
    match i {
        0 => Value::Text(l.private_ip.to_string()),
        1 => Value::Integer(l.private_port.into()),
        2 => Value::Text(l.public_ip.to_string()),
        3 => Value::Integer(l.public_port.into()),
        4 => Value::Text(l.remote_ip.to_string()),
        5 => Value::Integer(l.remote_port.into()),
        6 => Value::Text(proto_name(l.proto)),
        7 => Value::Text(af_name(l.af).into()),
        8 => Value::Text(dir_name(l.direction).into()),
        9 => Value::Text(l.ifname.clone()),
        10 => Value::Integer(l.nat.into()),
        11 => Value::Text(format_rfc3339(l.start)),
        12 => l
            .end
            .map_or(Value::Null, |e| Value::Text(format_rfc3339(e))),
        13 => Value::Text(hex_id(l.state_id)),
        14 => Value::Text(hex_creator(l.creator_id)),
        15 => l.end_reason.clone().map_or(Value::Null, Value::Text),
        16 => Value::Text(format_rfc3339(l.last_seen)),
        17 => int(l.packets[0]),
        18 => int(l.packets[1]),
        19 => int(l.bytes[0]),
        20 => int(l.bytes[1]),
        21 => Value::Integer(l.start),
        22 => l.end.map_or(Value::Null, Value::Integer),
        23 => Value::Integer(l.end.unwrap_or(i64::MAX)),
        _ => Value::Null,
    }
}

/// `CREATE TABLE name (...)` with every column's meaning as a comment, so the file
/// describes itself in any SQLite browser (SQLite keeps the statement as written).
pub fn lifetimes_ddl(create: &str) -> String {
    let mut s = format!("{create} (\n");
    let n = LIFETIME_COLUMNS.len();
    for (i, (name, ty, what)) in LIFETIME_COLUMNS.iter().enumerate() {
        let comma = if i + 1 < n { "," } else { "" };
        s.push_str(&format!("    \"{name}\" {ty}{comma} -- {what}\n"));
    }
    s.push(')');
    s
}
