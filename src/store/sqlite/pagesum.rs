//! Page checksums: a thin SQLite VFS over the default one that keeps an 8-byte checksum in
//! the reserved bytes at the end of every page of the database file, writes it with each
//! page and verifies it on each page read. A flipped byte anywhere in a page is then an
//! I/O error (SQLITE_IOERR_DATA, "database damaged") instead of a B-tree that silently
//! finds nothing.
//!
//! What is covered: every page read from the database file, when its header says 8 bytes
//! are reserved per page (databases created by this version: [`reserve_on_create`]). Older
//! files, without reserved bytes, are read and written as before, unchecked.
//!
//! What is not: pages still in the `-wal` file. SQLite computes the WAL's own frame
//! checksum over a page before handing it to `xWrite`, so a checksum put into the page
//! there would break that frame checksum, and recovery after a crash would drop the frame.
//! WAL frames are therefore written as SQLite gives them, and their pages are checked once
//! a checkpoint has copied them into the database (the checkpoint's write computes the
//! page's checksum). A writer checkpoints every half second and at its end.
//!
//! The checksum is two CRC-32s (crc32fast, hardware-accelerated), one over each half of
//! the page body: a CRC-32 detects every burst of up to 32 bits, and every error of up to
//! three bits in a page of up to 16 KiB (pfstatelog's are 4 KiB), so any one damaged byte,
//! or any four in a row, is always caught;
//! larger random damage spread over both halves escapes with odds of 2^-64. It costs one
//! pass over the page, the same as one CRC.
//!
//! Anything that writes to the database must go through this VFS ([`open`],
//! [`open_with_flags`]): a page written by a plain SQLite (the `sqlite3` shell) keeps a
//! stale checksum and reads back as damage.

use rusqlite::ffi;
use rusqlite::{Connection, OpenFlags};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// The name the VFS is registered under.
pub(crate) const VFS_NAME: &str = "pfstatelog-sum";
const VFS_NAME_C: &std::ffi::CStr = c"pfstatelog-sum";

/// Bytes reserved at the end of every page for the checksum.
pub(crate) const RESERVE: u8 = 8;

/// One open file of the VFS. SQLite allocates `szOsFile` bytes for it: this struct, then
/// the default VFS's own file structure right behind it (`real`).
#[repr(C)]
struct SumFile {
    /// Must be first: SQLite sees a `*mut sqlite3_file` and reads `pMethods` from it.
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// The main database file (not a journal, WAL or temporary file).
    main_db: bool,
    /// Whether its header says 8 reserved bytes per page (pages are checksummed); None
    /// while the file has no header yet (a new database, whose first pages are still in
    /// the WAL when another connection checkpoints them).
    check: Option<bool>,
}

/// Register the VFS, once per process. Errors only if the default VFS is missing.
pub(crate) fn register() -> rusqlite::Result<()> {
    static ONCE: std::sync::Once = std::sync::Once::new();
    static RC: AtomicI32 = AtomicI32::new(ffi::SQLITE_OK);
    ONCE.call_once(|| {
        // SAFETY: sqlite3_vfs_find(NULL) returns the default VFS, which lives for the
        // process. The struct registered is leaked, so it outlives every connection, and
        // holds only function pointers of this module and the default VFS's pointer.
        unsafe {
            // SQLite must be initialised before a VFS is registered (it is idempotent).
            let rc = ffi::sqlite3_initialize();
            if rc != ffi::SQLITE_OK {
                RC.store(rc, Ordering::Relaxed);
                return;
            }
            let orig = ffi::sqlite3_vfs_find(std::ptr::null());
            if orig.is_null() {
                RC.store(ffi::SQLITE_ERROR, Ordering::Relaxed);
                return;
            }
            let vfs = Box::new(ffi::sqlite3_vfs {
                // Version 2: up to xCurrentTimeInt64; the system-call hooks (3) are for
                // SQLite's own tests.
                iVersion: (*orig).iVersion.min(2),
                szOsFile: std::mem::size_of::<SumFile>() as c_int + (*orig).szOsFile,
                mxPathname: (*orig).mxPathname,
                pNext: std::ptr::null_mut(),
                zName: VFS_NAME_C.as_ptr(),
                pAppData: orig as *mut c_void,
                xOpen: Some(x_open),
                xDelete: Some(x_delete),
                xAccess: Some(x_access),
                xFullPathname: Some(x_full_pathname),
                xDlOpen: Some(x_dl_open),
                xDlError: Some(x_dl_error),
                xDlSym: Some(x_dl_sym),
                xDlClose: Some(x_dl_close),
                xRandomness: Some(x_randomness),
                xSleep: Some(x_sleep),
                xCurrentTime: Some(x_current_time),
                xGetLastError: Some(x_get_last_error),
                xCurrentTimeInt64: Some(x_current_time_int64),
                xSetSystemCall: None,
                xGetSystemCall: None,
                xNextSystemCall: None,
            });
            RC.store(
                ffi::sqlite3_vfs_register(Box::into_raw(vfs), 0),
                Ordering::Relaxed,
            );
        }
    });
    let rc = RC.load(Ordering::Relaxed);
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

/// Open a database through the VFS, read-write, creating it.
pub fn open<P: AsRef<Path>>(path: P) -> rusqlite::Result<Connection> {
    open_with_flags(path, OpenFlags::default())
}

/// Open a database through the VFS.
pub fn open_with_flags<P: AsRef<Path>>(path: P, flags: OpenFlags) -> rusqlite::Result<Connection> {
    register()?;
    Connection::open_with_flags_and_vfs(path, flags, VFS_NAME)
}

/// Ask for [`RESERVE`] bytes per page in a database that has no page yet; the first table
/// created fixes it. A no-op on a database that has pages.
pub(crate) fn reserve_on_create(conn: &Connection) -> rusqlite::Result<()> {
    let mut n: c_int = RESERVE.into();
    // SAFETY: the handle is valid while `conn` lives; the argument is the int the file
    // control reads and overwrites with the previous value.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&mut n as *mut c_int).cast(),
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None))
    }
}

/// Whether the main database of `conn` keeps a checksum in every page (its header reserves
/// [`RESERVE`] bytes): then every row read from it is a row the store wrote.
pub fn checksummed(conn: &Connection) -> bool {
    // -1: only read the value, change nothing.
    let mut n: c_int = -1;
    // SAFETY: as in reserve_on_create.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_RESERVE_BYTES,
            (&mut n as *mut c_int).cast(),
        )
    };
    rc == ffi::SQLITE_OK && n == c_int::from(RESERVE)
}

/// The number of the last page whose checksum did not match (0: none), for the message:
/// SQLite says only "disk I/O error".
static LAST_BAD_PAGE: AtomicU64 = AtomicU64::new(0);

/// Whether `e` is a page that failed its checksum: then what to say of it.
pub(crate) fn mismatch(e: &rusqlite::Error) -> Option<String> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == ffi::SQLITE_IOERR_DATA => {
            Some(match LAST_BAD_PAGE.load(Ordering::Relaxed) {
                0 => "a page does not match its checksum".to_string(),
                n => format!("page {n} does not match its checksum"),
            })
        }
        _ => None,
    }
}

/// `e` as a person should read it: a checksum mismatch named as such.
pub(crate) fn describe(e: &rusqlite::Error) -> String {
    mismatch(e).unwrap_or_else(|| e.to_string())
}

/// The checksum of a page body (the page without its last 8 bytes).
fn sum(body: &[u8]) -> [u8; 8] {
    let (a, b) = body.split_at(body.len() / 2);
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&crc32fast::hash(a).to_be_bytes());
    out[4..].copy_from_slice(&crc32fast::hash(b).to_be_bytes());
    out
}

/// Whether a read or write of `amt` bytes at `off` is one whole page of the database file.
fn is_page(amt: c_int, off: i64) -> bool {
    (512..=65536).contains(&amt) && (amt & (amt - 1)) == 0 && off % i64::from(amt) == 0
}

/// Whether a page read back is intact: its checksum matches, or it was never written.
fn intact(page: &[u8]) -> bool {
    let (body, stored) = page.split_at(page.len() - usize::from(RESERVE));
    sum(body) == stored || page.iter().all(|&b| b == 0)
}

/// Whether `data`, read from or written at offset 0, is a database header, and then whether
/// it reserves the checksum's bytes.
fn header_checks(data: &[u8]) -> Option<bool> {
    (data.len() >= 100 && data.starts_with(b"SQLite format 3\0")).then(|| data[20] == RESERVE)
}

thread_local! {
    /// A page being written, with its checksum: SQLite's buffer is not ours to change.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The default VFS, kept in our VFS's `pAppData`.
unsafe fn orig(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData.cast()
}

/// The default VFS's file behind one of ours.
unsafe fn real(f: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    (*f.cast::<SumFile>()).real
}

/// Call a method of the default VFS's file; SQLITE_IOERR if it has none.
macro_rules! pass {
    ($f:expr, $m:ident $(, $a:expr)*) => {{
        let r = real($f);
        match (*(*r).pMethods).$m {
            Some(m) => m(r $(, $a)*),
            None => ffi::SQLITE_IOERR,
        }
    }};
}

// SAFETY (every function below): SQLite calls them with the pointers its VFS contract
// promises: our VFS (whose pAppData is the default VFS), and files this VFS opened (a
// SumFile whose `real` points into the same allocation, opened by the default VFS).

unsafe extern "C" fn x_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    f: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let s = f.cast::<SumFile>();
    let real = f
        .cast::<u8>()
        .add(std::mem::size_of::<SumFile>())
        .cast::<ffi::sqlite3_file>();
    (*s).base.pMethods = std::ptr::null();
    (*s).real = real;
    (*s).main_db = flags & ffi::SQLITE_OPEN_MAIN_DB != 0;
    (*s).check = None;
    let o = orig(vfs);
    let rc = match (*o).xOpen {
        Some(m) => m(o, name, real, flags, out_flags),
        None => ffi::SQLITE_CANTOPEN,
    };
    if rc == ffi::SQLITE_OK {
        // The default VFS's files have version 3 methods; ours stop at 2 (no xFetch):
        // memory-mapped pages would bypass xRead and its check.
        (*s).base.pMethods = &METHODS;
    }
    rc
}

/// Learn from a header read or written at offset 0 whether pages are checksummed.
unsafe fn note_header(s: *mut SumFile, data: &[u8], off: i64) {
    if let Some(c) = header_checks(data).filter(|_| off == 0) {
        (*s).check = Some(c);
    }
}

/// Whether the pages of main database file `f` are checksummed, from its header: the one
/// SQLite read or wrote at offset 0 through this file, else read now. A connection that
/// opened the file empty learns it once another wrote the first page (a checkpoint).
unsafe fn checked(f: *mut ffi::sqlite3_file) -> bool {
    let s = f.cast::<SumFile>();
    if let Some(c) = (*s).check {
        return c;
    }
    let mut head = [0u8; 100];
    let rc = pass!(f, xRead, head.as_mut_ptr().cast(), 100, 0);
    if rc == ffi::SQLITE_OK {
        (*s).check = header_checks(&head);
    }
    (*s).check.unwrap_or(false)
}

unsafe extern "C" fn x_close(f: *mut ffi::sqlite3_file) -> c_int {
    let r = real(f);
    if (*r).pMethods.is_null() {
        return ffi::SQLITE_OK;
    }
    pass!(f, xClose)
}

unsafe extern "C" fn x_read(
    f: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let rc = pass!(f, xRead, buf, amt, off);
    let s = f.cast::<SumFile>();
    if rc != ffi::SQLITE_OK || !(*s).main_db || amt <= 0 {
        return rc;
    }
    let data = std::slice::from_raw_parts(buf.cast::<u8>(), amt as usize);
    note_header(s, data, off);
    if is_page(amt, off) && checked(f) && !intact(data) {
        LAST_BAD_PAGE.store((off / i64::from(amt) + 1) as u64, Ordering::Relaxed);
        return ffi::SQLITE_IOERR_DATA;
    }
    rc
}

unsafe extern "C" fn x_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amt: c_int,
    off: i64,
) -> c_int {
    let s = f.cast::<SumFile>();
    if !(*s).main_db || amt <= 0 {
        return pass!(f, xWrite, buf, amt, off);
    }
    let data = std::slice::from_raw_parts(buf.cast::<u8>(), amt as usize);
    note_header(s, data, off);
    if !(is_page(amt, off) && checked(f)) {
        return pass!(f, xWrite, buf, amt, off);
    }
    SCRATCH.with(|scratch| {
        let mut page = scratch.borrow_mut();
        page.clear();
        page.extend_from_slice(data);
        let body = page.len() - usize::from(RESERVE);
        let s = sum(&page[..body]);
        page[body..].copy_from_slice(&s);
        pass!(f, xWrite, page.as_ptr().cast(), amt, off)
    })
}

/// File methods that only call the default VFS's file: `name => method(args) = value`,
/// the value returned when that file lacks the method.
macro_rules! forward_file {
    ($($name:ident => $m:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $none:expr;)*) => {$(
        unsafe extern "C" fn $name(f: *mut ffi::sqlite3_file $(, $a: $t)*) $(-> $r)? {
            let r = real(f);
            (*(*r).pMethods).$m.map_or($none, |m| m(r $(, $a)*))
        }
    )*};
}

forward_file! {
    x_truncate => xTruncate(size: i64) -> c_int = ffi::SQLITE_IOERR;
    x_sync => xSync(flags: c_int) -> c_int = ffi::SQLITE_IOERR;
    x_file_size => xFileSize(size: *mut i64) -> c_int = ffi::SQLITE_IOERR;
    x_lock => xLock(level: c_int) -> c_int = ffi::SQLITE_IOERR;
    x_unlock => xUnlock(level: c_int) -> c_int = ffi::SQLITE_IOERR;
    x_check_reserved_lock => xCheckReservedLock(out: *mut c_int) -> c_int = ffi::SQLITE_IOERR;
    x_file_control => xFileControl(op: c_int, arg: *mut c_void) -> c_int = ffi::SQLITE_IOERR;
    x_sector_size => xSectorSize() -> c_int = 4096;
    x_device_characteristics => xDeviceCharacteristics() -> c_int = 0;
    x_shm_map => xShmMap(region: c_int, size: c_int, extend: c_int, out: *mut *mut c_void)
        -> c_int = ffi::SQLITE_IOERR;
    x_shm_lock => xShmLock(offset: c_int, n: c_int, flags: c_int) -> c_int = ffi::SQLITE_IOERR;
    x_shm_barrier => xShmBarrier() = ();
    x_shm_unmap => xShmUnmap(delete: c_int) -> c_int = ffi::SQLITE_IOERR;
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 2,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: None,
    xUnfetch: None,
};

type DlSym = Option<unsafe extern "C" fn(*mut ffi::sqlite3_vfs, *mut c_void, *const c_char)>;

/// The VFS-level methods: the default VFS's own, called with the default VFS; the value
/// after `=` when it lacks one.
macro_rules! forward_vfs {
    ($($name:ident => $m:ident($($a:ident: $t:ty),*) $(-> $r:ty)? = $none:expr;)*) => {$(
        unsafe extern "C" fn $name(vfs: *mut ffi::sqlite3_vfs $(, $a: $t)*) $(-> $r)? {
            let o = orig(vfs);
            (*o).$m.map_or($none, |m| m(o $(, $a)*))
        }
    )*};
}

forward_vfs! {
    x_delete => xDelete(name: *const c_char, sync_dir: c_int) -> c_int = ffi::SQLITE_IOERR_DELETE;
    x_access => xAccess(name: *const c_char, flags: c_int, out: *mut c_int)
        -> c_int = ffi::SQLITE_IOERR_ACCESS;
    x_full_pathname => xFullPathname(name: *const c_char, n: c_int, out: *mut c_char)
        -> c_int = ffi::SQLITE_CANTOPEN;
    x_dl_open => xDlOpen(name: *const c_char) -> *mut c_void = std::ptr::null_mut();
    x_dl_error => xDlError(n: c_int, out: *mut c_char) = ();
    x_dl_sym => xDlSym(h: *mut c_void, sym: *const c_char) -> DlSym = None;
    x_dl_close => xDlClose(h: *mut c_void) = ();
    x_randomness => xRandomness(n: c_int, out: *mut c_char) -> c_int = 0;
    x_sleep => xSleep(us: c_int) -> c_int = 0;
    x_current_time => xCurrentTime(out: *mut f64) -> c_int = ffi::SQLITE_ERROR;
    x_get_last_error => xGetLastError(n: c_int, out: *mut c_char) -> c_int = 0;
    x_current_time_int64 => xCurrentTimeInt64(out: *mut i64) -> c_int = ffi::SQLITE_ERROR;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_one_flipped_byte_of_a_page_is_caught() {
        let mut page: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
        let s = sum(&page[..4088]);
        page[4088..].copy_from_slice(&s);
        assert!(intact(&page));
        for i in 0..page.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                page[i] ^= bit;
                assert!(!intact(&page), "byte {i} ^ {bit:#x}");
                page[i] ^= bit;
            }
        }
        assert!(intact(&[0u8; 4096]));
    }

    /// A connection that opened the file empty, before another created the database and
    /// checkpointed it, checksums the pages its own checkpoint writes.
    #[test]
    fn a_connection_that_opened_an_empty_file_checksums_its_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.db");
        let a = open(&p).expect("open a");
        let b = open(&p).expect("open b");
        reserve_on_create(&b).expect("reserve");
        b.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT printf('row %d', i) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .expect("create");
        drop(b);
        a.execute_batch("UPDATE t SET x = upper(x); PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("update");
        drop(a);
        let c = open(&p).expect("reopen");
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("every page reads back");
        assert_eq!(ok, "ok");
    }

    /// The way to give an older file its checksums: ask for the bytes, then VACUUM through
    /// this VFS (in WAL mode, as every pfstatelog database is).
    #[test]
    fn a_vacuum_gives_an_unchecked_database_its_checksums() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.db");
        let c = open(&p).expect("open");
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT printf('row %d', i) FROM n;
             PRAGMA wal_checkpoint(TRUNCATE);",
        )
        .expect("create");
        assert_eq!(std::fs::read(&p).expect("read")[20], 0);
        reserve_on_create(&c).expect("reserve");
        c.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("vacuum");
        drop(c);
        let mut bytes = std::fs::read(&p).expect("read");
        assert_eq!(bytes[20], RESERVE);
        let count = || -> rusqlite::Result<i64> {
            open(&p)?.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        };
        assert_eq!(count().expect("count"), 5000);
        let at = bytes.len() - 3000;
        bytes[at] ^= 0x01;
        std::fs::write(&p, &bytes).expect("write");
        match count() {
            Err(rusqlite::Error::SqliteFailure(f, _)) => {
                assert_eq!(f.extended_code, ffi::SQLITE_IOERR_DATA)
            }
            r => panic!("damage not seen: {r:?}"),
        }
    }

    #[test]
    fn a_new_database_reserves_the_bytes_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("t.db");
        let c = open(&p).expect("open");
        reserve_on_create(&c).expect("reserve");
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT printf('row %d', i) FROM n;",
        )
        .expect("create");
        drop(c);
        let mut bytes = std::fs::read(&p).expect("read");
        assert_eq!(bytes[20], RESERVE);
        let count = || -> rusqlite::Result<i64> {
            open(&p)?.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        };
        assert_eq!(count().expect("count"), 5000);
        // One flipped byte in the last page: the count fails, with SQLITE_IOERR_DATA.
        let at = bytes.len() - 2000;
        bytes[at] ^= 0x10;
        std::fs::write(&p, &bytes).expect("write");
        match count() {
            Err(rusqlite::Error::SqliteFailure(f, _)) => {
                assert_eq!(f.extended_code, ffi::SQLITE_IOERR_DATA)
            }
            r => panic!("damage not seen: {r:?}"),
        }
    }
}
