//! Logging to syslog(3) and stderr for the recorder.
//!
//! The recorder writes one line per state start/end and its warnings here. [`Syslog`] is a
//! thin wrapper over libc `openlog`/`syslog`/`closelog`: on Linux (glibc, musl) syslog(3)
//! sends a datagram to the `/dev/log` socket; on OpenBSD it uses the sendsyslog(2) system
//! call, so it works inside chroot/pledge without a socket. The libc state is process-global:
//! there is one ident and one default facility per process, whichever `openlog` ran last.

use std::ffi::{CStr, CString};
use std::fmt;
use std::io::Write;
use std::str::FromStr;

/// Prefix of warning and error lines on stderr.
const PREFIX: &str = "pfstatelog: ";

/// The facilities: variant, libc's `LOG_*` code (already shifted, the variant's value)
/// and name, in the order error messages list them.
macro_rules! facilities {
    ($($(#[$m:meta])* $f:ident = $code:ident, $name:literal;)*) => {
        /// A syslog facility, as in `--syslog-facility NAME`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        #[repr(i32)]
        pub enum Facility {
            $($(#[$m])* $f = libc::$code,)*
        }

        impl Facility {
            /// Every facility with its name, in the order shown by error messages.
            pub const ALL: [(Facility, &'static str); 19] = [$((Facility::$f, $name),)*];
        }
    };
}

facilities! {
    Auth = LOG_AUTH, "auth";
    Authpriv = LOG_AUTHPRIV, "authpriv";
    Cron = LOG_CRON, "cron";
    #[default]
    Daemon = LOG_DAEMON, "daemon";
    Ftp = LOG_FTP, "ftp";
    Lpr = LOG_LPR, "lpr";
    Mail = LOG_MAIL, "mail";
    News = LOG_NEWS, "news";
    Syslog = LOG_SYSLOG, "syslog";
    User = LOG_USER, "user";
    Uucp = LOG_UUCP, "uucp";
    Local0 = LOG_LOCAL0, "local0";
    Local1 = LOG_LOCAL1, "local1";
    Local2 = LOG_LOCAL2, "local2";
    Local3 = LOG_LOCAL3, "local3";
    Local4 = LOG_LOCAL4, "local4";
    Local5 = LOG_LOCAL5, "local5";
    Local6 = LOG_LOCAL6, "local6";
    Local7 = LOG_LOCAL7, "local7";
}

impl Facility {
    /// The lowercase name, as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        Facility::ALL
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("daemon", |(_, n)| n)
    }

    /// The libc `LOG_*` facility code (already shifted).
    pub fn code(self) -> libc::c_int {
        self as libc::c_int
    }
}

/// An unknown facility name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown syslog facility {input:?}; valid facilities: {}",
    valid_names()
)]
pub struct FacilityError {
    pub input: String,
}

fn valid_names() -> String {
    Facility::ALL.map(|(_, n)| n).join(", ")
}

impl FromStr for Facility {
    type Err = FacilityError;

    /// Case-insensitive; a `LOG_` prefix is allowed (`LOG_LOCAL3`).
    fn from_str(s: &str) -> Result<Facility, FacilityError> {
        let t = s.trim();
        let t = match t.get(..4) {
            Some(p) if p.eq_ignore_ascii_case("log_") => &t[4..],
            _ => t,
        };
        Facility::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(t))
            .map(|(f, _)| *f)
            .ok_or_else(|| FacilityError {
                input: s.to_string(),
            })
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A syslog severity; its value is libc's `LOG_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Level {
    Err = libc::LOG_ERR,
    Warning = libc::LOG_WARNING,
    Notice = libc::LOG_NOTICE,
    Info = libc::LOG_INFO,
    Debug = libc::LOG_DEBUG,
}

impl Level {
    /// The libc `LOG_*` severity code.
    pub fn code(self) -> libc::c_int {
        self as libc::c_int
    }
}

/// An open syslog connection (process-global in libc; see the module documentation).
#[derive(Debug)]
pub struct Syslog {
    /// openlog(3) keeps the pointer, not a copy, so the ident lives for the whole process.
    ident: &'static CStr,
    facility: Facility,
}

/// `s` as a C string with any NUL bytes removed (they would truncate the line).
fn c_string(s: &str) -> CString {
    let bytes: Vec<u8> = s.bytes().filter(|&b| b != 0).collect();
    // No NULs are left, so this cannot fail; fall back to empty rather than panic.
    CString::new(bytes).unwrap_or_default()
}

impl Syslog {
    /// `openlog(ident, LOG_PID | LOG_NDELAY, facility)`. LOG_NDELAY connects now, before
    /// any chroot or privilege drop would make `/dev/log` unreachable.
    pub fn open(ident: &str, facility: Facility) -> Syslog {
        // Leaked once per open: openlog may use the pointer until exit, even after a
        // Syslog is dropped, because the libc state outlives it.
        let ident: &'static CStr = Box::leak(c_string(ident).into_boxed_c_str());
        let s = Syslog { ident, facility };
        s.openlog();
        s
    }

    fn openlog(&self) {
        // SAFETY: ident is a valid NUL-terminated string that is never freed.
        unsafe {
            libc::openlog(
                self.ident.as_ptr(),
                libc::LOG_PID | libc::LOG_NDELAY,
                self.facility.code(),
            )
        };
    }

    pub fn facility(&self) -> Facility {
        self.facility
    }

    /// Send one message. It goes through a `"%s"` format, so `%` in it is literal.
    pub fn log(&self, level: Level, msg: &str) {
        let msg = c_string(msg);
        // The facility is given explicitly too, in case another openlog changed the default.
        // SAFETY: both strings are valid and NUL-terminated; "%s" consumes exactly one
        // `char *` argument.
        unsafe {
            libc::syslog(
                self.facility.code() | level.code(),
                c"%s".as_ptr(),
                msg.as_ptr(),
            )
        };
    }

    /// closelog + openlog, e.g. on SIGHUP after the syslog daemon restarted.
    pub fn reopen(&self) {
        // SAFETY: closelog has no preconditions.
        unsafe { libc::closelog() };
        self.openlog();
    }
}

/// Fans lines out to syslog (unless `--no-syslog`) and to stderr.
///
/// Info lines reach stderr only when verbose (`-v`). Warnings and errors reach stderr when
/// verbose or when syslog is off, so they are never lost; there they get the
/// `pfstatelog: ` prefix (plus `warning: `/`error: `).
#[derive(Debug)]
pub struct Logger {
    syslog: Option<Syslog>,
    verbose: bool,
}

impl Logger {
    /// The recorder's setup: syslog with ident `pfstatelog` and `facility` when
    /// `use_syslog` (false for `--no-syslog`), stderr as described on [`Logger`].
    pub fn new(use_syslog: bool, facility: Facility, verbose: bool) -> Logger {
        let syslog = use_syslog.then(|| Syslog::open("pfstatelog", facility));
        Logger::with_syslog(syslog, verbose)
    }

    /// Stderr only (e.g. `import`): warnings and errors always, info when verbose.
    pub fn console_only(verbose: bool) -> Logger {
        Logger::with_syslog(None, verbose)
    }

    /// With an already opened [`Syslog`] (any ident), or none.
    pub fn with_syslog(syslog: Option<Syslog>, verbose: bool) -> Logger {
        Logger { syslog, verbose }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether an info line goes anywhere (so callers can skip formatting it).
    pub fn wants_info(&self) -> bool {
        self.verbose || self.syslog.is_some()
    }

    pub fn info(&self, msg: &str) {
        self.emit(Level::Info, msg, self.verbose, "");
    }

    /// A line to keep (a day's root): syslog at notice, stderr when verbose or without it.
    pub fn notice(&self, msg: &str) {
        let to_stderr = self.verbose || self.syslog.is_none();
        self.emit(Level::Notice, msg, to_stderr, "");
    }

    pub fn warn(&self, msg: &str) {
        let to_stderr = self.verbose || self.syslog.is_none();
        self.emit(Level::Warning, msg, to_stderr, "warning: ");
    }

    pub fn error(&self, msg: &str) {
        let to_stderr = self.verbose || self.syslog.is_none();
        self.emit(Level::Err, msg, to_stderr, "error: ");
    }

    /// A warning for syslog and stderr both, whatever the verbosity: the few lines an
    /// operator watching either must see (a central server lost, and found again).
    pub fn warn_everywhere(&self, msg: &str) {
        self.emit(Level::Warning, msg, true, "warning: ");
    }

    /// Reopen syslog (SIGHUP); a no-op without syslog.
    pub fn reopen(&self) {
        if let Some(s) = &self.syslog {
            s.reopen();
        }
    }

    fn emit(&self, level: Level, msg: &str, to_stderr: bool, kind: &str) {
        if let Some(s) = &self.syslog {
            s.log(level, msg);
        }
        if to_stderr {
            let prefix = if kind.is_empty() { "" } else { PREFIX };
            // A closed stderr must not kill the recorder (eprintln! would panic).
            let _ = writeln!(std::io::stderr().lock(), "{prefix}{kind}{msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names() {
        assert_eq!("daemon".parse(), Ok(Facility::Daemon));
        assert_eq!("LOCAL7".parse(), Ok(Facility::Local7));
        assert_eq!("LOG_LOCAL3".parse(), Ok(Facility::Local3));
        assert_eq!(" authpriv ".parse(), Ok(Facility::Authpriv));
        assert_eq!(Facility::default(), Facility::Daemon);
        for (f, n) in Facility::ALL {
            assert_eq!(n.parse(), Ok(f));
            assert_eq!(f.name(), n);
            assert_eq!(f.to_string(), n);
        }
        assert_eq!(Facility::Daemon.code(), 3 << 3);
        assert_eq!(Facility::Local0.code(), 16 << 3);
    }

    #[test]
    fn facility_error_lists_names() {
        let e = "kern".parse::<Facility>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown syslog facility \"kern\"; valid facilities: auth, authpriv, cron, daemon, \
             ftp, lpr, mail, news, syslog, user, uucp, local0, local1, local2, local3, local4, \
             local5, local6, local7"
        );
        assert!("".parse::<Facility>().is_err());
        assert!("log_".parse::<Facility>().is_err());
        assert!("é".parse::<Facility>().is_err());
    }

    #[test]
    fn levels() {
        assert_eq!(Level::Err.code(), 3);
        assert_eq!(Level::Warning.code(), 4);
        assert_eq!(Level::Notice.code(), 5);
        assert_eq!(Level::Info.code(), 6);
        assert_eq!(Level::Debug.code(), 7);
    }

    #[test]
    fn nul_bytes_are_stripped() {
        assert_eq!(c_string("a\0b\0").as_bytes(), b"ab");
        assert_eq!(c_string("").as_bytes(), b"");
    }

    /// Proves that lines reach a real syslog socket, without touching the host's syslog:
    /// the test re-executes itself as a child that enters a private mount namespace, bind-mounts
    /// a temporary directory holding our datagram socket `log` over `/dev` (visible to that
    /// child only), and logs. glibc's syslog(3) then connects to `/dev/log`, which is our socket.
    #[cfg(target_os = "linux")]
    mod linux_socket_tests {
        use crate::syslog::*;
        use std::os::unix::net::UnixDatagram;
        use std::path::Path;
        use std::process::Command;
        use std::time::Duration;

        const CHILD_ENV: &str = "PFSTATELOG_SYSLOG_TEST_DIR";
        /// Child exit status meaning "cannot run here"; it prints the reason.
        const SKIP: i32 = 77;

        /// %-directives and a NUL prove the "%s" format and the NUL stripping.
        const MSG1: &str = "state start 192.0.2.1:4500\0 %s %n %x";
        const MSG2: &str = "pf state table full";
        const MSG3: &str = "after reopen";

        #[test]
        fn lines_reach_dev_log() {
            if let Some(dir) = std::env::var_os(CHILD_ENV) {
                child(Path::new(&dir));
                return;
            }
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                println!("skipped: needs root to create a mount namespace");
                return;
            }
            let dir = tempfile::tempdir().expect("tempdir");
            let sock = UnixDatagram::bind(dir.path().join("log")).expect("bind socket");
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");

            let exe = std::env::current_exe().expect("current_exe");
            // The test's name inside the test binary: module path without the crate name.
            let path = module_path!();
            let name = format!(
                "{}::lines_reach_dev_log",
                path.split_once("::").map_or(path, |(_, rest)| rest)
            );
            let proc = Command::new(exe)
                .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run child");
            let pid = proc.id();
            let out = proc.wait_with_output().expect("wait for child");
            let child_out = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.code() == Some(SKIP) {
                // libtest prints "test NAME ... " before the child's line, so search within lines.
                let why = child_out
                    .find("skipped:")
                    .and_then(|at| child_out[at..].lines().next())
                    .unwrap_or("skipped: child could not set up a mount namespace");
                println!("{why}");
                return;
            }
            assert!(out.status.success(), "child failed: {child_out}");

            let mut lines = Vec::new();
            let mut buf = [0u8; 4096];
            for _ in 0..3 {
                let n = sock
                    .recv(&mut buf)
                    .unwrap_or_else(|e| panic!("no datagram ({e}); child said: {child_out}"));
                lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            // glibc format: "<PRI>Mmm dd hh:mm:ss ident[pid]: message".
            let tag = format!(" pfstatelog-test[{pid}]: ");
            // daemon (3 << 3) | info (6) = 30; | warning (4) = 28; local3 (19 << 3) | err (3) = 155.
            for (line, pri, msg) in [
                (&lines[0], "<30>", "state start 192.0.2.1:4500 %s %n %x"),
                (&lines[1], "<28>", MSG2),
                (&lines[2], "<155>", MSG3),
            ] {
                assert!(line.starts_with(pri), "{line:?} should start with {pri}");
                assert!(
                    line.ends_with(&format!("{tag}{msg}")),
                    "{line:?} should end with {tag}{msg}"
                );
            }
            println!("received: {lines:?}");
        }

        /// The child: private mount namespace, socket dir over /dev, then log.
        fn child(dir: &Path) {
            fn skip(why: String) -> ! {
                println!("skipped: {why}");
                std::process::exit(SKIP);
            }
            // SAFETY: plain syscalls with valid NUL-terminated arguments. CLONE_NEWNS affects
            // only this thread, which is the one that logs below.
            unsafe {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    skip(format!(
                        "unshare(CLONE_NEWNS): {}",
                        std::io::Error::last_os_error()
                    ));
                }
                // Private first, so that the bind mount cannot propagate to the host.
                let flags = libc::MS_REC | libc::MS_PRIVATE;
                if libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    skip(format!(
                        "make / private: {}",
                        std::io::Error::last_os_error()
                    ));
                }
                let src = CString::new(dir.as_os_str().as_encoded_bytes()).expect("dir path");
                if libc::mount(
                    src.as_ptr(),
                    c"/dev".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) != 0
                {
                    skip(format!(
                        "bind mount over /dev: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
            let s = Syslog::open("pfstatelog-test", Facility::Daemon);
            s.log(Level::Info, MSG1);
            let logger = Logger::with_syslog(Some(s), false);
            logger.warn(MSG2);
            let s = Syslog::open("pfstatelog-test", Facility::Local3);
            s.reopen();
            s.log(Level::Err, MSG3);
        }
    }
}
