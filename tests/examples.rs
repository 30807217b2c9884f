//! The operating examples (examples/rc.d, supervisord, systemd) and the generated
//! documentation (man pages, completions) against the real binary.
//!
//! Each example's pfstatelog command line is extracted from the file as its service manager
//! would read it (rc.d `daemon_flags`, supervisord `command=`, systemd `ExecStart=`) and run
//! with `record --check-args` appended: the binary parses it with the same clap types,
//! resolves what does not depend on the host (syslog facility, database path, chroot
//! layout, BPF filter syntax), prints the result and exits 0. A usage error exits 2.
//! Running the command line for real cannot test this: it needs root, an existing user and
//! the interface, and its first failure (no such user, no such interface) would hide
//! whether the rest of the line was even read.

mod common;

use clap::CommandFactory;
use common::{run, run_ok};
use pfstatelog::cli::Cli;
use std::collections::BTreeMap;
use std::path::Path;

fn example(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Words of a shell / service-manager command line: whitespace-separated, with '…' and
/// "…" quoting and backslash escapes.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {s:?}");
    if in_word {
        out.push(cur);
    }
    out
}

/// The value of `key=...` on its own line (systemd continuation lines joined).
fn assignment(text: &str, key: &str) -> String {
    let joined = text.replace("\\\n", " ");
    let found: Vec<&str> = joined
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(&format!("{key}=")))
        .collect();
    assert_eq!(found.len(), 1, "exactly one {key}= expected");
    found[0].trim().to_string()
}

fn unquote(s: &str) -> String {
    let w = words(s);
    assert_eq!(w.len(), 1, "{s:?} should be one quoted word");
    w[0].clone()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Run `record ARGS --check-args`; it must succeed and resolve to what the line says.
fn check(what: &str, program: &str, args: &[String]) -> BTreeMap<String, String> {
    assert_eq!(
        program, "/usr/local/bin/pfstatelog",
        "{what}: the binary path of the README's install step"
    );
    assert_eq!(args.first().map(String::as_str), Some("record"), "{what}");
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.push("--check-args");
    let o = run(&a);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        o.status.success(),
        "{what}: pfstatelog {args:?} does not parse: {err}"
    );
    let got: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(got["interface"], *args.last().expect("iface"), "{what}");
    if let Some(db) = flag(args, "--db") {
        assert_eq!(got["database"], db, "{what}");
    }
    if let Some(u) = flag(args, "--user") {
        assert_eq!(got["user"], u, "{what}");
    }
    got
}

#[test]
fn rc_d_daemon_flags_parse() {
    let text = example("rc.d/pfstatelog");
    let daemon = unquote(&assignment(&text, "daemon"));
    let flags = words(&unquote(&assignment(&text, "daemon_flags")));
    let got = check("rc.d daemon_flags", &daemon, &flags);
    assert_eq!(got["interface"], "pfsync0");
    assert_eq!(got["user"], "_pfstatelog");
    assert_eq!(got["database"], "/var/db/pfstatelog/pfstatelog.db");
    assert_eq!(got["syslog"], "daemon");
    for line in [
        "rc_bg=YES",
        "rc_reload=NO",
        "rc_cmd $1",
        ". /etc/rc.d/rc.subr",
    ] {
        assert!(text.lines().any(|l| l.trim() == line), "rc.d: no `{line}`");
    }
    // pexp must match the process rc.subr starts: `daemon daemon_flags`.
    let pexp = unquote(&assignment(&text, "pexp")).replace("${daemon}", &daemon);
    let re_prefix = pexp.strip_suffix(" .*").expect("pexp ends in ' .*'");
    assert!(format!("{daemon} {}", flags.join(" ")).starts_with(&format!("{re_prefix} ")));
}

#[test]
fn rc_d_script_is_valid_shell() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rc.d/pfstatelog");
    let text = example("rc.d/pfstatelog");
    assert!(text.starts_with("#!/bin/ksh\n"));
    for sh in ["ksh", "bash", "sh"] {
        if let Ok(o) = std::process::Command::new(sh).arg("-n").arg(&p).output() {
            assert!(
                o.status.success(),
                "{sh} -n: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
    }
}

#[test]
fn supervisord_command_parses() {
    let text = example("supervisord/pfstatelog.conf");
    assert!(text.lines().any(|l| l.trim() == "[program:pfstatelog]"));
    let w = words(&assignment(&text, "command"));
    let got = check("supervisord command", &w[0], &w[1..]);
    assert_eq!(got["interface"], "pfsync0");
    assert_eq!(assignment(&text, "stopsignal"), "TERM");
}

#[test]
fn systemd_exec_start_parses_and_the_unit_fits_it() {
    let text = example("systemd/pfstatelog.service");
    let w = words(&assignment(&text, "ExecStart"));
    let got = check("systemd ExecStart", &w[0], &w[1..]);
    assert_eq!(got["interface"], "eth1");
    assert_eq!(got["user"], "pfstatelog");
    // What --user needs, and no more; the database is where the unit lets it write.
    let caps: Vec<String> = words(&assignment(&text, "CapabilityBoundingSet"));
    assert_eq!(
        caps,
        ["CAP_NET_RAW", "CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"]
    );
    let db_dir = Path::new(&got["database"])
        .parent()
        .expect("db dir")
        .display()
        .to_string();
    assert_eq!(assignment(&text, "ReadWritePaths"), db_dir);
    assert_eq!(
        format!("/var/lib/{}", assignment(&text, "StateDirectory")),
        db_dir
    );
    assert_eq!(assignment(&text, "Group"), got["user"]);
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_PACKET AF_NETLINK"),
    ] {
        assert_eq!(assignment(&text, k), v, "{k}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("User=")),
        "starts as root"
    );
}

#[test]
fn check_args_is_not_vacuous() {
    // A usage error: exit 2 with the one-line message main gives every usage error.
    let o = run(&["record", "--bogus", "eth0", "--check-args"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("see pfstatelog --help"));
    // Values that parse but do not resolve.
    for (args, msg) in [
        (
            vec![
                "record",
                "--syslog-facility",
                "nope",
                "eth0",
                "--check-args",
            ],
            "--syslog-facility",
        ),
        (
            vec!["record", "--filter", "ip proto (", "eth0", "--check-args"],
            "--filter",
        ),
        (
            vec!["record", "--cache-mib", "8", "eth0", "--check-args"],
            "--cache-mib",
        ),
        (
            vec!["import", "--cache-mib", "lots", "x.pcap"],
            "--cache-mib",
        ),
        (
            vec![
                "record",
                "--user",
                "x",
                "--chroot",
                "/var/empty",
                "--db",
                "/tmp/x.db",
                "eth0",
                "--check-args",
            ],
            "--chroot",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(msg),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn logging_notes_cover_openbsd_and_linux() {
    let text = example("logging.md");
    for needle in [
        "!pfstatelog",
        "daemon.info",
        "/etc/newsyslog.conf",
        "/etc/logrotate.d/pfstatelog",
        "$programname == 'pfstatelog'",
    ] {
        assert!(text.contains(needle), "logging.md lacks {needle}");
    }
    // syslog.conf and newsyslog.conf lines are tab-separated.
    assert!(text
        .lines()
        .any(|l| l.trim_start().starts_with("daemon.info\t")));
    assert!(text
        .lines()
        .any(|l| l.trim_start().starts_with("/var/log/pfstatelog\t")));
}

/// Unescape roff: `\-` is a plain dash, font changes are noise.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

#[test]
fn man_page_documents_every_command_and_option() {
    let page = run_ok(&["man"]);
    assert!(page.contains(".TH PFSTATELOG 8"));
    let text = plain(&page);
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        assert!(
            text.contains(&format!(".SS {name}\n")),
            "no section for {name}"
        );
        assert!(
            text.contains(&format!("pfstatelog {name}")),
            "no synopsis for {name}"
        );
    }
    for name in ["who", "record"] {
        let sub = cmd.find_subcommand(name).expect("subcommand");
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    text.contains(&format!("--{long}")),
                    "man page lacks {name} --{long}"
                );
            }
        }
    }
    for section in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "COMMANDS",
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
    ] {
        assert!(page.contains(&format!(".SH {section}\n")), "no {section}");
    }
    assert!(!text.contains("--check-args"), "hidden flags stay hidden");
}

#[test]
fn man_out_writes_one_page_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man8");
    run_ok(&["man", "--out", &out.display().to_string()]);
    let main = std::fs::read_to_string(out.join("pfstatelog.8")).expect("pfstatelog.8");
    assert_eq!(main, run_ok(&["man"]));
    for sub in Cli::command().get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        let p = out.join(format!("pfstatelog-{name}.8"));
        let page = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(page.contains(&format!(".TH PFSTATELOG-{} 8", name.to_uppercase())));
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(
                    plain(&page).contains(&format!("--{long}")),
                    "{name} --{long}"
                );
            }
        }
    }
}

#[test]
fn completions_for_bash_zsh_fish() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef pfstatelog"),
        ("fish", "complete -c pfstatelog"),
    ] {
        let out = run_ok(&["completions", shell]);
        assert!(out.contains(marker), "{shell}");
        for sub in ["record", "who", "import-pfctl", "export"] {
            assert!(out.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(
            out.contains("window"),
            "{shell} completion lacks who --window"
        );
    }
    let o = run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn cache_size_reaches_the_recorder() {
    let o = run(&["record", "eth0", "--check-args"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("cache: 256 MiB"));
    let o = run(&["record", "--cache-mib", "1024", "eth0", "--check-args"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("cache: 1024 MiB"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
