//! Setup shared by the live-capture tests (tests/live.rs, tests/record_disk_full.rs): the
//! skip rules, a veth pair with one end in a private network namespace, a raw sender inside
//! that namespace, and a private /dev for a recorder whose syslog the test reads.
//!
//! They need root and `ip netns` (iproute2); otherwise a test prints why it is skipped and
//! passes, unless PFSTATELOG_REQUIRE_LIVE=1 (as in .ci/run), which makes that a failure.

use pfstatelog::source::Frame;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Why live tests cannot run on this machine, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network and mount namespaces, veth, live capture)".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!("`ip -V` failed: {}", o.status)),
        Err(e) => Some(format!("iproute2 `ip` not available: {e}")),
    }
}

/// Say why `test` does not run here; a failure when PFSTATELOG_REQUIRE_LIVE=1.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("PFSTATELOG_REQUIRE_LIVE").is_some_and(|v| v == "1") {
        panic!("{test}: cannot run ({why}) and PFSTATELOG_REQUIRE_LIVE=1");
    }
    println!("{test}: skipped: {why}");
}

/// The veth pair for `test` (see `Veth::create`), or None once `skip` said why not.
pub fn setup(test: &str, tag: char) -> Option<Veth> {
    if let Some(why) = unavailable() {
        skip(test, &why);
        return None;
    }
    match Veth::create(tag) {
        Ok(v) => Some(v),
        Err(why) => {
            skip(test, &format!("no network namespace: {why}"));
            None
        }
    }
}

pub fn ip(args: &[&str]) -> Result<(), String> {
    let o = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

/// A veth pair: `host` in the root namespace, `peer` in the network namespace `ns`. Both
/// are deleted on drop, also when the test panics.
pub struct Veth {
    pub ns: String,
    pub host: String,
    pub peer: String,
}

impl Veth {
    /// Names carry the pid and a per-test tag (interface names stay under 16 bytes).
    /// Err: the namespace cannot be created here (the test is skipped).
    pub fn create(tag: char) -> Result<Veth, String> {
        let pid = std::process::id();
        let v = Veth {
            ns: format!("pfsl-{pid}-{tag}"),
            host: format!("pfsl{pid}{tag}a"),
            peer: format!("pfsl{pid}{tag}b"),
        };
        ip(&["netns", "add", &v.ns])?;
        // From here on, failing is a failure, not a skip.
        let fail = |e: String| panic!("setting up {}: {e}", v.host);
        ip(&[
            "link", "add", &v.host, "type", "veth", "peer", "name", &v.peer, "netns", &v.ns,
        ])
        .unwrap_or_else(fail);
        ip(&["link", "set", &v.host, "up"]).unwrap_or_else(fail);
        ip(&["-n", &v.ns, "link", "set", &v.peer, "up"]).unwrap_or_else(fail);
        Ok(v)
    }

    /// A raw packet socket on the peer, opened inside the namespace. The calling thread,
    /// which then sends, is pinned to its CPU: the kernel queues a frame received on a veth
    /// on the sender's CPU, so frames sent from two CPUs could be captured out of order.
    pub fn sender(&self) -> Sender {
        // SAFETY: cpu_set_t is plain old data; the calls only read and write it.
        unsafe {
            let cpu = libc::sched_getcpu();
            if cpu >= 0 {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
        Sender::open(&self.ns, &self.peer)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for args in [
            &["link", "del", self.host.as_str()][..],
            &["netns", "del", self.ns.as_str()][..],
        ] {
            let _ = Command::new("ip")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// AF_PACKET/SOCK_RAW socket created inside a network namespace: a socket stays in the
/// namespace it was created in, so the test's threads can send on it from anywhere.
pub struct Sender {
    fd: OwnedFd,
    ifindex: libc::c_int,
}

impl Sender {
    pub fn open(ns: &str, ifname: &str) -> Sender {
        let path = format!("/var/run/netns/{ns}");
        let name = CString::new(ifname).expect("ifname");
        // setns(CLONE_NEWNET) changes the calling thread only: use a throwaway thread.
        std::thread::spawn(move || {
            let nsf = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: plain syscalls on valid descriptors and a NUL-terminated name.
            unsafe {
                if libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    panic!("setns {path}: {}", std::io::Error::last_os_error());
                }
                // Protocol 0: this socket only sends, it receives nothing.
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    panic!("AF_PACKET socket: {}", std::io::Error::last_os_error());
                }
                let fd = OwnedFd::from_raw_fd(fd);
                let ifindex = libc::if_nametoindex(name.as_ptr()) as libc::c_int;
                assert!(ifindex > 0, "no interface {name:?} in the namespace");
                Sender { fd, ifindex }
            }
        })
        .join()
        .expect("opening the sender in the namespace")
    }

    /// Send one Ethernet frame as it is (retrying briefly while the queue is full).
    pub fn send(&self, frame: &[u8]) {
        assert!(frame.len() >= 14, "frame shorter than an Ethernet header");
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        sa.sll_ifindex = self.ifindex;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        for attempt in 0.. {
            // SAFETY: buffer and address are valid for the lengths given.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sa as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if n == frame.len() as isize {
                return;
            }
            let e = std::io::Error::last_os_error();
            let busy = matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN));
            assert!(busy && attempt < 500, "sendto: {e} (sent {n})");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Send frames back to back, pausing a little every few so that no queue overflows.
    pub fn send_all<'a>(&self, frames: impl IntoIterator<Item = &'a Frame>) {
        for (i, f) in frames.into_iter().enumerate() {
            self.send(&f.data);
            if i % 16 == 15 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// Run `cmd` in a private mount namespace (a copy of the caller's) where /dev is `devdir`,
/// e.g. holding a datagram socket `log` that stands in for syslog's, so the host's syslog is
/// untouched. Spawning fails where no mount namespace can be created.
pub fn in_private_dev<'c>(cmd: &'c mut Command, devdir: &Path) -> &'c mut Command {
    let src = CString::new(devdir.as_os_str().as_encoded_bytes()).expect("path without NUL");
    // SAFETY: between fork and exec only async-signal-safe syscalls run, on memory prepared
    // before the fork. Private first, so the bind mount cannot propagate to the host.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            let null = std::ptr::null();
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(null, c"/".as_ptr(), null, private, null.cast()) != 0 {
                return fail();
            }
            let bind = libc::MS_BIND;
            if libc::mount(src.as_ptr(), c"/dev".as_ptr(), null, bind, null.cast()) != 0 {
                return fail();
            }
            Ok(())
        })
    }
}

/// `record -v --db DB EXTRA... IFACE`, started and capturing: it logs its first line only
/// after libpcap opened the interface and set the filter.
pub fn start_recorder(iface: &str, db: &str, extra: &[&str]) -> super::Proc {
    let mut p = super::Proc::spawn(
        Command::new(super::bin())
            .args(["record", "-v", "--db", db])
            .args(extra)
            .arg(iface),
    )
    .expect("spawn record");
    let ready = p.err.wait_for(Duration::from_secs(60), |s| {
        s.iter().any(|l| l.starts_with("recording pfsync on "))
    });
    assert!(ready, "record did not start capturing:\n{}", p.transcript());
    p
}
