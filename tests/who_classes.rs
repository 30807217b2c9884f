//! `who` and `history` read only the duration classes and time buckets that can overlap the
//! asked range (migrations/0001_schema.sql). Checked against a brute-force oracle
//! over lifetimes of every length, from under a second to years, and open ones, including
//! the edges of classes and buckets.

use pfstatelog::store::sqlite::{self as store, query};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::IpAddr;

const PUBLIC: [u8; 4] = [203, 0, 113, 1];
const PRIVATE: [u8; 4] = [10, 0, 0, 7];
/// 2026-01-01T00:00:00Z.
const BASE: i64 = 1_767_225_600_000_000;

/// Durations that sit on and beside every class edge, and in the middle of each class.
fn durations() -> Vec<i64> {
    let mut v = vec![0, 1];
    for m in query::CLASS_MAX_US.iter().take(13) {
        v.extend([m - 1, *m, m + 1, m / 2 * 3]);
    }
    v
}

fn db_with(lifetimes: &[(i64, Option<i64>)]) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("t.db").display().to_string();
    let conn = store::open_rw(&path).expect("open");
    let mut st = conn
        .prepare(
            "INSERT INTO states (creator_id, state_id, af, proto, direction, w_addr0, w_port0,
                w_addr1, w_port1, s_addr0, s_port0, s_addr1, s_port1, start_us, first_us,
                end_us, last_us)
             VALUES (1, ?1, 2, 17, 2, x'5db8d822', 53, ?2, 61234, x'5db8d822', 53, ?3, 5353,
                ?4, ?4, ?5, coalesce(?5, ?4))",
        )
        .expect("prepare");
    for (i, (start, end)) in lifetimes.iter().enumerate() {
        st.execute(rusqlite::params![
            i as i64 + 1,
            PUBLIC.to_vec(),
            PRIVATE.to_vec(),
            start,
            end
        ])
        .expect("insert");
    }
    drop(st);
    (dir, conn)
}

fn oracle(lifetimes: &[(i64, Option<i64>)], t0: i64, t1: i64) -> BTreeSet<u64> {
    lifetimes
        .iter()
        .enumerate()
        .filter(|(_, (s, e))| *s <= t1 && e.is_none_or(|e| e >= t0))
        .map(|(i, _)| i as u64 + 1)
        .collect()
}

fn check(lifetimes: &[(i64, Option<i64>)], queries: &[(i64, i64)]) {
    let (_dir, conn) = db_with(lifetimes);
    let (public, private) = (IpAddr::from(PUBLIC), IpAddr::from(PRIVATE));
    let f = pfstatelog::store::WhoFilter::default();
    for &(t0, t1) in queries {
        let want = oracle(lifetimes, t0, t1);
        let who: BTreeSet<u64> = query::who(&conn, &public, 61234, t0, t1, t0, &f)
            .expect("who")
            .iter()
            .map(|l| l.state_id)
            .collect();
        assert_eq!(who, want, "who over [{t0}, {t1}]");
        let hist: BTreeSet<u64> = query::history(&conn, &private, &private, t0, t1, None)
            .expect("history")
            .iter()
            .map(|l| l.state_id)
            .collect();
        assert_eq!(hist, want, "history over [{t0}, {t1}]");
        let lo = IpAddr::from([10, 0, 0, 0]);
        let hi = IpAddr::from([10, 0, 255, 255]);
        let prefix: BTreeSet<u64> = query::history(&conn, &lo, &hi, t0, t1, Some(5353))
            .expect("history of a prefix")
            .iter()
            .map(|l| l.state_id)
            .collect();
        assert_eq!(prefix, want, "history of 10.0/16 over [{t0}, {t1}]");
    }
}

#[test]
fn every_class_edge_is_found_at_its_start_and_end_and_not_beyond() {
    // Starts on and beside a bucket edge (2^32 µs and the wider buckets of long classes).
    let edge = (BASE >> 40) << 40;
    let mut lifetimes = Vec::new();
    for start in [edge - 1, edge, edge + 1, BASE] {
        for d in durations() {
            lifetimes.push((start, Some(start + d)));
        }
        lifetimes.push((start, None));
    }
    let mut queries = Vec::new();
    for &(s, e) in &lifetimes {
        let e = e.unwrap_or(s);
        for t in [s - 1, s, e, e + 1] {
            queries.push((t, t));
        }
    }
    check(&lifetimes, &queries);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn who_and_history_equal_a_brute_force_overlap(
        ls in prop::collection::vec((0i64..(1 << 45), 0u32..52, any::<bool>()), 1..60),
        qs in prop::collection::vec((0i64..(1 << 45), 0u32..44), 1..12),
    ) {
        // Log-uniform durations from 1 µs to ~36 years; some lifetimes still open.
        let lifetimes: Vec<(i64, Option<i64>)> = ls
            .iter()
            .map(|&(s, bits, open)| {
                let d = (1i64 << bits) - 1;
                (BASE - (1 << 44) + s, (!open).then_some(BASE - (1 << 44) + s + d))
            })
            .collect();
        let queries: Vec<(i64, i64)> = qs
            .iter()
            .map(|&(t, w)| (BASE - (1 << 44) + t, BASE - (1 << 44) + t + (1i64 << w) - 1))
            .collect();
        check(&lifetimes, &queries);
    }
}
