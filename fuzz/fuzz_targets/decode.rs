//! First byte: link type selector; the rest: one captured frame. link::strip, decode_pfsync
//! and the `decode` printers must never panic, and decoded packets keep their invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let _ = common::decode_one(common::linktype(sel), frame, 1_741_942_800_000_000);
});
