//! A full state as an open lifetime keeps it in memory: the same facts as [`FullState`] in
//! 120 bytes instead of 168.
//!
//! Every open state is held this way (by the tracker, and by the recorder's store while it
//! is journaled), so its size is most of what an open state costs: a [`FullState`] spends 68
//! bytes on its four addresses (an `IpAddr` is 17), where the addresses of an IPv4 state fit
//! in 16. A lifetime is 160 bytes this way, against 208 (mimalloc hands out 160 and 224).
//!
//! What is left out: `creation`, which only gives the start (start = first full message −
//! creation), so it is given back from the two ([`OpenState::to_full`]).

use super::lifetime::Parts;
use super::{Af, Direction, FullState, IfName, Key, OpenState, StateRef};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The four addresses: key 0's two, then key 1's.
type Wide = [[u8; 16]; 4];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactState {
    pub id: u64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// The four addresses when all are IPv4 (`wide` is None)...
    addr4: [[u8; 4]; 4],
    /// ...else all four, 16 bytes each, with `v4` saying which are IPv4.
    wide: Option<Box<Wide>>,
    pub creator_id: u32,
    pub expire: u32,
    pub rule: u32,
    port: [u16; 4],
    rdomain: [u16; 2],
    pub ifname: IfName,
    pub af: Af,
    key_af: [Af; 2],
    pub direction: Direction,
    pub proto: u8,
    pub timeout: u8,
    pub peer_state: [u8; 2],
    /// Bit i: address i of `wide` is IPv4.
    v4: u8,
}

impl CompactState {
    pub fn new(s: &FullState) -> CompactState {
        let mut c = CompactState {
            id: s.id,
            packets: s.packets,
            bytes: s.bytes,
            addr4: [[0; 4]; 4],
            wide: None,
            creator_id: s.creator_id,
            expire: s.expire,
            rule: s.rule,
            port: [0; 4],
            rdomain: [0; 2],
            ifname: s.ifname,
            af: s.af,
            key_af: [s.key[0].af, s.key[1].af],
            direction: s.direction,
            proto: s.proto,
            timeout: s.timeout,
            peer_state: s.peer_state,
            v4: 0,
        };
        c.set_keys(&s.key);
        c
    }

    fn set_keys(&mut self, key: &[Key; 2]) {
        let addrs = [
            key[0].addr[0],
            key[0].addr[1],
            key[1].addr[0],
            key[1].addr[1],
        ];
        self.port = [
            key[0].port[0],
            key[0].port[1],
            key[1].port[0],
            key[1].port[1],
        ];
        self.rdomain = [key[0].rdomain, key[1].rdomain];
        self.key_af = [key[0].af, key[1].af];
        if addrs.iter().all(IpAddr::is_ipv4) {
            for (to, a) in self.addr4.iter_mut().zip(&addrs) {
                if let IpAddr::V4(v4) = a {
                    *to = v4.octets();
                }
            }
            self.wide = None;
            self.v4 = 0;
        } else {
            let mut wide: Wide = [[0; 16]; 4];
            self.v4 = 0;
            for (i, a) in addrs.iter().enumerate() {
                wide[i] = super::addr_to(a);
                if a.is_ipv4() {
                    self.v4 |= 1 << i;
                }
            }
            self.addr4 = [[0; 4]; 4];
            self.wide = Some(Box::new(wide));
        }
    }

    fn addr(&self, i: usize) -> IpAddr {
        match &self.wide {
            None => IpAddr::V4(Ipv4Addr::from(self.addr4[i])),
            Some(w) if self.v4 & (1 << i) != 0 => {
                IpAddr::V4(Ipv4Addr::new(w[i][0], w[i][1], w[i][2], w[i][3]))
            }
            Some(w) => IpAddr::V6(Ipv6Addr::from(w[i])),
        }
    }

    /// Key `k` (0: the wire key, 1: the stack key).
    pub fn key(&self, k: usize) -> Key {
        Key {
            addr: [self.addr(2 * k), self.addr(2 * k + 1)],
            port: [self.port[2 * k], self.port[2 * k + 1]],
            rdomain: self.rdomain[k],
            af: self.key_af[k],
        }
    }

    pub fn state_ref(&self) -> StateRef {
        StateRef {
            id: self.id,
            creator_id: self.creator_id,
        }
    }

    /// [`crate::track::same_keys`] against a full state.
    pub fn same_keys(&self, s: &FullState) -> bool {
        self.proto == s.proto
            && self.af == s.af
            && self.key(0) == s.key[0]
            && self.key(1) == s.key[1]
    }

    /// The full state, with the `creation` given.
    pub fn to_full(&self, creation: u32) -> FullState {
        FullState {
            id: self.id,
            creator_id: self.creator_id,
            ifname: self.ifname,
            key: [self.key(0), self.key(1)],
            af: self.af,
            proto: self.proto,
            direction: self.direction,
            creation,
            expire: self.expire,
            packets: self.packets,
            bytes: self.bytes,
            rule: self.rule,
            timeout: self.timeout,
            peer_state: self.peer_state,
        }
    }
}

impl Parts for CompactState {
    fn take_keys(&mut self, s: &FullState) {
        self.id = s.id;
        self.creator_id = s.creator_id;
        self.ifname = s.ifname;
        self.af = s.af;
        self.direction = s.direction;
        self.proto = s.proto;
        self.set_keys(&s.key);
    }

    fn take_counters(&mut self, s: &FullState) {
        self.expire = s.expire;
        self.packets = s.packets;
        self.bytes = s.bytes;
        self.rule = s.rule;
        self.timeout = s.timeout;
        self.peer_state = s.peer_state;
    }
}

impl OpenState<CompactState> {
    /// A lifetime kept compact.
    pub fn compact(o: &OpenState) -> OpenState<CompactState> {
        OpenState {
            state: CompactState::new(&o.state),
            start: o.start,
            first_full: o.first_full,
            updated: o.updated,
            last_seen: o.last_seen,
            flavor: o.flavor,
        }
    }

    /// The lifetime in full; `creation` is the earliest full message's, the time from the
    /// start to it.
    pub fn to_full(&self) -> OpenState {
        let creation =
            (self.first_full.saturating_sub(self.start) / 1_000_000).clamp(0, u32::MAX as i64);
        OpenState {
            state: self.state.to_full(creation as u32),
            start: self.start,
            first_full: self.first_full,
            updated: self.updated,
            last_seen: self.last_seen,
            flavor: self.flavor,
        }
    }

    pub fn state_ref(&self) -> StateRef {
        self.state.state_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flavor;

    fn full(addrs: [&str; 4], af: Af) -> FullState {
        let ip = |s: &str| s.parse::<IpAddr>().expect("test address");
        let key = |a: &str, b: &str, p: u16, af: Af| Key {
            addr: [ip(a), ip(b)],
            port: [443, p],
            rdomain: 3,
            af,
        };
        FullState {
            id: 0x0123_4567_89ab_cdef,
            creator_id: 0xdead_beef,
            ifname: "vlan12".into(),
            key: [
                key(addrs[0], addrs[1], 61234, af),
                key(addrs[2], addrs[3], 51234, Af::Other(24)),
            ],
            af,
            proto: 17,
            direction: Direction::Other(9),
            creation: 7,
            expire: 86400,
            packets: [1, u64::MAX],
            bytes: [3, 4],
            rule: u32::MAX,
            timeout: 5,
            peer_state: [6, 7],
        }
    }

    #[test]
    fn a_lifetime_kept_compact_is_the_same_lifetime_and_smaller() {
        let mixed = [
            full(
                [
                    "93.184.216.34",
                    "203.0.113.1",
                    "93.184.216.34",
                    "192.168.1.10",
                ],
                Af::Inet,
            ),
            full(
                [
                    "2001:db8::1",
                    "2001:db8::2",
                    "2001:db8::1",
                    "::ffff:10.0.0.1",
                ],
                Af::Inet6,
            ),
            // NAT64: the stack key is IPv4, the wire key IPv6.
            full(
                ["2001:db8::1", "64:ff9b::a00:1", "10.0.0.1", "192.0.2.1"],
                Af::Other(99),
            ),
            full(["0.0.0.0", "255.255.255.255", "::", "1.2.3.4"], Af::Inet),
        ];
        for s in mixed {
            let o = OpenState::new(s.clone(), 93_000_000, 100_000_000, Flavor::FreeBsd);
            let c = OpenState::<CompactState>::compact(&o);
            assert_eq!(c.to_full(), o, "round trip of {s:?}");
            assert!(c.state.same_keys(&s));
            let mut other = s.clone();
            other.key[1].port[0] = 80;
            assert!(!c.state.same_keys(&other));
        }
        assert_eq!(std::mem::size_of::<OpenState<CompactState>>(), 160);
    }

    #[test]
    fn compact_lifetimes_merge_as_full_ones() {
        let a = full(["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"], Af::Inet);
        let mut b = full(
            ["2001:db8::1", "2001:db8::2", "2001:db8::1", "2001:db8::2"],
            Af::Inet6,
        );
        b.packets = [9, 9];
        b.rule = 4;
        b.creation = 10;
        let mut f = OpenState::new(a.clone(), 90_000_000, 100_000_000, Flavor::OpenBsd);
        let mut c = OpenState::<CompactState>::compact(&f);
        for l in [&mut f as &mut dyn Merge, &mut c] {
            l.merge(&b, 50_000_000, 60_000_000);
            l.refresh_with(&a, 200_000_000);
            l.refresh_with(&b, 150_000_000);
        }
        assert_eq!(c.to_full(), f);
    }

    trait Merge {
        fn merge(&mut self, s: &FullState, start: i64, seen: i64);
        fn refresh_with(&mut self, s: &FullState, seen: i64);
    }

    impl<S: Parts> Merge for OpenState<S> {
        fn merge(&mut self, s: &FullState, start: i64, seen: i64) {
            self.merge_open(s, start, seen, Flavor::FreeBsd);
        }
        fn refresh_with(&mut self, s: &FullState, seen: i64) {
            self.refresh(s, seen);
        }
    }
}
