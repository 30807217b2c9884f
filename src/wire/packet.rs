//! One pfsync packet, whatever its flavour: the header's version byte picks the decoder.
//! It sits above both flavours; the types they share live below them, in `model` and
//! `layout`.

use super::{freebsd, openbsd, Decoded, WireError, WireErrorKind};
use byteorder::{ByteOrder, BE};

pub use super::layout::HEADER_LEN;
pub use super::message::Item;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodedPacket {
    pub version: u8,
    /// The header's `len` field.
    pub header_len: u16,
    /// Bytes actually available (captured, and inside the IP payload).
    pub available: usize,
    pub items: Vec<Item>,
}

impl DecodedPacket {
    pub fn messages(&self) -> impl Iterator<Item = &Decoded> {
        self.items.iter().filter_map(|i| match i {
            Item::Message(_, d) => Some(d),
            Item::Damage(_) => None,
        })
    }
    pub fn damage(&self) -> impl Iterator<Item = &WireError> {
        self.items.iter().filter_map(|i| match i {
            Item::Damage(e) => Some(e),
            Item::Message(..) => None,
        })
    }
}

/// Decode a pfsync packet that starts at its header. Parsing is bounded by
/// min(header len, bytes present) (docs/pfsync.md §3: R2); whole messages before any damage are kept
/// (R3); a packet whose header cannot be trusted yields only an error (R1).
pub fn decode_pfsync(buf: &[u8]) -> Result<DecodedPacket, WireError> {
    if buf.len() < HEADER_LEN {
        return Err(WireError::truncated(
            0,
            "pfsync header",
            HEADER_LEN,
            buf.len(),
        ));
    }
    let version = buf[0];
    let header_len = BE::read_u16(&buf[2..]);
    if !matches!(version, openbsd::VERSION | freebsd::VERSION) {
        return Err(WireError::new(
            0,
            WireErrorKind::UnsupportedVersion(version),
        ));
    }
    if (header_len as usize) < HEADER_LEN {
        return Err(WireError::new(2, WireErrorKind::BadHeaderLen(header_len)));
    }
    let bound = (header_len as usize).min(buf.len());
    let mut pkt = DecodedPacket {
        version,
        header_len,
        available: buf.len(),
        items: Vec::new(),
    };
    if version == openbsd::VERSION {
        openbsd::walk(buf, bound, &mut pkt.items);
    } else {
        freebsd::walk(buf, bound, &mut pkt.items);
    }
    // A header that claims more than arrived: the whole messages were kept (R2), but the
    // packet was cut, and that is said (unless a cut message already said it).
    if header_len as usize > buf.len() && !pkt.items.iter().any(|i| matches!(i, Item::Damage(_))) {
        pkt.items.push(Item::Damage(WireError::truncated(
            buf.len(),
            "pfsync packet (header len)",
            header_len as usize,
            buf.len(),
        )));
    }
    Ok(pkt)
}
