//! Tamper evidence (docs/integrity.md): the canonical encoding of a lifetime, the UTC day it
//! belongs to, the order of a day's leaves, and an RFC 6962 Merkle tree over SHA-256 with
//! inclusion paths. Pure: a store, a recipient of an export or a test computes the same
//! bytes and the same roots from the same lifetimes.

use super::{Lifetime, Micros};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// The first byte of every leaf: a change to the encoding is a new version, never a silent
/// change of every root.
pub const LEAF_VERSION: u8 = 1;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

const US_PER_DAY: Micros = 86_400_000_000;

/// The UTC day (days since 1970-01-01) a lifetime belongs to: the day of its start.
pub fn day_of(start: Micros) -> i64 {
    start.div_euclid(US_PER_DAY)
}

/// The time range `[from, to)` of a day, in µs.
pub fn day_range(day: i64) -> (Micros, Micros) {
    (
        day.saturating_mul(US_PER_DAY),
        day.saturating_add(1).saturating_mul(US_PER_DAY),
    )
}

/// `YYYY-MM-DD`.
pub fn day_name(day: i64) -> String {
    chrono::DateTime::from_timestamp(day.saturating_mul(86_400), 0)
        .map_or_else(|| format!("day{day}"), |d| d.format("%Y-%m-%d").to_string())
}

/// The day `YYYY-MM-DD` names.
pub fn parse_day(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(
        d.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(86_400),
    )
}

/// A leaf with the key that orders it in its day: state id, start, then the hash itself
/// (two lifetimes of one creator never share an id and a start; the hash makes the order
/// total all the same).
pub type Leaf = (u64, Micros, Hash);

/// A lifetime's leaf.
pub fn leaf(l: &Lifetime) -> Leaf {
    (l.state_id, l.start, leaf_hash(l))
}

/// A day's leaf hashes in tree order, from its leaves (one creator's) in any order.
pub fn ordered(mut leaves: Vec<Leaf>) -> Vec<Hash> {
    leaves.sort_unstable();
    leaves.into_iter().map(|(_, _, h)| h).collect()
}

/// The root of a day, from its leaves in any order.
pub fn day_root(leaves: Vec<Leaf>) -> Hash {
    let mut b = RootBuilder::default();
    ordered(leaves).into_iter().for_each(|h| b.push(h));
    b.root()
}

fn addr16(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The canonical encoding of one lifetime (docs/integrity.md lists it byte by byte). What
/// changes while a state lives (packets, bytes, "last seen") is left out: a day would
/// otherwise change with every update of a long-lived state; what names a host and when
/// (keys, times, the end and its reason) is all in.
pub fn encode(l: &Lifetime, out: &mut Vec<u8>) {
    encode_to(l, &mut |b| out.extend_from_slice(b));
}

/// [`encode`], piece by piece (hashed as it goes, with no buffer to allocate).
fn encode_to(l: &Lifetime, put: &mut impl FnMut(&[u8])) {
    put(&[LEAF_VERSION]);
    put(&l.creator_id.to_be_bytes());
    put(&l.state_id.to_be_bytes());
    put(&l.start.to_be_bytes());
    put(&[u8::from(l.end.is_some())]);
    put(&l.end.unwrap_or(0).to_be_bytes());
    put(&[u8::from(l.end_reason.is_some())]);
    put_str(put, l.end_reason.as_deref().unwrap_or(""));
    put(&[l.af, l.proto, l.direction, u8::from(l.nat)]);
    put_str(put, &l.ifname);
    for (ip, port) in [
        (&l.private_ip, l.private_port),
        (&l.public_ip, l.public_port),
        (&l.remote_ip, l.remote_port),
    ] {
        put(&addr16(ip));
        put(&port.to_be_bytes());
    }
}

/// A length-prefixed string (one length byte; a longer string is cut, which no stored name
/// or reason reaches).
fn put_str(put: &mut impl FnMut(&[u8]), s: &str) {
    let b = &s.as_bytes()[..s.len().min(255)];
    put(&[b.len() as u8]);
    put(b);
}

/// RFC 6962 leaf hash of a lifetime: SHA-256(0x00 || encoding).
pub fn leaf_hash(l: &Lifetime) -> Hash {
    let mut h = Sha256::new_with_prefix([0u8]);
    encode_to(l, &mut |b| h.update(b));
    h.finalize().into()
}

/// SHA-256(0x00 || data).
pub fn hash_leaf(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// SHA-256(0x01 || left || right).
pub fn hash_node(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of an empty tree (a day with no lifetime): SHA-256 of nothing, as RFC 6962.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// A root computed as leaves arrive, in O(log n) memory: the stack holds the roots of
/// complete subtrees of decreasing size, which RFC 6962's tree joins right to left.
#[derive(Default)]
pub struct RootBuilder {
    stack: Vec<(u32, Hash)>,
    count: u64,
}

impl RootBuilder {
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != node.0 {
                break;
            }
            self.stack.pop();
            node = (h + 1, hash_node(&left, &node.1));
        }
        self.stack.push(node);
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn root(&self) -> Hash {
        let mut it = self.stack.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&(_, last)) => it.fold(last, |right, (_, left)| hash_node(left, &right)),
        }
    }
}

/// A whole tree, level by level, to give many inclusion paths cheaply. A level of odd
/// length carries its last node up unpaired: that is RFC 6962's split at the largest power
/// of two, seen bottom-up.
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new(leaves: Vec<Hash>) -> Tree {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up = below
                .chunks(2)
                .map(|p| match p {
                    [l, r] => hash_node(l, r),
                    [one] => *one,
                    _ => unreachable!("chunks of two"),
                })
                .collect();
            levels.push(up);
        }
        Tree { levels }
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash of leaf `index`.
    pub fn leaf(&self, index: usize) -> Option<&Hash> {
        self.levels[0].get(index)
    }

    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first().copied())
            .unwrap_or_else(empty_root)
    }

    /// The inclusion (audit) path of leaf `index`, RFC 6962 §2.1.1, nearest sibling first;
    /// None past the end.
    pub fn path(&self, mut index: usize) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let mut path = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sib) = level.get(index ^ 1) {
                path.push(*sib);
            }
            index >>= 1;
        }
        Some(path)
    }
}

/// Whether `path` proves leaf `index` (of hash `leaf`) in a tree of `size` leaves with root
/// `root` (RFC 9162 §2.1.3.2, the check of an RFC 6962 audit path).
pub fn verify_path(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = hash_node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = hash_node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// One version of a day's root, per creator, as stored and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRoot {
    pub creator_id: u32,
    pub day: i64,
    pub count: u64,
    pub root: Hash,
    pub version: u32,
    /// Why this version: `close` for the first, else what changed the day (`import`,
    /// `late`, `clear`, `prune`).
    pub reason: String,
}

impl DayRoot {
    /// The published line: `digest creator=… day=YYYY-MM-DD lifetimes=N root=HEX
    /// version=V`, and `reason=…` after the first version. The creator is in hex, as pf
    /// shows it.
    pub fn line(&self) -> String {
        let mut s = format!(
            "digest creator={:08x} day={} lifetimes={} root={} version={}",
            self.creator_id,
            day_name(self.day),
            self.count,
            hex(&self.root),
            self.version
        );
        if self.version > 1 {
            s.push_str(&format!(" reason={}", self.reason));
        }
        s
    }

    /// The root a line holds (anywhere in it: a syslog file prefixes its own fields).
    pub fn parse(line: &str) -> Option<DayRoot> {
        let rest = &line[line.find("digest creator=")? + "digest ".len()..];
        let mut r = DayRoot {
            creator_id: 0,
            day: 0,
            count: 0,
            root: [0; 32],
            version: 0,
            reason: "close".into(),
        };
        let mut seen = 0;
        for (k, v) in rest.split_whitespace().filter_map(|f| f.split_once('=')) {
            match k {
                "creator" => r.creator_id = u32::from_str_radix(v, 16).ok()?,
                "day" => r.day = parse_day(v)?,
                "lifetimes" => r.count = v.parse().ok()?,
                "root" => r.root = parse_hex(v)?,
                "version" => r.version = v.parse().ok()?,
                "reason" => r.reason = v.into(),
                _ => continue,
            }
            seen += 1;
        }
        (seen >= 5).then_some(r)
    }
}

/// Lowercase hex.
pub fn hex(h: &Hash) -> String {
    let mut s = String::with_capacity(64);
    hex_into(h, &mut s);
    s
}

/// Lowercase hex, appended (an export writes some twenty of them per lifetime).
pub fn hex_into(h: &Hash, out: &mut String) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 64];
    for (pair, b) in buf.chunks_exact_mut(2).zip(h) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    // Always ASCII: the error arm cannot be taken.
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

/// A hash from 64 hex digits.
pub fn parse_hex(s: &str) -> Option<Hash> {
    let mut h = [0u8; 32];
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    for (i, b) in h.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// RFC 6962's MTH, recursively, as the reference.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                hash_node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// The inputs of the Certificate Transparency reference tests.
    fn ct_leaves() -> Vec<Hash> {
        let raw: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        raw.iter().map(|d| hash_leaf(d)).collect()
    }

    #[test]
    fn roots_match_the_certificate_transparency_vectors() {
        assert_eq!(
            hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves = ct_leaves();
        for (n, want) in roots.iter().enumerate() {
            let mut b = RootBuilder::default();
            leaves[..=n].iter().for_each(|l| b.push(*l));
            assert_eq!(hex(&b.root()), *want, "size {}", n + 1);
            assert_eq!(hex(&Tree::new(leaves[..=n].to_vec()).root()), *want);
        }
        // Audit paths of the same reference tests: (index, size, path).
        let paths: [(usize, usize, &[&str]); 4] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (i, n, want) in paths {
            let tree = Tree::new(leaves[..n].to_vec());
            let got = tree.path(i).expect("in range");
            assert_eq!(got.iter().map(hex).collect::<Vec<_>>(), want, "{i}/{n}");
        }
    }

    #[test]
    fn every_path_verifies_and_a_changed_leaf_or_path_does_not() {
        let all: Vec<Hash> = (0u32..33).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        for n in 1..=33 {
            let leaves = &all[..n];
            let tree = Tree::new(leaves.to_vec());
            let root = mth(leaves);
            assert_eq!(tree.root(), root, "size {n}");
            let mut b = RootBuilder::default();
            leaves.iter().for_each(|l| b.push(*l));
            assert_eq!((b.root(), b.count()), (root, n as u64));
            for (i, leaf) in leaves.iter().enumerate() {
                let path = tree.path(i).expect("in range");
                let (i, size) = (i as u64, n as u64);
                assert!(verify_path(i, size, leaf, &path, &root), "{i}/{n}");
                let other = hash_leaf(b"changed");
                assert!(!verify_path(i, size, &other, &path, &root));
                assert!(!verify_path(i + 1, size, leaf, &path, &root));
                if let Some((first, rest)) = path.split_first() {
                    let mut bad = *first;
                    bad[0] ^= 1;
                    let bad: Vec<Hash> = std::iter::once(bad).chain(rest.iter().copied()).collect();
                    assert!(!verify_path(i, size, leaf, &bad, &root));
                    assert!(!verify_path(i, size, leaf, rest, &root), "a short path");
                }
            }
            assert!(tree.path(n).is_none());
        }
        assert_eq!(Tree::new(vec![]).root(), empty_root());
        assert_eq!(RootBuilder::default().root(), empty_root());
    }

    fn lifetime() -> Lifetime {
        Lifetime {
            private_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            private_port: 51234,
            public_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            public_port: 40000,
            remote_ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
            remote_port: 443,
            proto: 6,
            af: 2,
            direction: 2,
            ifname: "em0".into(),
            nat: true,
            start: 1_700_000_000_000_000,
            end: Some(1_700_000_060_000_000),
            end_reason: Some("delete".into()),
            last_seen: 1_700_000_060_000_000,
            state_id: 0x0102_0304_0506_0708,
            creator_id: 0xaabb_ccdd,
            packets: [1, 2],
            bytes: [3, 4],
        }
    }

    #[test]
    fn the_encoding_is_fixed_byte_by_byte() {
        let mut out = Vec::new();
        encode(&lifetime(), &mut out);
        let mut want = vec![1, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4, 5, 6, 7, 8];
        want.extend(1_700_000_000_000_000i64.to_be_bytes());
        want.push(1);
        want.extend(1_700_000_060_000_000i64.to_be_bytes());
        want.extend([1, 6]);
        want.extend(b"delete");
        want.extend([2, 6, 2, 1, 3]);
        want.extend(b"em0");
        want.extend([
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 5, 0xc8, 0x22,
        ]);
        want.extend([
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 1, 0x9c, 0x40,
        ]);
        want.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb]);
        assert_eq!(out, want);
        // Counters and "last seen" are not in it; every other field is.
        let base = leaf_hash(&lifetime());
        let mut same = lifetime();
        (same.packets, same.bytes, same.last_seen) = ([9, 9], [9, 9], 0);
        assert_eq!(leaf_hash(&same), base);
        let changes: [fn(&mut Lifetime); 8] = [
            |l| l.private_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 6)),
            |l| l.private_port += 1,
            |l| l.end = None,
            |l| l.end_reason = None,
            |l| l.ifname = "em1".into(),
            |l| l.nat = false,
            |l| l.start += 1,
            |l| l.state_id += 1,
        ];
        let mut all = vec![leaf(&lifetime())];
        for change in changes {
            let mut l = lifetime();
            change(&mut l);
            assert_ne!(leaf_hash(&l), base);
            all.push(leaf(&l));
        }
        // The order of a day's leaves is its own, whatever the order they come in.
        let root = day_root(all.clone());
        all.reverse();
        assert_eq!(day_root(all.clone()), root);
        assert_eq!(Tree::new(ordered(all)).root(), root);
    }

    #[test]
    fn a_published_line_reads_back() {
        let r = DayRoot {
            creator_id: 0x0102abcd,
            day: 19675,
            count: 3,
            root: empty_root(),
            version: 2,
            reason: "import".into(),
        };
        let line = r.line();
        assert_eq!(
            line,
            format!("digest creator=0102abcd day=2023-11-14 lifetimes=3 root={} version=2 reason=import", hex(&empty_root()))
        );
        let logged = format!("Dec  8 01:00:00 fw pfstatelog[42]: {line}");
        assert_eq!(DayRoot::parse(&logged), Some(r));
        assert_eq!(DayRoot::parse("digest creator=1 day=2023-11-14"), None);
        assert_eq!(DayRoot::parse(&line.replace("root=e3", "root=x3")), None);
    }

    #[test]
    fn days_are_utc_by_start() {
        assert_eq!(day_name(day_of(1_700_000_000_000_000)), "2023-11-14");
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_name(-1), "1969-12-31");
        assert_eq!(parse_day("2023-11-14"), Some(day_of(1_700_000_000_000_000)));
        assert_eq!(parse_day("2023-13-01"), None);
        let (from, to) = day_range(day_of(1_700_000_000_000_000));
        assert!(from <= 1_700_000_000_000_000 && to - from == US_PER_DAY);
    }
}
