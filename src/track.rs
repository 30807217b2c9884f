//! The state table: applies decoded pfsync messages to state lifetimes.
//!
//! Pure logic: no I/O and no clock (time comes from the packet). The tracker knows the open
//! states (preloaded from the store at start, so a restarted recorder carries on) and emits
//! [`Event`]s that the store persists and the log prints. The rules (docs/pfsync.md §8, §9):
//! - a full state (INS, UPD, DEL) for an unknown key opens a lifetime with
//!   start = packet time − `creation`; for a known key it refreshes and never moves start;
//! - UPD_C and INS_ACK refresh "last seen"; for an unknown key they are kept as evidence;
//! - DEL_C and DEL end the lifetime at the packet time; DEL_C for an unknown key is evidence;
//! - CLR ends every open state of its creator (only those on the named interface if one is
//!   given, as OpenBSD receivers do; FreeBSD receivers ignore the name) that existed then;
//! - a full state for an open key with other keys (addresses, ports, protocol, family) is
//!   another state under the same id (a DEL missed after drops, or a hostile sender): the
//!   open lifetime ends where the new one begins (reason "replaced"), and the new one opens.
//!
//! How what is known of one lifetime merges (keys from the earliest full message, counters
//! from the newest, ...) is [`crate::model::lifetime`]'s.

use crate::model::lifetime::clear_names;
use crate::model::{
    key_of, CompactState, EndReason, Event, Flavor, FullState, Micros, OpenState, OrphanKind,
    StateRef,
};

use crate::wire::{Decoded, Message};
use hashbrown::hash_table::{Entry, HashTable};

/// Counters a run reports at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub opened: u64,
    pub closed: u64,
    pub refreshed: u64,
    pub orphans: u64,
    pub cleared: u64,
    /// Lifetimes ended by a full state with other keys under their id.
    pub replaced: u64,
    /// Open states written out and dropped from memory ([`Tracker::evict_idle`]).
    pub evicted: u64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    open: Open,
    pub stats: TrackStats,
}

/// An open state as the tracker holds it: compact (160 bytes, not 208; model/compact.rs).
pub type Held = OpenState<CompactState>;

/// The open states by (creator, id). Boxed: the table stays small, so it grows by moving
/// pointers, and an import faults in its open states' memory (reused as states end, and
/// freed one by one when they are handed over) rather than every size the table passed
/// through at ~250 bytes an entry, twice its load. The key is the state's own, inside the
/// box: 8-byte entries, not 24 (a table at its largest has twice as many entries as states).
#[derive(Debug, Default)]
struct Open {
    table: HashTable<Box<Held>>,
    /// Keyed at random: the ids come from the network ([`crate::model::StateMap`]).
    hasher: ahash::RandomState,
}

impl Open {
    fn hash(&self, k: &StateRef) -> u64 {
        self.hasher.hash_one(k)
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn entry(&mut self, k: StateRef) -> Entry<'_, Box<Held>> {
        let hasher = &self.hasher;
        self.table.entry(
            hasher.hash_one(k),
            |o| o.state_ref() == k,
            |o| hasher.hash_one(o.state_ref()),
        )
    }

    fn get(&self, k: &StateRef) -> Option<&Held> {
        self.table
            .find(self.hash(k), |o| o.state_ref() == *k)
            .map(|o| &**o)
    }

    fn get_mut(&mut self, k: &StateRef) -> Option<&mut Held> {
        let h = self.hash(k);
        self.table
            .find_mut(h, |o| o.state_ref() == *k)
            .map(|o| &mut **o)
    }

    fn remove(&mut self, k: &StateRef) -> Option<Box<Held>> {
        match self.entry(*k) {
            Entry::Occupied(o) => Some(o.remove().0),
            Entry::Vacant(_) => None,
        }
    }

    fn insert(&mut self, o: Box<Held>) {
        match self.entry(o.state_ref()) {
            Entry::Occupied(mut e) => *e.get_mut() = o,
            Entry::Vacant(e) => {
                e.insert(o);
            }
        }
    }

    fn values(&self) -> impl Iterator<Item = &Held> {
        self.table.iter().map(|o| &**o)
    }
}

/// Whether two full states name the same connection: same keys (addresses, ports,
/// rdomains, families), protocol and family. A retransmit, a bulk update or the other
/// firewall of an HA pair re-announcing a state agree on all of them; the interface and
/// the counters may differ without making it another state.
pub fn same_keys(a: &FullState, b: &FullState) -> bool {
    a.key == b.key && a.proto == b.proto && a.af == b.af
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Carry on from the store's open states (a restarted recorder).
    pub fn preload(&mut self, states: impl IntoIterator<Item = OpenState>) {
        let states = states.into_iter();
        let hasher = &self.open.hasher;
        self.open
            .table
            .reserve(states.size_hint().0, |o| hasher.hash_one(o.state_ref()));
        for s in states {
            self.open.insert(Box::new(Held::compact(&s)));
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Every open state, in no order.
    pub fn open_states(&self) -> impl Iterator<Item = OpenState> + '_ {
        self.open.values().map(Held::to_full)
    }

    /// Every open state, taken out (the end of an import): the table is freed at once,
    /// each state when its taker drops it.
    #[allow(clippy::vec_box)]
    pub fn take_open(&mut self) -> Vec<Box<Held>> {
        std::mem::take(&mut self.open.table).into_iter().collect()
    }

    pub fn get(&self, key: &StateRef) -> Option<OpenState> {
        self.open.get(key).map(Held::to_full)
    }

    /// Past `max` open states, drop the longest idle (oldest "last seen") until `keep`
    /// are left, and return them: the caller stores them open, where a later message
    /// finds them. Bounds memory under a flood of INS with unique ids.
    pub fn evict_idle(&mut self, max: usize, keep: usize) -> Vec<OpenState> {
        if self.open.len() <= max {
            return Vec::new();
        }
        let mut idle: Vec<(Micros, StateRef)> = self
            .open
            .values()
            .map(|o| (o.last_seen, o.state_ref()))
            .collect();
        let n = idle.len().saturating_sub(keep.min(max));
        if n == 0 {
            return Vec::new();
        }
        idle.select_nth_unstable(n - 1);
        idle.truncate(n);
        // Deterministic order for the store.
        idle.sort_unstable_by_key(|(t, k)| (*t, k.creator_id, k.id));
        let out: Vec<OpenState> = idle
            .iter()
            .filter_map(|(_, k)| self.open.remove(k).map(|o| o.to_full()))
            .collect();
        self.stats.evicted += out.len() as u64;
        out
    }

    /// Apply one message received at `ts`, appending what happened to `out`.
    pub fn apply(&mut self, d: &Decoded, ts: Micros, out: &mut Vec<Event>) {
        match &d.msg {
            Message::Ins(s) | Message::Upd(s) => self.full(s, d, ts, out),
            Message::Del(s) => {
                self.full(s, d, ts, out);
                self.end(key_of(s), ts, EndReason::DeleteFull, out);
            }
            Message::DelC(r) => {
                if !self.end(*r, ts, EndReason::Delete, out) {
                    self.orphan(*r, ts, OrphanKind::DelC, out);
                }
            }
            Message::UpdC(u) => {
                let r = StateRef {
                    id: u.id,
                    creator_id: u.creator_id,
                };
                self.touch(r, ts, OrphanKind::UpdC, out)
            }
            Message::InsAck(r) => self.touch(*r, ts, OrphanKind::InsAck, out),
            Message::Clr(c) => {
                // OpenBSD receivers clear only the named interface; FreeBSD's clear every
                // state of the creator whatever the name (docs/pfsync.md §7).
                let by_if = d.flavor == Flavor::OpenBsd && !c.ifname.is_empty();
                let mut ended: Vec<StateRef> = self
                    .open
                    .values()
                    .filter(|o| {
                        o.start <= ts
                            && clear_names(
                                c.creator_id,
                                &c.ifname,
                                by_if,
                                o.state.creator_id,
                                &o.state.ifname,
                            )
                    })
                    .map(|o| o.state_ref())
                    .collect();
                // Deterministic order for the log and the store.
                ended.sort_by_key(|k| k.id);
                for k in ended {
                    self.end(k, ts, EndReason::Clear, out);
                    self.stats.cleared += 1;
                }
                out.push(Event::Clear {
                    creator_id: c.creator_id,
                    ifname: c.ifname.to_string(),
                    by_ifname: by_if,
                    at: ts,
                });
            }
            Message::Bus(b) => out.push(Event::Bus {
                bus: b.clone(),
                seen: ts,
            }),
            Message::UpdReq(_) | Message::Tdb(_) | Message::Eof | Message::Unknown { .. } => {}
        }
    }

    fn full(&mut self, s: &FullState, d: &Decoded, ts: Micros, out: &mut Vec<Event>) {
        let k = key_of(s);
        let start = ts - s.creation as Micros * 1_000_000;
        // One lookup for both cases (the table is large and seldom in cache).
        let fresh = || OpenState::new(CompactState::new(s), start, ts, d.flavor);
        let o = match self.open.entry(k) {
            Entry::Occupied(mut o) if ts >= o.get().first_full && !o.get().state.same_keys(s) => {
                // Another state under an open id: the open one ended before this one began
                // (but not before it was last seen, nor before it began).
                let old = std::mem::replace(&mut **o.get_mut(), fresh()).to_full();
                let end = start.max(old.last_seen).min(ts).max(old.start);
                self.stats.closed += 1;
                self.stats.replaced += 1;
                self.stats.opened += 1;
                out.push(Event::End {
                    state: old.state,
                    start: old.start,
                    end,
                    reason: EndReason::Replaced,
                    first_full: old.first_full,
                    updated: old.updated,
                    last_seen: old.last_seen,
                    flavor: old.flavor,
                });
                out.push(Event::Open {
                    state: s.clone(),
                    start,
                    seen: ts,
                    flavor: d.flavor,
                    record_version: d.record_version,
                });
                return;
            }
            Entry::Occupied(o) => o.into_mut(),
            Entry::Vacant(v) => {
                v.insert(Box::new(fresh()));
                self.stats.opened += 1;
                out.push(Event::Open {
                    state: s.clone(),
                    start,
                    seen: ts,
                    flavor: d.flavor,
                    record_version: d.record_version,
                });
                return;
            }
        };
        if ts < o.first_full && !o.state.same_keys(s) {
            // An earlier message of another state under this id (a disordered capture
            // that also missed a DEL): the open lifetime is not its, and the store could
            // not tell the two apart at this time. Left out.
            return;
        }
        if ts < o.first_full {
            // An earlier full message (an older capture imported after a newer one, or
            // timestamps out of order): the lifetime began earlier than we thought.
            o.merge_open(s, start, ts, d.flavor);
            out.push(Event::Open {
                state: s.clone(),
                start,
                seen: ts,
                flavor: d.flavor,
                record_version: d.record_version,
            });
            return;
        }
        o.refresh(s, ts);
        self.stats.refreshed += 1;
        out.push(Event::Refresh {
            state: s.clone(),
            seen: ts,
        });
    }

    fn touch(&mut self, r: StateRef, ts: Micros, kind: OrphanKind, out: &mut Vec<Event>) {
        match self.open.get_mut(&r) {
            Some(o) => {
                o.touch(ts);
                out.push(Event::Touch { key: r, seen: ts });
            }
            None => self.orphan(r, ts, kind, out),
        }
    }

    fn orphan(&mut self, key: StateRef, ts: Micros, kind: OrphanKind, out: &mut Vec<Event>) {
        self.stats.orphans += 1;
        out.push(Event::Orphan {
            key,
            seen: ts,
            kind,
        });
    }

    /// End an open state; false when the key is not open (or only opened after `ts`).
    fn end(&mut self, k: StateRef, ts: Micros, reason: EndReason, out: &mut Vec<Event>) -> bool {
        let o = match self.open.entry(k) {
            // A delete stamped before the state began (a capture from another time, merged
            // out of order) cannot end it.
            Entry::Occupied(o) if o.get().start <= ts => o.remove().0.to_full(),
            _ => return false,
        };
        self.stats.closed += 1;
        out.push(Event::End {
            state: o.state,
            start: o.start,
            end: ts,
            reason,
            first_full: o.first_full,
            updated: o.updated,
            last_seen: o.last_seen,
            flavor: o.flavor,
        });
        true
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Af, Direction, Key};
    use crate::wire::{Clr, UpdC};
    use std::net::IpAddr;

    const A: u32 = 0x5a3c_1e07;
    const B: u32 = 0x8d2b_6f10;
    const S: Micros = 1_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// A NAT state 192.168.1.10:51234 -> 203.0.113.1:61234 -> 93.184.216.34:443 (also the
    /// store's tests' state).
    pub(crate) fn state(creator: u32, id: u64, ifname: &str, creation: u32) -> FullState {
        let wire = Key {
            addr: [ip("93.184.216.34"), ip("203.0.113.1")],
            port: [443, 61234],
            rdomain: 0,
            af: Af::Inet,
        };
        let stack = Key {
            addr: [ip("93.184.216.34"), ip("192.168.1.10")],
            port: [443, 51234],
            rdomain: 0,
            af: Af::Inet,
        };
        FullState {
            id,
            creator_id: creator,
            ifname: ifname.into(),
            key: [wire, stack],
            af: Af::Inet,
            proto: 6,
            direction: Direction::Out,
            creation,
            expire: 86400,
            packets: [1, 2],
            bytes: [3, 4],
            rule: 1,
            timeout: 2,
            peer_state: [4, 4],
        }
    }

    fn d(msg: Message) -> Decoded {
        Decoded {
            flavor: Flavor::OpenBsd,
            action: 0,
            record_version: 0,
            msg,
        }
    }

    fn r(creator: u32, id: u64) -> StateRef {
        StateRef {
            id,
            creator_id: creator,
        }
    }

    fn run(t: &mut Tracker, msgs: &[(Micros, Message)]) -> Vec<Event> {
        let mut out = Vec::new();
        for (ts, m) in msgs {
            t.apply(&d(m.clone()), *ts, &mut out);
        }
        out
    }

    fn ends(ev: &[Event]) -> Vec<(u64, Micros, EndReason)> {
        ev.iter()
            .filter_map(|e| match e {
                Event::End {
                    state, end, reason, ..
                } => Some((state.id, *end, *reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ins_opens_with_start_minus_creation_and_del_c_ends() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (100 * S, Message::Ins(state(A, 1, "em0", 5))),
                (160 * S, Message::DelC(r(A, 1))),
            ],
        );
        match &ev[0] {
            Event::Open { start, seen, .. } => {
                assert_eq!(*start, 95 * S);
                assert_eq!(*seen, 100 * S);
            }
            e => panic!("expected Open, got {e:?}"),
        }
        assert_eq!(ends(&ev), vec![(1, 160 * S, EndReason::Delete)]);
        assert_eq!(t.open_count(), 0);
    }

    #[test]
    fn duplicate_ins_and_upd_refresh_but_never_move_start() {
        let mut t = Tracker::new();
        let mut later = state(A, 1, "em0", 50);
        later.packets = [10, 20];
        let ev = run(
            &mut t,
            &[
                (100 * S, Message::Ins(state(A, 1, "em0", 5))),
                (130 * S, Message::Ins(state(A, 1, "em0", 35))),
                (145 * S, Message::Upd(later)),
            ],
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Open { .. }))
                .count(),
            1
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Refresh { .. }))
                .count(),
            2
        );
        let o = t.get(&r(A, 1)).expect("open");
        assert_eq!(o.start, 95 * S);
        assert_eq!(o.last_seen, 145 * S);
        assert_eq!(o.state.packets, [10, 20]);
    }

    #[test]
    fn first_seen_in_full_upd_or_del() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (1000 * S, Message::Upd(state(A, 7, "em0", 600))),
                (1010 * S, Message::Del(state(B, 8, "em0", 30))),
            ],
        );
        assert!(matches!(&ev[0], Event::Open { start, .. } if *start == 400 * S));
        // A state only seen in a full DEL starts at packet time - creation and ends there.
        assert!(matches!(&ev[1], Event::Open { start, .. } if *start == 980 * S));
        assert_eq!(ends(&ev), vec![(8, 1010 * S, EndReason::DeleteFull)]);
    }

    #[test]
    fn upd_c_and_ins_ack_touch_known_and_are_evidence_for_unknown() {
        let mut t = Tracker::new();
        let upd = |id| {
            Message::UpdC(UpdC {
                id,
                creator_id: A,
                expire: 0,
                timeout: 2,
                peer_state: [4, 4],
            })
        };
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                (20 * S, upd(1)),
                (21 * S, Message::InsAck(r(A, 1))),
                (22 * S, upd(99)),
                (23 * S, Message::DelC(r(A, 98))),
            ],
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Touch { .. }))
                .count(),
            2
        );
        let orphans: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Orphan { key, kind, .. } => Some((key.id, *kind)),
                _ => None,
            })
            .collect();
        assert_eq!(
            orphans,
            vec![(99, OrphanKind::UpdC), (98, OrphanKind::DelC)]
        );
        assert_eq!(t.stats.orphans, 2);
        assert_eq!(t.get(&r(A, 1)).map(|o| o.last_seen), Some(21 * S));
    }

    #[test]
    fn clr_ends_every_state_of_its_creator_only() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                (11 * S, Message::Ins(state(A, 2, "em1", 0))),
                (12 * S, Message::Ins(state(B, 3, "em0", 0))),
                (
                    20 * S,
                    Message::Clr(Clr {
                        ifname: crate::model::IfName::default(),
                        creator_id: A,
                    }),
                ),
            ],
        );
        assert_eq!(
            ends(&ev),
            vec![(1, 20 * S, EndReason::Clear), (2, 20 * S, EndReason::Clear)]
        );
        assert!(t.get(&r(B, 3)).is_some());
    }

    #[test]
    fn openbsd_clr_with_interface_ends_only_that_interface() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                (11 * S, Message::Ins(state(A, 2, "em1", 0))),
                (
                    20 * S,
                    Message::Clr(Clr {
                        ifname: "em1".into(),
                        creator_id: A,
                    }),
                ),
            ],
        );
        assert_eq!(ends(&ev), vec![(2, 20 * S, EndReason::Clear)]);
        assert!(t.get(&r(A, 1)).is_some());
    }

    #[test]
    fn freebsd_clr_ignores_the_interface_name() {
        let mut t = Tracker::new();
        let mut out = Vec::new();
        t.apply(&d(Message::Ins(state(A, 1, "em0", 0))), 10 * S, &mut out);
        let clr = Decoded {
            flavor: Flavor::FreeBsd,
            action: 0,
            record_version: 0,
            msg: Message::Clr(Clr {
                ifname: "em1".into(),
                creator_id: A,
            }),
        };
        t.apply(&clr, 20 * S, &mut out);
        assert_eq!(ends(&out), vec![(1, 20 * S, EndReason::Clear)]);
    }

    #[test]
    fn clr_does_not_end_states_that_began_after_it() {
        let mut t = Tracker::new();
        t.preload([OpenState {
            state: state(A, 5, "em0", 0),
            start: 500 * S,
            first_full: 500 * S,
            updated: 500 * S,
            last_seen: 500 * S,
            flavor: Flavor::OpenBsd,
        }]);
        let ev = run(
            &mut t,
            &[(
                100 * S,
                Message::Clr(Clr {
                    ifname: crate::model::IfName::default(),
                    creator_id: A,
                }),
            )],
        );
        assert!(ends(&ev).is_empty());
        assert_eq!(t.open_count(), 1);
    }

    #[test]
    fn restart_continuity_del_c_after_preload_closes_the_state() {
        let mut t = Tracker::new();
        t.preload([OpenState {
            state: state(A, 42, "em0", 0),
            start: 50 * S,
            first_full: 50 * S,
            updated: 50 * S,
            last_seen: 60 * S,
            flavor: Flavor::OpenBsd,
        }]);
        let ev = run(&mut t, &[(70 * S, Message::DelC(r(A, 42)))]);
        assert_eq!(ends(&ev), vec![(42, 70 * S, EndReason::Delete)]);
        assert!(matches!(&ev[0], Event::End { start, .. } if *start == 50 * S));
        assert_eq!(t.stats.orphans, 0);
    }

    #[test]
    fn out_of_order_delete_before_start_is_not_an_end() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (100 * S, Message::Ins(state(A, 1, "em0", 0))),
                (90 * S, Message::DelC(r(A, 1))),
            ],
        );
        assert!(ends(&ev).is_empty());
        assert_eq!(t.stats.orphans, 1);
        assert!(t.get(&r(A, 1)).is_some());
    }

    #[test]
    fn id_reuse_after_end_opens_a_new_lifetime() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                (20 * S, Message::DelC(r(A, 1))),
                (30 * S, Message::Ins(state(A, 1, "em0", 0))),
            ],
        );
        assert_eq!(
            ev.iter()
                .filter(|e| matches!(e, Event::Open { .. }))
                .count(),
            2
        );
        assert_eq!(t.stats.opened, 2);
    }

    #[test]
    fn same_id_from_two_creators_are_two_states() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                (10 * S, Message::Ins(state(B, 1, "em0", 0))),
                (20 * S, Message::DelC(r(B, 1))),
            ],
        );
        assert_eq!(t.stats.opened, 2);
        assert_eq!(ends(&ev).len(), 1);
        assert!(t.get(&r(A, 1)).is_some());
    }

    #[test]
    fn bus_and_other_actions_change_no_state() {
        let mut t = Tracker::new();
        let ev = run(
            &mut t,
            &[
                (
                    10 * S,
                    Message::Bus(crate::model::Bus {
                        creator_id: A,
                        endtime: 0,
                        status: crate::model::BusStatus::Start,
                    }),
                ),
                (11 * S, Message::UpdReq(r(0, 0))),
                (12 * S, Message::Unknown { action: 42 }),
                (13 * S, Message::Eof),
            ],
        );
        assert_eq!(ev.len(), 1);
        assert!(matches!(ev[0], Event::Bus { .. }));
        assert_eq!(t.open_count(), 0);
    }

    /// The End of state `id` in `ev`: (start, first_full, updated, last_seen, packets,
    /// ifname).
    fn end_of(ev: &[Event], id: u64) -> Option<(Micros, Micros, Micros, Micros, u64, String)> {
        ev.iter().find_map(|e| match e {
            Event::End {
                state,
                start,
                first_full,
                updated,
                last_seen,
                ..
            } if state.id == id => Some((
                *start,
                *first_full,
                *updated,
                *last_seen,
                state.packets[0],
                state.ifname.to_string(),
            )),
            _ => None,
        })
    }

    #[test]
    fn counters_follow_the_newest_full_message_by_its_time_not_by_arrival() {
        let mut t = Tracker::new();
        let with = |packets: u64| {
            let mut s = state(A, 9, "em0", 0);
            s.packets = [packets, 0];
            s
        };
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(with(1))),
                (30 * S, Message::Upd(with(3))),
                // Older, read later (a disordered capture): not the state's counters.
                (20 * S, Message::Upd(with(2))),
                (40 * S, Message::DelC(r(A, 9))),
            ],
        );
        assert_eq!(
            end_of(&ev, 9),
            Some((10 * S, 10 * S, 30 * S, 30 * S, 3, "em0".into()))
        );
    }

    #[test]
    fn an_earlier_full_message_gives_keys_and_start_but_not_counters() {
        let mut t = Tracker::new();
        let mut late = state(A, 9, "em0", 0);
        late.packets = [5, 0];
        let mut early = state(A, 9, "em1", 0);
        early.packets = [1, 0];
        let ev = run(
            &mut t,
            &[
                (50 * S, Message::Upd(late)),
                (20 * S, Message::Ins(early)),
                (60 * S, Message::DelC(r(A, 9))),
            ],
        );
        // Start and keys from the earliest message, counters from the newest; as the store
        // merges them, so the End an import stores from is the row it would have written.
        assert_eq!(
            end_of(&ev, 9),
            Some((20 * S, 20 * S, 50 * S, 50 * S, 5, "em1".into()))
        );
    }

    #[test]
    fn a_full_state_with_other_keys_replaces_the_open_one() {
        let mut t = Tracker::new();
        let mut other = state(A, 1, "em0", 0);
        other.key[0].port[1] = 61999;
        let ev = run(
            &mut t,
            &[
                (10 * S, Message::Ins(state(A, 1, "em0", 0))),
                // The same keys again (a retransmit, the HA peer): a refresh.
                (20 * S, Message::Ins(state(A, 1, "em1", 0))),
                (30 * S, Message::Ins(other.clone())),
                (40 * S, Message::DelC(r(A, 1))),
            ],
        );
        assert_eq!(
            ends(&ev),
            vec![
                (1, 30 * S, EndReason::Replaced),
                (1, 40 * S, EndReason::Delete)
            ]
        );
        assert_eq!(
            (t.stats.opened, t.stats.replaced, t.stats.closed),
            (2, 1, 2)
        );
        let last_open = ev.iter().rev().find_map(|e| match e {
            Event::Open { state, start, .. } => Some((state.key[0].port[1], *start)),
            _ => None,
        });
        assert_eq!(last_open, Some((61999, 30 * S)));
    }

    #[test]
    fn eviction_drops_the_longest_idle_states() {
        let mut t = Tracker::new();
        let msgs: Vec<(Micros, Message)> = (1..=10)
            .map(|i| (i as Micros * S, Message::Ins(state(A, i, "em0", 0))))
            .collect();
        run(&mut t, &msgs);
        run(&mut t, &[(20 * S, Message::InsAck(r(A, 1)))]);
        assert!(t.evict_idle(10, 5).is_empty(), "not past the cap");
        let gone: Vec<u64> = t.evict_idle(8, 6).iter().map(|o| o.state.id).collect();
        assert_eq!(gone, vec![2, 3, 4, 5]);
        assert_eq!((t.open_count(), t.stats.evicted), (6, 4));
        assert!(t.get(&r(A, 1)).is_some(), "seen lately");
    }
}
