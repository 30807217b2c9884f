//! One pfsync packet, whatever its flavour: the header's version byte picks the decoder.

use super::{be16, freebsd, openbsd, Decoded, WireError, WireErrorKind};

/// What a packet yielded, in wire order: messages, and damage where it occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message and its offset within the pfsync packet.
    Message(usize, Decoded),
    Damage(WireError),
}

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

pub const HEADER_LEN: usize = 20;

/// Decode a pfsync packet that starts at its header. Parsing is bounded by
/// min(header len, bytes present) (fixtures R2); whole messages before any damage are kept
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
    let header_len = be16(buf, 2);
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
