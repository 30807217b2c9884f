//! `pfctl -ss -vv` output read back into full states, for states older than the recorder.
//!
//! pfctl prints a state (docs/pfsync.md §8; pfctl's print_state, sbin/pfctl/pf_print_state.c) as
//!
//! ```text
//! all tcp 203.0.113.1:61234 (192.168.1.10:51234) -> 93.184.216.34:443       ESTABLISHED:ESTABLISHED
//!    [1000 + 65535] wscale 7  [2000 + 65535] wscale 7
//!    age 01:02:03, expires in 23:59:58, 10:12 pkts, 1000:2000 bytes, rule 3
//!    id: 0000003f00000182 creatorid: 5a3c1e07
//! ```
//!
//! with `nk` the post-translation key and `sk` the pre-translation key (out states: nk =
//! key[0], sk = key[1]; in states: nk = key[1], sk = key[0]): first `nk.addr[1]:port[1]`,
//! then `(sk.addr[1]:port[1])` when sk differs there, then `->` (out, and af-to) or `<-`
//! (in), then `nk.addr[0]:port[0]` and `(sk.addr[0]:port[0])` when sk differs there. For
//! af-to the parenthesised endpoints are `sk.addr[0]` then `sk.addr[1]`. A non-zero rdomain
//! prefixes an endpoint as `(N) `, a zero port is not printed, IPv6 is `addr[port]`, and a
//! route-to address follows an endpoint as `{addr}`. This module reads that backwards.
//!
//! The input is untrusted text: every line is bounded, nothing panics, and whatever cannot
//! be read becomes a [`ParseError`] with its line number while the rest is still read.

use crate::model::{Af, Direction, FullState, Key};
use crate::report::parse_proto;
use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::net::{IpAddr, Ipv6Addr};

/// Longest line read; a longer one is reported and skipped (pfctl's are < 300 bytes).
pub const MAX_LINE: usize = 16 * 1024;

/// One thing in the input that could not be read as (part of) a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ParseError {
    pub line: usize,
    pub what: String,
}

fn err<T>(line: usize, what: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        what: what.into(),
    })
}

/// An endpoint as printed: optional `(rdomain) `, address, optional port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Host {
    rdomain: Option<u16>,
    addr: IpAddr,
    port: u16,
}

fn af_of(a: &IpAddr) -> Af {
    match a {
        IpAddr::V4(_) => Af::Inet,
        IpAddr::V6(_) => Af::Inet6,
    }
}

/// Protocol names pfctl takes from /etc/protocols (getprotobynumber), beyond the ones
/// [`parse_proto`] knows.
fn proto_number(s: &str) -> Option<u8> {
    if let Some(p) = parse_proto(s) {
        return Some(p);
    }
    Some(match s.to_ascii_lowercase().as_str() {
        "hopopt" => 0,
        "igmp" => 2,
        "ggp" => 3,
        "ipencap" | "ipip" | "ipv4" => 4,
        "st" => 5,
        "egp" => 8,
        "igp" => 9,
        "pup" => 12,
        "hmp" => 20,
        "xns-idp" => 22,
        "rdp" => 27,
        "iso-tp4" => 29,
        "dccp" => 33,
        "xtp" => 36,
        "ddp" => 37,
        "idpr-cmtp" => 38,
        "ipv6" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "idrp" => 45,
        "rsvp" => 46,
        "ah" => 51,
        "skip" => 57,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "rspf" => 73,
        "vmtp" => 81,
        "eigrp" => 88,
        "ospf" | "ospfigp" => 89,
        "ax.25" => 93,
        "ipip4" => 94,
        "etherip" => 97,
        "encap" => 98,
        "pim" => 103,
        "ipcomp" => 108,
        "carp" | "vrrp" => 112,
        "l2tp" => 115,
        "isis" => 124,
        "fc" => 133,
        "mobility-header" => 135,
        "udplite" => 136,
        "mpls-in-ip" => 137,
        "manet" => 138,
        "hip" => 139,
        "shim6" => 140,
        "wesp" => 141,
        "rohc" => 142,
        "pfsync" => 240,
        "divert" => 254,
        _ => return None,
    })
}

fn parse_port(s: &str, line: usize) -> Result<u16, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return err(
            line,
            format!(
                "port \"{s}\" is not a number (pfctl -N prints service names: run it without -N)"
            ),
        );
    }
    s.parse()
        .or_else(|_| err(line, format!("port {s} is out of range")))
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `2001:db8::1[80]`.
fn parse_addr_port(s: &str, line: usize) -> Result<(IpAddr, u16), ParseError> {
    if let Some(open) = s.find('[') {
        let Some(inner) = s[open + 1..].strip_suffix(']') else {
            return err(line, format!("\"{s}\": expected addr[port]"));
        };
        let addr: Ipv6Addr = s[..open]
            .parse()
            .or_else(|_| err(line, format!("\"{}\" is not an IPv6 address", &s[..open])))?;
        return Ok((IpAddr::V6(addr), parse_port(inner, line)?));
    }
    if let Ok(a) = s.parse::<IpAddr>() {
        return Ok((a, 0));
    }
    if let Some((a, p)) = s.rsplit_once(':') {
        if let Ok(a) = a.parse::<std::net::Ipv4Addr>() {
            return Ok((IpAddr::V4(a), parse_port(p, line)?));
        }
    }
    err(
        line,
        format!("\"{s}\" is not an address (pfctl -r prints host names: run it without -r)"),
    )
}

/// `(N)`: an rdomain prefix token.
fn rdomain_token(t: &str) -> Option<u16> {
    let n = t.strip_prefix('(')?.strip_suffix(')')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Tokens of one state line with a cursor.
struct Tokens<'a> {
    t: Vec<&'a str>,
    i: usize,
    line: usize,
}

impl<'a> Tokens<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.t.get(self.i).copied()
    }
    fn next(&mut self, what: &str) -> Result<&'a str, ParseError> {
        match self.t.get(self.i) {
            Some(t) => {
                self.i += 1;
                Ok(t)
            }
            None => err(self.line, format!("state line ends before {what}")),
        }
    }

    /// `[(rd) ]addr[:port]`.
    fn host(&mut self, what: &str) -> Result<Host, ParseError> {
        let mut t = self.next(what)?;
        let mut rdomain = None;
        if let Some(rd) = rdomain_token(t) {
            rdomain = Some(rd);
            t = self.next(what)?;
        }
        let (addr, port) = parse_addr_port(t, self.line)?;
        Ok(Host {
            rdomain,
            addr,
            port,
        })
    }

    /// An optional `(host)` or `((rd) host)` after an endpoint.
    fn paren_host(&mut self) -> Result<Option<Host>, ParseError> {
        let Some(t) = self.peek() else {
            return Ok(None);
        };
        let Some(inner) = t.strip_prefix('(') else {
            return Ok(None);
        };
        if rdomain_token(t).is_some() {
            // `(N)` alone would be an rdomain prefix where no endpoint may start.
            return err(self.line, format!("unexpected \"{t}\""));
        }
        self.i += 1;
        // `((N) host)`: the rdomain is a token of its own.
        let rdomain = rdomain_token(inner);
        let (h, shown) = if rdomain.is_some() {
            let h = self.next("the end of a parenthesised endpoint")?;
            (h, h)
        } else {
            (inner, t)
        };
        let Some(h) = h.strip_suffix(')') else {
            return err(
                self.line,
                format!("\"{shown}\": expected a closing parenthesis"),
            );
        };
        let (addr, port) = parse_addr_port(h, self.line)?;
        Ok(Some(Host {
            rdomain,
            addr,
            port,
        }))
    }

    /// An optional `{route-to address}`.
    fn route(&mut self) -> Result<(), ParseError> {
        if let Some(t) = self.peek() {
            if let Some(inner) = t.strip_prefix('{') {
                let Some(a) = inner.strip_suffix('}') else {
                    return err(self.line, format!("\"{t}\": expected {{address}}"));
                };
                if a.parse::<IpAddr>().is_err() {
                    return err(self.line, format!("\"{a}\" is not a route-to address"));
                }
                self.i += 1;
            }
        }
        Ok(())
    }
}

/// The keys, direction and names of one state line; counters and ids come later.
pub fn parse_state_line(text: &str, line: usize) -> Result<FullState, ParseError> {
    let mut tk = Tokens {
        t: text.split_whitespace().collect(),
        i: 0,
        line,
    };
    let ifname = tk.next("the interface")?;
    if ifname.len() > 15 || !ifname.bytes().all(|b| b.is_ascii_graphic()) || ifname.contains('(') {
        return err(
            line,
            format!("not a pfctl state line: \"{ifname}\" is not an interface name"),
        );
    }
    let proto_s = tk.next("the protocol")?;
    let proto = proto_number(proto_s)
        .ok_or_else(|| ParseError {
            line,
            what: format!(
                "not a pfctl state line: unknown protocol \"{proto_s}\" (expected \"IFACE PROTO ADDR[:PORT] [(ADDR[:PORT])] -> ADDR[:PORT] ...\")"
            ),
        })?;
    let first = tk.host("the first endpoint")?;
    let first_paren = tk.paren_host()?;
    tk.route()?;
    let arrow = tk.next("the direction arrow")?;
    let arrow_out = match arrow {
        "->" => true,
        "<-" => false,
        a => {
            return err(
                line,
                format!("expected -> or <- after the first endpoint, found \"{a}\""),
            )
        }
    };
    let second = tk.host("the second endpoint")?;
    let second_paren = tk.paren_host()?;
    tk.route()?;
    // What follows is the state description (ESTABLISHED:ESTABLISHED, 0:0, ...): not kept.

    let nk_af = af_of(&first.addr);
    if af_of(&second.addr) != nk_af {
        return err(line, "the two endpoints are of different address families");
    }
    let nk_rd = match (first.rdomain, second.rdomain) {
        (Some(a), Some(b)) if a != b => {
            return err(line, format!("rdomains {a} and {b} on one key"));
        }
        (a, b) => a.or(b).unwrap_or(0),
    };
    let nk = Key {
        addr: [second.addr, first.addr],
        port: [second.port, first.port],
        rdomain: nk_rd,
        af: nk_af,
    };
    let parens: Vec<Host> = [first_paren, second_paren].into_iter().flatten().collect();
    let afto = parens.iter().any(|h| af_of(&h.addr) != nk_af);
    let sk_rd = match parens.as_slice() {
        [] => nk_rd,
        [h] => h.rdomain.unwrap_or(0),
        [a, b] => {
            let (a, b) = (a.rdomain.unwrap_or(0), b.rdomain.unwrap_or(0));
            if a != b {
                return err(line, format!("rdomains {a} and {b} on one key"));
            }
            a
        }
        _ => unreachable!("at most two parenthesised endpoints"),
    };
    let (sk, direction) = if afto {
        // af-to (inbound rules only): pfctl prints -> and both parenthesised endpoints,
        // sk.addr[0] first (docs/pfsync.md §8).
        let (Some(p0), Some(p1)) = (first_paren, second_paren) else {
            return err(line, "an af-to state prints both translated endpoints");
        };
        if af_of(&p0.addr) != af_of(&p1.addr) {
            return err(
                line,
                "the translated endpoints are of different address families",
            );
        }
        if !arrow_out {
            return err(
                line,
                "address families differ but the arrow is <- (af-to prints ->)",
            );
        }
        (
            Key {
                addr: [p0.addr, p1.addr],
                port: [p0.port, p1.port],
                rdomain: sk_rd,
                af: af_of(&p0.addr),
            },
            Direction::In,
        )
    } else {
        let s1 = first_paren.map_or((first.addr, first.port), |h| (h.addr, h.port));
        let s0 = second_paren.map_or((second.addr, second.port), |h| (h.addr, h.port));
        (
            Key {
                addr: [s0.0, s1.0],
                port: [s0.1, s1.1],
                rdomain: sk_rd,
                af: nk_af,
            },
            if arrow_out {
                Direction::Out
            } else {
                Direction::In
            },
        )
    };
    // Out: nk = key[0] (wire), sk = key[1] (stack); in: the other way round.
    let key = if direction == Direction::Out {
        [nk, sk]
    } else {
        [sk, nk]
    };
    Ok(FullState {
        id: 0,
        creator_id: 0,
        ifname: ifname.into(),
        af: key[0].af,
        key,
        proto,
        direction,
        creation: 0,
        expire: 0,
        packets: [0, 0],
        bytes: [0, 0],
        rule: u32::MAX,
        timeout: 0,
        peer_state: [0, 0],
    })
}

/// `hh:mm:ss` (hours may have more than two digits) in seconds.
fn hms(s: &str, line: usize, what: &str) -> Result<u32, ParseError> {
    let bad = || ParseError {
        line,
        what: format!("{what} \"{s}\": expected hh:mm:ss"),
    };
    let mut it = s.split(':');
    let (Some(h), Some(m), Some(sec), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let num = |x: &str, max: u32| -> Option<u32> {
        if x.is_empty() || x.len() > 10 || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse::<u32>().ok().filter(|v| *v <= max)
    };
    let (h, m, sec) = (
        num(h, u32::MAX).ok_or_else(bad)?,
        num(m, 59).ok_or_else(bad)?,
        num(sec, 59).ok_or_else(bad)?,
    );
    h.checked_mul(3600)
        .and_then(|v| v.checked_add(m * 60 + sec))
        .ok_or_else(bad)
}

/// `a:b` counters.
fn pair(s: &str, line: usize, what: &str) -> Result<[u64; 2], ParseError> {
    let bad = || ParseError {
        line,
        what: format!("{what} \"{s}\": expected two numbers a:b"),
    };
    let (a, b) = s.split_once(':').ok_or_else(bad)?;
    let num = |x: &str| -> Option<u64> {
        if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        x.parse().ok()
    };
    Ok([num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?])
}

/// `age 01:02:03, expires in 00:00:10, 1:2 pkts, 3:4 bytes[, anchor N][, rule N][, ...]`.
fn apply_age(s: &mut FullState, text: &str, line: usize) -> Result<(), ParseError> {
    let mut age = None;
    let mut expire = None;
    let mut pkts = None;
    let mut bytes = None;
    for part in text.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("age ") {
            age = Some(hms(v.trim(), line, "age")?);
        } else if let Some(v) = part.strip_prefix("expires in ") {
            expire = Some(hms(v.trim(), line, "expiry")?);
        } else if let Some(v) = part.strip_suffix(" pkts") {
            pkts = Some(pair(v.trim(), line, "packets")?);
        } else if let Some(v) = part.strip_suffix(" bytes") {
            bytes = Some(pair(v.trim(), line, "bytes")?);
        } else if let Some(v) = part.strip_prefix("rule ") {
            s.rule = v
                .trim()
                .parse()
                .or_else(|_| err(line, format!("rule \"{v}\" is not a number")))?;
        }
        // anchor N, sloppy, pflow, source-track, ...: not kept.
    }
    let (Some(age), Some(expire), Some(pkts), Some(bytes)) = (age, expire, pkts, bytes) else {
        return err(
            line,
            "expected \"age hh:mm:ss, expires in hh:mm:ss, a:b pkts, c:d bytes\"",
        );
    };
    s.creation = age;
    s.expire = expire;
    s.packets = pkts;
    s.bytes = bytes;
    Ok(())
}

/// `id: 0000003f00000182 creatorid: 5a3c1e07[ ...]`.
fn apply_id(s: &mut FullState, text: &str, line: usize) -> Result<(), ParseError> {
    let t: Vec<&str> = text.split_whitespace().collect();
    let hex = |v: &str, digits: usize| -> Option<u64> {
        if v.is_empty() || v.len() > digits || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(v, 16).ok()
    };
    match t.as_slice() {
        ["id:", id, "creatorid:", c, ..] => {
            s.id = hex(id, 16).ok_or_else(|| ParseError {
                line,
                what: format!("state id \"{id}\" is not 16 hex digits"),
            })?;
            s.creator_id = hex(c, 8).ok_or_else(|| ParseError {
                line,
                what: format!("creator id \"{c}\" is not 8 hex digits"),
            })? as u32;
            Ok(())
        }
        _ => err(
            line,
            "expected \"id: <16 hex digits> creatorid: <8 hex digits>\"",
        ),
    }
}

/// A state line read, waiting for its `age` and `id` lines.
// One per parser, never in a collection: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
enum Pending {
    #[default]
    None,
    State {
        line: usize,
        state: FullState,
        age: bool,
        id: bool,
    },
    /// The state line could not be read (already reported): its other lines are skipped.
    Failed,
}

/// A line-by-line parser: feed lines, collect states and errors.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Pending,
}

impl Parser {
    pub fn new() -> Parser {
        Parser::default()
    }

    fn complete(&mut self, out: &mut VecDeque<Result<FullState, ParseError>>) {
        if let Pending::State {
            line,
            state,
            age,
            id,
        } = std::mem::replace(&mut self.pending, Pending::None)
        {
            out.push_back(if !age {
                err(
                    line,
                    "state without an \"age ...\" line: take the snapshot with pfctl -ss -vv",
                )
            } else if !id {
                err(
                    line,
                    "state without an \"id: ... creatorid: ...\" line: take the snapshot with pfctl -ss -vv (two v)",
                )
            } else {
                Ok(state)
            });
        }
    }

    /// One line (without its line end), numbered from 1.
    pub fn line(
        &mut self,
        text: &str,
        line: usize,
        out: &mut VecDeque<Result<FullState, ParseError>>,
    ) {
        let t = text.trim_start();
        if t.trim().is_empty() {
            return;
        }
        let indented = t.len() != text.len();
        if !indented {
            self.complete(out);
            if t.starts_with('@') {
                // A rule line (pfctl -R / -vv variants): not a state.
                return;
            }
            match parse_state_line(t, line) {
                Ok(state) => {
                    self.pending = Pending::State {
                        line,
                        state,
                        age: false,
                        id: false,
                    }
                }
                Err(e) => {
                    out.push_back(Err(e));
                    self.pending = Pending::Failed;
                }
            }
            return;
        }
        let is_age = t.starts_with("age ");
        let is_id = t.starts_with("id:");
        if !is_age && !is_id {
            // TCP sequence windows, origif:, rtable, route-to details...: not needed.
            return;
        }
        let what = if is_age { "age" } else { "id" };
        match &mut self.pending {
            Pending::None => out.push_back(err(
                line,
                format!("{what} line without a state line before it"),
            )),
            Pending::Failed => {}
            Pending::State {
                line: at,
                state,
                age,
                id,
            } => {
                let (seen, r) = if is_age {
                    (std::mem::replace(age, true), apply_age(state, t, line))
                } else {
                    (std::mem::replace(id, true), apply_id(state, t, line))
                };
                let r = if seen {
                    err(
                        line,
                        format!("a second {what} line for the state of line {at}"),
                    )
                } else {
                    r
                };
                if let Err(e) = r {
                    out.push_back(Err(e));
                    self.pending = Pending::Failed;
                }
            }
        }
    }

    /// End of input: the last state is complete (or reported).
    pub fn finish(&mut self, out: &mut VecDeque<Result<FullState, ParseError>>) {
        self.complete(out);
        self.pending = Pending::None;
    }
}

/// States (and errors) of a `pfctl -ss -vv` text, read as it comes: memory stays bounded by
/// one line whatever the input's size.
pub struct Reader<R: BufRead> {
    r: R,
    parser: Parser,
    out: VecDeque<Result<FullState, ParseError>>,
    line: usize,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(r: R) -> Reader<R> {
        Reader {
            r,
            parser: Parser::new(),
            out: VecDeque::new(),
            line: 0,
            buf: Vec::new(),
            done: false,
        }
    }

    /// Read one line into `buf`; false at the end. Over-long lines are reported and skipped.
    fn read_line(&mut self) -> bool {
        self.buf.clear();
        let limit = MAX_LINE as u64 + 1;
        let n = match (&mut self.r).take(limit).read_until(b'\n', &mut self.buf) {
            Ok(n) => n,
            Err(e) => {
                self.line += 1;
                self.out
                    .push_back(err(self.line, format!("read error: {e}")));
                return false;
            }
        };
        if n == 0 {
            return false;
        }
        self.line += 1;
        if self.buf.len() > MAX_LINE && self.buf.last() != Some(&b'\n') {
            // Skip to the end of this line.
            loop {
                let mut chunk = Vec::new();
                match (&mut self.r).take(limit).read_until(b'\n', &mut chunk) {
                    Ok(0) => break,
                    Ok(_) if chunk.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            self.out.push_back(err(
                self.line,
                format!("longer than {MAX_LINE} bytes: not pfctl output"),
            ));
            self.buf.clear();
        }
        true
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<FullState, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.out.pop_front() {
                return Some(x);
            }
            if self.done {
                return None;
            }
            if !self.read_line() {
                self.done = true;
                self.parser.finish(&mut self.out);
                continue;
            }
            let line = self.line;
            let buf = std::mem::take(&mut self.buf);
            match std::str::from_utf8(&buf) {
                Ok(s) => {
                    let s = s.trim_end_matches(['\n', '\r']);
                    self.parser.line(s, line, &mut self.out);
                }
                Err(_) => self.out.push_back(err(line, "not text (invalid UTF-8)")),
            }
            self.buf = buf;
        }
    }
}

/// Every state and every error of a whole text, in input order.
pub fn parse_str(text: &str) -> (Vec<FullState>, Vec<ParseError>) {
    let mut states = Vec::new();
    let mut errors = Vec::new();
    for r in Reader::new(text.as_bytes()) {
        match r {
            Ok(s) => states.push(s),
            Err(e) => errors.push(e),
        }
    }
    (states, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn one(text: &str) -> FullState {
        let (s, e) = parse_str(text);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(s.len(), 1, "{s:?}");
        s.into_iter().next().expect("one state")
    }

    #[test]
    fn outbound_nat_gives_wire_and_stack_keys() {
        let s = one("all tcp 203.0.113.1:61234 (192.168.1.10:51234) -> 93.184.216.34:443       ESTABLISHED:ESTABLISHED\n   [1 + 2] wscale 7  [3 + 4] wscale 7\n   age 01:02:03, expires in 23:59:58, 10:12 pkts, 1000:2000 bytes, rule 3\n   id: 0000003f00000182 creatorid: 5a3c1e07\n");
        assert_eq!(s.direction, Direction::Out);
        assert_eq!(s.key[0].addr, [ip("93.184.216.34"), ip("203.0.113.1")]);
        assert_eq!(s.key[0].port, [443, 61234]);
        assert_eq!(s.key[1].addr, [ip("93.184.216.34"), ip("192.168.1.10")]);
        assert_eq!(s.key[1].port, [443, 51234]);
        assert_eq!(s.creation, 3723);
        assert_eq!(s.expire, 86398);
        assert_eq!(s.packets, [10, 12]);
        assert_eq!(s.bytes, [1000, 2000]);
        assert_eq!(s.rule, 3);
        assert_eq!(s.id, 0x0000_003f_0000_0182);
        assert_eq!(s.creator_id, 0x5a3c_1e07);
        assert_eq!(s.ifname, "all");
        assert_eq!(s.proto, 6);
        assert!(s.is_nat());
        assert_eq!(
            crate::report::line::pfctl_state(&s),
            "all tcp 203.0.113.1:61234 (192.168.1.10:51234) -> 93.184.216.34:443"
        );
    }

    #[test]
    fn inbound_rdr_gives_wire_before_and_stack_after() {
        let s = one("all tcp 192.168.1.20:8080 (203.0.113.1:80) <- 198.51.100.7:51000       ESTABLISHED:ESTABLISHED\n   age 00:00:05, expires in 00:00:10, 1:2 pkts, 3:4 bytes\n   id: 0000000000000001 creatorid: 00000002\n");
        assert_eq!(s.direction, Direction::In);
        // WIRE key: before translation (the public address the client hit).
        assert_eq!(s.key[0].addr, [ip("198.51.100.7"), ip("203.0.113.1")]);
        assert_eq!(s.key[0].port, [51000, 80]);
        // STACK key: after (the internal server).
        assert_eq!(s.key[1].addr, [ip("198.51.100.7"), ip("192.168.1.20")]);
        assert_eq!(s.key[1].port, [51000, 8080]);
        assert_eq!(s.rule, u32::MAX);
    }

    #[test]
    fn ipv6_rdomain_and_route_to() {
        let s = one("em0 udp (3) 2001:db8::1[53] ((4) 2001:db8::2[5353]) {2001:db8::fe} -> (3) 2001:db8:1::9[40000]    MULTIPLE:SINGLE\n   age 100:00:00, expires in 00:01:00, 0:0 pkts, 0:0 bytes, anchor 2, rule 7, sloppy\n   id: ffffffffffffffff creatorid: ffffffff route-to: 10.0.0.1@em1\n   origif: em1\n");
        assert_eq!(s.direction, Direction::Out);
        assert_eq!(s.key[0].rdomain, 3);
        assert_eq!(s.key[1].rdomain, 4);
        assert_eq!(s.key[0].af, Af::Inet6);
        assert_eq!(s.key[1].addr[1], ip("2001:db8::2"));
        assert_eq!(s.key[1].port[1], 5353);
        assert_eq!(s.key[1].addr[0], ip("2001:db8:1::9"));
        assert_eq!(s.creation, 360_000);
        assert_eq!(s.rule, 7);
        assert_eq!(s.id, u64::MAX);
    }

    #[test]
    fn icmp_no_port_and_af_to() {
        let s = one("all icmp 203.0.113.1:27953 (192.168.1.10:1234) -> 93.184.216.34:8 0:0\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\n   id: 1 creatorid: 2\n");
        assert_eq!(s.proto, 1);
        assert_eq!(s.key[0].port, [8, 27953]);
        assert_eq!(s.key[1].port, [8, 1234]);
        let g = one("all gre 10.0.0.1 <- 10.0.0.2 NO_TRAFFIC:NO_TRAFFIC\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\n   id: 1 creatorid: 2\n");
        assert_eq!(g.proto, 47);
        assert_eq!(g.key[0].port, [0, 0]);
        assert!(!g.is_nat());
        // af-to: IPv6 clients reach an IPv4 server; sk.addr[0] is printed first.
        let a = one("all tcp 64:ff9b::c000:201[80] (192.0.2.1:80) -> 2001:db8::5[50000] (198.51.100.1:40000) ESTABLISHED:ESTABLISHED\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\n   id: 1 creatorid: 2\n");
        assert_eq!(a.direction, Direction::In);
        assert_eq!(a.key[1].af, Af::Inet6);
        assert_eq!(a.key[0].af, Af::Inet);
        assert_eq!(a.key[0].addr, [ip("192.0.2.1"), ip("198.51.100.1")]);
        assert_eq!(a.af, Af::Inet);
    }

    #[test]
    fn rejects_with_line_numbers_and_goes_on() {
        let text = "garbage here\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\nall tcp 1.2.3.4:1 -> 5.6.7.8:2 X:Y\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\n   id: 1 creatorid: 2\n   id: 1 creatorid: 2\nall tcp 1.2.3.4:1 -> 5.6.7.8:2 X:Y\n   age 00:00:01\nall tcp host.example:https -> 5.6.7.8:2 X:Y\nall tcp 1.2.3.4:1 -> 5.6.7.8:2 X:Y\n   age 00:00:01, expires in 00:00:09, 1:1 pkts, 84:84 bytes\n";
        let (s, e) = parse_str(text);
        assert!(s.is_empty(), "{s:?}");
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![1, 6, 8, 9, 10], "{e:?}");
        assert!(e[4].what.contains("pfctl -ss -vv"), "{}", e[4]);
        let (_, e) = parse_str("   id: 1 creatorid: 2\n");
        assert_eq!(e[0].line, 1);
    }
}
