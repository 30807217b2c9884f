//! `pfstatelog decode` end to end through the built binary (README, "Decoding"): every capture
//! in tests/fixtures decodes to JSON lines whose per-action counts equal the fixture's
//! `messages_applied`; the text form prints tcpdump-style lines with pfctl state lines; bad
//! input exits 2 with one `pfstatelog: ` line on stderr.

use assert_cmd::Command;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn capture_path(name: &str) -> PathBuf {
    let d = fixtures();
    for ext in ["pcap", "pcapng"] {
        let p = d.join(format!("{name}.{ext}"));
        if p.exists() {
            return p;
        }
    }
    panic!("no capture named {name} in {}", d.display());
}

fn expected(name: &str) -> Value {
    let p = fixtures().join(format!("{name}.expected.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn pfstatelog() -> Command {
    let mut c = Command::cargo_bin("pfstatelog").expect("the pfstatelog binary");
    // Keep the run independent of the caller's environment.
    c.env_remove("PFSTATELOG_DB").env("TZ", "UTC");
    c
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = pfstatelog().args(args).output().expect("run pfstatelog");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The fixture's name for an action → ours (`unknown(42)` is `ACT_42` in `decode --format json`).
fn our_name(fixture_name: &str) -> String {
    match fixture_name
        .strip_prefix("unknown(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Some(n) => format!("ACT_{n}"),
        None => fixture_name.to_string(),
    }
}

/// Actions whose message names a state by (id, creatorid).
fn names_a_state(action: &str) -> bool {
    matches!(
        action,
        "INS_ACK" | "UPD_C" | "UPD_REQ" | "DEL" | "DEL_C" | "INS" | "UPD"
    ) || action.starts_with("INS_1")
        || action.starts_with("UPD_1")
}

/// Actions without a creator id on the wire.
fn has_no_creator(action: &str) -> bool {
    action == "TDB" || action == "EOF" || action.starts_with("ACT_")
}

/// Decode a capture as JSON and check every line; returns the applied counts per action.
fn json_counts(name: &str) -> BTreeMap<String, u64> {
    let path = capture_path(name);
    let r = run(&[
        "decode",
        "--format",
        "json",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(r.code, Some(0), "{name}: stderr {}", r.stderr);
    let mut counts = BTreeMap::new();
    let mut lines = 0;
    for (i, line) in r.stdout.lines().enumerate() {
        lines += 1;
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{name} line {}: not JSON ({e}): {line}", i + 1));
        let o = v
            .as_object()
            .unwrap_or_else(|| panic!("{name}: not an object: {line}"));
        let ts = o
            .get("ts")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{name}: no ts: {line}"));
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok() && ts.ends_with('Z'),
            "{name}: ts {ts} is not RFC 3339 UTC"
        );
        let Some(action) = o.get("action").and_then(Value::as_str) else {
            // Damage or a skipped frame: must say so.
            assert!(
                o.contains_key("error") || o.contains_key("skipped"),
                "{name}: neither action nor error: {line}"
            );
            continue;
        };
        if !has_no_creator(action) {
            let c = o
                .get("creator_id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name}: {action} without creator_id: {line}"));
            assert!(is_hex(c, 8), "{name}: creator_id {c:?}: {line}");
        }
        if names_a_state(action) {
            let s = o
                .get("state_id")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{name}: {action} without state_id: {line}"));
            assert!(is_hex(s, 16), "{name}: state_id {s:?}: {line}");
        }
        if o.get("applied") == Some(&Value::Bool(false)) {
            continue;
        }
        *counts.entry(action.to_string()).or_insert(0) += 1;
    }
    assert!(lines > 0, "{name}: no output");
    assert!(
        r.stderr.starts_with("pfstatelog: "),
        "{name}: summary line: {}",
        r.stderr
    );
    counts
}

fn check_counts(name: &str, extra_allowed: &[(&str, u64)]) {
    let exp = expected(name);
    let applied = exp["messages_applied"]
        .as_object()
        .unwrap_or_else(|| panic!("{name}: messages_applied"));
    let got = json_counts(name);
    let mut want: BTreeMap<String, u64> = applied
        .iter()
        .map(|(k, v)| (our_name(k), v.as_u64().expect("a count")))
        .collect();
    for (k, v) in extra_allowed {
        want.insert((*k).to_string(), *v);
    }
    assert_eq!(got, want, "{name}: decoded actions vs messages_applied");
}

macro_rules! capture_tests {
    ($($fn:ident => $name:expr),* $(,)?) => {
        $(
            #[test]
            fn $fn() {
                check_counts($name, &[]);
            }
        )*
    };
}

capture_tests! {
    json_nat_outbound_l3_dlt246 => "nat-outbound-l3-dlt246",
    json_rdr_and_no_nat_l3_dlt18 => "rdr-and-no-nat-l3-dlt18",
    json_ipv6_icmp_l5_dlt246ip => "ipv6-icmp-l5-dlt246ip",
    json_ha_pair_clr_l5_ether => "ha-pair-clr-l5-ether",
    json_bulk_transfer_l3_ether => "bulk-transfer-l3-ether",
    json_mixed_actions_l3_dlt246 => "mixed-actions-l3-dlt246",
    json_all_features_l5_ether => "all-features-l5-ether",
    json_freebsd_1301_nat_dlt246 => "freebsd-1301-nat-dlt246",
    json_freebsd_1400_bulk_dlt121 => "freebsd-1400-bulk-dlt121",
    json_freebsd_1400_ha_ether => "freebsd-1400-ha-ether",
    json_freebsd_1500_ipv6transport_ether => "freebsd-1500-ipv6transport-ether",
    json_mixed_openbsd_freebsd_ether => "mixed-openbsd-freebsd-ether",
}

#[test]
fn json_hostile_l5_ether() {
    // messages_applied omits the two ACT_42 messages of frame 157, which a decoder steps over
    // (R4) and `decode` prints; nothing else may appear.
    check_counts("hostile-l5-ether", &[("ACT_42", 2)]);
}

#[test]
fn every_capture_in_fixtures_is_covered() {
    let covered = [
        "nat-outbound-l3-dlt246",
        "rdr-and-no-nat-l3-dlt18",
        "ipv6-icmp-l5-dlt246ip",
        "ha-pair-clr-l5-ether",
        "bulk-transfer-l3-ether",
        "mixed-actions-l3-dlt246",
        "all-features-l5-ether",
        "freebsd-1301-nat-dlt246",
        "freebsd-1400-bulk-dlt121",
        "freebsd-1400-ha-ether",
        "freebsd-1500-ipv6transport-ether",
        "mixed-openbsd-freebsd-ether",
        "hostile-l5-ether",
    ];
    for e in std::fs::read_dir(fixtures()).expect("tests/fixtures") {
        let p = e.expect("dir entry").path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ext == "pcap" || ext == "pcapng" {
            let stem = p.file_stem().and_then(|s| s.to_str()).expect("name");
            assert!(
                covered.contains(&stem),
                "{stem} has no decode test: add it to capture_tests!"
            );
            assert!(
                fixtures().join(format!("{stem}.expected.json")).exists(),
                "{stem} has no expected.json"
            );
        }
    }
}

#[test]
fn json_hostile_reports_damage_as_error_objects() {
    let path = capture_path("hostile-l5-ether");
    let r = run(&["decode", "--format", "json", path.to_str().expect("path")]);
    assert_eq!(r.code, Some(0));
    let errors: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON"))
        .filter(|v| v.get("error").is_some())
        .collect();
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(e["error"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
        assert!(e.get("frame").and_then(Value::as_u64).is_some(), "{e}");
    }
    let frames: Vec<u64> = errors.iter().filter_map(|e| e["frame"].as_u64()).collect();
    for f in [
        27, 35, 38, 69, 86, 111, 150, 160, 176, 292, 299, 317, 323, 344, 363,
    ] {
        assert!(frames.contains(&f), "no error object for damaged frame {f}");
    }
}

// ---------------------------------------------------------------------------------------------
// Text form.

#[test]
fn text_count_3_prints_tcpdump_style_lines() {
    let path = capture_path("nat-outbound-l3-dlt246");
    let r = run(&["decode", path.to_str().expect("path"), "--count", "3"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = &r.stdout;
    let headers: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("PFSYNCv6 len "))
        .collect();
    assert_eq!(headers.len(), 3, "{out}");
    for h in &headers {
        let len = h
            .rsplit("PFSYNCv6 len ")
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<u32>().ok());
        assert!(len.is_some_and(|l| l >= 20), "{h}");
    }
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("act INS ST count ")),
        "{out}"
    );
    // The first frame's INS pair: the untranslated LAN in-state and its NAT out-state.
    assert!(
        out.lines()
            .any(|l| l.trim() == "all udp 198.51.100.100:123 <- 192.168.1.42:2900"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim()
                == "all udp 203.0.113.10:50038 (192.168.1.42:2900) -> 198.51.100.100:123"),
        "{out}"
    );
    let ids: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("id: "))
        .collect();
    assert!(!ids.is_empty());
    for l in ids {
        let parts: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "{l}");
        assert_eq!(parts[0], "id:");
        assert!(is_hex(parts[1], 16), "{l}");
        assert_eq!(parts[2], "creatorid:");
        assert!(is_hex(parts[3], 8), "{l}");
    }
    assert!(r.stderr.contains("3 frames"), "{}", r.stderr);
}

#[test]
fn text_prints_a_known_nat_state_in_pfctl_form() {
    let name = "nat-outbound-l3-dlt246";
    let exp = expected(name);
    // A translated out state from the expected answers (outbound NAT, TCP).
    let m = exp["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .flat_map(|q| q["expected"].as_array().into_iter().flatten())
        .find(|m| m["direction"] == "out" && m["nat"] == true && m["proto"] == "tcp")
        .expect("an outbound TCP NAT state in the expected answers")
        .clone();
    let s = |k: &str| match &m[k] {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let want = format!(
        "{} tcp {}:{} ({}:{}) -> {}:{}",
        s("ifname"),
        s("public_ip"),
        s("public_port"),
        s("private_ip"),
        s("private_port"),
        s("remote_ip"),
        s("remote_port"),
    );
    let want_id = format!("id: {} creatorid: {}", s("state_id"), s("creator_id"));
    let path = capture_path(name);
    let r = run(&["decode", path.to_str().expect("path")]);
    assert_eq!(r.code, Some(0));
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    let found = lines
        .windows(3)
        .any(|w| w[0] == want && w[1].starts_with("age ") && w[2] == want_id);
    assert!(found, "no `{want}` / `{want_id}` in the text output");
}

#[test]
fn text_mixed_actions_names_every_section() {
    let path = capture_path("mixed-actions-l3-dlt246");
    let r = run(&["decode", path.to_str().expect("path")]);
    assert_eq!(r.code, Some(0));
    for sect in [
        "act INS ST count ",
        "act UPD ST COMP count ",
        "act DEL ST COMP count ",
        "act DEL ST count ",
        "act INS ST ACK count ",
        "act UPD ST REQ count ",
        "act UPD ST count ",
        "act BULK UPD STAT count ",
        "act UPD TDB count ",
        "act UNKNOWN id 42 count ",
    ] {
        assert!(
            r.stdout.lines().any(|l| l.trim_start().starts_with(sect)),
            "no `{sect}` line"
        );
    }
    assert!(r.stdout.contains("status: start"));
    assert!(r.stdout.contains("status: end"));
    assert!(r
        .stdout
        .lines()
        .any(|l| l.trim_start().starts_with("spi: 0x")));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

fn assert_one_line_error(r: &Run, what: &str) {
    assert_eq!(
        r.code,
        Some(2),
        "{what}: stdout {} stderr {}",
        r.stdout,
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: stderr {:?}", r.stderr);
    assert!(lines[0].starts_with("pfstatelog: "), "{what}: {}", lines[0]);
}

#[test]
fn missing_file_exits_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("no-such.pcap");
    let r = run(&["decode", p.to_str().expect("path")]);
    assert_one_line_error(&r, "missing file");
    assert!(r.stderr.contains("no-such.pcap"), "{}", r.stderr);
    let r = run(&["decode", "--format", "json", p.to_str().expect("path")]);
    assert_one_line_error(&r, "missing file, json");
}

#[test]
fn non_capture_files_exit_2_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a capture file\nsecond line\n").expect("write");
    let r = run(&["decode", text.to_str().expect("path")]);
    assert_one_line_error(&r, "text file");
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    let r = run(&["decode", empty.to_str().expect("path")]);
    assert_one_line_error(&r, "empty file");
    // A pcap magic with no room for the rest of the file header.
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]).expect("write");
    let r = run(&["decode", cut.to_str().expect("path")]);
    assert_one_line_error(&r, "cut pcap header");
    // A directory.
    let r = run(&["decode", dir.path().to_str().expect("path")]);
    assert_one_line_error(&r, "directory");
}

/// A classic little-endian pcap with the given link type and frames (microsecond stamps).
fn write_pcap(path: &Path, linktype: u32, frames: &[&[u8]]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    b.extend_from_slice(&0i32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&65535u32.to_le_bytes());
    b.extend_from_slice(&linktype.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        b.extend_from_slice(&(1_741_942_800u32 + i as u32).to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("write pcap");
}

/// pfsync v6 with one DEL_C (hand-written: header 20 bytes, subheader 7/3/1, id, creator).
fn del_c_packet() -> Vec<u8> {
    let mut p = vec![6, 0, 0, 36];
    p.extend_from_slice(&[0u8; 16]);
    p.extend_from_slice(&[7, 3, 0, 1]);
    p.extend_from_slice(&0x0000_0077_0000_0055u64.to_be_bytes());
    p.extend_from_slice(&0x5a3c_1e07u32.to_be_bytes());
    p
}

#[test]
fn unsupported_link_type_is_reported_by_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("lt147.pcap");
    let pkt = del_c_packet();
    write_pcap(&p, 147, &[&pkt, &pkt]);
    for format in ["text", "json"] {
        let r = run(&["decode", "--format", format, p.to_str().expect("path")]);
        // Either refused up front (2) or reported per frame (0); never a crash, never silent.
        assert!(
            matches!(r.code, Some(0) | Some(2)),
            "{format}: {:?}",
            r.code
        );
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(
            all.contains("link type 147"),
            "{format}: the link type is not named: {all}"
        );
        assert!(
            !all.contains("DEL ST COMP") && !all.contains("\"DEL_C\""),
            "{all}"
        );
    }
}

#[test]
fn a_hand_written_pcap_decodes_on_every_pfsync_link_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pkt = del_c_packet();
    for lt in [18u32, 121, 246] {
        let p = dir.path().join(format!("lt{lt}.pcap"));
        write_pcap(&p, lt, &[&pkt]);
        let r = run(&["decode", "--format", "json", p.to_str().expect("path")]);
        assert_eq!(r.code, Some(0), "{lt}: {}", r.stderr);
        let v: Value =
            serde_json::from_str(r.stdout.lines().next().expect("a line")).expect("JSON");
        assert_eq!(v["action"], "DEL_C");
        assert_eq!(v["state_id"], "0000007700000055");
        assert_eq!(v["creator_id"], "5a3c1e07");
        assert_eq!(v["ts"], "2025-03-14T09:00:00.000000Z");
    }
}
