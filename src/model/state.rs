//! A pf state as every layer sees it: flavour, address family, keys, direction, the full
//! state a pfsync message carries, and the (creator, id) that names it. OpenBSD v6 and
//! FreeBSD records both decode into these types; the tracker, the store and the printers
//! use them without knowing the wire.

use super::IfName;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which pf family sent the packet (decided by the header version byte, never by action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// OpenBSD, header version 6.
    OpenBsd,
    /// FreeBSD, pfSense, OPNsense: header version 5.
    FreeBsd,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::OpenBsd => "openbsd",
            Flavor::FreeBsd => "freebsd",
        }
    }
    /// The pfsync header version it speaks, as the store records it.
    pub fn header_version(self) -> u8 {
        match self {
            Flavor::OpenBsd => 6,
            Flavor::FreeBsd => 5,
        }
    }
}

/// Address family, normalised across flavours (OpenBSD AF_INET6 = 24, FreeBSD = 28).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Af {
    Inet,
    Inet6,
    /// A value neither flavour uses for IP; kept so damage is visible, not guessed away.
    Other(u8),
}

impl Af {
    pub fn from_openbsd(v: u8) -> Af {
        Af::from_code(v, 24)
    }
    pub fn to_openbsd(self) -> u8 {
        self.code(24)
    }
    pub fn from_freebsd(v: u8) -> Af {
        Af::from_code(v, 28)
    }
    pub fn to_freebsd(self) -> u8 {
        self.code(28)
    }
    /// AF_INET is 2 on both; AF_INET6 is the sender's `inet6`.
    fn from_code(v: u8, inet6: u8) -> Af {
        match v {
            2 => Af::Inet,
            v if v == inet6 => Af::Inet6,
            o => Af::Other(o),
        }
    }
    fn code(self, inet6: u8) -> u8 {
        match self {
            Af::Inet => 2,
            Af::Inet6 => inet6,
            Af::Other(o) => o,
        }
    }
    pub fn name(self) -> String {
        match self {
            Af::Inet => "inet".into(),
            Af::Inet6 => "inet6".into(),
            Af::Other(o) => format!("af{o}"),
        }
    }
}

/// pf_addr: 16 bytes; IPv4 in the first four.
pub(crate) fn addr_from(af: Af, raw: &[u8; 16]) -> IpAddr {
    match af {
        Af::Inet6 => IpAddr::V6(Ipv6Addr::from(*raw)),
        _ => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
    }
}

pub(crate) fn addr_to(a: &IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut r = [0u8; 16];
            r[..4].copy_from_slice(&v4.octets());
            r
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// One state key with its family resolved (key af, or the state af when the key's is 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub addr: [IpAddr; 2],
    pub port: [u16; 2],
    pub rdomain: u16,
    pub af: Af,
}

/// PF_IN / PF_OUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
    Other(u8),
}

impl Direction {
    pub fn from_u8(v: u8) -> Direction {
        match v {
            1 => Direction::In,
            2 => Direction::Out,
            o => Direction::Other(o),
        }
    }
    pub fn to_u8(self) -> u8 {
        match self {
            Direction::In => 1,
            Direction::Out => 2,
            Direction::Other(o) => o,
        }
    }
    pub fn name(self) -> String {
        match self {
            Direction::In => "in".into(),
            Direction::Out => "out".into(),
            Direction::Other(o) => format!("dir{o}"),
        }
    }
}

/// A full state (OpenBSD INS/UPD/DEL, FreeBSD INS/UPD 1301/1400/1500) in neutral form.
/// key[0] is the WIRE key, key[1] the STACK key (docs/pfsync.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullState {
    pub id: u64,
    pub creator_id: u32,
    pub ifname: IfName,
    pub key: [Key; 2],
    pub af: Af,
    pub proto: u8,
    pub direction: Direction,
    /// Age in seconds when the packet was built.
    pub creation: u32,
    /// Seconds until expiry when the packet was built.
    pub expire: u32,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub rule: u32,
    /// PFTM timeout index (lifecycle phase).
    pub timeout: u8,
    /// TCP/UDP peer states (src, dst).
    pub peer_state: [u8; 2],
}

impl FullState {
    /// The two keys differ: the state carries a translation.
    pub fn is_nat(&self) -> bool {
        self.key[0] != self.key[1]
    }
    /// Post-translation key (docs/pfsync.md §8: `post = key[dir==out ? 0 : 1]`).
    pub fn nk(&self) -> &Key {
        if self.direction == Direction::Out {
            &self.key[0]
        } else {
            &self.key[1]
        }
    }
    /// Pre-translation key.
    pub fn sk(&self) -> &Key {
        if self.direction == Direction::Out {
            &self.key[1]
        } else {
            &self.key[0]
        }
    }
}

/// (state id, creator id): what every compressed message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateRef {
    pub id: u64,
    pub creator_id: u32,
}

/// A map keyed by state. Keys come from the network, so the hasher is keyed at random (no
/// flooding with colliding ids), but several times cheaper than std's SipHash, which the
/// tracker and the writer paid on every message (perf: ~5 % of an import).
pub(crate) type StateMap<V> = std::collections::HashMap<StateRef, V, ahash::RandomState>;
/// The set counterpart of [`StateMap`].
pub(crate) type StateSet = std::collections::HashSet<StateRef, ahash::RandomState>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    Start,
    End,
    Other(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bus {
    pub creator_id: u32,
    pub endtime: u32,
    pub status: BusStatus,
}

/// The key a full state is tracked by.
pub fn key_of(s: &FullState) -> StateRef {
    StateRef {
        id: s.id,
        creator_id: s.creator_id,
    }
}
