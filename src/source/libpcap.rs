//! libpcap, loaded with dlopen when a capture is first asked for, not linked.
//!
//! Linked, libpcap and what Debian's libpcap itself links (dbus, systemd, gcrypt, lz4, zstd,
//! lzma, ...) were mapped and relocated by every command, ~0.9 ms of each `who` (BENCHMARKS.md,
//! "Start-up"), though only `record`, `decode --iface` and `record --check-args` use it. The
//! `pcap` crate has no way to load it late, so this binds the few calls they make. `record`
//! opens its capture before it drops privileges, chroots or pledges, so the library is
//! loaded while files can still be opened.

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use std::ffi::{c_char, c_int, c_uchar, c_uint, CStr, CString};
use std::os::unix::io::RawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The names libpcap's shared object goes by: the soname of most Linux systems (1) and
/// Debian's (0.8), then the development link that the BSDs have in their base system.
#[cfg(not(target_os = "macos"))]
const NAMES: &[&str] = &["libpcap.so.1", "libpcap.so.0.8", "libpcap.so"];
#[cfg(target_os = "macos")]
const NAMES: &[&str] = &["libpcap.A.dylib", "libpcap.dylib"];

/// `DLT_EN10MB`.
pub const LINKTYPE_ETHERNET: c_int = 1;

/// `PCAP_ERRBUF_SIZE`.
const ERRBUF_SIZE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What libpcap said, worded as the `pcap` crate worded it.
    #[error("libpcap error: {0}")]
    Pcap(String),
    #[error("cannot load libpcap ({0})")]
    Load(String),
    #[error("invalid input string (internal null)")]
    Nul,
}

#[repr(C)]
struct PcapT {
    _opaque: [u8; 0],
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut std::ffi::c_void,
}

/// `struct pcap_pkthdr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PktHdr {
    pub ts: libc::timeval,
    pub caplen: u32,
    pub len: u32,
}

#[repr(C)]
#[derive(Default)]
struct PcapStat {
    ps_recv: c_uint,
    ps_drop: c_uint,
    ps_ifdrop: c_uint,
}

/// Packet counters since the capture was opened (`pcap_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub received: u32,
    pub dropped: u32,
    pub if_dropped: u32,
}

/// The entry points used, resolved once; the library stays loaded for the process's life.
struct Lib {
    create: unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut PcapT,
    open_dead: unsafe extern "C" fn(c_int, c_int) -> *mut PcapT,
    close: unsafe extern "C" fn(*mut PcapT),
    set_snaplen: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_promisc: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_timeout: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_buffer_size: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_immediate_mode: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    activate: unsafe extern "C" fn(*mut PcapT) -> c_int,
    datalink: unsafe extern "C" fn(*mut PcapT) -> c_int,
    compile:
        unsafe extern "C" fn(*mut PcapT, *mut BpfProgram, *const c_char, c_int, c_uint) -> c_int,
    setfilter: unsafe extern "C" fn(*mut PcapT, *mut BpfProgram) -> c_int,
    freecode: unsafe extern "C" fn(*mut BpfProgram),
    setnonblock: unsafe extern "C" fn(*mut PcapT, c_int, *mut c_char) -> c_int,
    fileno: unsafe extern "C" fn(*mut PcapT) -> c_int,
    next_ex: unsafe extern "C" fn(*mut PcapT, *mut *mut PktHdr, *mut *const c_uchar) -> c_int,
    stats: unsafe extern "C" fn(*mut PcapT, *mut PcapStat) -> c_int,
    geterr: unsafe extern "C" fn(*mut PcapT) -> *mut c_char,
    _lib: Library,
}

impl Lib {
    fn load() -> Result<Lib, String> {
        let mut tried = Vec::new();
        let lib = NAMES
            .iter()
            .find_map(|name| {
                // SAFETY: libpcap's initialisers are plain C start-up code; nothing else of
                // the process runs in them.
                match unsafe { Library::open(Some(name), RTLD_NOW | RTLD_LOCAL) } {
                    Ok(l) => Some(l),
                    Err(e) => {
                        tried.push(e.to_string());
                        None
                    }
                }
            })
            .ok_or_else(|| tried.join("; "))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: each type is the prototype pcap.h gives that function.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|e| e.to_string())?
            };
        }
        Ok(Lib {
            create: sym!("pcap_create"),
            open_dead: sym!("pcap_open_dead"),
            close: sym!("pcap_close"),
            set_snaplen: sym!("pcap_set_snaplen"),
            set_promisc: sym!("pcap_set_promisc"),
            set_timeout: sym!("pcap_set_timeout"),
            set_buffer_size: sym!("pcap_set_buffer_size"),
            set_immediate_mode: sym!("pcap_set_immediate_mode"),
            activate: sym!("pcap_activate"),
            datalink: sym!("pcap_datalink"),
            compile: sym!("pcap_compile"),
            setfilter: sym!("pcap_setfilter"),
            freecode: sym!("pcap_freecode"),
            setnonblock: sym!("pcap_setnonblock"),
            fileno: sym!("pcap_fileno"),
            next_ex: sym!("pcap_next_ex"),
            stats: sym!("pcap_stats"),
            geterr: sym!("pcap_geterr"),
            _lib: lib,
        })
    }
}

fn lib() -> Result<&'static Lib, Error> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(Lib::load)
        .as_ref()
        .map_err(|e| Error::Load(e.clone()))
}

fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libpcap's messages are NUL-terminated strings it owns.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// One `pcap_t`, closed on drop.
pub struct Capture {
    p: NonNull<PcapT>,
    lib: &'static Lib,
}

// SAFETY: a pcap_t may move between threads; it is used by one at a time (&mut self).
unsafe impl Send for Capture {}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: p came from pcap_create or pcap_open_dead and is closed once.
        unsafe { (self.lib.close)(self.p.as_ptr()) }
    }
}

impl Capture {
    /// `pcap_create`: a capture handle on `device`, not yet active.
    pub fn create(device: &str) -> Result<Capture, Error> {
        let lib = lib()?;
        let name = CString::new(device).map_err(|_| Error::Nul)?;
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: a NUL-terminated name and an errbuf of PCAP_ERRBUF_SIZE.
        let p = unsafe { (lib.create)(name.as_ptr(), errbuf.as_mut_ptr()) };
        match NonNull::new(p) {
            Some(p) => Ok(Capture { p, lib }),
            None => Err(Error::Pcap(c_text(errbuf.as_ptr()))),
        }
    }

    /// `pcap_open_dead`: a handle that only compiles filters for `linktype`.
    pub fn dead(linktype: c_int, snaplen: c_int) -> Result<Capture, Error> {
        let lib = lib()?;
        // SAFETY: plain integers in.
        let p = unsafe { (lib.open_dead)(linktype, snaplen) };
        NonNull::new(p)
            .map(|p| Capture { p, lib })
            .ok_or_else(|| Error::Pcap("insufficient memory".into()))
    }

    fn err(&self) -> Error {
        // SAFETY: a live handle; the text is copied at once.
        Error::Pcap(c_text(unsafe { (self.lib.geterr)(self.p.as_ptr()) }))
    }

    // The setters below can only fail on an active handle, which these never see.
    pub fn set_snaplen(&mut self, n: i32) {
        // SAFETY: a live handle.
        unsafe { (self.lib.set_snaplen)(self.p.as_ptr(), n) };
    }

    pub fn set_promisc(&mut self, on: bool) {
        // SAFETY: a live handle.
        unsafe { (self.lib.set_promisc)(self.p.as_ptr(), c_int::from(on)) };
    }

    pub fn set_timeout(&mut self, ms: i32) {
        // SAFETY: a live handle.
        unsafe { (self.lib.set_timeout)(self.p.as_ptr(), ms) };
    }

    pub fn set_buffer_size(&mut self, bytes: i32) {
        // SAFETY: a live handle.
        unsafe { (self.lib.set_buffer_size)(self.p.as_ptr(), bytes) };
    }

    pub fn set_immediate_mode(&mut self, on: bool) {
        // SAFETY: a live handle.
        unsafe { (self.lib.set_immediate_mode)(self.p.as_ptr(), c_int::from(on)) };
    }

    /// `pcap_activate`; a warning (a positive return) counts as failure, as it did with the
    /// `pcap` crate.
    pub fn activate(&mut self) -> Result<(), Error> {
        // SAFETY: a live handle.
        match unsafe { (self.lib.activate)(self.p.as_ptr()) } {
            0 => Ok(()),
            _ => Err(self.err()),
        }
    }

    pub fn datalink(&self) -> i32 {
        // SAFETY: a live handle.
        unsafe { (self.lib.datalink)(self.p.as_ptr()) }
    }

    /// Compile `program` (netmask 0, as the `pcap` crate passed) and, if `apply`, set it.
    fn compile_and(&mut self, program: &str, optimize: bool, apply: bool) -> Result<(), Error> {
        let text = CString::new(program).map_err(|_| Error::Nul)?;
        let mut prog = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: a live handle, a NUL-terminated program, a zeroed bpf_program to fill.
        let r = unsafe {
            (self.lib.compile)(
                self.p.as_ptr(),
                &mut prog,
                text.as_ptr(),
                c_int::from(optimize),
                0,
            )
        };
        if r == -1 {
            return Err(self.err());
        }
        let set = if apply {
            // SAFETY: a compiled program; libpcap copies it.
            unsafe { (self.lib.setfilter)(self.p.as_ptr(), &mut prog) }
        } else {
            0
        };
        let result = if set == -1 { Err(self.err()) } else { Ok(()) };
        // SAFETY: compiled by pcap_compile above, freed once.
        unsafe { (self.lib.freecode)(&mut prog) };
        result
    }

    /// `pcap_compile` only: whether `program` is a valid filter.
    pub fn compile(&mut self, program: &str, optimize: bool) -> Result<(), Error> {
        self.compile_and(program, optimize, false)
    }

    /// `pcap_compile` and `pcap_setfilter`.
    pub fn set_filter(&mut self, program: &str, optimize: bool) -> Result<(), Error> {
        self.compile_and(program, optimize, true)
    }

    pub fn set_nonblock(&mut self) -> Result<(), Error> {
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: a live handle and an errbuf of PCAP_ERRBUF_SIZE.
        if unsafe { (self.lib.setnonblock)(self.p.as_ptr(), 1, errbuf.as_mut_ptr()) } != 0 {
            return Err(Error::Pcap(c_text(errbuf.as_ptr())));
        }
        Ok(())
    }

    /// The descriptor to poll.
    pub fn fd(&self) -> Result<RawFd, Error> {
        // SAFETY: a live handle.
        match unsafe { (self.lib.fileno)(self.p.as_ptr()) } {
            -1 => Err(Error::Pcap("no file descriptor for this capture".into())),
            fd => Ok(fd),
        }
    }

    /// `pcap_next_ex`: the next packet, or `None` when none is ready (non-blocking) or the
    /// read timeout passed. The slice lives until the next call.
    pub fn next_packet(&mut self) -> Result<Option<(PktHdr, &[u8])>, Error> {
        let mut hdr: *mut PktHdr = std::ptr::null_mut();
        let mut data: *const c_uchar = std::ptr::null();
        // SAFETY: a live handle and two out-pointers.
        match unsafe { (self.lib.next_ex)(self.p.as_ptr(), &mut hdr, &mut data) } {
            0 => Ok(None),
            1 if !hdr.is_null() && !data.is_null() => {
                // SAFETY: on 1 libpcap set both, valid until the next call on this handle,
                // which &mut self excludes while the slice lives.
                let h = unsafe { *hdr };
                let bytes = unsafe { std::slice::from_raw_parts(data, h.caplen as usize) };
                Ok(Some((h, bytes)))
            }
            -1 => Err(self.err()),
            r => Err(Error::Pcap(format!("pcap_next_ex returned {r}"))),
        }
    }

    pub fn stats(&mut self) -> Result<Stat, Error> {
        let mut s = PcapStat::default();
        // SAFETY: a live handle and a pcap_stat to fill.
        if unsafe { (self.lib.stats)(self.p.as_ptr(), &mut s) } == -1 {
            return Err(self.err());
        }
        Ok(Stat {
            received: s.ps_recv,
            dropped: s.ps_drop,
            if_dropped: s.ps_ifdrop,
        })
    }
}
