//! `decode` output: tcpdump's pfsync printer style (OpenBSD tcpdump's print-pfsync.c), or JSON lines.

use super::line::pfctl_state;
use super::{hex_creator, hex_id, proto_name};
use crate::model::{BusStatus, Flavor, Key};
use crate::pipeline::Outcome;
use crate::source::Frame;
use crate::time::format_rfc3339;
use crate::wire::packet::Item;
use crate::wire::{Decoded, Message};
use serde_json::{json, Value};
use std::io::Write;

/// tcpdump's section names.
fn act_name(d: &Decoded) -> String {
    let base = match &d.msg {
        Message::Clr(_) => "CLR ST",
        Message::InsAck(_) => "INS ST ACK",
        Message::UpdC(_) => "UPD ST COMP",
        Message::UpdReq(_) => "UPD ST REQ",
        Message::Del(_) => "DEL ST",
        Message::DelC(_) => "DEL ST COMP",
        Message::Bus(_) => "BULK UPD STAT",
        Message::Ins(_) => "INS ST",
        Message::Upd(_) => "UPD ST",
        Message::Tdb(_) if d.action == 11 => "UPD TDB OLD",
        Message::Tdb(_) => "UPD TDB",
        Message::Eof => "EOF",
        Message::Unknown { action } => return format!("UNKNOWN id {action}"),
    };
    if d.record_version != 0 {
        format!("{base} {}", d.record_version)
    } else {
        base.into()
    }
}

fn hms(secs: u32) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// `id: ... creatorid: ...`, as tcpdump names a state.
fn ref_text(id: u64, creator_id: u32) -> String {
    format!("id: {} creatorid: {}", hex_id(id), hex_creator(creator_id))
}

fn message_text(d: &Decoded) -> String {
    match &d.msg {
        Message::Clr(c) if c.ifname.is_empty() => {
            format!("creatorid: {}", hex_creator(c.creator_id))
        }
        Message::Clr(c) => format!(
            "creatorid: {} interface: {}",
            hex_creator(c.creator_id),
            c.ifname
        ),
        Message::InsAck(r) | Message::UpdReq(r) | Message::DelC(r) => ref_text(r.id, r.creator_id),
        Message::UpdC(u) => ref_text(u.id, u.creator_id),
        Message::Bus(b) => format!(
            "creatorid: {} age: {} status: {}",
            hex_creator(b.creator_id),
            hms(b.endtime),
            match b.status {
                BusStatus::Start => "start".to_string(),
                BusStatus::End => "end".to_string(),
                BusStatus::Other(_) => "UNKNOWN".to_string(),
            }
        ),
        Message::Tdb(t) => format!(
            "spi: 0x{:08x} rpl: {} cur_bytes: {}",
            t.spi, t.rpl, t.cur_bytes
        ),
        Message::Ins(s) | Message::Upd(s) | Message::Del(s) => {
            let mut l = pfctl_state(s);
            l.push_str(&format!(
                "\n\t   age {}, expires in {}, {}:{} pkts, {}:{} bytes",
                hms(s.creation),
                hms(s.expire),
                s.packets[0],
                s.packets[1],
                s.bytes[0],
                s.bytes[1]
            ));
            if s.rule != u32::MAX {
                l.push_str(&format!(", rule {}", s.rule));
            }
            l.push_str("\n\t   ");
            l.push_str(&ref_text(s.id, s.creator_id));
            l
        }
        Message::Eof => String::new(),
        Message::Unknown { action } => format!("action {action} stepped over"),
    }
}

/// Print one frame in text form.
pub fn text(out: &mut impl Write, n: u64, f: &Frame, o: &Outcome) -> std::io::Result<()> {
    let ts = format_rfc3339(f.ts_us);
    match o {
        Outcome::NotPfsync(e) => writeln!(out, "{ts} #{n} skipped: {e}"),
        Outcome::Damaged(e) => writeln!(out, "{ts} #{n} error: {e}"),
        Outcome::Packet { ip, pkt, trusted } => {
            let from = ip
                .map(|i| format!("{} > {}: ", i.src, i.dst))
                .unwrap_or_default();
            write!(
                out,
                "{ts} #{n} {from}PFSYNCv{} len {}",
                pkt.version, pkt.header_len
            )?;
            if let (Some(ip), false) = (ip, trusted) {
                write!(
                    out,
                    " [ttl {}: not from the sync link, not applied]",
                    ip.ttl
                )?;
            }
            writeln!(out)?;
            let mut last: Option<String> = None;
            for (i, item) in pkt.items.iter().enumerate() {
                match item {
                    Item::Damage(e) => {
                        last = None;
                        writeln!(out, "\terror: {e}")?;
                    }
                    Item::Message(_, d) => {
                        let name = act_name(d);
                        if last.as_deref() != Some(name.as_str()) {
                            let count = pkt.items[i..]
                                .iter()
                                .take_while(
                                    |it| matches!(it, Item::Message(_, x) if act_name(x) == name),
                                )
                                .count();
                            writeln!(out, "\tact {name} count {count}")?;
                            last = Some(name);
                        }
                        let body = message_text(d);
                        if !body.is_empty() {
                            writeln!(out, "\t{body}")?;
                        }
                    }
                }
            }
            if (pkt.header_len as usize) < pkt.available {
                writeln!(
                    out,
                    "\t... {} bytes after the header length",
                    pkt.available - pkt.header_len as usize
                )?;
            }
            Ok(())
        }
    }
}

fn key_json(k: &Key) -> Value {
    json!({
        "addr": [k.addr[0].to_string(), k.addr[1].to_string()],
        "port": [k.port[0], k.port[1]],
        "rdomain": k.rdomain,
        "af": k.af.name(),
    })
}

fn message_json(d: &Decoded) -> Value {
    let mut v = json!({ "action": d.name() });
    let o = v.as_object_mut().expect("object literal");
    if let Some(r) = d.msg.state_ref() {
        o.insert("creator_id".into(), hex_creator(r.creator_id).into());
        o.insert("state_id".into(), hex_id(r.id).into());
    }
    match &d.msg {
        Message::Clr(c) => {
            o.insert("creator_id".into(), hex_creator(c.creator_id).into());
            o.insert("ifname".into(), c.ifname.as_str().into());
        }
        Message::Bus(b) => {
            o.insert("creator_id".into(), hex_creator(b.creator_id).into());
            o.insert("endtime".into(), b.endtime.into());
            let st = match b.status {
                BusStatus::Start => "start".to_string(),
                BusStatus::End => "end".to_string(),
                BusStatus::Other(x) => x.to_string(),
            };
            o.insert("status".into(), st.into());
        }
        Message::UpdC(u) => {
            o.insert("timeout".into(), u.timeout.into());
            o.insert("expire".into(), u.expire.into());
        }
        Message::Tdb(t) => {
            o.insert("spi".into(), format!("0x{:08x}", t.spi).into());
            o.insert("rpl".into(), t.rpl.into());
            o.insert("cur_bytes".into(), t.cur_bytes.into());
        }
        Message::Ins(s) | Message::Upd(s) | Message::Del(s) => {
            o.insert("ifname".into(), s.ifname.as_str().into());
            o.insert("af".into(), s.af.name().into());
            o.insert("proto".into(), proto_name(s.proto).into());
            o.insert("direction".into(), s.direction.name().into());
            o.insert("wire_key".into(), key_json(&s.key[0]));
            o.insert("stack_key".into(), key_json(&s.key[1]));
            o.insert("nat".into(), s.is_nat().into());
            o.insert("creation".into(), s.creation.into());
            o.insert("expire".into(), s.expire.into());
            o.insert("packets".into(), json!([s.packets[0], s.packets[1]]));
            o.insert("bytes".into(), json!([s.bytes[0], s.bytes[1]]));
            o.insert("rule".into(), s.rule.into());
            o.insert("timeout".into(), s.timeout.into());
        }
        Message::Unknown { action } => {
            o.insert("code".into(), (*action).into());
        }
        _ => {}
    }
    if d.flavor == Flavor::FreeBsd {
        o.insert("flavor".into(), "freebsd".into());
    }
    v
}

/// Print one frame as JSON lines: one object per message, one per damage.
pub fn json(out: &mut impl Write, n: u64, f: &Frame, o: &Outcome) -> std::io::Result<()> {
    let ts = format_rfc3339(f.ts_us);
    match o {
        Outcome::NotPfsync(e) => writeln!(
            out,
            "{}",
            json!({"ts": ts, "frame": n, "skipped": e.to_string()})
        ),
        Outcome::Damaged(e) => writeln!(
            out,
            "{}",
            json!({"ts": ts, "frame": n, "error": e.to_string(), "error_kind": e.tag(), "offset": e.offset})
        ),
        Outcome::Packet { ip, pkt, trusted } => {
            for item in &pkt.items {
                let mut v = match item {
                    Item::Message(off, d) => {
                        let mut v = message_json(d);
                        v["offset"] = (*off).into();
                        v
                    }
                    Item::Damage(e) => {
                        json!({"error": e.to_string(), "error_kind": e.tag(), "offset": e.offset})
                    }
                };
                v["ts"] = ts.clone().into();
                v["frame"] = n.into();
                v["version"] = pkt.version.into();
                if let Some(ip) = ip {
                    v["ip_src"] = ip.src.to_string().into();
                    v["ttl"] = ip.ttl.into();
                }
                if !trusted {
                    v["applied"] = false.into();
                    v["untrusted"] = "ttl is not 255: not from the sync link".into();
                }
                writeln!(out, "{v}")?;
            }
            Ok(())
        }
    }
}
