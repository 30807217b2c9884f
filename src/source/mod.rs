//! Where frames come from: capture files (classic pcap, pcapng) or a live interface.

pub mod file;
pub mod live;

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture timestamp, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// LINKTYPE of the interface it was captured on.
    pub linktype: u32,
    /// Length of the packet on the wire (may exceed `data.len()` if the capture cut it).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A read error that ends a source; what came before it stays good.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng capture file (magic {magic})")]
    NotACapture { path: String, magic: String },
    #[error("{path}: damaged capture at byte {offset}: {why}")]
    Damaged {
        path: String,
        offset: u64,
        why: String,
    },
    #[error("{0}")]
    Live(String),
}

/// A bounded hand-over of frames from a reader thread to the importer that takes everything
/// queued at once: one wake-up per batch, not per frame (a channel woke the reader for every
/// frame the importer took, ~8 % of an import's CPU), and a frame never waits for a batch to
/// fill, so a slow pipe is still written within a second.
pub(crate) struct Handover<T> {
    inner: std::sync::Mutex<(std::collections::VecDeque<T>, bool)>,
    not_empty: std::sync::Condvar,
    not_full: std::sync::Condvar,
    cap: usize,
}

impl<T> Handover<T> {
    pub fn new(cap: usize) -> Handover<T> {
        Handover {
            inner: std::sync::Mutex::new((std::collections::VecDeque::new(), false)),
            not_empty: std::sync::Condvar::new(),
            not_full: std::sync::Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (std::collections::VecDeque<T>, bool)> {
        // A panicked peer leaves the queue usable: its data are plain values.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue one item, waiting while the queue is full; false once closed (stop reading).
    pub fn push(&self, item: T) -> bool {
        let mut g = self.lock();
        while g.0.len() >= self.cap && !g.1 {
            g = self.not_full.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        if g.1 {
            return false;
        }
        g.0.push_back(item);
        if g.0.len() == 1 {
            self.not_empty.notify_one();
        }
        true
    }

    /// No more items: the reader is done, or the importer stopped taking them.
    pub fn close(&self) {
        self.lock().1 = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Everything queued, waiting up to `wait` for something; `None` once closed and empty.
    pub fn take_all(&self, wait: std::time::Duration) -> Option<Vec<T>> {
        let mut g = self.lock();
        if g.0.is_empty() && !g.1 {
            g = self
                .not_empty
                .wait_timeout(g, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        if g.0.is_empty() {
            return if g.1 { None } else { Some(Vec::new()) };
        }
        let was_full = g.0.len() >= self.cap;
        let items: Vec<T> = g.0.drain(..).collect();
        if was_full {
            self.not_full.notify_one();
        }
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::Handover;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn the_importer_takes_every_frame_in_order_however_the_reader_runs_ahead() {
        let q = Arc::new(Handover::new(16));
        let r = q.clone();
        let reader = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                assert!(r.push(i));
            }
            r.close();
        });
        let mut got = Vec::new();
        let mut takes = 0;
        while let Some(batch) = q.take_all(Duration::from_millis(200)) {
            takes += 1;
            got.extend(batch);
        }
        reader.join().expect("reader");
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        assert!(takes < 10_000 + 50, "{takes} takes");
    }

    #[test]
    fn a_quiet_source_is_handed_over_at_once_and_a_closed_queue_refuses_more() {
        let q: Handover<u8> = Handover::new(4);
        assert_eq!(q.take_all(Duration::from_millis(10)), Some(vec![]));
        assert!(q.push(7));
        assert_eq!(q.take_all(Duration::from_secs(5)), Some(vec![7]));
        q.close();
        assert!(!q.push(8), "a reader is told to stop");
        assert_eq!(q.take_all(Duration::from_secs(5)), None);
    }
}
