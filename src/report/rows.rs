//! A lifetime as one row of SQL values: the columns of `who --format json` (addresses as
//! text, RFC 5952 for IPv6; times RFC 3339 UTC; `end` NULL while open), the two counter
//! pairs split as the CSV splits them, the integer times `start_us` and `end_us`, and
//! `until_us` (`end_us`, or the largest integer while open: the overlap in one column).
//! `pfstatelog sql` and `export --format sqlite` both show lifetimes this way, so a query
//! written against one runs unchanged against the other.

use super::proto_known;
use super::table::{af_name, dir_name};
use crate::model::Lifetime;

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

/// One column's value, its text (if any) kept in a buffer that many rows share: an export
/// writes millions of rows without a string of its own for each column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    /// `text[from..to]` of the buffer it was written to.
    Text(usize, usize),
    /// An instant, as text in RFC 3339 (crate::time::format_rfc3339), left to whoever binds
    /// it: an export writes it on the thread that inserts, which has less to do.
    Time(i64),
}

/// Column `i` of [`LIFETIME_COLUMNS`] for `l`, its text appended to `text`.
pub fn lifetime_cell(l: &Lifetime, i: usize, text: &mut String) -> Cell {
    use std::fmt::Write;
    let int = |v: u64| Cell::Int(v as i64);
    let at = text.len();
    match i {
        0 => push_ip(text, &l.private_ip),
        1 => return Cell::Int(l.private_port.into()),
        2 => push_ip(text, &l.public_ip),
        3 => return Cell::Int(l.public_port.into()),
        4 => push_ip(text, &l.remote_ip),
        5 => return Cell::Int(l.remote_port.into()),
        6 => match proto_known(l.proto) {
            Some(p) => text.push_str(p),
            None => drop(write!(text, "{}", l.proto)),
        },
        7 => text.push_str(af_name(l.af)),
        8 => text.push_str(dir_name(l.direction)),
        9 => text.push_str(&l.ifname),
        10 => return Cell::Int(l.nat.into()),
        11 => return Cell::Time(l.start),
        12 => return l.end.map_or(Cell::Null, Cell::Time),
        13 => push_hex(text, l.state_id, 16),
        14 => push_hex(text, u64::from(l.creator_id), 8),
        15 => match &l.end_reason {
            Some(r) => text.push_str(r),
            None => return Cell::Null,
        },
        16 => return Cell::Time(l.last_seen),
        17 => return int(l.packets[0]),
        18 => return int(l.packets[1]),
        19 => return int(l.bytes[0]),
        20 => return int(l.bytes[1]),
        21 => return Cell::Int(l.start),
        22 => return l.end.map_or(Cell::Null, Cell::Int),
        23 => return Cell::Int(l.end.unwrap_or(i64::MAX)),
        _ => return Cell::Null,
    }
    Cell::Text(at, text.len())
}

/// `ip` as its Display writes it; IPv4 by hand (most rows), IPv6 through Display (RFC 5952).
fn push_ip(text: &mut String, ip: &std::net::IpAddr) {
    use std::fmt::Write;
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if *o >= 100 {
                    text.push(char::from(b'0' + o / 100));
                }
                if *o >= 10 {
                    text.push(char::from(b'0' + o / 10 % 10));
                }
                text.push(char::from(b'0' + o % 10));
            }
        }
        // Writing into a String cannot fail.
        v6 => drop(write!(text, "{v6}")),
    }
}

/// The lowest `digits` hex digits of `v`, lower case, zero-padded (`{:016x}`, `{:08x}`).
fn push_hex(text: &mut String, v: u64, digits: u32) {
    for i in (0..digits).rev() {
        let d = ((v >> (4 * i)) & 0xf) as u8;
        text.push(char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn addresses_and_ids_are_their_display_text() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v4 = IpAddr::from((x as u32).to_be_bytes());
            let v6 = IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(x) << 64 | u128::from(x.rotate_left(7) & 0xffff),
            ));
            for ip in [v4, v6] {
                let mut t = String::new();
                push_ip(&mut t, &ip);
                assert_eq!(t, ip.to_string());
            }
            let mut t = String::new();
            push_hex(&mut t, x, 16);
            push_hex(&mut t, x & 0xffff_ffff, 8);
            assert_eq!(t, format!("{x:016x}{:08x}", x & 0xffff_ffff));
        }
    }
}
