//! One frame through the stages: link framing -> pfsync decode -> (trust check).
//! Shared by `decode`, `import` and `record`, so all three count alike.

use crate::source::Frame;
use crate::wire::link::{self, IpMeta};
use crate::wire::{decode_pfsync, DecodedPacket, WireError, WireErrorKind};
use std::collections::BTreeMap;

/// What became of one frame.
#[derive(Debug)]
pub enum Outcome {
    /// Not pfsync at all (another protocol on a shared link): skipped, not an error.
    NotPfsync(WireError),
    /// Damaged below or at the pfsync header: nothing in it can be trusted.
    Damaged(WireError),
    /// A pfsync packet (possibly with damage inside, see its items).
    Packet {
        ip: Option<IpMeta>,
        pkt: DecodedPacket,
        /// False when the IP TTL / hop limit is not 255: it cannot have come from the sync
        /// link (the kernel drops it), so it is shown but never applied.
        trusted: bool,
    },
}

pub fn decode_frame(f: &Frame) -> Outcome {
    let framed = match link::strip(f.linktype, &f.data) {
        Ok(fr) => fr,
        Err(e) => {
            return match e.kind {
                WireErrorKind::NotPfsync(_) => Outcome::NotPfsync(e),
                _ => Outcome::Damaged(e),
            }
        }
    };
    match decode_pfsync(framed.pfsync) {
        Ok(pkt) => Outcome::Packet {
            ip: framed.ip,
            trusted: framed.ip.is_none_or(|ip| ip.ttl_ok()),
            pkt,
        },
        Err(e) => Outcome::Damaged(e),
    }
}

/// Counters every command reports at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub frames: u64,
    pub packets: u64,
    /// Messages per action name, applied (or, for decode, printed) ones only.
    pub messages: BTreeMap<String, u64>,
    pub not_pfsync: u64,
    /// Damage by kind: frames, sections or messages that could not be trusted.
    pub errors: BTreeMap<&'static str, u64>,
    pub untrusted_packets: u64,
    pub untrusted_messages: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
}

impl DecodeStats {
    /// Count a frame's outcome. Returns true when its messages may be applied.
    pub fn count(&mut self, f: &Frame, o: &Outcome) -> bool {
        self.frames += 1;
        self.first_us = Some(self.first_us.map_or(f.ts_us, |t| t.min(f.ts_us)));
        self.last_us = Some(self.last_us.map_or(f.ts_us, |t| t.max(f.ts_us)));
        match o {
            Outcome::NotPfsync(_) => {
                self.not_pfsync += 1;
                false
            }
            Outcome::Damaged(e) => {
                *self.errors.entry(e.tag()).or_default() += 1;
                false
            }
            Outcome::Packet { pkt, trusted, .. } => {
                self.packets += 1;
                for e in pkt.damage() {
                    *self.errors.entry(e.tag()).or_default() += 1;
                }
                if !trusted {
                    self.untrusted_packets += 1;
                    self.untrusted_messages += pkt.messages().count() as u64;
                    return false;
                }
                for m in pkt.messages() {
                    match m.static_name() {
                        Some(n) => match self.messages.get_mut(n) {
                            Some(c) => *c += 1,
                            None => {
                                self.messages.insert(n.to_string(), 1);
                            }
                        },
                        None => *self.messages.entry(m.name()).or_default() += 1,
                    }
                }
                true
            }
        }
    }

    pub(crate) fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn message_total(&self) -> u64 {
        self.messages.values().sum()
    }

    /// `INS 258, UPD_C 559, DEL_C 244`
    pub fn messages_line(&self) -> String {
        counts_line(&self.messages)
    }

    pub fn errors_line(&self) -> String {
        counts_line(&self.errors)
    }
}

/// `name count, name count`, or `none`.
fn counts_line<K: std::fmt::Display>(counts: &BTreeMap<K, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}
