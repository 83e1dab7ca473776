//! Giving freed heap memory back to the operating system once startup is done.
//!
//! Startup allocates a lot that it frees again: the OpenAPI document is assembled from every route's fragments
//! (a peak of several MiB of short-lived allocations), migrations and the first queries fill SQLite's buffers. glibc's
//! allocator keeps freed pages resident unless they sit at the very top of its heap, so without this an idle Berth
//! would hold about 5 MiB it no longer uses (measured with the foundation benchmark: 25.1 MiB idle before, 20.1 MiB
//! after). `malloc_trim` walks every arena and returns the free pages with `madvise(MADV_DONTNEED)`; it is cheap
//! (well under a millisecond at this size) and is called once.

/// Returns the allocator's free pages to the OS. A no-op where the C library is not glibc.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `malloc_trim` takes no pointers and only rearranges glibc's own free lists under its arena locks; it is
    // safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
