//! The state table: applies decoded pfsync messages to state lifetimes.
//!
//! Pure logic: no I/O and no clock (time comes from the packet). The tracker knows the open
//! states (preloaded from the store at start, so a restarted recorder carries on) and emits
//! [`Event`]s that the store persists and the log prints. The rules (pfsync-v6.md §4, §7):
//! - a full state (INS, UPD, DEL) for an unknown key opens a lifetime with
//!   start = packet time − `creation`; for a known key it refreshes and never moves start;
//! - UPD_C and INS_ACK refresh "last seen"; for an unknown key they are kept as evidence;
//! - DEL_C and DEL end the lifetime at the packet time; DEL_C for an unknown key is evidence;
//! - CLR ends every open state of its creator (only those on the named interface if one is
//!   given, as OpenBSD receivers do; FreeBSD receivers ignore the name) that existed then.

use crate::wire::{Bus, Decoded, Flavor, FullState, Message, StateRef};
use std::collections::HashMap;

/// Microseconds since the Unix epoch, UTC.
pub type Micros = i64;

/// How a lifetime ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// DEL_C.
    Delete,
    /// A full DEL.
    DeleteFull,
    /// CLR (`pfctl -F states`).
    Clear,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Delete => "delete",
            EndReason::DeleteFull => "delete-full",
            EndReason::Clear => "clear",
        }
    }
    pub fn from_name(s: &str) -> Option<EndReason> {
        Some(match s {
            "delete" => EndReason::Delete,
            "delete-full" => EndReason::DeleteFull,
            "clear" => EndReason::Clear,
            _ => return None,
        })
    }
}

/// Which compressed message named a state the tracker did not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanKind {
    UpdC,
    InsAck,
    DelC,
}

/// An open state as the tracker holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenState {
    pub state: FullState,
    pub start: Micros,
    pub last_seen: Micros,
    pub flavor: Flavor,
}

/// What happened, for the store and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// First full sighting of a state in this run. The store merges it with a row it may
    /// already hold for the same lifetime (re-import, overlapping captures).
    Open {
        state: FullState,
        start: Micros,
        seen: Micros,
        flavor: Flavor,
        record_version: u16,
    },
    /// A later full message for an open state: counters and expiry.
    Refresh { state: FullState, seen: Micros },
    /// UPD_C or INS_ACK for an open state.
    Touch { key: StateRef, seen: Micros },
    /// The end of an open state's lifetime.
    End {
        state: FullState,
        start: Micros,
        end: Micros,
        reason: EndReason,
    },
    /// A compressed message for a state never seen in full: evidence only.
    Orphan {
        key: StateRef,
        seen: Micros,
        kind: OrphanKind,
    },
    /// Bulk update status from a peer.
    Bus { bus: Bus, seen: Micros },
}

/// Counters a run reports at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackStats {
    pub opened: u64,
    pub closed: u64,
    pub refreshed: u64,
    pub orphans: u64,
    pub cleared: u64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    open: HashMap<StateRef, OpenState>,
    pub stats: TrackStats,
}

fn key_of(s: &FullState) -> StateRef {
    StateRef {
        id: s.id,
        creator_id: s.creator_id,
    }
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Carry on from the store's open states (a restarted recorder).
    pub fn preload(&mut self, states: impl IntoIterator<Item = OpenState>) {
        for s in states {
            self.open.insert(key_of(&s.state), s);
        }
    }

    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    pub fn get(&self, key: &StateRef) -> Option<&OpenState> {
        self.open.get(key)
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
                // state of the creator whatever the name (pfsync-freebsd.md §5.1).
                let by_if = d.flavor == Flavor::OpenBsd && !c.ifname.is_empty();
                let mut ended: Vec<StateRef> = self
                    .open
                    .iter()
                    .filter(|(k, o)| {
                        k.creator_id == c.creator_id
                            && o.start <= ts
                            && (!by_if || o.state.ifname == c.ifname)
                    })
                    .map(|(k, _)| *k)
                    .collect();
                // Deterministic order for the log and the store.
                ended.sort_by_key(|k| k.id);
                for k in ended {
                    self.end(k, ts, EndReason::Clear, out);
                    self.stats.cleared += 1;
                }
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
        if let Some(o) = self.open.get_mut(&k) {
            o.last_seen = o.last_seen.max(ts);
            // Keys and start stay as first seen; counters and expiry follow the newest.
            o.state.packets = s.packets;
            o.state.bytes = s.bytes;
            o.state.expire = s.expire;
            o.state.timeout = s.timeout;
            o.state.peer_state = s.peer_state;
            self.stats.refreshed += 1;
            out.push(Event::Refresh {
                state: s.clone(),
                seen: ts,
            });
            return;
        }
        let start = ts - s.creation as Micros * 1_000_000;
        self.open.insert(
            k,
            OpenState {
                state: s.clone(),
                start,
                last_seen: ts,
                flavor: d.flavor,
            },
        );
        self.stats.opened += 1;
        out.push(Event::Open {
            state: s.clone(),
            start,
            seen: ts,
            flavor: d.flavor,
            record_version: d.record_version,
        });
    }

    fn touch(&mut self, r: StateRef, ts: Micros, kind: OrphanKind, out: &mut Vec<Event>) {
        match self.open.get_mut(&r) {
            Some(o) => {
                o.last_seen = o.last_seen.max(ts);
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
        match self.open.get(&k) {
            // A delete stamped before the state began (a capture from another time, merged
            // out of order) cannot end it.
            Some(o) if o.start <= ts => {}
            _ => return false,
        }
        let Some(o) = self.open.remove(&k) else {
            return false;
        };
        self.stats.closed += 1;
        out.push(Event::End {
            state: o.state,
            start: o.start,
            end: ts,
            reason,
        });
        true
    }
}
