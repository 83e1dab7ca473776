//! The allocator, and giving freed heap memory back to the operating system once startup is done.
//!
//! **mimalloc** is the global allocator. The proxy allocates for every request it forwards (hyper's request and
//! response, their header maps, the future it polls), and with glibc's malloc those allocations took its slow path:
//! its per-thread cache holds 7 blocks of a size, and a proxy worker has dozens of requests in flight. Callgrind, over
//! HTTP at 64 connections (the edge benchmark's load): 24,657 instructions per proxied request with glibc, 22,979 with
//! mimalloc. It is built with `no_thp`: mimalloc otherwise asks for transparent huge pages for its arenas, and on a
//! kernel in THP `madvise` mode that took an idle Berth from 20 to 43 MiB.
//!
//! Startup allocates a lot that it frees again: the OpenAPI document is assembled from every route's fragments
//! (a peak of several MiB of short-lived allocations), migrations and the first queries fill SQLite's buffers.
//! mimalloc purges freed pages only after a delay, when it next allocates, so an idle Berth would keep them;
//! [`release_freed_memory`] has it return them once. Idle RSS: 20.8–22.0 MiB (by hand and with the foundation
//! benchmark). glibc's `malloc_trim`, which this used to call, is gone: only SQLite's C code still allocates from
//! glibc, and trimming it saved about 0.3 MiB, within the spread between runs.

/// Every Rust allocation goes through mimalloc. Declared in the library, so the tests and benchmarks (which link it)
/// measure the allocator Berth ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the allocator's free pages to the OS; called once, when startup is done.
pub fn release_freed_memory() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_collect` takes no pointers; it frees mimalloc's own empty pages and may be called from any thread.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
