//! The FreeBSD decoder against the real-format captures: per-action message counts must
//! equal the fixtures' `messages_applied`, and every state a query names must decode with
//! the expected keys, family, protocol, direction, interface and start time.

use pfstatelog::model::FullState;
use pfstatelog::source::file::CaptureFile;
use pfstatelog::wire::{self, Decoded, Item};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

const CAPTURES: [&str; 5] = [
    "freebsd-1301-nat-dlt246",
    "freebsd-1400-bulk-dlt121",
    "freebsd-1400-ha-ether",
    "freebsd-1500-ipv6transport-ether",
    "mixed-openbsd-freebsd-ether",
];

struct Decoded1 {
    counts: BTreeMap<String, u64>,
    /// First full state seen per (state id, creator id), with its frame's timestamp.
    first_full: HashMap<(u64, u32), (i64, FullState)>,
    damage: Vec<String>,
    frames: u64,
}

fn fixture(name: &str, ext: &str) -> String {
    format!("{}/tests/fixtures/{name}.{ext}", env!("CARGO_MANIFEST_DIR"))
}

fn decode_capture(name: &str) -> Decoded1 {
    let mut cap = CaptureFile::open(&fixture(name, "pcap")).expect("open capture");
    let mut out = Decoded1 {
        counts: BTreeMap::new(),
        first_full: HashMap::new(),
        damage: Vec::new(),
        frames: 0,
    };
    while let Some(frame) = cap.next_frame() {
        let frame = frame.expect("readable frame");
        out.frames += 1;
        let n = out.frames;
        let framed = match wire::link::strip(frame.linktype, &frame.data) {
            Ok(f) => f,
            Err(e) => {
                out.damage.push(format!("frame {n}: link: {e}"));
                continue;
            }
        };
        let pkt = match wire::decode_pfsync(framed.pfsync) {
            Ok(p) => p,
            Err(e) => {
                out.damage.push(format!("frame {n}: header: {e}"));
                continue;
            }
        };
        for item in &pkt.items {
            match item {
                Item::Message(_, d) => record(&mut out, frame.ts_us, d),
                Item::Damage(e) => out.damage.push(format!("frame {n}: {e}")),
            }
        }
    }
    out
}

fn record(out: &mut Decoded1, ts_us: i64, d: &Decoded) {
    *out.counts.entry(d.name()).or_default() += 1;
    if let Some(s) = d.msg.full_state() {
        out.first_full
            .entry((s.id, s.creator_id))
            .or_insert_with(|| (ts_us, s.clone()));
    }
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name, "expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("valid json")
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        o => o.to_string(),
    }
}

fn check_capture(name: &str) {
    let got = decode_capture(name);
    let exp = expected(name);
    assert!(got.damage.is_empty(), "{name}: damage {:?}", got.damage);
    assert_eq!(
        got.frames,
        exp["frames"].as_u64().unwrap(),
        "{name}: frame count"
    );
    let want: BTreeMap<String, u64> = exp["messages_applied"]
        .as_object()
        .expect("messages_applied")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    assert_eq!(got.counts, want, "{name}: messages per action");

    // Every state a query expects must decode as the fixture describes it.
    let mut checked = 0;
    for q in exp["queries"].as_array().expect("queries") {
        for e in q["expected"].as_array().expect("expected") {
            let id = u64::from_str_radix(e["state_id"].as_str().unwrap(), 16).unwrap();
            let cr = u32::from_str_radix(e["creator_id"].as_str().unwrap(), 16).unwrap();
            let Some((ts_us, s)) = got.first_full.get(&(id, cr)) else {
                panic!("{name}: state {id:016x}/{cr:08x} never seen in full");
            };
            let ip = |k: &str| e[k].as_str().unwrap().parse::<IpAddr>().unwrap();
            let port = |k: &str| e[k].as_u64().unwrap() as u16;
            let ctx = format!("{name}: state {id:016x}/{cr:08x}");
            assert_eq!(s.key[1].addr[1], ip("private_ip"), "{ctx} private ip");
            assert_eq!(s.key[1].port[1], port("private_port"), "{ctx} private port");
            assert_eq!(s.key[0].addr[1], ip("public_ip"), "{ctx} public ip");
            assert_eq!(s.key[0].port[1], port("public_port"), "{ctx} public port");
            assert_eq!(s.key[0].addr[0], ip("remote_ip"), "{ctx} remote ip");
            assert_eq!(s.key[0].port[0], port("remote_port"), "{ctx} remote port");
            assert_eq!(proto_name(s.proto), e["proto"].as_str().unwrap(), "{ctx}");
            assert_eq!(s.af.name(), e["af"].as_str().unwrap(), "{ctx} af");
            assert_eq!(
                s.direction.name(),
                e["direction"].as_str().unwrap(),
                "{ctx}"
            );
            assert_eq!(s.ifname, e["ifname"].as_str().unwrap(), "{ctx} ifname");
            assert_eq!(s.is_nat(), e["nat"].as_bool().unwrap(), "{ctx} nat");
            let start = chrono::DateTime::parse_from_rfc3339(e["start"].as_str().unwrap())
                .unwrap()
                .timestamp_micros();
            assert_eq!(ts_us - s.creation as i64 * 1_000_000, start, "{ctx} start");
            checked += 1;
        }
    }
    assert!(checked > 0, "{name}: no query states checked");
    eprintln!("{name}: {:?}; {checked} query states checked", got.counts);
}

#[test]
fn freebsd_1301_nat_dlt246() {
    check_capture(CAPTURES[0]);
}

#[test]
fn freebsd_1400_bulk_dlt121() {
    check_capture(CAPTURES[1]);
}

#[test]
fn freebsd_1400_ha_ether() {
    check_capture(CAPTURES[2]);
}

#[test]
fn freebsd_1500_ipv6transport_ether() {
    check_capture(CAPTURES[3]);
}

#[test]
fn mixed_openbsd_freebsd_ether() {
    check_capture(CAPTURES[4]);
}
