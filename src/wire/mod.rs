//! pfsync on the wire: link framing, the OpenBSD v6 packet format and FreeBSD's, decoded
//! into the domain model (`crate::model`) and the messages of [`message`].
//!
//! Everything here is pure: bytes in, typed values or typed errors out. No I/O, no clock,
//! no panics on any input (fuzzed in `fuzz/`). Each C struct is declared once
//! (`layout::wire_struct!`), its fields with their types and byte offsets, and gives an
//! owned `Repr` with `parse` and `emit`. The encoders (`emit`, `from_*`, `emit_packet`) are
//! compiled only with the `emit` feature: the generator in `bench/` and the tests write
//! packets, the product only reads them.

pub mod error;
pub mod freebsd;
pub mod layout;
pub mod link;
pub mod message;
pub mod openbsd;
pub mod packet;

pub use error::{WireError, WireErrorKind};
pub use message::*;
pub use packet::{decode_pfsync, DecodedPacket};

/// A NUL-padded interface name, as pf stores it (IFNAMSIZ 16).
pub(crate) fn ifname_from(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(feature = "emit")]
pub(crate) fn ifname_to(name: &str, out: &mut [u8]) {
    out.fill(0);
    let src = name.as_bytes();
    let n = src.len().min(out.len());
    out[..n].copy_from_slice(&src[..n]);
}
