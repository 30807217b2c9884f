//! Shared by the fuzz targets: the link-type selector and the checks every decoded packet
//! must pass.

use pfstatelog::pipeline::{decode_frame, Outcome};
use pfstatelog::report;
use pfstatelog::source::Frame;
use pfstatelog::wire::{link, DecodedPacket, Item};

/// The link types the decoder strips (docs/pfsync.md §1). The first input byte picks
/// one (modulo the length); `fuzz/seed.sh` writes the same indices.
pub const LINKTYPES: [u32; 13] = [0, 1, 12, 14, 18, 101, 108, 113, 121, 228, 229, 246, 276];

pub fn linktype(sel: u8) -> u32 {
    LINKTYPES[sel as usize % LINKTYPES.len()]
}

/// Invariants of a decoded packet, whatever the input.
pub fn check_packet(buf: &[u8], pkt: &DecodedPacket) {
    assert!(
        pkt.version == 5 || pkt.version == 6,
        "version {}",
        pkt.version
    );
    assert!(pkt.header_len >= 20, "header len {}", pkt.header_len);
    assert_eq!(pkt.available, buf.len());
    let bound = (pkt.header_len as usize).min(buf.len());
    let mut last = 0usize;
    for item in &pkt.items {
        match item {
            Item::Message(off, d) => {
                assert!(
                    *off >= 20 && *off <= bound,
                    "message at {off}, bound {bound}"
                );
                assert!(*off >= last, "messages out of order: {off} after {last}");
                last = *off;
                // Everything a printer or the store asks of a message.
                let _ = d.name();
                let _ = d.msg.state_ref();
                if let Some(s) = d.msg.full_state() {
                    let _ = s.is_nat();
                    let _ = report::line::pfctl_state(s);
                    let _ = report::line::inside_out(s);
                }
            }
            Item::Damage(e) => {
                let _ = e.to_string();
                let _ = e.tag();
            }
        }
    }
}

/// Strip, decode and check one frame; also run it through the `decode` printers.
pub fn decode_one(lt: u32, frame: &[u8], ts_us: i64) -> (Outcome, Frame) {
    if let Ok(f) = link::strip(lt, frame) {
        assert!(f.pfsync.len() <= frame.len());
        if let Ok(pkt) = pfstatelog::wire::decode_pfsync(f.pfsync) {
            check_packet(f.pfsync, &pkt);
        }
    }
    let fr = Frame {
        ts_us,
        linktype: lt,
        orig_len: frame.len() as u32,
        data: frame.to_vec(),
    };
    let o = decode_frame(&fr);
    let mut sink = std::io::sink();
    report::decode::text(&mut sink, 1, &fr, &o).expect("sink");
    report::decode::json(&mut sink, 1, &fr, &o).expect("sink");
    (o, fr)
}
