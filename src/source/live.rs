//! Live capture with libpcap.

use super::{Frame, SourceError};
use crate::wire::link::linktype;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snap length: larger than any pfsync datagram (IP total length is 16 bits).
pub const SNAPLEN: i32 = 65_535;
/// On link types that are not pfsync itself, only protocol 240 is wanted.
pub const DEFAULT_FILTER: &str = "ip proto 240 or ip6 proto 240";

/// Longest wait for a packet before `next_frame` returns `Next::Timeout`.
const POLL_MS: libc::c_int = 250;

pub struct Live {
    cap: pcap::Capture<pcap::Active>,
    fd: RawFd,
    pub linktype: u32,
    pub iface: String,
}

/// Counters libpcap keeps for the capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    pub received: u32,
    pub dropped: u32,
    pub if_dropped: u32,
}

/// What the capture thread hands over.
pub enum Captured {
    Frame(Frame),
    Stats(LiveStats),
    Failed(String),
}

pub enum Next {
    Frame(Frame),
    /// The read timeout passed with nothing captured; a chance to flush and check signals.
    Timeout,
}

impl Live {
    /// Open `iface` in immediate mode; `filter` overrides the default BPF filter on
    /// non-pfsync link types (an empty filter captures everything).
    pub fn open(iface: &str, filter: Option<&str>) -> Result<Live, SourceError> {
        let err = |e: pcap::Error| SourceError::Live(format!("{iface}: {e}"));
        let cap = pcap::Capture::from_device(iface)
            .map_err(err)?
            // Not immediate mode: on Linux that selects TPACKET_V2, whose ring slots are each
            // sized for a whole snap length, so 64 MiB held ~1,000 frames (0.2 s at 20,000
            // states/s). TPACKET_V3 packs frames into blocks: the same 64 MiB holds ~40,000
            // pfsync packets. The 250 ms timeout bounds how long a block waits.
            .immediate_mode(false)
            .snaplen(SNAPLEN)
            .promisc(false)
            .buffer_size(64 << 20)
            .timeout(250)
            .open()
            .map_err(err)?;
        let mut cap = cap;
        let lt = cap.get_datalink().0 as u32;
        if !linktype::is_supported(lt) {
            return Err(SourceError::Live(format!(
                "{iface}: {}",
                crate::wire::WireError::new(0, crate::wire::WireErrorKind::UnsupportedLinkType(lt))
            )));
        }
        if !linktype::is_pfsync(lt) {
            let f = filter.unwrap_or(DEFAULT_FILTER);
            if !f.is_empty() {
                cap.filter(f, true).map_err(err)?;
            }
        } else if let Some(f) = filter.filter(|f| !f.is_empty()) {
            cap.filter(f, true).map_err(err)?;
        }
        // Non-blocking, with our own poll() below: on Linux, libpcap >= 1.10 never returns
        // from a blocking read while the interface is quiet (the read timeout only bounds
        // buffering), so signals and flushes would wait for the next packet.
        let cap = cap.setnonblock().map_err(err)?;
        let fd = cap.as_raw_fd();
        Ok(Live {
            cap,
            fd,
            linktype: lt,
            iface: iface.into(),
        })
    }

    pub fn next_frame(&mut self) -> Result<Next, SourceError> {
        match self.cap.next_packet() {
            Ok(p) => {
                let ts = p.header.ts;
                // time_t and suseconds_t differ in width between systems.
                #[allow(clippy::unnecessary_cast)]
                let ts_us = ts.tv_sec as i64 * 1_000_000 + ts.tv_usec as i64;
                Ok(Next::Frame(Frame {
                    ts_us,
                    linktype: self.linktype,
                    orig_len: p.header.len,
                    data: p.data.to_vec(),
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                // Nothing ready: wait for the socket, at most POLL_MS (less when a signal
                // arrives), then let the caller check its flags and flush.
                let mut pfd = libc::pollfd {
                    fd: self.fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
                Ok(Next::Timeout)
            }
            Err(e) => Err(SourceError::Live(format!("{}: {e}", self.iface))),
        }
    }

    /// Capture on a thread of its own, so a slow database write (an fsync, a full disk)
    /// never stalls the reading of the ring. Frames wait in a queue of `queue` frames; when
    /// it is full the thread waits, the ring fills, and the kernel counts the drops that
    /// libpcap reports. Libpcap's counters come every `stats_every`. Stops when `stop` is set
    /// or the receiver is dropped; a failed capture is the last message.
    pub fn spawn(
        mut self,
        stop: Arc<AtomicBool>,
        queue: usize,
        stats_every: Duration,
    ) -> std::io::Result<(Receiver<Captured>, std::thread::JoinHandle<()>)> {
        let (tx, rx) = sync_channel(queue);
        let handle = std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let mut last_stats = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let msg = match self.next_frame() {
                        Ok(Next::Frame(f)) => Some(Captured::Frame(f)),
                        Ok(Next::Timeout) => None,
                        Err(e) => {
                            let _ = tx.send(Captured::Failed(e.to_string()));
                            return;
                        }
                    };
                    if let Some(m) = msg {
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    if last_stats.elapsed() >= stats_every {
                        last_stats = Instant::now();
                        if let Some(s) = self.stats() {
                            if tx.send(Captured::Stats(s)).is_err() {
                                return;
                            }
                        }
                    }
                }
                // The drops up to the end, for the run's record.
                if let Some(s) = self.stats() {
                    let _ = tx.send(Captured::Stats(s));
                }
            })?;
        Ok((rx, handle))
    }

    pub fn stats(&mut self) -> Option<LiveStats> {
        self.cap.stats().ok().map(|s| LiveStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }
}
