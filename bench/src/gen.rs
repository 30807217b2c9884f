//! Deterministic synthetic pfsync traffic, for benchmarks and large-scale tests.
//!
//! [`Generator`] simulates a pair of pf firewalls (an HA pair: two creator ids, each its own
//! sender) announcing states the way `if_pfsync.c` does (OpenBSD sys/net/if_pfsync.c; docs/pfsync.md): every new state is
//! an INS built when its packet is flushed (so `creation` and `expire` are relative to the
//! flush), most states end with a DEL_C, long-lived and TCP states get UPD_C, messages are
//! packed into packets of at most the 1500-byte MTU (≤ 5 full states) with sections in the
//! ≥ 7.4 order (UPD_C, DEL_C, INS), and a packet leaves when it is full or 1 s after its
//! first message. The traffic mix: outbound NAT of many private hosts onto a few public
//! addresses with pf's default random port range (so public ip:port pairs are reused),
//! optional "hot" static-port pairs reused a chosen number of times, rdr to internal
//! servers, untranslated LAN-side states, IPv6 (NAT66 and plain), ICMP echo with id
//! translation.
//!
//! Everything is a pure function of [`GenConfig`] (no clock, no `rand`): the same seed gives
//! the same packets, byte for byte. Two outputs:
//! - [`PcapWriter`]: a classic pcap file (Ethernet + IPv4 proto 240 TTL 255 to 224.0.0.240,
//!   or LINKTYPE_PFSYNC 246 with the pfsync header first), for `pfstatelog import`;
//! - [`DbBuilder`]: the rows the recorder would write for the same packets, bulk-loaded
//!   (the messages go through the real [`Tracker`]; only the SQL is batched differently),
//!   for building 50–100 million-state databases in minutes.

use pfstatelog::model::{Af, Direction, Flavor, FullState, Key, StateRef};
use pfstatelog::model::{Event, Micros};
use pfstatelog::store::sqlite::{self as store, addr_blob};
use pfstatelog::track::Tracker;
use pfstatelog::wire::{freebsd, openbsd, Decoded, Message, UpdC};
use rusqlite::{params, Connection};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ---------------------------------------------------------------------------------------
// Random numbers: splitmix64 (a tiny, well-mixed, seedable generator; enough for traffic).

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Log-uniform in [lo, hi] (scale-free durations).
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
    /// Exponential with the given mean (Poisson arrivals).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

// ---------------------------------------------------------------------------------------
// Configuration.

/// 2026-01-05T00:00:00Z, a Monday.
pub const DEFAULT_START_US: Micros = 1_767_571_200_000_000;

/// NAT pool of the outbound rules (pf picks one per private host: `sticky-address`).
pub const NAT_POOL_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(203, 0, 113, 1),
    Ipv4Addr::new(203, 0, 113, 2),
    Ipv4Addr::new(203, 0, 113, 3),
    Ipv4Addr::new(203, 0, 113, 4),
];
/// Public address of the rdr rules (ports 443, 80, 25 to internal servers).
pub const RDR_PUBLIC: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
pub const RDR_PORTS: [u16; 3] = [443, 80, 25];
/// NAT66 public address.
pub const NAT66_PUBLIC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
/// Hot static-port pairs live on the first pool address from this port up.
pub const HOT_PORT_BASE: u16 = 40000;
/// pf's default `nat-to` port range.
pub const NAT_PORT_LO: u64 = 50001;
pub const NAT_PORT_HI: u64 = 65535;

pub const EGRESS: &str = "em0";
pub const LAN: &str = "em1";

/// What a generated state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Outbound NAT, UDP (DNS, NTP, QUIC): 25–70 s.
    Nat4Udp,
    /// Outbound NAT, TCP: 8 s–15 min, log-uniform.
    Nat4Tcp,
    /// Outbound NAT, TCP, 1–8 h, with an UPD_C every ~5 min.
    Nat4Long,
    /// Outbound NAT of an ICMP echo (the id translated).
    Icmp4,
    /// Inbound rdr to an internal server.
    Rdr,
    /// An untranslated LAN-side state of an outbound connection (in on em1).
    Lan,
    /// Outbound NAT66.
    Nat66,
    /// Outbound IPv6 without translation.
    V6Plain,
    /// A static-port UDP mapping of one chatty host on a hot public ip:port.
    Hot,
}

pub const KINDS: [Kind; 9] = [
    Kind::Nat4Udp,
    Kind::Nat4Tcp,
    Kind::Nat4Long,
    Kind::Icmp4,
    Kind::Rdr,
    Kind::Lan,
    Kind::Nat66,
    Kind::V6Plain,
    Kind::Hot,
];

/// Share of each kind among the non-hot states.
const MIX: [(Kind, f64); 8] = [
    (Kind::Nat4Udp, 0.34),
    (Kind::Nat4Tcp, 0.26),
    (Kind::Nat4Long, 0.01),
    (Kind::Icmp4, 0.04),
    (Kind::Rdr, 0.03),
    (Kind::Lan, 0.20),
    (Kind::Nat66, 0.06),
    (Kind::V6Plain, 0.06),
];

#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    /// State lifetimes to create (INS messages).
    pub states: u64,
    /// New states per second of capture time.
    pub rate: f64,
    /// Capture time of the first state, µs UTC.
    pub start_us: Micros,
    /// Send realistic UPD_C (TCP established and closing, UDP replies, long-lived refresh).
    /// Off: INS and DEL_C only.
    pub updates: bool,
    /// Number of hot static-port public pairs ...
    pub hot_pairs: u32,
    /// ... each used about this many times over the run (0: none).
    pub reuse: u64,
    /// Delete every state before the end (all lifetimes closed). Otherwise the run stops a
    /// minute after the last new state and longer-lived states stay open, as in a real
    /// capture.
    pub drain: bool,
    /// INS only: no UPD_C and no DEL_C, so every state stays open (a flood of INS that are
    /// never deleted, for measuring the memory an open state costs). Overrides `drain`.
    pub never_end: bool,
    /// Private IPv4 hosts (10.0.0.0/16), activity skewed towards low indices.
    pub private_hosts: u32,
    /// The HA pair: the first creates most states, the second `backup_share` of them.
    pub creators: [u32; 2],
    pub backup_share: f64,
    /// OpenBSD v6 (default) or FreeBSD (v5 header, 1400 records).
    pub flavor: Flavor,
}

impl Default for GenConfig {
    fn default() -> GenConfig {
        GenConfig {
            seed: 1,
            states: 1_000_000,
            rate: 1200.0,
            start_us: DEFAULT_START_US,
            updates: true,
            hot_pairs: 0,
            reuse: 0,
            drain: false,
            never_end: false,
            private_hosts: 20_000,
            creators: [0x1a2b_3c4d, 0x5e6f_7a8b],
            backup_share: 0.1,
            flavor: Flavor::OpenBsd,
        }
    }
}

impl GenConfig {
    /// Probability that a new state is on a hot pair.
    pub fn hot_share(&self) -> f64 {
        if self.hot_pairs == 0 || self.reuse == 0 || self.states == 0 {
            0.0
        } else {
            (self.hot_pairs as f64 * self.reuse as f64 / self.states as f64).min(0.5)
        }
    }
    /// The hot public pairs (address, port).
    pub fn hot_list(&self) -> Vec<(IpAddr, u16)> {
        (0..self.hot_pairs)
            .map(|i| (IpAddr::V4(NAT_POOL_V4[0]), HOT_PORT_BASE + i as u16))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Addresses and ports.

/// Private IPv4 host `i` (0-based): 10.0.0.1 upwards.
pub fn private_v4(i: u32) -> Ipv4Addr {
    let n = 0x0a00_0000u32 + 1 + i;
    Ipv4Addr::from(n)
}

fn private_v6(i: u32) -> Ipv6Addr {
    let iid = splitmix(i as u64 ^ 0x6666);
    Ipv6Addr::from(((0xfd00_0001u128) << 96) | (iid as u128 & 0xffff_ffff_ffff_ffff))
}

fn global_v6(i: u32) -> Ipv6Addr {
    let iid = splitmix(i as u64 ^ 0x7777);
    Ipv6Addr::from(((0x2001_0db8_0100_0000u128) << 64) | iid as u128)
}

fn splitmix(x: u64) -> u64 {
    Rng::new(x).next_u64()
}

/// A remote IPv4 peer: half from 2,000 popular servers, half anywhere public-looking.
fn remote_v4(r: &mut Rng) -> Ipv4Addr {
    let n = if r.chance(0.5) {
        splitmix(r.below(2000) + 1) as u32
    } else {
        r.next_u64() as u32
    };
    let mut o = n.to_be_bytes();
    // Keep it out of 0/8, 10/8, 127/8, 224/3 and our own 203.0.113/24.
    o[0] = match o[0] % 223 {
        0 | 10 | 127 | 203 => 100,
        x => x,
    };
    Ipv4Addr::from(o)
}

fn remote_v6(r: &mut Rng) -> Ipv6Addr {
    let hi = if r.chance(0.5) {
        0x2a00_1450_0000_0000u64 | (r.below(500) << 16)
    } else {
        0x2600_0000_0000_0000u64 | (r.next_u64() >> 8)
    };
    Ipv6Addr::from(((hi as u128) << 64) | r.next_u64() as u128)
}

fn tcp_port(r: &mut Rng) -> u16 {
    match r.below(100) {
        0..70 => 443,
        70..90 => 80,
        90..93 => 22,
        93..96 => 993,
        _ => r.range(1024, 65535) as u16,
    }
}

fn udp_port(r: &mut Rng) -> u16 {
    match r.below(100) {
        0..60 => 53,
        60..70 => 123,
        70..90 => 443,
        _ => r.range(1024, 65535) as u16,
    }
}

fn ephemeral(r: &mut Rng) -> u16 {
    r.range(32768, 60999) as u16
}

// PFTM timeout indices and default timeouts (OpenBSD pfvar.h / pf.conf(5)).
const PFTM_TCP_FIRST_PACKET: u8 = 0;
const PFTM_TCP_ESTABLISHED: u8 = 2;
const PFTM_TCP_FIN_WAIT: u8 = 4;
const PFTM_UDP_FIRST_PACKET: u8 = 6;
const PFTM_UDP_MULTIPLE: u8 = 8;
const PFTM_ICMP_FIRST_PACKET: u8 = 9;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const ICMP_ECHO: u16 = 8;

// ---------------------------------------------------------------------------------------
// The simulation.

/// One packet as a sender would put it on the sync link.
#[derive(Debug, Clone)]
pub struct GenPacket {
    pub ts_us: Micros,
    /// 0 = primary firewall, 1 = backup.
    pub sender: usize,
    /// In section order.
    pub msgs: Vec<Message>,
}

/// What the generator made, for the bench harness (counts, hot pairs, time span).
#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub states: u64,
    pub by_kind: [u64; 9],
    pub ins: u64,
    pub upd_c: u64,
    pub del_c: u64,
    pub packets: u64,
    pub first_us: Option<Micros>,
    pub last_us: Option<Micros>,
    /// Most states open at once (what a recorder must hold).
    pub peak_open: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Act {
    UpdC,
    DelC,
}

/// A state the simulation will still send something about.
#[derive(Debug, Clone)]
struct Live {
    sender: u8,
    key: StateRef,
    kind: Kind,
    proto: u8,
    start: Micros,
    end: Micros,
}

struct Sender {
    creator: u32,
    next_id: u64,
    updc: Vec<UpdC>,
    delc: Vec<StateRef>,
    ins: Vec<(FullState, Micros)>,
    bytes: usize,
    deadline: Option<Micros>,
}

/// pfsync packet payload limit: MTU 1500 minus the 20-byte IP header.
const MAX_PFSYNC: usize = 1480;
const FLUSH_US: Micros = 1_000_000;
/// Sender-to-capture latency added to packet timestamps.
const LATENCY_US: Micros = 40;

pub struct Generator {
    pub cfg: GenConfig,
    rng: Rng,
    senders: [Sender; 2],
    slab: Vec<Option<Live>>,
    free: Vec<usize>,
    heap: BinaryHeap<Reverse<(Micros, u64, usize, Act)>>,
    seq: u64,
    created: u64,
    next_new: Micros,
    last_new: Micros,
    out: VecDeque<GenPacket>,
    pub stats: GenStats,
    hot: Vec<(IpAddr, u16)>,
    hot_share: f64,
    mix_cum: Vec<(Kind, f64)>,
    done: bool,
    state_size: usize,
    trailer: usize,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Generator {
        let mut rng = Rng::new(cfg.seed);
        // pf's state id counter starts at (boot time << 32).
        let boot = (cfg.start_us / 1_000_000) as u64 - 86_400 - rng.below(86_400 * 30);
        let sender = |creator: u32, boot: u64| Sender {
            creator,
            next_id: boot << 32,
            updc: Vec::new(),
            delc: Vec::new(),
            ins: Vec::new(),
            bytes: 0,
            deadline: None,
        };
        let boot2 = boot - rng.below(86_400 * 7);
        let mut acc = 0.0;
        let mix_cum = MIX
            .iter()
            .map(|(k, p)| {
                acc += p;
                (*k, acc)
            })
            .collect();
        let (state_size, trailer) = match cfg.flavor {
            Flavor::OpenBsd => (openbsd::size::STATE, 0),
            Flavor::FreeBsd => (freebsd::size::STATE_1400, 4),
        };
        Generator {
            senders: [
                sender(cfg.creators[0], boot),
                sender(cfg.creators[1], boot2),
            ],
            slab: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            created: 0,
            next_new: cfg.start_us,
            last_new: cfg.start_us,
            out: VecDeque::new(),
            stats: GenStats::default(),
            hot: cfg.hot_list(),
            hot_share: cfg.hot_share(),
            mix_cum,
            done: false,
            state_size,
            trailer,
            rng,
            cfg,
        }
    }

    /// Open states still in the simulation (what the recorder would hold too).
    pub fn live(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    fn pick_kind(&mut self) -> Kind {
        if self.hot_share > 0.0 && self.rng.chance(self.hot_share) {
            return Kind::Hot;
        }
        let u = self.rng.unit() * self.mix_cum.last().map_or(1.0, |x| x.1);
        for (k, c) in &self.mix_cum {
            if u < *c {
                return *k;
            }
        }
        Kind::Nat4Udp
    }

    /// Build a new state's full form; returns it, its duration (µs) and proto.
    fn new_state(&mut self, kind: Kind, id: u64, creator: u32) -> (FullState, Micros) {
        let r = &mut self.rng;
        let v4 = |a: Ipv4Addr| IpAddr::V4(a);
        let key = |a0: IpAddr, p0: u16, a1: IpAddr, p1: u16| {
            let af = if a0.is_ipv4() { Af::Inet } else { Af::Inet6 };
            Key {
                addr: [a0, a1],
                port: [p0, p1],
                rdomain: 0,
                af,
            }
        };
        let sec = |s: f64| (s * 1e6) as Micros;
        let tcp_dur = |r: &mut Rng| sec(r.log_uniform(8.0, 900.0));
        let udp_dur = |r: &mut Rng| sec(25.0 + r.unit() * 45.0);
        // (wire key, stack key, direction, ifname, proto, duration, rule)
        let (k0, k1, dir, ifname, proto, dur, rule) = match kind {
            Kind::Nat4Udp | Kind::Nat4Tcp | Kind::Nat4Long | Kind::Icmp4 => {
                let h = {
                    let u = r.unit();
                    ((self.cfg.private_hosts as f64) * u * u) as u32
                };
                let private = v4(private_v4(h));
                let public = v4(NAT_POOL_V4[(splitmix(h as u64) % 4) as usize]);
                let remote = v4(remote_v4(r));
                let pub_port = r.range(NAT_PORT_LO, NAT_PORT_HI) as u16;
                match kind {
                    Kind::Icmp4 => {
                        let idq = r.below(65536) as u16;
                        (
                            key(remote, ICMP_ECHO, public, pub_port),
                            key(remote, ICMP_ECHO, private, idq),
                            Direction::Out,
                            EGRESS,
                            IPPROTO_ICMP,
                            sec(10.0 + r.unit() * 15.0),
                            3,
                        )
                    }
                    Kind::Nat4Udp => {
                        let rp = udp_port(r);
                        let pp = ephemeral(r);
                        (
                            key(remote, rp, public, pub_port),
                            key(remote, rp, private, pp),
                            Direction::Out,
                            EGRESS,
                            IPPROTO_UDP,
                            udp_dur(r),
                            3,
                        )
                    }
                    _ => {
                        let rp = tcp_port(r);
                        let pp = ephemeral(r);
                        let d = if kind == Kind::Nat4Long {
                            sec(r.log_uniform(3600.0, 8.0 * 3600.0))
                        } else {
                            tcp_dur(r)
                        };
                        (
                            key(remote, rp, public, pub_port),
                            key(remote, rp, private, pp),
                            Direction::Out,
                            EGRESS,
                            IPPROTO_TCP,
                            d,
                            3,
                        )
                    }
                }
            }
            Kind::Hot => {
                let i = r.below(self.hot.len() as u64) as usize;
                let (public, port) = self.hot[i];
                let private = v4(Ipv4Addr::new(10, 0, 200, 1 + (i % 250) as u8));
                let remote = v4(remote_v4(r));
                let rp = r.range(1024, 65535) as u16;
                (
                    key(remote, rp, public, port),
                    key(remote, rp, private, port),
                    Direction::Out,
                    EGRESS,
                    IPPROTO_UDP,
                    sec(10.0 + r.unit() * 30.0),
                    4,
                )
            }
            Kind::Rdr => {
                let i = r.below(RDR_PORTS.len() as u64) as usize;
                let client = v4(remote_v4(r));
                let cp = ephemeral(r);
                let server = v4(Ipv4Addr::new(10, 0, 100, 5 + i as u8));
                let inner = [8443, 8080, 25][i];
                (
                    key(client, cp, v4(RDR_PUBLIC), RDR_PORTS[i]),
                    key(client, cp, server, inner),
                    Direction::In,
                    EGRESS,
                    IPPROTO_TCP,
                    sec(r.log_uniform(5.0, 300.0)),
                    7,
                )
            }
            Kind::Lan => {
                let h = {
                    let u = r.unit();
                    ((self.cfg.private_hosts as f64) * u * u) as u32
                };
                let private = v4(private_v4(h));
                let remote = v4(remote_v4(r));
                let pp = ephemeral(r);
                let (proto, rp, d) = if r.chance(0.5) {
                    (IPPROTO_TCP, tcp_port(r), tcp_dur(r))
                } else {
                    (IPPROTO_UDP, udp_port(r), udp_dur(r))
                };
                let k = key(private, pp, remote, rp);
                (k.clone(), k, Direction::In, LAN, proto, d, 1)
            }
            Kind::Nat66 | Kind::V6Plain => {
                let h = r.below(self.cfg.private_hosts as u64 / 4 + 1) as u32;
                let remote = IpAddr::V6(remote_v6(r));
                let pp = ephemeral(r);
                let (proto, rp, d) = if r.chance(0.5) {
                    (IPPROTO_TCP, tcp_port(r), tcp_dur(r))
                } else {
                    (IPPROTO_UDP, udp_port(r), udp_dur(r))
                };
                if kind == Kind::Nat66 {
                    let pub_port = r.range(NAT_PORT_LO, NAT_PORT_HI) as u16;
                    (
                        key(remote, rp, IpAddr::V6(NAT66_PUBLIC), pub_port),
                        key(remote, rp, IpAddr::V6(private_v6(h)), pp),
                        Direction::Out,
                        EGRESS,
                        proto,
                        d,
                        5,
                    )
                } else {
                    let k = key(remote, rp, IpAddr::V6(global_v6(h)), pp);
                    (k.clone(), k, Direction::Out, EGRESS, proto, d, 6)
                }
            }
        };
        let (timeout, peer, expire, pk) = match proto {
            IPPROTO_TCP => (PFTM_TCP_FIRST_PACKET, [2, 0], 120, 60),
            IPPROTO_UDP => (PFTM_UDP_FIRST_PACKET, [1, 0], 60, 76),
            _ => (PFTM_ICMP_FIRST_PACKET, [0, 0], 20, 84),
        };
        let af = k0.af;
        let s = FullState {
            id,
            creator_id: creator,
            ifname: ifname.into(),
            key: [k0, k1],
            af,
            proto,
            direction: dir,
            creation: 0,
            expire,
            packets: [1, 0],
            bytes: [pk, 0],
            rule,
            timeout,
            peer_state: peer,
        };
        (s, dur.max(3_000_000))
    }

    fn push_event(&mut self, t: Micros, slot: usize, act: Act) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, slot, act)));
    }

    fn create(&mut self, t: Micros) {
        let kind = self.pick_kind();
        let sender = if self.rng.chance(self.cfg.backup_share) {
            1
        } else {
            0
        };
        let id = self.senders[sender].next_id;
        self.senders[sender].next_id += 1;
        let creator = self.senders[sender].creator;
        let (s, dur) = self.new_state(kind, id, creator);
        let proto = s.proto;
        let key = StateRef {
            id,
            creator_id: creator,
        };
        self.stats.states += 1;
        self.stats.by_kind[KINDS.iter().position(|k| *k == kind).unwrap_or(0)] += 1;
        let end = t + dur;
        // First UPD_C: ~1.5 s in (handshake done / first reply), if any.
        let first_upd = if !self.cfg.updates {
            Micros::MAX
        } else {
            match kind {
                Kind::Nat4Udp | Kind::Hot => {
                    if self.rng.chance(0.6) {
                        t + 1_200_000 + self.rng.below(800_000) as Micros
                    } else {
                        Micros::MAX
                    }
                }
                Kind::Icmp4 => Micros::MAX,
                _ => t + 1_200_000 + self.rng.below(800_000) as Micros,
            }
        };
        let live = Live {
            sender: sender as u8,
            key,
            kind,
            proto,
            start: t,
            end,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slab[i] = Some(live);
                i
            }
            None => {
                self.slab.push(Some(live));
                self.slab.len() - 1
            }
        };
        if !self.cfg.never_end {
            if first_upd < end - 1_100_000 {
                self.push_event(first_upd, slot, Act::UpdC);
            }
            self.push_event(end, slot, Act::DelC);
        }
        self.enqueue(t, sender, Pending::Ins(s, t));
    }

    /// A message enters a sender's packet; a packet that would overflow leaves first.
    fn enqueue(&mut self, t: Micros, sender: usize, m: Pending) {
        let (sz, section_empty) = {
            let s = &self.senders[sender];
            match &m {
                Pending::Ins(..) => (self.state_size, s.ins.is_empty()),
                Pending::UpdC(_) => (openbsd::size::UPD_C, s.updc.is_empty()),
                Pending::DelC(_) => (openbsd::size::DEL_C, s.delc.is_empty()),
            }
        };
        let add = sz + if section_empty { 4 } else { 0 };
        if self.senders[sender].bytes + add > MAX_PFSYNC {
            self.flush(sender, t);
        }
        let s = &mut self.senders[sender];
        if s.bytes == 0 {
            s.bytes = 20 + self.trailer;
            s.deadline = Some(t + FLUSH_US);
        }
        let section_empty = match &m {
            Pending::Ins(..) => s.ins.is_empty(),
            Pending::UpdC(_) => s.updc.is_empty(),
            Pending::DelC(_) => s.delc.is_empty(),
        };
        s.bytes += sz + if section_empty { 4 } else { 0 };
        match m {
            Pending::Ins(st, start) => {
                s.ins.push((st, start));
                self.stats.ins += 1;
            }
            Pending::UpdC(u) => {
                s.updc.push(u);
                self.stats.upd_c += 1;
            }
            Pending::DelC(r) => {
                s.delc.push(r);
                self.stats.del_c += 1;
            }
        }
    }

    /// Build the sender's packet at time `t` (values of full states taken now).
    fn flush(&mut self, sender: usize, t: Micros) {
        let s = &mut self.senders[sender];
        if s.bytes == 0 {
            return;
        }
        let mut msgs = Vec::with_capacity(s.updc.len() + s.delc.len() + s.ins.len());
        msgs.extend(s.updc.drain(..).map(Message::UpdC));
        msgs.extend(s.delc.drain(..).map(Message::DelC));
        for (mut st, start) in s.ins.drain(..) {
            let age = ((t - start).max(0) / 1_000_000) as u32;
            st.creation = age;
            st.expire = st.expire.saturating_sub(age);
            msgs.push(Message::Ins(st));
        }
        s.bytes = 0;
        s.deadline = None;
        let ts = t + LATENCY_US;
        self.stats.packets += 1;
        self.stats.first_us.get_or_insert(ts);
        self.stats.last_us = Some(ts);
        self.out.push_back(GenPacket {
            ts_us: ts,
            sender,
            msgs,
        });
    }

    fn finish_time(&self) -> Micros {
        self.last_new + 60_000_000
    }

    /// Advance the simulation by one step; false when nothing is left.
    fn step(&mut self) -> bool {
        if self.done {
            return false;
        }
        let creating = self.created < self.cfg.states;
        let t_new = if creating { self.next_new } else { Micros::MAX };
        let t_ev = match self.heap.peek() {
            Some(Reverse((t, ..))) if self.cfg.drain || creating || *t <= self.finish_time() => *t,
            _ => Micros::MAX,
        };
        let (t_flush, who) = (0..2)
            .filter_map(|i| self.senders[i].deadline.map(|d| (d, i)))
            .min()
            .unwrap_or((Micros::MAX, 0));
        let t = t_new.min(t_ev).min(t_flush);
        if t == Micros::MAX {
            self.done = true;
            return false;
        }
        if t == t_flush {
            self.flush(who, t);
        } else if t == t_ev {
            let Some(Reverse((t, _, slot, act))) = self.heap.pop() else {
                return true;
            };
            self.event(t, slot, act);
        } else {
            self.create(t);
            self.created += 1;
            self.stats.peak_open = self.stats.peak_open.max(self.live() as u64);
            self.last_new = t;
            let gap = self.rng.exp(1e6 / self.cfg.rate).max(1.0) as Micros;
            self.next_new = t + gap;
        }
        true
    }

    fn event(&mut self, t: Micros, slot: usize, act: Act) {
        let Some(l) = self.slab[slot].clone() else {
            return;
        };
        match act {
            Act::DelC => {
                self.slab[slot] = None;
                self.free.push(slot);
                self.enqueue(t, l.sender as usize, Pending::DelC(l.key));
            }
            Act::UpdC => {
                let (timeout, peer) = match l.proto {
                    IPPROTO_TCP if t >= l.end - 45_000_000 && l.end - l.start > 60_000_000 => {
                        (PFTM_TCP_FIN_WAIT, [9, 10])
                    }
                    IPPROTO_TCP => (PFTM_TCP_ESTABLISHED, [4, 4]),
                    _ => (PFTM_UDP_MULTIPLE, [2, 2]),
                };
                self.enqueue(
                    t,
                    l.sender as usize,
                    Pending::UpdC(UpdC {
                        id: l.key.id,
                        creator_id: l.key.creator_id,
                        expire: 0,
                        timeout,
                        peer_state: peer,
                    }),
                );
                // Next: long-lived states every ~5 min; TCP once more when closing.
                let next = match l.kind {
                    Kind::Nat4Long => t + 270_000_000 + self.rng.below(60_000_000) as Micros,
                    _ if l.proto == IPPROTO_TCP
                        && timeout == PFTM_TCP_ESTABLISHED
                        && l.end - l.start > 60_000_000 =>
                    {
                        l.end - 45_000_000
                    }
                    _ => Micros::MAX,
                };
                if next < l.end - 1_100_000 && next > t + 1_100_000 {
                    self.push_event(next, slot, Act::UpdC);
                }
            }
        }
    }

    /// The next packet, in capture order.
    pub fn next_packet(&mut self) -> Option<GenPacket> {
        loop {
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
            if !self.step() {
                return self.out.pop_front();
            }
        }
    }
}

enum Pending {
    Ins(FullState, Micros),
    UpdC(UpdC),
    DelC(StateRef),
}

impl Iterator for Generator {
    type Item = GenPacket;
    fn next(&mut self) -> Option<GenPacket> {
        self.next_packet()
    }
}

// ---------------------------------------------------------------------------------------
// Encoding and pcap output.

/// The pfsync packet bytes (header onward) of a generated packet.
pub fn encode_pfsync(p: &GenPacket, flavor: Flavor) -> Vec<u8> {
    match flavor {
        Flavor::OpenBsd => openbsd::emit_packet(&openbsd::sections_for(&p.msgs), [0u8; 16]),
        Flavor::FreeBsd => freebsd::emit_packet(&p.msgs, 1400, [0u8; 16]),
    }
}

/// LINKTYPE_ETHERNET and LINKTYPE_PFSYNC.
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_PFSYNC: u32 = 246;

/// Sender addresses on the sync link.
pub fn sender_ip(sender: usize) -> [u8; 4] {
    [10, 255, 0, 1 + sender as u8]
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in h.chunks(2) {
        sum += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Frame a pfsync packet: Ethernet + IPv4 (proto 240, TTL 255, DF, TOS lowdelay, to
/// 224.0.0.240), or bare for LINKTYPE_PFSYNC.
pub fn frame(pfsync: &[u8], sender: usize, ip_id: u16, linktype: u32, out: &mut Vec<u8>) {
    out.clear();
    if linktype == LINKTYPE_PFSYNC {
        out.extend_from_slice(pfsync);
        return;
    }
    out.extend_from_slice(&[0x01, 0x00, 0x5e, 0x00, 0x00, 0xf0]);
    out.extend_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00, 1 + sender as u8]);
    out.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + pfsync.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[1] = 0x10;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 255;
    ip[9] = 240;
    ip[12..16].copy_from_slice(&sender_ip(sender));
    ip[16..20].copy_from_slice(&[224, 0, 0, 240]);
    let ck = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(pfsync);
}

/// A classic (microsecond, little-endian) pcap writer.
pub struct PcapWriter<W: Write> {
    w: W,
    pub linktype: u32,
    buf: Vec<u8>,
    ip_id: Rng,
    pub bytes: u64,
    pub frames: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W, linktype: u32) -> io::Result<PcapWriter<W>> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        w.write_all(&h)?;
        Ok(PcapWriter {
            w,
            linktype,
            buf: Vec::with_capacity(1600),
            ip_id: Rng::new(0x1d),
            bytes: 24,
            frames: 0,
        })
    }

    /// Write one record with the given timestamp and captured bytes.
    pub fn record(&mut self, ts_us: Micros, data: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(data.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(data.len() as u32).to_le_bytes());
        self.w.write_all(&h)?;
        self.w.write_all(data)?;
        self.bytes += 16 + data.len() as u64;
        self.frames += 1;
        Ok(())
    }

    /// Encode, frame and write one generated packet.
    pub fn packet(&mut self, p: &GenPacket, flavor: Flavor) -> io::Result<()> {
        let pf = encode_pfsync(p, flavor);
        let id = self.ip_id.next_u64() as u16;
        let mut buf = std::mem::take(&mut self.buf);
        frame(&pf, p.sender, id, self.linktype, &mut buf);
        let r = self.record(p.ts_us, &buf);
        self.buf = buf;
        r
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// Write a whole capture; returns the generator's statistics.
pub fn write_capture<W: Write>(cfg: &GenConfig, w: W, linktype: u32) -> io::Result<(GenStats, W)> {
    let flavor = cfg.flavor;
    let mut g = Generator::new(cfg.clone());
    let mut pw = PcapWriter::new(w, linktype)?;
    while let Some(p) = g.next_packet() {
        pw.packet(&p, flavor)?;
    }
    Ok((g.stats.clone(), pw.into_inner()))
}

// ---------------------------------------------------------------------------------------
// Direct database generation.

/// The action code a message travels under (what `Decoded::action` would say).
fn action_of(m: &Message) -> u8 {
    use openbsd::action as a;
    match m {
        Message::Ins(_) => a::INS,
        Message::UpdC(_) => a::UPD_C,
        Message::DelC(_) => a::DEL_C,
        Message::Upd(_) => a::UPD,
        Message::Del(_) => a::DEL,
        Message::InsAck(_) => a::INS_ACK,
        Message::UpdReq(_) => a::UPD_REQ,
        Message::Clr(_) => a::CLR,
        Message::Bus(_) => a::BUS,
        Message::Tdb(_) => a::TDB,
        Message::Eof => a::EOF,
        Message::Unknown { action } => *action,
    }
}

/// Column values of one `states` row, exactly as `store::writer` writes them for a lifetime
/// first seen in this database (held from Open, `last_us` raised by Touch, ended at End,
/// then one INSERT).
#[derive(Debug, Clone)]
struct Row {
    /// Row id, given in the order an import inserts (see [`produce`]); 0 until then.
    id: i64,
    creator_id: u32,
    state_id: i64,
    ifname: String,
    af: u8,
    proto: u8,
    direction: u8,
    w: (Vec<u8>, i64, Vec<u8>, i64, i64),
    s: (Vec<u8>, i64, Vec<u8>, i64, i64),
    s_af: u8,
    nat: bool,
    start_us: Micros,
    first_us: Micros,
    end_us: Option<Micros>,
    end_reason: Option<&'static str>,
    last_us: Micros,
    expire: u32,
    counters: [i64; 4],
    rule: u32,
    flavor: i64,
}

fn key_cols(k: &Key) -> (Vec<u8>, i64, Vec<u8>, i64, i64) {
    (
        addr_blob(&k.addr[0]),
        k.port[0] as i64,
        addr_blob(&k.addr[1]),
        k.port[1] as i64,
        k.rdomain as i64,
    )
}

const INSERT_ROW: &str =
    "INSERT INTO states (id, creator_id, state_id, ifname, af, proto, direction,
    w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
    s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
    start_us, first_us, end_us, end_reason, last_us, updated_us, expire,
    packets0, packets1, bytes0, bytes1, rule, flavor)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
          ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32)";

/// Progress callback: (states created so far, rows written so far).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// What a bulk build did.
#[derive(Debug, Clone, Default)]
pub struct BuildStats {
    pub gen: GenStats,
    pub rows: u64,
    pub open_rows: u64,
    pub load_secs: f64,
    pub index_secs: f64,
    pub first_us: Micros,
    pub last_us: Micros,
}

/// Bulk-loads the rows the recorder would write for a generated run into a database created
/// by [`store::open_rw`] (so the schema, ids and pragmas are the real ones). The `states`
/// indexes are dropped during the load and recreated from their own SQL afterwards; a
/// sort-built index is denser than one grown by random inserts, which the benchmark
/// report notes where it matters (bytes per state).
pub struct DbBuilder;

impl DbBuilder {
    pub fn build(cfg: &GenConfig, db: &str, progress: Progress) -> anyhow::Result<BuildStats> {
        Self::build_replicated(cfg, db, 1, progress)
    }

    /// As [`DbBuilder::build`], then `copies - 1` more copies of the generated rows, each
    /// shifted in time by the span over which the states were created (and in row id and
    /// state id by the row count, as if the counters ran on): the traffic pattern repeats
    /// back to back, so `copies` x `cfg.states` states are built for the generator cost of
    /// one. Every row is still exactly what the recorder writes for its messages (the
    /// tracker treats states independently), but row ids are in end order within each copy,
    /// copy after copy: an import of the whole traffic would interleave the last ends of
    /// one copy with the first of the next. Use a drained config (`drain`), or the open
    /// states of every copy but the last would stay open forever.
    pub fn build_replicated(
        cfg: &GenConfig,
        db: &str,
        copies: u32,
        progress: Progress,
    ) -> anyhow::Result<BuildStats> {
        let t0 = std::time::Instant::now();
        let mut conn = store::open_rw(db)?;
        let existing: i64 = conn.query_row("SELECT count(*) FROM states", [], |r| r.get(0))?;
        anyhow::ensure!(
            existing == 0,
            "{db} already holds {existing} states: gen-db builds fresh databases only"
        );
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        conn.pragma_update(None, "cache_size", -2_000_000i64)?;
        conn.pragma_update(None, "temp_store", "FILE")?;
        let indexes: Vec<(String, String)> = {
            let mut st = conn.prepare(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'states' AND sql IS NOT NULL",
            )?;
            let v = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        for (name, _) in &indexes {
            conn.execute_batch(&format!("DROP INDEX \"{name}\""))?;
        }

        // Producer: the generator and the real tracker, turning events into finished rows.
        let (txc, rxc) = std::sync::mpsc::sync_channel::<Produced>(8);
        let pcfg = cfg.clone();
        let producer = std::thread::spawn(move || produce(pcfg, txc));
        let mut st = BuildStats::default();
        let mut tx = conn.transaction()?;
        let mut since_commit = 0u64;
        let fin = loop {
            match rxc.recv() {
                Ok(Produced::Rows(rows, created)) => {
                    insert_rows(&tx, &rows)?;
                    st.rows += rows.len() as u64;
                    since_commit += rows.len() as u64;
                    if since_commit >= 5_000_000 {
                        tx.commit()?;
                        tx = conn.transaction()?;
                        since_commit = 0;
                    }
                    progress(created, st.rows);
                }
                Ok(Produced::Done(f)) => break f,
                Err(_) => {
                    return match producer.join() {
                        Ok(Err(e)) => Err(e),
                        _ => Err(anyhow::anyhow!("generator thread failed")),
                    }
                }
            }
        };
        let _ = producer.join();
        let Finished {
            rest,
            gen: gstats,
            first_us,
            mut last_us,
        } = fin;
        insert_rows(&tx, &rest)?;
        st.open_rows = rest.len() as u64;
        st.rows += rest.len() as u64;
        // Bookkeeping the recorder keeps: creators and a run covering the span.
        for (i, c) in cfg.creators.iter().enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO creators (creator_id, flavor, version, record_version, first_us, last_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    c,
                    cfg.flavor.name(),
                    cfg.flavor.header_version(),
                    if cfg.flavor == Flavor::FreeBsd { Some(1400) } else { None },
                    first_us,
                    last_us - i as i64
                ],
            )?;
        }
        tx.execute(
            "INSERT INTO runs (kind, source, fingerprint, started_wall, stopped_wall, first_us, last_us,
                               packets, messages, status)
             VALUES ('import', ?1, NULL, ?2, ?2, ?3, ?4, ?5, ?6, 'stopped')",
            params![
                format!(
                    "pfstatelog-bench gen-db seed={} states={} rate={} reuse={}x{}",
                    cfg.seed, cfg.states, cfg.rate, cfg.hot_pairs, cfg.reuse
                ),
                pfstatelog::time::wall_us(),
                first_us,
                last_us,
                gstats.packets as i64,
                (gstats.ins + gstats.upd_c + gstats.del_c) as i64
            ],
        )?;
        tx.commit()?;
        progress(gstats.states, st.rows);
        st.gen = gstats;
        if copies > 1 {
            let (n, lo, hi): (i64, i64, i64) = conn.query_row(
                "SELECT max(id), min(first_us), max(first_us) FROM states",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let shift = hi - lo + 1_000_000;
            for k in 1..copies as i64 {
                conn.execute(
                    "INSERT INTO states (id, creator_id, state_id, ifname, af, proto, direction,
                        w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                        s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
                        start_us, first_us, end_us, end_reason, last_us, updated_us, expire,
                        packets0, packets1, bytes0, bytes1, rule, flavor)
                     SELECT id + ?1 * ?2, creator_id, state_id + ?1 * ?2, ifname, af, proto, direction,
                        w_addr0, w_port0, w_addr1, w_port1, w_rdomain,
                        s_addr0, s_port0, s_addr1, s_port1, s_rdomain, s_af, nat,
                        start_us + ?1 * ?3, first_us + ?1 * ?3, end_us + ?1 * ?3, end_reason,
                        last_us + ?1 * ?3, updated_us + ?1 * ?3, expire,
                        packets0, packets1, bytes0, bytes1, rule, flavor
                     FROM states WHERE id <= ?2 ORDER BY id",
                    params![k, n, shift],
                )?;
                st.rows += n as u64;
                progress(st.gen.states * (k as u64 + 1), st.rows);
            }
            let extra = (copies as i64 - 1) * shift;
            conn.execute(
                "UPDATE runs SET last_us = last_us + ?1, source = source || ' x' || ?2",
                params![extra, copies],
            )?;
            conn.execute("UPDATE creators SET last_us = last_us + ?1", [extra])?;
            last_us += extra;
            st.gen.states *= copies as u64;
            st.open_rows *= copies as u64;
        }
        st.load_secs = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        // No ANALYZE: the recorder never runs it, and sqlite_stat4 would change plans.
        for (_, sql) in &indexes {
            conn.execute_batch(sql)?;
        }
        st.index_secs = t1.elapsed().as_secs_f64();
        conn.pragma_update(None, "journal_mode", "WAL")?;
        st.first_us = first_us;
        st.last_us = last_us;
        Ok(st)
    }
}

enum Produced {
    Rows(Vec<Row>, u64),
    Done(Finished),
}

struct Finished {
    rest: Vec<Row>,
    gen: GenStats,
    first_us: Micros,
    last_us: Micros,
}

/// Run the generator through the real tracker; send finished rows in batches, then the
/// still-open ones.
///
/// Row ids follow the order in which `pfstatelog import` inserts (store::writer, `hold_open`):
/// every lifetime is new to the import (ids count upwards, no CLR), so it is held in memory
/// and inserted whole once it ends, each flush writing the lifetimes that ended since the
/// last one in the order they ended; nothing else inserts rows here (no orphans). Flush
/// boundaries therefore do not matter: ended lifetimes get ids in end order. The import's
/// `finish` then writes the still-open ones sorted by (first sighting, creator, state id).
fn produce(cfg: GenConfig, out: std::sync::mpsc::SyncSender<Produced>) -> anyhow::Result<()> {
    let mut g = Generator::new(cfg.clone());
    let mut tracker = Tracker::new();
    let mut events: Vec<Event> = Vec::new();
    let mut open: HashMap<StateRef, Row> = HashMap::new();
    let mut next_id: i64 = 1;
    let mut done: Vec<Row> = Vec::with_capacity(50_000);
    let mut first_us = Micros::MAX;
    let mut last_us = Micros::MIN;
    while let Some(p) = g.next_packet() {
        first_us = first_us.min(p.ts_us);
        last_us = last_us.max(p.ts_us);
        for m in p.msgs {
            let d = Decoded {
                flavor: cfg.flavor,
                action: action_of(&m),
                record_version: if cfg.flavor == Flavor::FreeBsd {
                    1400
                } else {
                    0
                },
                msg: m,
            };
            tracker.apply(&d, p.ts_us, &mut events);
        }
        for e in events.drain(..) {
            match e {
                Event::Open {
                    state: s,
                    start,
                    seen,
                    flavor,
                    ..
                } => {
                    let k = StateRef {
                        id: s.id,
                        creator_id: s.creator_id,
                    };
                    let row = Row {
                        id: 0,
                        creator_id: s.creator_id,
                        state_id: s.id as i64,
                        af: s.af.to_openbsd(),
                        proto: s.proto,
                        direction: s.direction.to_u8(),
                        w: key_cols(&s.key[0]),
                        s: key_cols(&s.key[1]),
                        s_af: s.key[1].af.to_openbsd(),
                        nat: s.is_nat(),
                        ifname: s.ifname.to_string(),
                        start_us: start,
                        first_us: seen,
                        end_us: None,
                        end_reason: None,
                        last_us: seen,
                        expire: s.expire,
                        counters: [
                            s.packets[0] as i64,
                            s.packets[1] as i64,
                            s.bytes[0] as i64,
                            s.bytes[1] as i64,
                        ],
                        rule: s.rule,
                        flavor: i64::from(flavor.header_version()),
                    };
                    open.insert(k, row);
                }
                Event::Touch { key, seen } => {
                    if let Some(r) = open.get_mut(&key) {
                        r.last_us = r.last_us.max(seen);
                    }
                }
                Event::End {
                    state: s,
                    end,
                    reason,
                    ..
                } => {
                    let k = StateRef {
                        id: s.id,
                        creator_id: s.creator_id,
                    };
                    if let Some(mut r) = open.remove(&k) {
                        r.id = next_id;
                        next_id += 1;
                        r.end_reason = Some(reason.name());
                        r.end_us = Some(end.max(r.start_us));
                        r.last_us = r.last_us.max(end);
                        done.push(r);
                    }
                }
                // The generator sends no UPD, CLR, BUS, or messages for unknown states.
                other => anyhow::bail!("unexpected event from the generator: {other:?}"),
            }
        }
        if done.len() >= 50_000 {
            let batch = std::mem::replace(&mut done, Vec::with_capacity(50_000));
            if out.send(Produced::Rows(batch, g.stats.states)).is_err() {
                return Ok(());
            }
        }
    }
    if !done.is_empty() {
        let _ = out.send(Produced::Rows(done, g.stats.states));
    }
    let mut rest: Vec<Row> = open.into_values().collect();
    rest.sort_unstable_by_key(|r| (r.first_us, r.creator_id, r.state_id as u64));
    for r in &mut rest {
        r.id = next_id;
        next_id += 1;
    }
    let _ = out.send(Produced::Done(Finished {
        rest,
        gen: g.stats.clone(),
        first_us,
        last_us,
    }));
    Ok(())
}

fn insert_rows(tx: &Connection, rows: &[Row]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(INSERT_ROW)?;
    for r in rows {
        stmt.execute(params![
            r.id,
            r.creator_id,
            r.state_id,
            r.ifname,
            r.af,
            r.proto,
            r.direction,
            r.w.0,
            r.w.1,
            r.w.2,
            r.w.3,
            r.w.4,
            r.s.0,
            r.s.1,
            r.s.2,
            r.s.3,
            r.s.4,
            r.s_af,
            r.nat,
            r.start_us,
            r.first_us,
            r.end_us,
            r.end_reason,
            r.last_us,
            r.first_us,
            r.expire,
            r.counters[0],
            r.counters[1],
            r.counters[2],
            r.counters[3],
            r.rule,
            r.flavor,
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfstatelog::wire::decode_pfsync;

    fn small() -> GenConfig {
        GenConfig {
            states: 3000,
            rate: 200.0,
            hot_pairs: 2,
            reuse: 100,
            ..GenConfig::default()
        }
    }

    #[test]
    fn deterministic() {
        let a: Vec<_> = Generator::new(small()).map(|p| (p.ts_us, p.msgs)).collect();
        let b: Vec<_> = Generator::new(small()).map(|p| (p.ts_us, p.msgs)).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn packets_round_trip_and_fit_the_mtu() {
        let mut last = 0;
        let mut ins = 0;
        for p in Generator::new(small()) {
            assert!(p.ts_us >= last);
            last = p.ts_us;
            let bytes = encode_pfsync(&p, Flavor::OpenBsd);
            assert!(bytes.len() <= MAX_PFSYNC, "{} bytes", bytes.len());
            let d = decode_pfsync(&bytes).unwrap();
            assert_eq!(d.damage().count(), 0);
            let got: Vec<Message> = d.messages().map(|m| m.msg.clone()).collect();
            assert_eq!(got, p.msgs);
            let full = p.msgs.iter().filter(|m| m.full_state().is_some()).count();
            assert!(full <= 5);
            ins += full;
        }
        assert_eq!(ins, 3000);
    }

    #[test]
    fn never_end_sends_only_ins() {
        let cfg = GenConfig {
            never_end: true,
            drain: true,
            ..small()
        };
        let msgs: Vec<Message> = Generator::new(cfg).flat_map(|p| p.msgs).collect();
        assert_eq!(msgs.len(), 3000);
        assert!(msgs.iter().all(|m| matches!(m, Message::Ins(_))));
    }

    #[test]
    fn ethernet_frame_strips_to_the_packet() {
        let p = Generator::new(small()).next().unwrap();
        let pf = encode_pfsync(&p, Flavor::OpenBsd);
        let mut buf = Vec::new();
        frame(&pf, 1, 7, LINKTYPE_ETHERNET, &mut buf);
        let f = pfstatelog::wire::link::strip(LINKTYPE_ETHERNET, &buf).unwrap();
        assert_eq!(f.pfsync, &pf[..]);
        assert_eq!(f.ip.unwrap().ttl, 255);
    }
}
