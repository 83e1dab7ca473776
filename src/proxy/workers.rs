//! The threads client connections are served on: one single-threaded tokio runtime per core, the way nginx runs one
//! worker process per core.
//!
//! A connection, the requests on it and the upstream connections they use all live on one worker thread, so a
//! proxied request never wakes another thread: on the shared multi-threaded runtime, the client's connection task,
//! the upstream connection's task and the timers each could run on a different thread, and every hand-off between
//! them was a cross-thread wake-up (a futex call and a context switch). Each worker keeps its own pool of upstream
//! connections ([`super::upstream`]) for the same reason.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// A set of worker threads; dropping it stops them (tasks still on them are dropped with their runtime).
pub(crate) struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    stop: CancellationToken,
}

impl Workers {
    /// Starts `count` worker threads (at least one), named `berth-proxy-<n>`.
    pub(crate) fn start(count: usize) -> io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut handles = Vec::with_capacity(count.max(1));
        for n in 0..count.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            let stopped = stop.clone();
            let started = std::thread::Builder::new()
                .name(format!("berth-proxy-{n}"))
                .spawn(move || runtime.block_on(stopped.cancelled()));
            if let Err(error) = started {
                stop.cancel();
                return Err(error);
            }
        }
        Ok(Workers { handles, next: AtomicUsize::new(0), stop })
    }

    /// The next worker in turn: connections are spread evenly, whatever their cost.
    pub(crate) fn next(&self) -> &Handle {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[n]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
