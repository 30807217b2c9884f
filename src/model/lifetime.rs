//! The rules that merge what is known of one state lifetime (docs/pfsync.md §8, §9), in one
//! place: the tracker, the store's lifetimes held in memory and the synthetic generator all
//! merge through [`OpenState`]. The store's SQL merge (`store::writer::apply`, `end_row`)
//! mirrors these rules for rows on disk, and a test there checks that it agrees.
//!
//! - keys, interface, flavour and start come from the earliest full message;
//! - counters (packets, bytes, expiry, rule number, timeout, peer states) come from the
//!   newest full message by its time;
//! - "last seen" is the latest message that saw the state: a full message, UPD_C, INS_ACK,
//!   or the end that wins if a DEL or DEL_C (a CLR or a replacement does not name it);
//! - the earliest end wins, and an end never lies before the start;
//! - a CLR ends the states of its creator, only those on its interface when it names one
//!   and the receiver honours the name ([`clear_names`]).
//!
//! Merging the same messages in any order gives the same lifetime, provided full messages
//! that disagree, and ends, do not share a time (which of two is "the earliest" is otherwise
//! the first merged), no end lies before a start, and no DEL or DEL_C is later than the
//! latest other sighting (an end that loses to one merged later has raised "last seen";
//! merged after it, it does not). Merging a message twice changes nothing. The tests below
//! check both.

use super::{EndReason, Flavor, FullState, Micros};

/// How a lifetime ended: the time and the reason.
pub type End = (Micros, EndReason);

/// What a lifetime keeps of a state. [`FullState`] keeps everything; a compact form may
/// keep less, as long as it takes what these say.
pub trait Parts {
    /// The earliest full message's: everything but the counters.
    fn take_keys(&mut self, s: &FullState);
    /// The newest full message's: the counters.
    fn take_counters(&mut self, s: &FullState);
}

impl Parts for FullState {
    fn take_keys(&mut self, s: &FullState) {
        let counters = (
            self.expire,
            self.packets,
            self.bytes,
            self.rule,
            self.timeout,
            self.peer_state,
        );
        *self = s.clone();
        (
            self.expire,
            self.packets,
            self.bytes,
            self.rule,
            self.timeout,
            self.peer_state,
        ) = counters;
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

/// What is known of one lifetime that has been seen in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenState<S = FullState> {
    pub state: S,
    pub start: Micros,
    /// Time of the earliest full message seen for it (start = this − creation).
    pub first_full: Micros,
    /// Time of the newest full message: its counters and expiry are the state's.
    pub updated: Micros,
    pub last_seen: Micros,
    pub flavor: Flavor,
}

impl<S: Parts> OpenState<S> {
    /// A lifetime known from one full message seen at `seen`.
    pub fn new(state: S, start: Micros, seen: Micros, flavor: Flavor) -> OpenState<S> {
        OpenState {
            state,
            start,
            first_full: seen,
            updated: seen,
            last_seen: seen,
            flavor,
        }
    }

    /// A full message that opened the lifetime in its run (an `Open` event): keys and
    /// start if it is the earliest, counters if it is the newest.
    pub fn merge_open(&mut self, s: &FullState, start: Micros, seen: Micros, flavor: Flavor) {
        if seen < self.first_full {
            self.state.take_keys(s);
            self.start = start;
            self.flavor = flavor;
            self.first_full = seen;
        }
        self.refresh(s, seen);
    }

    /// A later full message (a `Refresh` event): counters if it is the newest.
    pub fn refresh(&mut self, s: &FullState, seen: Micros) {
        if seen >= self.updated {
            self.state.take_counters(s);
            self.updated = seen;
        }
        self.touch(seen);
    }

    /// A message that names the state without its contents (UPD_C, INS_ACK).
    pub fn touch(&mut self, seen: Micros) {
        self.last_seen = self.last_seen.max(seen);
    }

    /// An end at `at`, kept in `ended` if it is the earliest; never before the start. The
    /// end that wins, if a DEL or DEL_C, is a sighting too (a CLR or a replacement names no
    /// state); one that loses changes nothing (a DEL_C repeated later leaves a lifetime as
    /// it was).
    pub fn end(&mut self, ended: &mut Option<End>, at: Micros, reason: EndReason) {
        end_at(self.start, &mut self.last_seen, ended, at, reason);
    }
}

/// [`OpenState::end`] on the parts of a lifetime that an end touches (a stored row).
pub fn end_at(
    start: Micros,
    last_seen: &mut Micros,
    ended: &mut Option<End>,
    at: Micros,
    reason: EndReason,
) {
    if ended.is_none_or(|(e, _)| at < e) {
        if !matches!(reason, EndReason::Clear | EndReason::Replaced) {
            *last_seen = (*last_seen).max(at);
        }
        *ended = Some((at.max(start), reason));
    }
}

/// Whether a CLR from `clr_creator` naming `clr_ifname` ends a state of `creator` on
/// `ifname`. `by_ifname`: the receiver honours the name (OpenBSD); FreeBSD's clear every
/// state of the creator, and an empty name clears them all on either.
pub fn clear_names(
    clr_creator: u32,
    clr_ifname: &str,
    by_ifname: bool,
    creator: u32,
    ifname: &str,
) -> bool {
    clr_creator == creator && (!by_ifname || clr_ifname.is_empty() || clr_ifname == ifname)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{Af, Direction, Key};
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    const S: Micros = 1_000_000;

    fn state(port: u16, ifname: &str, packets: u64, rule: u32) -> FullState {
        let key = |p: u16| Key {
            addr: [
                IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            ],
            port: [443, p],
            rdomain: 0,
            af: Af::Inet,
        };
        FullState {
            id: 7,
            creator_id: 1,
            ifname: ifname.into(),
            key: [key(port), key(51234)],
            af: Af::Inet,
            proto: 6,
            direction: Direction::Out,
            creation: 3,
            expire: 86400,
            packets: [packets, packets + 1],
            bytes: [packets * 60, packets * 90],
            rule,
            timeout: 2,
            peer_state: [4, 4],
        }
    }

    #[test]
    fn keys_and_start_from_the_earliest_counters_from_the_newest() {
        let mut l = OpenState::new(state(1, "em0", 50, 9), 45 * S, 50 * S, Flavor::OpenBsd);
        // Earlier (an older capture imported later): keys, start, flavour, not counters.
        l.merge_open(&state(2, "em1", 20, 8), 17 * S, 20 * S, Flavor::FreeBsd);
        assert_eq!(l.state.key[0].port[1], 2);
        assert_eq!(l.state.ifname, "em1");
        assert_eq!(
            (l.start, l.first_full, l.flavor),
            (17 * S, 20 * S, Flavor::FreeBsd)
        );
        assert_eq!(
            (l.state.packets[0], l.state.rule, l.updated),
            (50, 9, 50 * S)
        );
        // A newer refresh: counters (the rule number among them), not keys; an older one:
        // nothing but "last seen" (not moved back).
        l.refresh(&state(3, "em2", 70, 7), 70 * S);
        l.refresh(&state(3, "em2", 60, 5), 60 * S);
        assert_eq!(
            (l.state.packets[0], l.state.rule, l.updated),
            (70, 7, 70 * S)
        );
        assert_eq!((l.state.key[0].port[1], l.last_seen), (2, 70 * S));
        // A newer open: counters, keys stay.
        l.merge_open(&state(4, "em3", 80, 6), 77 * S, 80 * S, Flavor::OpenBsd);
        assert_eq!((l.state.packets[0], l.state.rule, l.start), (80, 6, 17 * S));
        assert_eq!(l.state.ifname, "em1");
    }

    #[test]
    fn the_earliest_end_wins_never_before_the_start_and_a_clr_is_no_sighting() {
        let mut l = OpenState::new(state(1, "em0", 1, 1), 40 * S, 50 * S, Flavor::OpenBsd);
        let mut end = None;
        l.end(&mut end, 90 * S, EndReason::Clear);
        assert_eq!(
            (end, l.last_seen),
            (Some((90 * S, EndReason::Clear)), 50 * S)
        );
        l.end(&mut end, 80 * S, EndReason::Delete);
        assert_eq!(
            (end, l.last_seen),
            (Some((80 * S, EndReason::Delete)), 80 * S)
        );
        // A later end loses, and changes nothing.
        l.end(&mut end, 95 * S, EndReason::Delete);
        assert_eq!(
            (end, l.last_seen),
            (Some((80 * S, EndReason::Delete)), 80 * S)
        );
        // Stamped before the start: ends at the start.
        l.end(&mut end, 10 * S, EndReason::Replaced);
        assert_eq!(end, Some((40 * S, EndReason::Replaced)));
    }

    #[test]
    fn a_clr_names_its_creator_and_interface_when_honoured() {
        assert!(clear_names(1, "em0", true, 1, "em0"));
        assert!(!clear_names(1, "em0", true, 1, "em1"));
        assert!(clear_names(1, "", true, 1, "em1"));
        assert!(clear_names(1, "em0", false, 1, "em1"));
        assert!(!clear_names(1, "", false, 2, "em1"));
    }

    /// A message about one lifetime.
    #[derive(Debug, Clone)]
    pub(crate) enum Msg {
        Open(FullState, Micros, Micros, Flavor),
        Refresh(FullState, Micros),
        Touch(Micros),
        End(Micros, EndReason),
    }

    pub(crate) type Merged = (OpenState, Option<End>);

    pub(crate) fn merge(mut l: Merged, m: &Msg) -> Merged {
        match m {
            Msg::Open(s, start, seen, flavor) => l.0.merge_open(s, *start, *seen, *flavor),
            Msg::Refresh(s, seen) => l.0.refresh(s, *seen),
            Msg::Touch(seen) => l.0.touch(*seen),
            Msg::End(at, reason) => l.0.end(&mut l.1, *at, *reason),
        }
        l
    }

    fn reason() -> impl Strategy<Value = EndReason> {
        prop_oneof![
            Just(EndReason::Delete),
            Just(EndReason::DeleteFull),
            Just(EndReason::Clear),
            Just(EndReason::Replaced),
        ]
    }

    /// A full state: the fields a merge picks between.
    fn full() -> impl Strategy<Value = FullState> {
        (1u16..5, 0usize..3, 0u64..1000, 0u32..4, 0u8..3).prop_map(|(port, i, p, rule, t)| {
            let mut s = state(port, ["em0", "em1", "vlan12"][i], p, rule);
            s.timeout = t;
            s.expire = p as u32;
            s
        })
    }

    /// Messages about one lifetime, an opening one first (times in seconds): every full
    /// message and every end at a time of its own, every end after every start: the domain
    /// in which order does not matter (see the module's documentation).
    pub(crate) fn messages() -> impl Strategy<Value = Vec<Msg>> {
        let flavor = prop_oneof![Just(Flavor::OpenBsd), Just(Flavor::FreeBsd)];
        // (kind, state, start, flavour, touch time, end reason)
        let msg = prop_oneof![
            (full(), 0i64..100, flavor).prop_map(|(s, start, f)| (0, s, start, f, 0, None)),
            full().prop_map(|s| (1, s, 0, Flavor::OpenBsd, 0, None)),
            (100i64..400).prop_map(|t| (2, state(1, "", 0, 0), 0, Flavor::OpenBsd, t, None)),
            reason().prop_map(|r| (3, state(1, "", 0, 0), 0, Flavor::OpenBsd, 0, Some(r))),
        ];
        let times = || proptest::sample::subsequence((100i64..400).collect::<Vec<_>>(), 13);
        (
            (full(), 0i64..100),
            proptest::collection::vec(msg, 0..12),
            times(),
            times(),
        )
            .prop_map(|((s0, start0), msgs, full_at, end_at)| {
                let (mut full_at, mut end_at) = (full_at.into_iter(), end_at.into_iter());
                let at = |t: &mut std::vec::IntoIter<i64>| t.next().unwrap_or(400) * S;
                let first = Msg::Open(s0, start0 * S, at(&mut full_at), Flavor::OpenBsd);
                std::iter::once(first)
                    .chain(
                        msgs.into_iter()
                            .map(|(kind, s, start, f, t, r)| match (kind, r) {
                                (0, _) => Msg::Open(s, start * S, at(&mut full_at), f),
                                (1, _) => Msg::Refresh(s, at(&mut full_at)),
                                (3, Some(r)) => Msg::End(at(&mut end_at), r),
                                _ => Msg::Touch(t * S),
                            }),
                    )
                    .collect()
            })
    }

    /// The same messages in another order, an opening one first.
    fn reordered() -> impl Strategy<Value = (Vec<Msg>, Vec<Msg>)> {
        messages().prop_flat_map(|all| {
            let shuffled = Just(all.clone()).prop_shuffle().prop_map(|mut v| {
                if let Some(i) = v.iter().position(|m| matches!(m, Msg::Open(..))) {
                    v.swap(0, i);
                }
                v
            });
            (Just(all), shuffled)
        })
    }

    pub(crate) fn opened(first: &Msg) -> Merged {
        match first {
            Msg::Open(s, start, seen, f) => (OpenState::new(s.clone(), *start, *seen, *f), None),
            m => panic!("not an opening message: {m:?}"),
        }
    }

    pub(crate) fn merged(all: &[Msg]) -> Merged {
        all[1..].iter().fold(opened(&all[0]), merge)
    }

    proptest! {
        #[test]
        fn merging_in_any_order_gives_the_same_lifetime((all, shuffled) in reordered()) {
            // Seen after every end (see the module's documentation).
            let seen_last = Msg::Touch(401 * S);
            prop_assert_eq!(
                merge(merged(&all), &seen_last),
                merge(merged(&shuffled), &seen_last)
            );
        }

        #[test]
        fn merging_twice_changes_nothing(all in messages()) {
            let once = merged(&all);
            let twice = all.iter().fold(once.clone(), merge);
            prop_assert_eq!(once, twice);
        }
    }
}
