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
