//! First byte: link type selector; then frames, each as [len: u16 BE][time step: i8][bytes].
//! Every frame is decoded and its messages applied to one Tracker, as `import` does; the
//! tracker's invariants are checked after every frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pfstatelog::pipeline::{DecodeStats, Outcome};
use pfstatelog::report::line::event_line;
use pfstatelog::model::Event;
use pfstatelog::track::Tracker;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let lt = common::linktype(sel);
    let mut tracker = Tracker::new();
    let mut stats = DecodeStats::default();
    // 2025-03-14T09:00:00Z; steps of half a second, backwards too (merged captures).
    let mut ts: i64 = 1_741_942_800_000_000;
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        ts += rest[2] as i8 as i64 * 500_000;
        rest = &rest[3..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        let (o, fr) = common::decode_one(lt, frame, ts);
        if !stats.count(&fr, &o) {
            continue;
        }
        let Outcome::Packet { pkt, .. } = &o else {
            unreachable!("count() applies packets only")
        };
        for d in pkt.messages() {
            // Checked after each message: a later one in the same packet may end the state.
            let mut events = Vec::new();
            tracker.apply(d, ts, &mut events);
            for e in &events {
                check_event(&tracker, e, ts);
            }
        }
        let st = &tracker.stats;
        assert_eq!(
            tracker.open_count() as u64,
            st.opened - st.closed,
            "open states vs opened - closed"
        );
        assert!(st.cleared <= st.closed);
    }
    let _ = stats.messages_line();
    let _ = stats.errors_line();
});

fn check_event(tracker: &Tracker, e: &Event, ts: i64) {
    let _ = event_line(e);
    match e {
        Event::Open {
            state, start, seen, ..
        } => {
            assert_eq!(*seen, ts);
            assert_eq!(*start, ts - state.creation as i64 * 1_000_000);
            assert!(start <= seen);
        }
        Event::End { start, end, .. } => {
            assert!(end >= start, "End before start: {e:?}");
            assert_eq!(*end, ts);
        }
        Event::Touch { key, seen } => {
            assert_eq!(*seen, ts);
            assert!(tracker.get(key).is_some(), "touched a state not open");
        }
        Event::Refresh { state, seen } => {
            assert_eq!(*seen, ts);
            let k = pfstatelog::model::StateRef {
                id: state.id,
                creator_id: state.creator_id,
            };
            // A full DEL refreshes then ends in one apply; otherwise the state stays open.
            let _ = tracker.get(&k);
        }
        Event::Orphan { seen, .. } | Event::Bus { seen, .. } => assert_eq!(*seen, ts),
        // Other events (the tracker grows new kinds) carry no invariant checked here.
        #[allow(unreachable_patterns)]
        _ => {}
    }
}
