//! The query side through the built binary: bad input gets one clear line and exit 2;
//! `who` keeps answering while an import writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pfstatelog")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run pfstatelog")
}

fn imported(dir: &Path) -> String {
    let db = dir.join("q.db").display().to_string();
    let out = run(&[
        "import",
        "--db",
        &db,
        &fixture("nat-outbound-l3-dlt246.pcap").display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db
}

/// Exit 2 and exactly one stderr line, naming what was wrong.
fn assert_one_line_error(out: &Output, needle: &str, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit {:?}, stderr {err}",
        out.status.code()
    );
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected one stderr line, got {err:?}"
    );
    assert!(lines[0].starts_with("pfstatelog: "), "{what}: {err}");
    assert!(
        lines[0].contains(needle),
        "{what}: {err:?} does not name {needle:?}"
    );
    assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    let who = |ip: &str, port: &str, at: &str, window: &str| {
        run(&[
            "who", "--db", &db, "--ip", ip, "--port", port, "--at", at, "--window", window,
            "--format", "json",
        ])
    };
    let at = "2025-03-14T09:05:00Z";
    assert_one_line_error(&who("999.1.1.1", "50005", at, "0"), "999.1.1.1", "bad IP");
    assert_one_line_error(
        &who("203.0.113.10", "70000", at, "0"),
        "70000",
        "port out of range",
    );
    assert_one_line_error(
        &who("203.0.113.10", "http", at, "0"),
        "http",
        "port not a number",
    );
    assert_one_line_error(
        &who("203.0.113.10", "50005", "yesterday-ish", "0"),
        "yesterday-ish",
        "unparsable time",
    );
    assert_one_line_error(
        &who("203.0.113.10", "50005", "2025-13-14T09:05:00Z", "0"),
        "2025-13-14",
        "month 13",
    );
    assert_one_line_error(
        &who("203.0.113.10", "50005", at, "-5s"),
        "-5s",
        "negative window",
    );
    assert_one_line_error(
        &run(&[
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "1",
            "--at",
            at,
            "--proto",
            "bogus",
        ]),
        "bogus",
        "unknown protocol",
    );
    assert_one_line_error(
        &run(&[
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "1",
            "--at",
            at,
            "--remote",
            "1.2.3",
        ]),
        "1.2.3",
        "bad remote",
    );
    assert_one_line_error(
        &run(&["who", "--db", &db, "--ip", "203.0.113.10"]),
        "--port",
        "missing arguments",
    );
    assert_one_line_error(
        &run(&[
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "1",
            "--at",
            at,
            "--format",
            "xml",
        ]),
        "xml",
        "unknown format",
    );
    assert_one_line_error(
        &run(&["history", "--db", &db, "--host", "10.0.0.0/33"]),
        "10.0.0.0/33",
        "bad prefix",
    );

    let missing = tmp.path().join("nope.db").display().to_string();
    assert_one_line_error(
        &run(&[
            "who", "--db", &missing, "--ip", "1.2.3.4", "--port", "1", "--at", at,
        ]),
        "nope.db",
        "missing database",
    );
    assert!(
        !Path::new(&missing).exists(),
        "a query must not create a database"
    );

    let foreign = tmp.path().join("foreign.db");
    {
        let c = pfstatelog::store::sqlite::pagesum::open(&foreign).expect("sqlite");
        c.execute_batch("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT); INSERT INTO moz_places (url) VALUES ('x');")
            .expect("create");
    }
    let before = std::fs::read(&foreign).expect("read");
    let f = foreign.display().to_string();
    assert_one_line_error(
        &run(&[
            "who", "--db", &f, "--ip", "1.2.3.4", "--port", "1", "--at", at,
        ]),
        "another program",
        "foreign SQLite file",
    );
    assert_one_line_error(
        &run(&[
            "import",
            "--db",
            &f,
            &fixture("nat-outbound-l3-dlt246.pcap").display().to_string(),
        ]),
        "another program",
        "import into a foreign SQLite file",
    );
    assert_eq!(
        before,
        std::fs::read(&foreign).expect("read"),
        "a foreign database must not be written"
    );

    let newer = tmp.path().join("newer.db");
    std::fs::copy(&db, &newer).expect("copy");
    {
        let c = pfstatelog::store::sqlite::pagesum::open(&newer).expect("sqlite");
        c.pragma_update(None, "user_version", 999).expect("bump");
    }
    let n = newer.display().to_string();
    assert_one_line_error(
        &run(&[
            "who", "--db", &n, "--ip", "1.2.3.4", "--port", "1", "--at", at,
        ]),
        "newer",
        "newer schema",
    );
    assert_one_line_error(
        &run(&[
            "import",
            "--db",
            &n,
            &fixture("nat-outbound-l3-dlt246.pcap").display().to_string(),
        ]),
        "newer",
        "import into a newer schema",
    );

    let garbage = tmp.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5au8; 8192]).expect("write");
    let g = garbage.display().to_string();
    assert_one_line_error(
        &run(&[
            "who", "--db", &g, "--ip", "1.2.3.4", "--port", "1", "--at", at,
        ]),
        "garbage.db",
        "not a database",
    );

    let dir = tmp.path().display().to_string();
    assert_one_line_error(
        &run(&[
            "who", "--db", &dir, "--ip", "1.2.3.4", "--port", "1", "--at", at,
        ]),
        &dir,
        "a directory",
    );

    assert_one_line_error(
        &run(&["import", "--db", &db, "/nonexistent/capture.pcap"]),
        "/nonexistent/capture.pcap",
        "missing capture",
    );
    assert_one_line_error(&run(&["decode", &g]), "garbage.db", "not a capture");
    assert_one_line_error(&run(&["frobnicate"]), "frobnicate", "unknown subcommand");
}

#[test]
fn exit_status_is_0_on_a_match_and_1_on_none() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    // From nat-outbound-l3-dlt246.expected.json: 192.168.1.17:8950 held 203.0.113.10:50028.
    let hit = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.10",
        "--port",
        "50028",
        "--at",
        "2025-03-14T09:01:30Z",
    ]);
    assert_eq!(
        hit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&hit.stderr)
    );
    let table = String::from_utf8_lossy(&hit.stdout);
    assert!(
        table.contains("192.168.1.17:8950"),
        "table names the inside host: {table}"
    );
    assert!(table.contains("5a3c1e07"), "{table}");
    let csv = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.10",
        "--port",
        "50028",
        "--at",
        "2025-03-14T09:01:30Z",
        "--format",
        "csv",
    ]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(
        text.starts_with(
            "private_ip,private_port,public_ip,public_port,remote_ip,remote_port,proto"
        ),
        "{text}"
    );
    assert!(
        text.contains("192.168.1.17,8950,203.0.113.10,50028"),
        "{text}"
    );
    let none = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.10",
        "--port",
        "50028",
        "--at",
        "2025-03-14T09:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&none.stdout).trim(), "[]");
    // Outside the capture: the answer says the recorder was blind then, on stderr only.
    let blind = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.10",
        "--port",
        "50028",
        "--at",
        "2024-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(blind.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&blind.stderr).contains("no recorder was watching"));
    let report = run(&[
        "who",
        "--db",
        &db,
        "--ip",
        "203.0.113.10",
        "--port",
        "50028",
        "--at",
        "2024-01-01T00:00:00Z",
        "--format",
        "json-report",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json-report");
    assert_eq!(v["coverage"]["complete"], false);
    assert_eq!(v["matches"].as_array().map(|a| a.len()), Some(0));
}

#[test]
fn who_answers_while_an_import_writes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    let caps: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .expect("fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
            .map(|p| p.display().to_string())
            .collect();
    let mut writer = Command::new(bin())
        .args(["import", "--db", &db])
        .args(&caps)
        .args(&caps)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn import");
    let mut asked = 0;
    loop {
        let out = run(&[
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "50028",
            "--at",
            "2025-03-14T09:01:30Z",
            "--format",
            "json",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("locked") && !err.contains("busy"),
            "who failed during an import: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "who during an import: {err}");
        asked += 1;
        if writer.try_wait().expect("wait").is_some() && asked >= 5 {
            break;
        }
    }
    assert!(writer.wait().expect("import").success());
}

/// A batch answer carries the coverage facts of a single one: the stderr warning, a
/// coverage column in CSV (after the older columns), a coverage object in JSON; json-report
/// is honoured and the default format prints tables.
#[test]
fn batch_answers_say_when_the_recorder_was_blind() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    let batch = tmp.path().join("complaints.csv");
    std::fs::write(
        &batch,
        "ip,port,time\n203.0.113.10,50028,2024-01-01T00:00:00Z\n203.0.113.10,50028,2025-03-14T09:01:30Z\n",
    )
    .expect("write batch");
    let batch = batch.display().to_string();
    let ask = |format: &str| run(&["who", "--db", &db, "--batch", &batch, "--format", format]);

    let csv = ask("csv");
    assert_eq!(csv.status.code(), Some(0));
    let err = String::from_utf8_lossy(&csv.stderr);
    assert!(
        err.contains("line 2") && err.contains("no recorder was watching"),
        "the blind line is warned about: {err:?}"
    );
    assert!(!err.contains("line 3"), "the watched line is not: {err:?}");
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    assert!(
        header.starts_with(
            "query_ip,query_port,query_time,query_window,query_remote,matches,private_ip,"
        ),
        "older columns first, in order: {header}"
    );
    assert!(header.ends_with(",coverage,coverage_detail"), "{header}");
    let blind = lines.next().unwrap_or("");
    assert!(
        blind.starts_with("203.0.113.10,50028,2024-01-01T00:00:00Z,,,0,")
            && blind.contains(",incomplete,no recorder was watching"),
        "{blind}"
    );
    for l in lines {
        assert!(l.ends_with(",complete,"), "a watched answer: {l}");
    }

    let json = ask("json");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["coverage"]["complete"], false);
    assert_eq!(answers[1]["coverage"]["complete"], true);
    assert!(String::from_utf8_lossy(&json.stderr).contains("no recorder was watching"));

    let report = ask("json-report");
    let answers: Vec<serde_json::Value> = String::from_utf8_lossy(&report.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a json-report line"))
        .collect();
    assert_eq!(answers.len(), 2, "one report per complaint");
    assert_eq!(answers[0]["query"]["line"], 2);
    assert_eq!(answers[0]["query"]["port"], 50028);
    assert_eq!(answers[0]["coverage"]["complete"], false);
    assert_eq!(answers[0]["matches"].as_array().map(|a| a.len()), Some(0));
    assert_eq!(answers[1]["coverage"]["complete"], true);
    assert!(answers[1]["matches"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));

    let table = run(&["who", "--db", &db, "--batch", &batch]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(!text.contains("query_ip"), "a table, not CSV: {text}");
    assert!(text.contains("192.168.1.17:8950"), "{text}");
    assert!(text.contains("no state matched"), "{text}");
    assert!(text.contains("coverage: incomplete"), "{text}");
    assert!(text.contains("coverage: complete"), "{text}");
}

/// `--port -1` is a port out of range, not an unknown option.
#[test]
fn a_negative_port_is_out_of_range() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    for args in [
        vec![
            "who",
            "--db",
            &db,
            "--ip",
            "203.0.113.10",
            "--port",
            "-1",
            "--at",
            "2025-03-14T09:01:30Z",
        ],
        vec![
            "history",
            "--db",
            &db,
            "--host",
            "192.168.1.17",
            "--port",
            "-1",
        ],
    ] {
        let out = run(&args);
        assert_one_line_error(&out, "-1", "negative port");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("0-65535") && !err.contains("unexpected argument"),
            "{err}"
        );
    }
}

/// `history --proto` and `--remote` keep only the matching states, as `who`'s do.
#[test]
fn history_filters_by_protocol_and_remote() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = imported(tmp.path());
    let rows = |extra: &[&str]| -> Vec<Vec<String>> {
        let mut args = vec![
            "history",
            "--db",
            &db,
            "--host",
            "192.168.1.17",
            "--format",
            "csv",
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(1),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(String::from).collect())
            .collect()
    };
    let all = rows(&[]);
    // Columns: remote_ip 4, remote_port 5, proto 6.
    let tcp = rows(&["--proto", "tcp"]);
    let udp = rows(&["--proto", "udp"]);
    assert!(
        !tcp.is_empty() && !udp.is_empty(),
        "the host has both: {all:?}"
    );
    assert!(tcp.iter().all(|r| r[6] == "tcp"), "{tcp:?}");
    assert!(udp.iter().all(|r| r[6] == "udp"), "{udp:?}");
    assert_eq!(
        tcp.len(),
        all.iter().filter(|r| r[6] == "tcp").count(),
        "every tcp state kept"
    );
    let peer = rows(&["--remote", "198.51.100.31"]);
    assert!(!peer.is_empty());
    assert!(peer.iter().all(|r| r[4] == "198.51.100.31"), "{peer:?}");
    let peer_port = rows(&["--remote", "198.51.100.31:5222"]);
    assert!(!peer_port.is_empty());
    assert!(
        peer_port
            .iter()
            .all(|r| r[4] == "198.51.100.31" && r[5] == "5222"),
        "{peer_port:?}"
    );
    assert!(rows(&["--remote", "198.51.100.31:1"]).is_empty());
    assert_one_line_error(
        &run(&[
            "history",
            "--db",
            &db,
            "--host",
            "192.168.1.17",
            "--proto",
            "bogus",
        ]),
        "bogus",
        "history: unknown protocol",
    );
    assert_one_line_error(
        &run(&[
            "history",
            "--db",
            &db,
            "--host",
            "192.168.1.17",
            "--remote",
            "1.2.3",
        ]),
        "1.2.3",
        "history: bad remote",
    );
    let help = String::from_utf8_lossy(&run(&["history", "-h"]).stdout).to_string();
    for opt in ["--from <TIME>", "--to <TIME>", "--proto", "--remote"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(opt))
            .unwrap_or_else(|| panic!("{opt} in history --help: {help}"));
        assert!(
            line.trim_start().len() > opt.len() + 12,
            "{opt} has a help text: {line:?}"
        );
    }
}

/// A file of a development build before the first release (its own schema numbers 1 to 10
/// in `user_version`, the same application id) is refused by every command that opens it,
/// readers and writers alike, with one line saying to re-import, and left as it is.
#[test]
fn a_database_of_an_earlier_development_build_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = imported(tmp.path());
    let pfctl = tmp.path().join("states.txt");
    std::fs::write(&pfctl, "").expect("write");
    let pfctl = pfctl.display().to_string();
    let capture = fixture("nat-outbound-l3-dlt246.pcap").display().to_string();
    // 1 is the one that would pass for the current schema if numbers were shared.
    for old in [1, 7, 10] {
        {
            let c = pfstatelog::store::sqlite::pagesum::open(&db).expect("sqlite");
            c.pragma_update(None, "user_version", old).expect("set");
        }
        let before = std::fs::read(&db).expect("read");
        let commands: [&[&str]; 10] = [
            &["who", "--ip", "1.2.3.4", "--port", "1", "--at", "@0"],
            &["history", "--host", "10.0.0.1"],
            &["stats"],
            &["export", "--from", "@0", "--to", "@4000000000"],
            &["check"],
            &["status"],
            &["migrate"],
            &["prune", "--before", "@0"],
            &["import", &capture],
            &["import-pfctl", &pfctl],
        ];
        for args in commands {
            let mut all: Vec<&str> = args.to_vec();
            all.extend(["--db", &db]);
            let what = format!("{} on schema {old}", args[0]);
            let out = run(&all);
            assert_one_line_error(
                &out,
                &format!(
                    "{db}: written by an earlier development build of pfstatelog (schema {old}); re-import its captures into a new file"
                ),
                &what,
            );
            assert_eq!(
                before,
                std::fs::read(&db).expect("read"),
                "{what}: the file must be left as it is"
            );
        }
    }
}
