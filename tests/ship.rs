//! `ship` sends only what the server does not have: a second ship sends nothing, a later
//! import only its new lifetimes, a ship cut short by a server crash is completed by the
//! next (nothing doubled, nothing marked shipped that was not accepted), `prune` keeps what
//! was not shipped, and `ship --follow` keeps up with imports, rides out an unreachable
//! server, and stops on SIGTERM. Against a real clickhouse-server 18.16
//! (tests/common/clickhouse.rs).

mod common;

use common::clickhouse::{configured, start, Server, PASSWORD};
use common::{bin, Proc};
use pfstatelog_bench::gen::{write_capture, GenConfig, DEFAULT_START_US};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn pf(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PFSTATELOG_CLICKHOUSE_PASSWORD", PASSWORD)
        .env_remove("PFSTATELOG_DB")
        .output()
        .expect("run pfstatelog")
}

fn pf_ok_out(args: &[&str]) -> String {
    let o = pf(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn pf_ok(args: &[&str]) -> String {
    let o = pf(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A generated capture of `states` states from `seed`, starting `offset_s` after the
/// generator's default start.
fn capture(dir: &Path, name: &str, seed: u64, states: u64, offset_s: i64) -> String {
    let path = dir.join(name);
    let cfg = GenConfig {
        seed,
        states,
        start_us: DEFAULT_START_US + offset_s * 1_000_000,
        ..GenConfig::default()
    };
    let f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create capture"));
    write_capture(&cfg, f, 1).expect("write capture");
    path.display().to_string()
}

/// Ship `db` once; how many lifetimes the summary line says were sent.
fn ship(db: &str, url: &str) -> u64 {
    let err = pf_ok(&["ship", "--db", db, "--to", url, "--name", "loghost"]);
    sent(&err)
}

fn sent(summary: &str) -> u64 {
    summary
        .split("shipped ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"))
}

/// Every lifetime of a store as `export --format csv` gives it, sorted (comment lines,
/// which name the store, left out).
fn rows(db: &str) -> Vec<String> {
    let out = pf_ok_out(&[
        "export",
        "--db",
        db,
        "--from",
        "@0",
        "--to",
        "@4000000000",
        "--format",
        "csv",
    ]);
    let mut v: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// How many lifetimes a store holds (the CSV's rows without its header).
fn lifetimes(db: &str) -> u64 {
    rows(db).len() as u64 - 1
}

/// Copies of lifetimes the server holds (every copy, before reads keep one).
fn copies(srv: &Server, db: &str) -> u64 {
    srv.query(&format!("SELECT count() FROM {db}.lifetimes"))
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn shipping_again_sends_nothing_and_a_later_import_only_its_lifetimes() {
    let Some(srv) = start("shipping_again_sends_nothing_and_a_later_import_only_its_lifetimes")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = capture(tmp.path(), "a.pcap", 1, 3_000, 0);
    let b = capture(tmp.path(), "b.pcap", 2, 2_000, 7_200);
    let db = tmp.path().join("spool.db").display().to_string();
    let url = srv.url("pf");
    pf_ok(&["import", "--db", &db, &a]);
    let first = lifetimes(&db);
    assert_eq!(
        ship(&db, &url),
        first,
        "the first ship sends every lifetime"
    );
    let held = copies(&srv, "pf");
    assert_eq!(rows(&url), rows(&db));

    assert_eq!(ship(&db, &url), 0, "nothing changed: nothing is sent");
    assert_eq!(copies(&srv, "pf"), held, "the server got no new copy");
    assert_eq!(rows(&url), rows(&db), "answers are the same");

    pf_ok(&["import", "--db", &db, &b]);
    let total = lifetimes(&db);
    let second = ship(&db, &url);
    assert!(
        second >= total - first && second < total,
        "the second import's {} lifetimes, not the file's {total}: sent {second}",
        total - first
    );
    assert_eq!(rows(&url), rows(&db));
    assert_eq!(ship(&db, &url), 0);
}

#[test]
fn a_ship_cut_by_a_server_crash_is_completed_by_the_next_and_nothing_doubles() {
    let Some(mut srv) =
        start("a_ship_cut_by_a_server_crash_is_completed_by_the_next_and_nothing_doubles")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let cap = capture(tmp.path(), "big.pcap", 3, 400_000, 0);
    let db = tmp.path().join("spool.db").display().to_string();
    let url = srv.url("pf");
    pf_ok(&["import", "--db", &db, &cap]);
    let mut shipping = Proc::spawn(
        Command::new(bin())
            .args(["ship", "--db", &db, "--to", &url, "--name", "loghost"])
            .env("PFSTATELOG_CLICKHOUSE_PASSWORD", PASSWORD),
    )
    .expect("spawn ship");
    // Killed once the first insert landed, while the rest is on its way.
    let t0 = Instant::now();
    loop {
        let landed = srv
            .query("SELECT count() FROM system.tables WHERE database = 'pf' AND name = 'lifetimes'")
            .trim()
            == "1"
            && copies(&srv, "pf") > 0;
        if landed {
            break;
        }
        assert!(
            shipping.exited().is_none(),
            "the ship ended before the server could be killed: make the capture larger\n{}",
            shipping.transcript()
        );
        assert!(t0.elapsed() < Duration::from_secs(60), "no insert landed");
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.kill();
    let st = shipping
        .wait_timeout(Duration::from_secs(60))
        .expect("ship ends");
    shipping.err.drain(Duration::from_secs(5));
    assert_eq!(st.code(), Some(2), "{}", shipping.transcript());
    assert_eq!(shipping.err.seen.len(), 1, "{}", shipping.transcript());
    // Nothing is marked shipped: the file has no place for this server.
    let c = rusqlite::Connection::open(&db).expect("open");
    let marked: i64 = c
        .query_row("SELECT count(*) FROM shipped", [], |r| r.get(0))
        .expect("shipped");
    assert_eq!(marked, 0, "a ship the server did not accept left a mark");
    drop(c);

    srv.start();
    let local = rows(&db);
    assert_eq!(ship(&db, &url), lifetimes(&db), "everything again");
    assert_eq!(rows(&url), local, "each lifetime once, as in the file");
    let stats = |db: &str| -> serde_json::Value {
        serde_json::from_str(&String::from_utf8_lossy(
            &pf(&["stats", "--db", db, "--json"]).stdout,
        ))
        .expect("stats json")
    };
    assert_eq!(stats(&url)["states"], stats(&db)["states"]);
    assert_eq!(ship(&db, &url), 0);
}

#[test]
fn prune_keeps_what_is_not_shipped_yet() {
    let Some(srv) = start("prune_keeps_what_is_not_shipped_yet") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = capture(tmp.path(), "a.pcap", 4, 2_000, 0);
    let b = capture(tmp.path(), "b.pcap", 5, 2_000, 7_200);
    let db = tmp.path().join("spool.db").display().to_string();
    let url = srv.url("pf");
    // The same captures in a file that never ships: its prune is the reference.
    let never = tmp.path().join("never.db").display().to_string();
    pf_ok(&["import", "--db", &never, &a]);
    pf_ok(&["import", "--db", &never, &b]);
    let only_b = tmp.path().join("b.db").display().to_string();
    pf_ok(&["import", "--db", &only_b, &b]);
    let before_all = "@4000000000";

    pf_ok(&["import", "--db", &db, &a]);
    ship(&db, &url);
    pf_ok(&["import", "--db", &db, &b]);
    let pruned_never = pf_ok(&["prune", "--db", &never, "--before", before_all]);
    assert!(!pruned_never.contains("kept"), "{pruned_never}");
    let said = pf_ok(&["prune", "--db", &db, "--before", before_all]);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 2, "{said}");
    let kept_n: u64 = lines[1]
        .split("kept ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let b_rows = rows(&only_b);
    pf_ok(&["prune", "--db", &only_b, "--before", before_all]);
    let b_closed = b_rows.len() - rows(&only_b).len();
    assert!(b_closed > 1000, "{b_closed} closed lifetimes in b");
    assert_eq!(kept_n as usize, b_closed, "{said}");
    // What stays is what `never` keeps (the open ones) plus b's unshipped closed ones.
    let left = rows(&db);
    for r in &b_rows {
        assert!(left.contains(r), "an unshipped lifetime was pruned: {r}");
    }
    // Shipped, they may go.
    ship(&db, &url);
    let said = pf_ok(&["prune", "--db", &db, "--before", before_all]);
    assert!(!said.contains("kept"), "{said}");
    assert_eq!(rows(&db), rows(&never));
}

/// `ship --follow --no-syslog` on `db`.
fn follow(db: &str, url: &str) -> Proc {
    Proc::spawn(
        Command::new(bin())
            .args([
                "ship",
                "--db",
                db,
                "--to",
                url,
                "--name",
                "loghost",
                "--follow",
                "--no-syslog",
            ])
            .env("PFSTATELOG_CLICKHOUSE_PASSWORD", PASSWORD),
    )
    .expect("spawn ship --follow")
}

/// Wait until the server answers with every lifetime of the file.
fn until_same(p: &mut Proc, db: &str, url: &str, within: Duration) {
    let want = rows(db);
    p.poll_until(
        within,
        "the server to hold what the file holds",
        |_| pf(&["stats", "--db", url]).status.success() && rows(url) == want,
        |p| p.err.drain(Duration::from_millis(300)),
    );
}

#[test]
fn follow_ships_each_import_and_stops_on_sigterm() {
    let Some(srv) = start("follow_ships_each_import_and_stops_on_sigterm") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = capture(tmp.path(), "a.pcap", 6, 2_000, 0);
    let b = capture(tmp.path(), "b.pcap", 7, 2_000, 7_200);
    let db = tmp.path().join("spool.db").display().to_string();
    let url = srv.url("pf");
    pf_ok(&["import", "--db", &db, &a]);
    let mut p = follow(&db, &url);
    until_same(&mut p, &db, &url, Duration::from_secs(30));
    pf_ok(&["import", "--db", &db, &b]);
    until_same(&mut p, &db, &url, Duration::from_secs(30));
    p.stop(Duration::from_secs(15));
    assert!(
        !p.err.seen.iter().any(|l| l.contains("cannot ship")),
        "{}",
        p.transcript()
    );
}

#[test]
fn follow_logs_an_unreachable_server_once_and_ships_when_it_comes() {
    let Some(mut srv) =
        configured("follow_logs_an_unreachable_server_once_and_ships_when_it_comes")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = capture(tmp.path(), "a.pcap", 8, 2_000, 0);
    let db = tmp.path().join("spool.db").display().to_string();
    let url = srv.url("pf");
    pf_ok(&["import", "--db", &db, &a]);
    let mut p = follow(&db, &url);
    assert!(
        p.err
            .wait_for(Duration::from_secs(15), |l| l.iter().any(|l| l
                .contains("cannot ship")
                && l.contains("cannot reach the server"))),
        "{}",
        p.transcript()
    );
    // Several attempts fail meanwhile (backoff 1, 2, 4 s): said once.
    p.err.drain(Duration::from_secs(8));
    let said = |p: &Proc, what: &str| p.err.seen.iter().filter(|l| l.contains(what)).count();
    assert_eq!(said(&p, "cannot ship"), 1, "{}", p.transcript());
    assert!(p.exited().is_none(), "{}", p.transcript());
    srv.start();
    until_same(&mut p, &db, &url, Duration::from_secs(60));
    assert!(
        p.err.wait_for(Duration::from_secs(10), |l| l
            .iter()
            .any(|l| l.contains("shipping again"))),
        "{}",
        p.transcript()
    );
    p.stop(Duration::from_secs(15));
    assert_eq!(said(&p, "cannot ship"), 1, "{}", p.transcript());
    assert_eq!(said(&p, "shipping again"), 1, "{}", p.transcript());
}
