//! The thin binary: parse, run, map errors to exit codes (0 ok, 1 nothing matched, 2 error).

use clap::Parser;
use std::process::ExitCode;

// mimalloc rather than glibc's malloc: an import allocates and frees a few small buffers
// per message, and glibc's free lists were ~17 % of its CPU (measured then; git log -p BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match pfstatelog::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::from(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            // One clear line, as for every other bad input.
            let text = e.render().to_string();
            let what: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(|l| l.trim())
                .collect();
            let what = what.join(" ");
            let what = what.strip_prefix("error: ").unwrap_or(&what);
            eprintln!("pfstatelog: {what} (see pfstatelog --help)");
            return ExitCode::from(2);
        }
    };
    let result = pfstatelog::cmd::run(cli.command);
    // Standard output failing decides, whatever error it became on its way up: a reader
    // that went away (`| head -1`) wanted no more, which is no error; anything else (a full
    // disk) is one line and exit 2.
    if let Some((kind, why)) = pfstatelog::cmd::out::failure() {
        if kind == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(0);
        }
        eprintln!("pfstatelog: cannot write to standard output: {why}");
        return ExitCode::from(2);
    }
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Damage in the stored data says so, rather than leave "malformed" or "disk I/O
            // error" for a person to interpret; a page that fails its checksum is named.
            match pfstatelog::store::damage_in(&e) {
                Some(page) => eprintln!("pfstatelog: database damaged: {}{page}", one_line(&e)),
                None => eprintln!("pfstatelog: {}", one_line(&e)),
            }
            ExitCode::from(2)
        }
    }
}

/// `what went wrong: why`, on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in e.chain() {
        let s = c.to_string();
        // SQLite's own errors repeat their text behind "Error code N: ".
        let s = match s.strip_prefix("Error code ") {
            Some(rest) => rest
                .split_once(": ")
                .map(|(_, t)| t.to_string())
                .unwrap_or(s.clone()),
            None => s,
        };
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// libdbus-1.a (linked with libpcap.a, see build.rs) refers to systemd's socket-activation
/// calls, which only a D-Bus *server* makes; libpcap is a client. Defining them here keeps
/// libsystemd, and the seven libraries it loads, out of every start.
#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "C" fn sd_listen_fds(_unset_environment: libc::c_int) -> libc::c_int {
    0
}

#[cfg(target_os = "linux")]
#[no_mangle]
pub extern "C" fn sd_is_socket(
    _fd: libc::c_int,
    _family: libc::c_int,
    _kind: libc::c_int,
    _listening: libc::c_int,
) -> libc::c_int {
    -libc::ENOSYS
}
