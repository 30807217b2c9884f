//! Capture files. Classic pcap is read here directly: pcap-file 2 rejects records whose
//! original length exceeds the snap length (normal in a `tcpdump -s` capture), and a damaged
//! record must end the file cleanly with what came before kept. pcapng goes through
//! pcap-file, with the interface's if_tsresol applied (pcap-file leaves timestamps raw).

use super::{Frame, SourceError};
use byteorder::{BigEndian, ByteOrder, LittleEndian};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::fs::File;
use std::io::{BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Largest record we accept; anything larger is damage, not a packet (a pfsync frame is
/// below 64 KiB; jumbo Ethernet below 16 KiB).
const MAX_RECORD: u32 = 256 * 1024;

pub enum CaptureFile {
    Pcap(PcapFile),
    PcapNg(PcapNgFile),
}

impl CaptureFile {
    /// Open a capture file; `-` is standard input (`tcpdump -w - | pfstatelog import -`).
    /// The file is opened once and read as a stream, so pipes and FIFOs work too.
    pub fn open(path: &str) -> Result<CaptureFile, SourceError> {
        Self::open_counted(path, None)
    }

    /// As `open`, adding to `read` every byte read from the file (for a progress bar).
    pub(crate) fn open_counted(
        path: &str,
        read: Option<Arc<AtomicU64>>,
    ) -> Result<CaptureFile, SourceError> {
        let io = |source| SourceError::Io {
            path: path.to_string(),
            source,
        };
        let mut f: Box<dyn Read + Send> = if path == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(File::open(path).map_err(io)?)
        };
        if let Some(n) = read {
            f = Box::new(Counted { inner: f, n });
        }
        let mut magic = [0u8; 4];
        let n = read_full(&mut f, &mut magic).map_err(io)?;
        // Put the magic back in front of the stream.
        let f: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(magic[..n].to_vec()).chain(f));
        match (n, magic) {
            (4, [0x0a, 0x0d, 0x0d, 0x0a]) => {
                let r = PcapNgReader::new(BufReader::with_capacity(1 << 20, f)).map_err(|e| {
                    SourceError::Damaged {
                        path: path.into(),
                        offset: 0,
                        why: e.to_string(),
                    }
                })?;
                Ok(CaptureFile::PcapNg(PcapNgFile {
                    path: path.into(),
                    reader: Some(r),
                    failed: false,
                    resolutions: Vec::new(),
                }))
            }
            (4, _) => Ok(CaptureFile::Pcap(PcapFile::new(path, f)?)),
            _ => Err(SourceError::NotACapture {
                path: path.into(),
                magic: hex(&magic[..n]),
            }),
        }
    }

    /// The next frame; `None` at the end. An error ends the file.
    pub fn next_frame(&mut self) -> Option<Result<Frame, SourceError>> {
        match self {
            CaptureFile::Pcap(p) => p.next_frame(),
            CaptureFile::PcapNg(p) => p.next_frame(),
        }
    }
}

/// A reader that counts what went through it.
struct Counted {
    inner: Box<dyn Read + Send>,
    n: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

pub struct PcapFile {
    path: String,
    r: BufReader<Box<dyn Read + Send>>,
    /// The file's byte order.
    read_u32: fn(&[u8]) -> u32,
    nanos: bool,
    pub linktype: u32,
    offset: u64,
    done: bool,
}

impl PcapFile {
    fn new(path: &str, f: Box<dyn Read + Send>) -> Result<PcapFile, SourceError> {
        let mut r = BufReader::with_capacity(1 << 20, f);
        let mut h = [0u8; 24];
        let n = read_full(&mut r, &mut h).map_err(|source| SourceError::Io {
            path: path.into(),
            source,
        })?;
        let magic = [h[0], h[1], h[2], h[3]];
        let (big_endian, nanos) = match magic {
            [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
            [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
            _ => {
                return Err(SourceError::NotACapture {
                    path: path.into(),
                    magic: hex(&magic),
                })
            }
        };
        if n < 24 {
            return Err(SourceError::Damaged {
                path: path.into(),
                offset: n as u64,
                why: "file header shorter than 24 bytes".into(),
            });
        }
        let read_u32: fn(&[u8]) -> u32 = if big_endian {
            BigEndian::read_u32
        } else {
            LittleEndian::read_u32
        };
        // The low 16 bits are the link type; the upper bits carry FCS flags (pcap spec).
        let linktype = read_u32(&h[20..]) & 0xffff;
        if !crate::wire::link::linktype::is_supported(linktype) {
            return Err(SourceError::Damaged {
                path: path.into(),
                offset: 20,
                why: crate::wire::WireError::new(
                    0,
                    crate::wire::WireErrorKind::UnsupportedLinkType(linktype),
                )
                .to_string(),
            });
        }
        Ok(PcapFile {
            path: path.into(),
            r,
            read_u32,
            nanos,
            linktype,
            offset: 24,
            done: false,
        })
    }

    fn damaged(&mut self, why: String) -> Option<Result<Frame, SourceError>> {
        self.done = true;
        Some(Err(SourceError::Damaged {
            path: self.path.clone(),
            offset: self.offset,
            why,
        }))
    }

    fn next_frame(&mut self) -> Option<Result<Frame, SourceError>> {
        if self.done {
            return None;
        }
        let mut h = [0u8; 16];
        let n = match read_full(&mut self.r, &mut h) {
            Ok(n) => n,
            Err(e) => return self.damaged(e.to_string()),
        };
        if n == 0 {
            self.done = true;
            return None;
        }
        if n < 16 {
            return self.damaged(format!("record header cut after {n} of 16 bytes"));
        }
        let u = |o: usize| (self.read_u32)(&h[o..]);
        let (sec, frac, incl, orig) = (u(0), u(4), u(8), u(12));
        if incl > MAX_RECORD {
            return self.damaged(format!("record length {incl} is not believable"));
        }
        let limit = if self.nanos { 1_000_000_000 } else { 1_000_000 };
        if frac >= limit {
            return self.damaged(format!("timestamp fraction {frac} out of range"));
        }
        // Read into the buffer's spare room: zeroing it first cost ~2 % of an import (perf).
        let mut data = Vec::with_capacity(incl as usize);
        match (&mut self.r).take(u64::from(incl)).read_to_end(&mut data) {
            Ok(k) if k == incl as usize => {}
            Ok(k) => return self.damaged(format!("record cut after {k} of {incl} bytes")),
            Err(e) => return self.damaged(e.to_string()),
        }
        self.offset += 16 + incl as u64;
        let frac_us = if self.nanos { frac / 1000 } else { frac };
        Some(Ok(Frame {
            ts_us: sec as i64 * 1_000_000 + frac_us as i64,
            linktype: self.linktype,
            orig_len: orig.max(incl),
            data,
        }))
    }
}

pub struct PcapNgFile {
    path: String,
    reader: Option<PcapNgReader<BufReader<Box<dyn Read + Send>>>>,
    failed: bool,
    /// Per interface: (linktype, ticks per second).
    resolutions: Vec<(u32, u64)>,
}

impl PcapNgFile {
    /// A damaged block ends the file (pcap-file gives no offset).
    fn damaged(&mut self, why: String) -> Option<Result<Frame, SourceError>> {
        self.failed = true;
        Some(Err(SourceError::Damaged {
            path: self.path.clone(),
            offset: 0,
            why,
        }))
    }

    fn next_frame(&mut self) -> Option<Result<Frame, SourceError>> {
        loop {
            if self.failed {
                return None;
            }
            let reader = self.reader.as_mut()?;
            let block = match reader.next_block()? {
                Ok(b) => b,
                Err(e) => return self.damaged(e.to_string()),
            };
            match block {
                Block::SectionHeader(_) => self.resolutions.clear(),
                Block::InterfaceDescription(idb) => {
                    let mut tps: u64 = 1_000_000;
                    for o in &idb.options {
                        if let InterfaceDescriptionOption::IfTsResol(r) = o {
                            tps = ticks_per_second(*r);
                        }
                    }
                    self.resolutions.push((u32::from(idb.linktype), tps));
                }
                Block::EnhancedPacket(epb) => {
                    let Some(&(linktype, tps)) = self.resolutions.get(epb.interface_id as usize)
                    else {
                        // `epb` still borrows the reader: the fields, not `self.damaged`.
                        self.failed = true;
                        return Some(Err(SourceError::Damaged {
                            path: self.path.clone(),
                            offset: 0,
                            why: format!(
                                "packet names interface {} which was never described",
                                epb.interface_id
                            ),
                        }));
                    };
                    // pcap-file stores the raw 64-bit tick count as nanoseconds.
                    let ticks = epb.timestamp.as_nanos();
                    let us = ticks.saturating_mul(1_000_000) / tps.max(1) as u128;
                    return Some(Ok(Frame {
                        ts_us: us.min(i64::MAX as u128) as i64,
                        linktype,
                        orig_len: epb.original_len.max(epb.data.len() as u32),
                        data: epb.data.into_owned(),
                    }));
                }
                Block::SimplePacket(spb) => {
                    let linktype = self.resolutions.first().map(|r| r.0).unwrap_or(0);
                    return Some(Ok(Frame {
                        ts_us: 0,
                        linktype,
                        orig_len: spb.original_len,
                        data: spb.data.into_owned(),
                    }));
                }
                _ => {}
            }
        }
    }
}

/// if_tsresol: high bit clear = 10^-n, set = 2^-n; absurd values fall back to microseconds.
fn ticks_per_second(r: u8) -> u64 {
    let n = (r & 0x7f) as u32;
    let v = if r & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        2u64.checked_pow(n)
    };
    v.unwrap_or(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap with one 3-byte record, in the given byte order and resolution.
    fn classic(big: bool, nanos: bool, frac: u32) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
        b.extend_from_slice(&w16(2));
        b.extend_from_slice(&w16(4));
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&w32(65535));
        b.extend_from_slice(&w32(246));
        b.extend_from_slice(&w32(1_741_942_800));
        b.extend_from_slice(&w32(frac));
        b.extend_from_slice(&w32(3));
        b.extend_from_slice(&w32(1500)); // longer on the wire than captured: must be accepted
        b.extend_from_slice(&[6, 0, 0]);
        b
    }

    fn read_all(bytes: &[u8]) -> (Vec<Frame>, Option<String>) {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.pcap");
        std::fs::write(&p, bytes).expect("write");
        let mut c = CaptureFile::open(&p.display().to_string()).expect("open");
        let mut frames = Vec::new();
        let mut err = None;
        while let Some(r) = c.next_frame() {
            match r {
                Ok(f) => frames.push(f),
                Err(e) => err = Some(e.to_string()),
            }
        }
        (frames, err)
    }

    #[test]
    fn classic_pcap_in_both_byte_orders_and_resolutions() {
        for big in [false, true] {
            let (f, err) = read_all(&classic(big, false, 123_456));
            assert_eq!(err, None);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].ts_us, 1_741_942_800_123_456);
            assert_eq!(
                (f[0].linktype, f[0].orig_len, f[0].data.clone()),
                (246, 1500, vec![6, 0, 0])
            );
            let (f, _) = read_all(&classic(big, true, 123_456_789));
            assert_eq!(
                f[0].ts_us, 1_741_942_800_123_456,
                "nanoseconds truncate to microseconds"
            );
        }
    }

    #[test]
    fn damage_ends_the_file_and_keeps_what_came_before() {
        let mut b = classic(false, false, 1);
        b.extend_from_slice(&classic(false, false, 2)[24..30]); // a record header cut short
        let (f, err) = read_all(&b);
        assert_eq!(f.len(), 1);
        assert!(err.expect("error").contains("record header cut"));
        let mut b = classic(false, false, 1);
        let whole = classic(false, false, 2);
        b.extend_from_slice(&whole[24..whole.len() - 1]); // a record's data cut short
        let (f, err) = read_all(&b);
        assert_eq!(f.len(), 1);
        let err = err.expect("error");
        assert!(err.contains("record cut after"), "{err}");
        let mut huge = classic(false, false, 1);
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        let (f, err) = read_all(&huge);
        assert!(f.is_empty());
        assert!(err.expect("error").contains("not believable"));
        let (_, err) = read_all(&classic(false, false, 2_000_000));
        assert!(err.expect("error").contains("fraction"));
    }

    #[test]
    fn unsupported_link_type_is_refused_naming_it() {
        let mut b = classic(false, false, 1);
        b[20..24].copy_from_slice(&147u32.to_le_bytes());
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.pcap");
        std::fs::write(&p, b).expect("write");
        let e = CaptureFile::open(&p.display().to_string())
            .err()
            .expect("refused");
        assert!(e.to_string().contains("link type 147"), "{e}");
    }

    #[test]
    fn tsresol() {
        assert_eq!(ticks_per_second(6), 1_000_000);
        assert_eq!(ticks_per_second(9), 1_000_000_000);
        assert_eq!(ticks_per_second(0x80 | 10), 1024);
        assert_eq!(ticks_per_second(0x7f), 1_000_000);
    }
}
