//! Link framing down to the pfsync header (docs/pfsync.md §1).

use super::{WireError, WireErrorKind};
use byteorder::{ByteOrder, BE, LE};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of pfsync.
pub(crate) const IPPROTO_PFSYNC: u8 = 240;
/// The only TTL / hop limit a sync-link packet can have (receivers drop others).
pub(crate) const SYNC_TTL: u8 = 255;

/// Link types (LINKTYPE_* / DLT_* values) this module strips.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW on most systems; DLT_LOOP on OpenBSD.
    pub const RAW_12: u32 = 12;
    /// DLT_RAW on OpenBSD.
    pub const RAW_14: u32 = 14;
    /// OpenBSD, NetBSD, macOS DLT_PFSYNC.
    pub const PFSYNC_18: u32 = 18;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    /// FreeBSD DLT_PFSYNC.
    pub const PFSYNC_121: u32 = 121;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    /// LINKTYPE_PFSYNC, as upstream libpcap writes files.
    pub const PFSYNC: u32 = 246;
    pub const LINUX_SLL2: u32 = 276;

    pub fn is_pfsync(lt: u32) -> bool {
        matches!(lt, PFSYNC_18 | PFSYNC_121 | PFSYNC)
    }
    pub fn is_supported(lt: u32) -> bool {
        matches!(
            lt,
            NULL | ETHERNET
                | RAW_12
                | RAW_14
                | PFSYNC_18
                | RAW
                | LOOP
                | LINUX_SLL
                | PFSYNC_121
                | IPV4
                | IPV6
                | PFSYNC
                | LINUX_SLL2
        )
    }
}

/// The IP header that carried the pfsync packet, when there was one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL (IPv4) or hop limit (IPv6).
    pub ttl: u8,
}

impl IpMeta {
    /// A packet whose TTL is not 255 cannot have come from the sync link.
    pub fn ttl_ok(&self) -> bool {
        self.ttl == SYNC_TTL
    }
}

/// A frame stripped down to its pfsync packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed<'a> {
    /// From the pfsync header to the end of the IP payload (or of the captured bytes).
    pub pfsync: &'a [u8],
    pub ip: Option<IpMeta>,
}

fn not_pfsync(offset: usize, why: impl Into<String>) -> WireError {
    WireError::new(offset, WireErrorKind::NotPfsync(why.into()))
}

fn bad_ip(offset: usize, why: impl Into<String>) -> WireError {
    WireError::new(offset, WireErrorKind::BadIpHeader(why.into()))
}

/// Strip the framing of one captured frame.
pub fn strip(lt: u32, frame: &[u8]) -> Result<Framed<'_>, WireError> {
    use linktype::*;
    match lt {
        PFSYNC_18 | PFSYNC_121 | PFSYNC => {
            // ≤ 7.3 and FreeBSD taps start at the pfsync header; OpenBSD ≥ 7.4 taps the whole
            // IPv4 datagram (docs/pfsync.md §1).
            match frame.first() {
                None => Err(WireError::truncated(0, "pfsync header", 20, 0)),
                Some(b) if b >> 4 == 4 => ipv4(frame, 0),
                Some(_) => Ok(Framed {
                    pfsync: frame,
                    ip: None,
                }),
            }
        }
        ETHERNET => ethernet(frame),
        RAW_12 | RAW_14 | RAW => raw_ip(frame, 0),
        IPV4 => ipv4(frame, 0),
        IPV6 => ipv6(frame, 0),
        NULL | LOOP => {
            need(frame, 0, 4, "null/loopback header")?;
            let fam_be = BE::read_u32(&frame[..4]);
            let fam_le = LE::read_u32(&frame[..4]);
            // DLT_NULL is in the capturing host's byte order: accept either.
            let fam = if fam_be < 256 { fam_be } else { fam_le };
            match fam {
                2 => ipv4(frame, 4),
                24 | 28 | 30 => ipv6(frame, 4),
                f => Err(not_pfsync(0, format!("null/loopback family {f} is not IP"))),
            }
        }
        LINUX_SLL => {
            need(frame, 0, 16, "Linux cooked header")?;
            ethertype(frame, BE::read_u16(&frame[14..]), 16)
        }
        LINUX_SLL2 => {
            need(frame, 0, 20, "Linux cooked v2 header")?;
            ethertype(frame, BE::read_u16(&frame[0..]), 20)
        }
        other => Err(WireError::new(0, WireErrorKind::UnsupportedLinkType(other))),
    }
}

fn need(frame: &[u8], off: usize, n: usize, what: &'static str) -> Result<(), WireError> {
    if frame.len() < off + n {
        Err(WireError::truncated(
            off,
            what,
            n,
            frame.len().saturating_sub(off),
        ))
    } else {
        Ok(())
    }
}

fn ethernet(frame: &[u8]) -> Result<Framed<'_>, WireError> {
    need(frame, 0, 14, "Ethernet header")?;
    let mut off = 12;
    let mut et = BE::read_u16(&frame[off..]);
    // 802.1Q / 802.1ad tags, possibly stacked.
    let mut tags = 0;
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        tags += 1;
        if tags > 8 {
            return Err(not_pfsync(off, "too many VLAN tags"));
        }
        need(frame, off, 6, "802.1Q tag")?;
        off += 4;
        et = BE::read_u16(&frame[off..]);
    }
    ethertype(frame, et, off + 2)
}

fn ethertype(frame: &[u8], et: u16, off: usize) -> Result<Framed<'_>, WireError> {
    match et {
        0x0800 => ipv4(frame, off),
        0x86dd => ipv6(frame, off),
        other => Err(not_pfsync(
            off,
            format!("ethertype 0x{other:04x} is not IP"),
        )),
    }
}

fn raw_ip(frame: &[u8], off: usize) -> Result<Framed<'_>, WireError> {
    match frame.get(off).map(|b| b >> 4) {
        Some(4) => ipv4(frame, off),
        Some(6) => ipv6(frame, off),
        Some(v) => Err(bad_ip(off, format!("IP version {v}"))),
        None => Err(WireError::truncated(off, "IP header", 20, 0)),
    }
}

fn ipv4(frame: &[u8], off: usize) -> Result<Framed<'_>, WireError> {
    need(frame, off, 20, "IPv4 header")?;
    let h = &frame[off..];
    let version = h[0] >> 4;
    if version != 4 {
        return Err(bad_ip(off, format!("version {version} in an IPv4 header")));
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    if ihl < 20 {
        return Err(bad_ip(off, format!("header length {ihl} below 20")));
    }
    need(frame, off, ihl, "IPv4 header with options")?;
    let total = BE::read_u16(&h[2..]) as usize;
    if total < ihl {
        return Err(bad_ip(
            off,
            format!("total length {total} below header length {ihl}"),
        ));
    }
    let frag = BE::read_u16(&h[6..]);
    if frag & 0x3fff != 0 {
        // pfsync is sent with DF; a fragment cannot be decoded on its own.
        return Err(not_pfsync(off, "IPv4 fragment"));
    }
    if h[9] != IPPROTO_PFSYNC {
        return Err(not_pfsync(
            off + 9,
            format!("IP protocol {} is not 240", h[9]),
        ));
    }
    let end = (off + total).min(frame.len());
    let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
    let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
    Ok(Framed {
        pfsync: &frame[off + ihl..end],
        ip: Some(IpMeta {
            src: src.into(),
            dst: dst.into(),
            ttl: h[8],
        }),
    })
}

fn ipv6(frame: &[u8], off: usize) -> Result<Framed<'_>, WireError> {
    need(frame, off, 40, "IPv6 header")?;
    let h = &frame[off..];
    let version = h[0] >> 4;
    if version != 6 {
        return Err(bad_ip(off, format!("version {version} in an IPv6 header")));
    }
    let plen = BE::read_u16(&h[4..]) as usize;
    if h[6] != IPPROTO_PFSYNC {
        return Err(not_pfsync(
            off + 6,
            format!("IPv6 next header {} is not 240", h[6]),
        ));
    }
    let mut s = [0u8; 16];
    let mut d = [0u8; 16];
    s.copy_from_slice(&h[8..24]);
    d.copy_from_slice(&h[24..40]);
    let start = off + 40;
    let end = (start + plen).min(frame.len());
    Ok(Framed {
        pfsync: &frame[start..end],
        ip: Some(IpMeta {
            src: Ipv6Addr::from(s).into(),
            dst: Ipv6Addr::from(d).into(),
            ttl: h[7],
        }),
    })
}
