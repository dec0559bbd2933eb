//! futex-trace: where threads wait on futexes, for how long, and who wakes them.
//!
//! ```text
//! source ──▶ session ──▶ sinks            (while it runs)
//!               └──▶ Finished ──▶ export  (report, flamegraph, pprof, serve)
//! ```
//! The crate is in layers; each imports only the ones below it:
//!
//! | layer | modules |
//! |---|---|
//! | vocabulary | [`event`] (the one event type), [`error`] (typed errors), [`khash`] (the kernel's futex hash), [`demo`] (the built-in workload) |
//! | aggregates | [`model`] (events folded per bucket, word, stack), [`stacks`] (frames, symbols, classes, [`stacks::Names`]) |
//! | contracts | [`trace`]: what was traced and how it ended, control, health, the [`trace::Source`] and [`trace::Sink`] traits, [`trace::Finished`] |
//! | kernel side | [`ebpf`]: its ABI, host checks, loader, decoding, USDT, unwinding, stack options |
//! | running | [`session`] (the one fold loop), [`source`] (observer and demo, live processes, a recording; [`source::open`] chooses), [`recording`] (the `.ftr` format), [`sink`] (stream, recording) |
//! | views | [`export`]: [`export::report`], [`export::flame`], [`export::pprof`], [`export::serve`] |
//! | command line | [`cli`]: the argument groups both binaries flatten, and their parsers |
//!
//! ```no_run
//! use futex_trace::demo::DemoConfig;
//! use futex_trace::session::{Session, SessionOptions};
//! use futex_trace::source::DemoSource;
//!
//! let source = DemoSource::start(&DemoConfig::default())?;
//! let opts = SessionOptions { duration: Some(std::time::Duration::from_secs(1)), ..Default::default() };
//! let finished = Session::start(Box::new(source), opts, vec![])?.wait()?;
//! println!("{} waits", finished.model.totals.waits);
//! # Ok::<(), futex_trace::Error>(())
//! ```

pub mod cli;
pub mod demo;
pub mod ebpf;
pub mod error;
pub mod event;
pub mod export;
pub mod khash;
pub mod model;
pub mod privileges;
pub mod recording;
pub mod session;
pub mod sink;
pub mod sites;
pub mod source;
pub mod stacks;
pub mod trace;

pub use error::{Error, Result};

/// Locks a mutex shared with a thread that may have panicked holding it: the data (a model, a stack
/// table) is still the best there is, so take it rather than propagate the panic.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads `clock` in nanoseconds: `CLOCK_MONOTONIC` (the clock of events and of `bpf_ktime_get_ns`),
/// `CLOCK_THREAD_CPUTIME_ID` or `CLOCK_PROCESS_CPUTIME_ID` (CPU time of the thread, the process), or
/// `CLOCK_REALTIME` (wall clock: nanoseconds since the Unix epoch).
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clocks this is called with always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The bucket (futex-core hash) an address falls in for a table of `queues` queues. For kernel futexes
/// of another process this is futex-core's hash of the address, not the kernel's own table.
pub fn bucket_of(addr: u64, queues: usize) -> usize {
    futex_core::bucket_of_addr(addr as usize, queues.trailing_zeros())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_matches_futex_core_table() {
        let t = futex_core::Table::new(64);
        let words: Vec<futex_core::AtomicU32> = (0..256).map(futex_core::AtomicU32::new).collect();
        for w in &words {
            assert_eq!(super::bucket_of(w as *const _ as u64, 64), t.bucket_of(w));
        }
    }
}
