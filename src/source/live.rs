//! Live capture with libpcap.

use super::{Frame, SourceError};
use crate::wire::link::linktype;
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Snap length: larger than any pfsync datagram (IP total length is 16 bits).
pub(crate) const SNAPLEN: i32 = 65_535;
/// On link types that are not pfsync itself, only protocol 240 is wanted.
pub(crate) const DEFAULT_FILTER: &str = "ip proto 240 or ip6 proto 240";

/// Longest wait for a packet before `next_frame` returns `Next::Timeout`.
const POLL_MS: libc::c_int = 250;

pub(crate) struct Live {
    cap: pcap::Capture<pcap::Active>,
    /// Wall clock when the capture was opened: libpcap's counters count from then.
    pub opened_us: i64,
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

impl LiveStats {
    /// These counters as read now, after the packet of time `last_ts` was delivered.
    pub fn read(&self, last_ts: Option<i64>) -> DropRead {
        DropRead {
            wall_us: crate::time::wall_us(),
            dropped: u64::from(self.dropped) + u64::from(self.if_dropped),
            last_ts,
        }
    }
}

/// What the capture thread hands over.
pub enum Captured {
    Frame(Frame),
    /// The counters, and when they were read (for [`drop_gap`]).
    Stats(LiveStats, DropRead),
    Failed(String),
}

/// One reading of libpcap's drop counters and what the capture had delivered by then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropRead {
    /// Wall clock of the read, µs.
    pub wall_us: i64,
    /// Packets dropped so far (ps_drop + ps_ifdrop).
    pub dropped: u64,
    /// Capture time of the last packet delivered before the read.
    pub last_ts: Option<i64>,
}

/// Widening of a drop gap on each side: clock granularity, and the moment between the
/// kernel's count and our reading of it.
pub(crate) const DROP_SLACK_US: i64 = 1_000_000;

/// The time whose packets may be among the drops counted between two readings `prev` and
/// `cur`, and how many: `None` if none were counted.
///
/// The kernel counts a packet as dropped when it arrives and finds the ring full, so a drop
/// counted by `cur` and not by `prev` arrived between the two reads: after `prev.wall_us`,
/// no later than `cur.wall_us`. It follows the last packet delivered before `prev` (that one
/// had arrived by then; the ring may still have held later ones, so this bound is early,
/// which is the safe side), and precedes the read that counted it. Packets delivered after
/// `cur` cannot bound it: the ring held packets older than the loss. In capture-clock terms
/// the gap is from the earlier of `prev`'s read and its last delivered packet to the later
/// of `cur`'s read and its last delivered packet (packet times may not be the wall clock),
/// widened by [`DROP_SLACK_US`] each side. Wide on purpose: up to the 5 s between reads,
/// never the time the reading was processed, which lags the capture under load.
pub(crate) fn drop_gap(prev: &DropRead, cur: &DropRead) -> Option<(i64, i64, u64)> {
    let n = cur.dropped.checked_sub(prev.dropped).filter(|n| *n > 0)?;
    let from = prev.last_ts.map_or(prev.wall_us, |t| t.min(prev.wall_us));
    let to = cur.last_ts.map_or(cur.wall_us, |t| t.max(cur.wall_us));
    Some((
        from.saturating_sub(DROP_SLACK_US),
        to.saturating_add(DROP_SLACK_US),
        n,
    ))
}

pub(crate) enum Next {
    Frame(Frame),
    /// The read timeout passed with nothing captured; a chance to flush and check signals.
    Timeout,
}

impl Live {
    /// Open `iface` in immediate mode; `filter` overrides the default BPF filter on
    /// non-pfsync link types (an empty filter captures everything).
    pub fn open(iface: &str, filter: Option<&str>, buffer_mib: u32) -> Result<Live, SourceError> {
        let err = |e: pcap::Error| SourceError::Live(format!("{iface}: {e}"));
        let opened_us = crate::time::wall_us();
        let cap = pcap::Capture::from_device(iface)
            .map_err(err)?
            // Not immediate mode: on Linux that selects TPACKET_V2, whose ring slots are each
            // sized for a whole snap length, so 64 MiB held ~1,000 frames (0.2 s at 20,000
            // states/s). TPACKET_V3 packs frames into blocks: the default 64 MiB holds
            // ~40,000 pfsync packets. The 250 ms timeout bounds how long a block waits.
            .immediate_mode(false)
            .snaplen(SNAPLEN)
            .promisc(false)
            .buffer_size(i32::try_from(buffer_mib << 20).unwrap_or(i32::MAX))
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
            opened_us,
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
                let mut last_ts = None;
                while !stop.load(Ordering::Relaxed) {
                    let msg = match self.next_frame() {
                        Ok(Next::Frame(f)) => {
                            last_ts = Some(f.ts_us);
                            Some(Captured::Frame(f))
                        }
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
                            if tx.send(Captured::Stats(s, s.read(last_ts))).is_err() {
                                return;
                            }
                        }
                    }
                }
                // The drops up to the end, for the run's record.
                if let Some(s) = self.stats() {
                    let _ = tx.send(Captured::Stats(s, s.read(last_ts)));
                }
            })?;
        Ok((rx, handle))
    }

    /// The reading before any: the capture's opening, nothing dropped or delivered.
    pub fn first_read(&self) -> DropRead {
        DropRead {
            wall_us: self.opened_us,
            dropped: 0,
            last_ts: None,
        }
    }

    pub fn stats(&mut self) -> Option<LiveStats> {
        self.cap.stats().ok().map(|s| LiveStats {
            received: s.received,
            dropped: s.dropped,
            if_dropped: s.if_dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn read(wall_s: f64, dropped: u64, last_s: Option<f64>) -> DropRead {
        DropRead {
            wall_us: (wall_s * S as f64) as i64,
            dropped,
            last_ts: last_s.map(|t| (t * S as f64) as i64),
        }
    }

    /// The reported case: packets sent at 03.6–04.5 were lost; the counters were read at
    /// 00.3 and 05.3, and the reading processed at 10.3. The gap covers the loss.
    #[test]
    fn the_gap_covers_the_lost_packets_not_the_processing_time() {
        let prev = read(0.3, 0, Some(0.2));
        let cur = read(5.3, 40, Some(3.5));
        let (from, to, n) = drop_gap(&prev, &cur).expect("drops");
        assert_eq!(n, 40);
        assert!(from <= (3.6 * S as f64) as i64 && to >= (4.5 * S as f64) as i64);
        assert_eq!((from, to), (-S + S / 5, 6 * S + 3 * S / 10));
    }

    #[test]
    fn packet_clock_ahead_of_the_wall_clock_widens_the_gap() {
        let prev = read(10.0, 5, Some(12.0));
        let cur = read(15.0, 6, Some(17.0));
        assert_eq!(drop_gap(&prev, &cur), Some((9 * S, 18 * S, 1)));
    }

    #[test]
    fn no_new_drops_no_gap() {
        let prev = read(0.0, 7, None);
        assert_eq!(drop_gap(&prev, &read(5.0, 7, Some(4.0))), None);
        // A counter that went backwards (libpcap reopened): nothing to claim either way.
        assert_eq!(drop_gap(&prev, &read(5.0, 3, None)), None);
    }
}
