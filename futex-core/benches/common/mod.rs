//! What the benchmarks share: the locks under test behind one trait, the thread runner, the median.

#![allow(dead_code, reason = "each bench uses part of this")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// A lock under test: futex-core's, std's or parking_lot's Mutex around a u64.
pub(crate) trait Lock: Send + Sync + 'static {
    fn new() -> Self;
    fn with(&self, f: impl FnOnce(&mut u64));
    /// For tables: the implementation's name.
    const NAME: &'static str;
}

impl Lock for futex_core::sync::Mutex<u64> {
    const NAME: &'static str = "futex-core";
    fn new() -> Self {
        futex_core::sync::Mutex::new(0)
    }
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock())
    }
}

impl Lock for std::sync::Mutex<u64> {
    const NAME: &'static str = "std";
    fn new() -> Self {
        std::sync::Mutex::new(0)
    }
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock().unwrap())
    }
}

impl Lock for parking_lot::Mutex<u64> {
    const NAME: &'static str = "parking_lot";
    fn new() -> Self {
        parking_lot::Mutex::new(0)
    }
    fn with(&self, f: impl FnOnce(&mut u64)) {
        f(&mut self.lock())
    }
}

/// A lock alone on its cache line: a bench's several locks are independent locks, not words that
/// bounce one line between the CPUs whichever lock they use (which would measure the layout).
#[repr(align(64))]
pub(crate) struct Padded<L>(pub(crate) L);

/// Seconds per run: `BENCH_SECS`, else `default`.
pub(crate) fn secs_or(default: f64) -> Duration {
    let s: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs_f64(s)
}

/// Runs per figure: `BENCH_REPS`, else `default`.
pub(crate) fn reps_or(default: usize) -> usize {
    std::env::var("BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (the upper one of an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `threads` copies of `body(thread index, stop flag) -> ops` for `secs`; returns ops/s.
pub(crate) fn run_threads<F>(threads: usize, secs: Duration, body: F) -> f64
where
    F: Fn(usize, &AtomicBool) -> u64 + Send + Sync + 'static,
{
    let body = Arc::new(body);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let hs: Vec<_> = (0..threads)
        .map(|i| {
            let (body, stop, start) = (body.clone(), stop.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                body(i, &stop)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    ops as f64 / t0.elapsed().as_secs_f64()
}
