//! Flavour-neutral decoded messages: what the decoders yield and the tracker and the
//! printers consume.

use super::WireError;
use crate::model::{Bus, Flavor, FullState, IfName, StateRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clr {
    /// Empty: every interface.
    pub ifname: IfName,
    pub creator_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdC {
    pub id: u64,
    pub creator_id: u32,
    pub expire: u32,
    pub timeout: u8,
    pub peer_state: [u8; 2],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tdb {
    pub spi: u32,
    pub rpl: u64,
    pub cur_bytes: u64,
    pub sproto: u8,
    pub rdomain: u16,
}

/// One decoded pfsync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Clr(Clr),
    InsAck(StateRef),
    UpdC(UpdC),
    UpdReq(StateRef),
    Del(FullState),
    DelC(StateRef),
    Bus(Bus),
    Ins(FullState),
    Upd(FullState),
    Tdb(Tdb),
    /// FreeBSD's end-of-frame marker.
    Eof,
    /// A message of an action this decoder does not know, stepped over by its stride.
    Unknown {
        action: u8,
    },
}

impl Message {
    pub fn full_state(&self) -> Option<&FullState> {
        match self {
            Message::Ins(s) | Message::Upd(s) | Message::Del(s) => Some(s),
            _ => None,
        }
    }
    pub fn state_ref(&self) -> Option<StateRef> {
        match self {
            Message::InsAck(r) | Message::UpdReq(r) | Message::DelC(r) => Some(*r),
            Message::UpdC(u) => Some(StateRef {
                id: u.id,
                creator_id: u.creator_id,
            }),
            _ => self.full_state().map(|s| StateRef {
                id: s.id,
                creator_id: s.creator_id,
            }),
        }
    }
}

/// A message with what it came in: the flavour, the action code on the wire and (FreeBSD)
/// the record version, so names like `INS_1400` can be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub flavor: Flavor,
    pub action: u8,
    /// FreeBSD record version of a full state (1301, 1400, 1500); 0 otherwise.
    pub record_version: u16,
    pub msg: Message,
}

impl Decoded {
    /// [`Decoded::name`] when it needs no formatting (no record version, a known action):
    /// counting every message by name allocated a String per message.
    pub fn static_name(&self) -> Option<&'static str> {
        if self.record_version != 0 {
            return None;
        }
        self.base_name().ok()
    }

    /// The action name used by `decode --format json` and the summaries.
    pub fn name(&self) -> String {
        match self.base_name() {
            Err(action) => format!("ACT_{action}"),
            Ok(base) if self.record_version != 0 => format!("{base}_{}", self.record_version),
            Ok(base) => base.to_string(),
        }
    }

    /// The message's name without its record version; an unknown action's number.
    fn base_name(&self) -> Result<&'static str, u8> {
        Ok(match &self.msg {
            Message::Clr(_) => "CLR",
            Message::InsAck(_) => "INS_ACK",
            Message::UpdC(_) => "UPD_C",
            Message::UpdReq(_) => "UPD_REQ",
            Message::Del(_) => "DEL",
            Message::DelC(_) => "DEL_C",
            Message::Bus(_) => "BUS",
            Message::Ins(_) => "INS",
            Message::Upd(_) => "UPD",
            Message::Tdb(_) => "TDB",
            Message::Eof => "EOF",
            Message::Unknown { action } => return Err(*action),
        })
    }
}

/// What a packet yielded, in wire order: messages, and damage where it occurred.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message and its offset within the pfsync packet.
    Message(usize, Decoded),
    Damage(WireError),
}
