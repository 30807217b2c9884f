//! One-line state descriptions: pfctl's state line (decode) and the recorder's log lines.

use super::{endpoint, hex_creator, hex_id, proto_name};
use crate::model::Event;
use crate::model::{Direction, FullState};
use crate::time::{format_duration, format_rfc3339};

/// pfctl / tcpdump: `ifname proto nk1 (sk1) -> nk0 (sk0)`, the parenthesised endpoint being
/// the pre-translation one, `<-` for in states (docs/pfsync.md §8).
pub fn pfctl_state(s: &FullState) -> String {
    let nk = s.nk();
    let sk = s.sk();
    let mut out = format!("{} {} ", s.ifname, proto_name(s.proto));
    let rd = |k: &crate::model::Key| {
        if k.rdomain != 0 {
            format!("({}) ", k.rdomain)
        } else {
            String::new()
        }
    };
    out.push_str(&rd(nk));
    out.push_str(&endpoint(&nk.addr[1], nk.port[1]));
    if nk.addr[1] != sk.addr[1]
        || nk.port[1] != sk.port[1]
        || nk.af != sk.af
        || nk.rdomain != sk.rdomain
    {
        out.push_str(&format!(
            " ({}{})",
            rd(sk),
            endpoint(&sk.addr[1], sk.port[1])
        ));
    }
    out.push_str(if s.direction == Direction::Out {
        " -> "
    } else {
        " <- "
    });
    out.push_str(&endpoint(&nk.addr[0], nk.port[0]));
    if nk.addr[0] != sk.addr[0] || nk.port[0] != sk.port[0] {
        out.push_str(&format!(" ({})", endpoint(&sk.addr[0], sk.port[0])));
    }
    out
}

/// The recorder's view: `proto private (public) -> remote` — inside host first, its public
/// face in parentheses when translated, then the remote peer.
pub fn inside_out(s: &FullState) -> String {
    let w = &s.key[0];
    let st = &s.key[1];
    let mut out = format!(
        "{} {}",
        proto_name(s.proto),
        endpoint(&st.addr[1], st.port[1])
    );
    if s.is_nat() {
        out.push_str(&format!(" ({})", endpoint(&w.addr[1], w.port[1])));
    }
    out.push_str(if s.direction == Direction::Out {
        " -> "
    } else {
        " <- "
    });
    out.push_str(&endpoint(&w.addr[0], w.port[0]));
    out
}

/// The syslog / console line for a lifetime event; `None` for events not logged.
pub fn event_line(e: &Event) -> Option<String> {
    match e {
        Event::Open { state, start, .. } => Some(format!(
            "start {} if={} dir={} start={} id={} creator={}",
            inside_out(state),
            state.ifname,
            state.direction.name(),
            format_rfc3339(*start),
            hex_id(state.id),
            hex_creator(state.creator_id)
        )),
        Event::End {
            state,
            start,
            end,
            reason,
            ..
        } => Some(format!(
            "end {} if={} dir={} end={} duration={} pkts={}:{} bytes={}:{} reason={} id={} creator={}",
            inside_out(state),
            state.ifname,
            state.direction.name(),
            format_rfc3339(*end),
            format_duration(end - start),
            state.packets[0],
            state.packets[1],
            state.bytes[0],
            state.bytes[1],
            reason.name(),
            hex_id(state.id),
            hex_creator(state.creator_id)
        )),
        _ => None,
    }
}
