//! What the tracker tells the store and the log: a lifetime opened, refreshed, touched or
//! ended, evidence of states never seen whole, clears and bulk-update status.

use super::{Bus, Flavor, FullState, StateRef};

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
    /// A full state with other keys under the same (creator, id) began.
    Replaced,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Delete => "delete",
            EndReason::DeleteFull => "delete-full",
            EndReason::Clear => "clear",
            EndReason::Replaced => "replaced",
        }
    }
    pub fn from_name(s: &str) -> Option<EndReason> {
        use EndReason::*;
        [Delete, DeleteFull, Clear, Replaced]
            .into_iter()
            .find(|r| r.name() == s)
    }
}

/// Which compressed message named a state the tracker did not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanKind {
    UpdC,
    InsAck,
    DelC,
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
    /// The end of an open state's lifetime, with all the tracker knew of it (as
    /// [`OpenState`]), so that an import's store need not hold its own copy of every open
    /// state.
    End {
        state: FullState,
        start: Micros,
        end: Micros,
        reason: EndReason,
        first_full: Micros,
        updated: Micros,
        last_seen: Micros,
        flavor: Flavor,
    },
    /// A compressed message for a state never seen in full: evidence only.
    Orphan {
        key: StateRef,
        seen: Micros,
        kind: OrphanKind,
    },
    /// A CLR, after the End of every open state it cleared: the store keeps it for states
    /// it learns of later (an older capture imported afterwards).
    Clear {
        creator_id: u32,
        ifname: String,
        /// Whether the name limits the clear (OpenBSD), or is ignored (FreeBSD).
        by_ifname: bool,
        at: Micros,
    },
    /// Bulk update status from a peer.
    Bus { bus: Bus, seen: Micros },
}
