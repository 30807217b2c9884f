//! Typed decode errors: which layer, what was expected, at which offset, what was there.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Byte offset inside the frame (link errors) or inside the pfsync packet.
    pub offset: usize,
    pub kind: WireErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireErrorKind {
    /// Fewer bytes than the structure needs.
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// The link type is not one pfstatelog knows how to strip.
    UnsupportedLinkType(u32),
    /// The frame does not carry IP protocol 240 (or carries no IP at all).
    NotPfsync(String),
    /// A malformed IP header.
    BadIpHeader(String),
    /// pfsync header version other than the ones decoded.
    UnsupportedVersion(u8),
    /// pfsync header `len` below the 20-byte header itself.
    BadHeaderLen(u16),
    /// A section that can be neither decoded nor stepped over (unknown action with len or
    /// count 0, or FreeBSD's unknown action: no item length on the wire).
    Unskippable { action: u8, len: u8, count: u16 },
    /// A section whose messages run past the packet bound; whole messages before it are kept.
    SectionOverrun {
        action: u8,
        count: u16,
        stride: usize,
        kept: u16,
        bound: usize,
    },
    /// A known action whose stride is shorter than its message: stepped over, not decoded.
    ShortStride { action: u8, len: u8, needed: usize },
}

impl WireError {
    pub fn new(offset: usize, kind: WireErrorKind) -> Self {
        WireError { offset, kind }
    }

    pub fn truncated(offset: usize, what: &'static str, needed: usize, available: usize) -> Self {
        WireError::new(
            offset,
            WireErrorKind::Truncated {
                what,
                needed,
                available,
            },
        )
    }

    /// A short stable tag for counting errors by kind.
    pub fn tag(&self) -> &'static str {
        match self.kind {
            WireErrorKind::Truncated { .. } => "truncated",
            WireErrorKind::UnsupportedLinkType(_) => "link-type",
            WireErrorKind::NotPfsync(_) => "not-pfsync",
            WireErrorKind::BadIpHeader(_) => "bad-ip-header",
            WireErrorKind::UnsupportedVersion(_) => "version",
            WireErrorKind::BadHeaderLen(_) => "header-len",
            WireErrorKind::Unskippable { .. } => "unskippable-section",
            WireErrorKind::SectionOverrun { .. } => "section-overrun",
            WireErrorKind::ShortStride { .. } => "short-stride",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WireErrorKind::*;
        match &self.kind {
            Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "truncated {what} at offset {}: needed {needed} bytes, {available} present",
                self.offset
            ),
            UnsupportedLinkType(t) => write!(
                f,
                "unsupported link type {t} (expected pfsync 18/121/246, Ethernet 1, Linux cooked 113/276, raw IP 12/101/228/229, null 0/108)"
            ),
            NotPfsync(why) => write!(f, "not a pfsync packet at offset {}: {why}", self.offset),
            BadIpHeader(why) => write!(f, "bad IP header at offset {}: {why}", self.offset),
            UnsupportedVersion(v) => write!(
                f,
                "pfsync version {v} not supported (expected 6 for OpenBSD or 5 for FreeBSD)"
            ),
            BadHeaderLen(l) => write!(
                f,
                "pfsync header len {l} at offset {} is below the 20-byte header",
                self.offset
            ),
            Unskippable { action, len, count } => write!(
                f,
                "section at offset {} with action {action} len {len} count {count} cannot be stepped over; rest of packet skipped",
                self.offset
            ),
            SectionOverrun {
                action,
                count,
                stride,
                kept,
                bound,
            } => write!(
                f,
                "section at offset {} (action {action}, count {count}, {stride} bytes each) runs past the packet end at {bound}; kept {kept} whole message(s), rest of packet skipped",
                self.offset
            ),
            ShortStride {
                action,
                len,
                needed,
            } => write!(
                f,
                "section at offset {} (action {action}) has messages of {} bytes, shorter than the {needed} needed; stepped over",
                self.offset,
                *len as usize * 4
            ),
        }
    }
}

impl std::error::Error for WireError {}
