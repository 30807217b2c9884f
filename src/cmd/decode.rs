//! `pfstatelog decode`: print pfsync messages from a capture file or an interface.

use crate::cli::{DecodeArgs, DecodeFormat};
use crate::pipeline::{decode_frame, DecodeStats};
use crate::report::decode;
use crate::source::file::CaptureFile;
use crate::source::live::{Live, Next};
use crate::source::Frame;
use anyhow::Context;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) fn run(a: DecodeArgs) -> anyhow::Result<u8> {
    let mut out = super::out::stdout();
    let mut stats = DecodeStats::default();
    let limit = a.count.unwrap_or(u64::MAX);
    let format = a.format;
    let show =
        |f: &Frame, stats: &mut DecodeStats, out: &mut super::out::Out| -> std::io::Result<()> {
            let o = decode_frame(f);
            stats.count(f, &o);
            let n = stats.frames;
            match format {
                DecodeFormat::Text => decode::text(out, n, f, &o),
                DecodeFormat::Json => decode::json(out, n, f, &o),
            }
        };
    let mut read_error = None;
    if let Some(iface) = &a.iface {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
        }
        let mut live = Live::open(iface, a.filter.as_deref(), crate::cli::PCAP_BUFFER_MIB)?;
        while stats.frames < limit && !stop.load(Ordering::Relaxed) {
            match live.next_frame()? {
                Next::Frame(f) => {
                    show(&f, &mut stats, &mut out)?;
                    // Live output is read as it comes.
                    out.flush()?;
                }
                Next::Timeout => {}
            }
        }
    } else if let Some(path) = &a.capture {
        let path = path.display().to_string();
        let mut cap = CaptureFile::open(&path)?;
        while stats.frames < limit {
            match cap.next_frame() {
                None => break,
                Some(Ok(f)) => show(&f, &mut stats, &mut out)?,
                Some(Err(e)) => {
                    read_error = Some(e);
                    break;
                }
            }
        }
    }
    out.flush()?;
    drop(out);
    eprintln!(
        "pfstatelog: {} frames, {} pfsync packets; messages: {}; skipped (not pfsync): {}; untrusted (ttl != 255): {} packets, {} messages; errors: {}",
        stats.frames,
        stats.packets,
        stats.messages_line(),
        stats.not_pfsync,
        stats.untrusted_packets,
        stats.untrusted_messages,
        stats.errors_line()
    );
    if let Some(e) = read_error {
        // Damage at the end of a file is reported; what came before was printed.
        eprintln!("pfstatelog: {e}");
    }
    Ok(0)
}
