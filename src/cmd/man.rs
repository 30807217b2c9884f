//! What an operator reads and runs around the binary, generated from the clap types of
//! src/cli.rs so it cannot drift from them: the man pages (`pfstatelog man`), shell
//! completions (`pfstatelog completions`), and `record --check-args`, which resolves a
//! recorder command line without capturing (the examples' test runs every example's command
//! line through it).

use crate::cli::{Cli, CompletionShell, CompletionsArgs, ManArgs, RecordArgs};
use anyhow::{anyhow, Context};
use clap::CommandFactory;
use clap_mangen::Man;
use std::io::Write;
use std::path::Path;

/// The clap command with every name filled in (bin names of subcommands included).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Escape text for a roff line (backslashes, leading control characters, dashes).
fn roff_text(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Render one section with clap_mangen, dropping its own `.SH` heading line so it can be
/// placed under ours.
fn without_heading(
    render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
) -> anyhow::Result<String> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8(buf).context("man page text")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with(".SH "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// What pfstatelog is for, before the generated parts.
const DESCRIPTION: &str = r#".SH DESCRIPTION
.B pfstatelog
keeps a forensic index of the states of pf(4) firewalls.
.B pfstatelog record
listens to pfsync(4) \(em on pfsync0 of the firewall, or on the sync network of an HA
pair \(em and keeps one row per state lifetime in an SQLite database: inside, outside and
remote address and port, protocol, direction, interface, creator id (which firewall), start
and end.
.B pfstatelog who
then answers which inside host held a public address and port at a given time, and says so
when the recorder was not watching then.
.PP
States older than the recorder are loaded from
.B pfctl \-ss \-vv
output with
.B import\-pfctl
(or
.B record \-\-snapshot
at start\-up);
.B export
writes every lifetime of a time range, with the coverage, for archives and evidence.
.PP
Times are RFC 3339 (2025\-03\-14T09:01:30Z), "YYYY\-MM\-DD HH:MM:SS" in the local zone,
or @EPOCH seconds; durations are 90s, 2m, 1h30m or seconds.
Output times are UTC.
"#;

/// Hand-written sections of pfstatelog(8): what the clap types cannot say.
const TAIL: &str = r#".SH ENVIRONMENT
.TP
.B PFSTATELOG_DB
Database path used when \fB\-\-db\fR is not given.
.TP
.B PFSTATELOG_CLICKHOUSE_PASSWORD
Password for a \fB\-\-db\fR or \fB\-\-to\fR of the form clickhouse://[USER@]HOST[:PORT]/DATABASE
(ship reads \fB\-\-password\-file\fR instead when given).
.TP
.B TZ
Time zone of times given without one ("YYYY\-MM\-DD HH:MM:SS").
.SH FILES
.TP
.I /var/db/pfstatelog/pfstatelog.db
Default database on OpenBSD (elsewhere
.IR /var/lib/pfstatelog/pfstatelog.db ),
with its
.I \-wal
and
.I \-shm
files, and
.I .lock
held by the one writer (record, import, import\-pfctl).
.TP
.I /etc/rc.d/pfstatelog
The rc.d(8) script (examples/rc.d/pfstatelog in the source).
.SH EXIT STATUS
.B who
and
.B history
exit 0 when something matched, 1 when nothing did, and 2 on any error, as grep(1).
Every other command exits 0 on success and 2 on error;
.B import\-pfctl
exits 2 when part of its input could not be read (the rest is loaded).
.SH EXAMPLES
Record from boot on OpenBSD, as its own user:
.PP
.RS
.nf
# useradd \-s /sbin/nologin \-d /var/empty _pfstatelog
# rcctl enable pfstatelog
# rcctl set pfstatelog flags record \-\-snapshot \-\-user _pfstatelog pfsync0
# rcctl start pfstatelog
.fi
.RE
.PP
Which inside host held 203.0.113.5 port 443 at 09:02:38 UTC, within a minute:
.PP
.RS
.nf
$ pfstatelog who \-\-ip 203.0.113.5 \-\-port 443 \e
    \-\-at 2025\-03\-14T09:02:38Z \-\-window 1m
.fi
.RE
.PP
Load the states pf held before the recorder started (one writer at a time: stop the
recorder first, or let
.B record \-\-snapshot
do it at every start), then archive a day:
.PP
.RS
.nf
# rcctl stop pfstatelog
# pfctl \-ss \-vv | pfstatelog import\-pfctl \-
# rcctl start pfstatelog
$ pfstatelog export \-\-from 2025\-03\-14T00:00:00Z \e
    \-\-to 2025\-03\-14T23:59:59Z \-\-format json > 2025\-03\-14.jsonl
.fi
.RE
.SH SEE ALSO
.BR pf (4),
.BR pfsync (4),
.BR pfctl (8),
.BR rcctl (8),
.BR syslogd (8),
.BR tcpdump (8)
"#;

/// pfstatelog(8): the top-level page plus a section per command with its synopsis and
/// options, so `man pfstatelog` alone documents everything.
pub(crate) fn main_page() -> anyhow::Result<String> {
    let cmd = command();
    let man = page(cmd.clone(), "PFSTATELOG");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    out.extend_from_slice(DESCRIPTION.as_bytes());
    man.render_options_section(&mut out)?;
    let mut page = String::from_utf8(out).context("man page text")?;
    page.push_str(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page.push_str(&format!(".SS {}\n", sub.get_name()));
        let sman = Man::new(sub.clone());
        page.push_str(&synopsis(sub));
        page.push_str(".PP\n");
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|s| s.to_string())
            .unwrap_or_default();
        for line in about.lines().filter(|l| !l.trim().is_empty()) {
            page.push_str(&roff_text(line));
            page.push('\n');
        }
        page.push_str(&without_heading(|w| sman.render_options_section(w))?);
    }
    page.push_str(TAIL);
    // Each clap_mangen render starts with the same two-line string definition: keep one.
    let (mut ie, mut el) = (false, false);
    let mut clean = String::with_capacity(page.len());
    for l in page.lines() {
        let seen = if l.starts_with(".ie \\n(.g .ds Aq") {
            std::mem::replace(&mut ie, true)
        } else if l.starts_with(".el .ds Aq") {
            std::mem::replace(&mut el, true)
        } else {
            false
        };
        if !seen {
            clean.push_str(l);
            clean.push('\n');
        }
    }
    Ok(clean)
}

/// A command's synopsis from its clap arguments, with the value names clap_mangen's
/// synopsis leaves out: `pfstatelog who [--db PATH] ... --ip IP`.
fn synopsis(sub: &clap::Command) -> String {
    let mut line = format!("\\fBpfstatelog {}\\fR", sub.get_name());
    for arg in sub.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || id == "help" || id == "version" {
            continue;
        }
        let multiple = arg.get_num_args().is_some_and(|r| r.max_values() > 1);
        let values = arg
            .get_value_names()
            .map(|v| v.join(" "))
            .unwrap_or_else(|| id.to_uppercase());
        let takes_value = arg.get_num_args().is_some_and(|r| r.takes_values());
        let mut item = if arg.is_positional() {
            format!("\\fI{}\\fR", roff_text(&values))
        } else {
            // BSD style: the short form where there is one.
            let name = match (arg.get_short(), arg.get_long()) {
                (Some(c), _) => format!("\\fB\\-{c}\\fR"),
                (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", roff_text(l)),
                (None, None) => continue,
            };
            if takes_value {
                format!("{name} \\fI{}\\fR", roff_text(&values))
            } else {
                name
            }
        };
        if multiple {
            item.push_str(" ...");
        }
        if !arg.is_required_set() {
            item = format!("[{item}]");
        }
        line.push(' ');
        line.push_str(&item);
    }
    line.push('\n');
    line
}

/// A section 8 page of `cmd` titled `title`.
fn page(cmd: clap::Command, title: &str) -> Man {
    Man::new(cmd)
        .title(title)
        .section("8")
        .manual("System Manager's Manual")
        .source(format!("pfstatelog {}", env!("CARGO_PKG_VERSION")))
}

/// pfstatelog-COMMAND(8) for every command, as clap_mangen renders them.
fn sub_pages() -> Vec<(String, Man)> {
    command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| {
            let name = format!("pfstatelog-{}", s.get_name());
            let man = page(s.clone().display_name(name.clone()), &name.to_uppercase());
            (format!("{name}.8"), man)
        })
        .collect()
}

pub(crate) fn man(a: ManArgs) -> anyhow::Result<u8> {
    let page = main_page()?;
    match &a.out {
        None => {
            let mut out = super::out::stdout();
            out.write_all(page.as_bytes())?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
            let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
                let p = dir.join(name);
                std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
                eprintln!("{}", p.display());
                Ok(())
            };
            write("pfstatelog.8", page.as_bytes())?;
            for (name, man) in sub_pages() {
                let mut buf = Vec::new();
                man.render(&mut buf)?;
                write(&name, &buf)?;
            }
        }
    }
    Ok(0)
}

pub(crate) fn completions(a: CompletionsArgs) -> anyhow::Result<u8> {
    use clap_complete::{generate, Shell};
    let shell = match a.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a write error (a closed pipe).
    let mut buf = Vec::new();
    generate(shell, &mut cmd, "pfstatelog", &mut buf);
    let mut out = super::out::stdout();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(0)
}

/// `record --check-args`: resolve everything that does not depend on the host (facility,
/// database path, chroot layout, BPF filter syntax) and print it; touch no interface, user
/// or database. Exit 0 when `record` would get past its arguments.
pub(crate) fn check_record_args(a: RecordArgs) -> anyhow::Result<u8> {
    let facility: crate::syslog::Facility = a
        .syslog_facility
        .parse()
        .map_err(|e| anyhow!("--syslog-facility: {e}"))?;
    let db = a.db.path();
    if let Some(dir) = &a.chroot {
        let abs_dir =
            std::path::absolute(dir).with_context(|| format!("--chroot {}", dir.display()))?;
        let abs_db = std::path::absolute(&db).with_context(|| format!("--db {db}"))?;
        if !abs_db.starts_with(&abs_dir) {
            return Err(anyhow!(
                "with --chroot {}, --db must lie inside it (got {db})",
                dir.display()
            ));
        }
    }
    let filter = a
        .filter
        .clone()
        .unwrap_or_else(|| crate::source::live::DEFAULT_FILTER.to_string());
    if !filter.is_empty() {
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
            .map_err(|e| anyhow!("checking --filter: {e}"))?;
        dead.compile(&filter, true)
            .map_err(|e| anyhow!("--filter \"{filter}\": {e}"))?;
    }
    let mut out = super::out::stdout();
    writeln!(out, "interface: {}", a.iface)?;
    writeln!(out, "database: {db}")?;
    writeln!(out, "user: {}", a.user.as_deref().unwrap_or("-"))?;
    writeln!(
        out,
        "chroot: {}",
        a.chroot
            .as_deref()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_else(|| "-".into())
    )?;
    writeln!(
        out,
        "syslog: {}",
        if a.no_syslog { "off" } else { facility.name() }
    )?;
    writeln!(
        out,
        "filter: {}{}",
        filter,
        if a.filter.is_none() {
            " (default, on non-pfsync link types)"
        } else {
            ""
        }
    )?;
    writeln!(out, "snapshot: {}", if a.snapshot { "yes" } else { "no" })?;
    writeln!(out, "cache: {} MiB", a.cache.mib)?;
    writeln!(out, "verbose: {}", if a.verbose { "yes" } else { "no" })?;
    out.flush()?;
    Ok(0)
}
