//! How the allocator (mimalloc, src/main.rs) returns freed memory to the system.

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (include/mimalloc.h), which the
/// `libmimalloc-sys` bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Milliseconds freed memory stays with the process before it goes back to the system
/// (arenas: ten times as long). An import or a recorder frees its batch buffers and the
/// seal's lists at each flush and needs as much again a second or thirty later; returned
/// at mimalloc's 1 s default, every one of those pages was faulted in and zeroed anew
/// (perf: ~14 % of an import's CPU in clear_page). Memory freed for good (a peak that
/// passed) still goes back, a minute later.
const PURGE_DELAY_MS: std::ffi::c_long = 60_000;

/// Keep freed memory for [`PURGE_DELAY_MS`]; call before the work starts. Has no effect
/// unless mimalloc is the global allocator.
pub fn keep_freed_pages() {
    // SAFETY: mi_option_set only stores an integer option; any value is valid for it.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}
