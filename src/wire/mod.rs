//! pfsync on the wire: link framing, the OpenBSD v6 packet format and (later) FreeBSD's.
//!
//! Everything here is pure: bytes in, typed values or typed errors out. No I/O, no clock,
//! no panics on any input (fuzzed in `fuzz/`). The shape follows smoltcp: per format a
//! `field` module of byte ranges mirroring the C struct, a checked view and an owned `Repr`
//! with `parse` and `emit`.

pub mod error;
pub mod freebsd;
pub mod ifname;
pub mod link;
pub mod model;
pub mod openbsd;
pub mod packet;

pub use error::{WireError, WireErrorKind};
pub use ifname::IfName;
pub use model::*;
pub use packet::{decode_pfsync, DecodedPacket, Item};

/// Read a big-endian u16 at `off`; callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

#[inline]
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_be_bytes(a)
}

/// A NUL-padded interface name, as pf stores it (IFNAMSIZ 16).
pub(crate) fn ifname_from(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

pub(crate) fn ifname_to(name: &str, out: &mut [u8]) {
    out.fill(0);
    let src = name.as_bytes();
    let n = src.len().min(out.len());
    out[..n].copy_from_slice(&src[..n]);
}
