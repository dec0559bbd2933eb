//! futex-core's benchmark: prints, in one run, ratios against named baselines.
//!
//! ```sh
//! cargo bench -p futex-core --bench contention            # ~40 s
//! BENCH_SECS=0.2 cargo bench -p futex-core --bench contention   # quick look
//! ```
//! - Mutex throughput under contention: futex-core vs `std::sync::Mutex` vs `parking_lot::Mutex`
//!   (2, 4 and 8 threads on one lock; 8 threads on 8 locks).
//! - Uncontended lock/unlock cost (ns), futex-core vs std.
//! - The 64-queue table vs the 1-queue table (the old single global lock) with many threads on many
//!   addresses: raw wait/wake ping-pong, and link/unlink churn (mismatch waits + wakes).
//!
//! Each figure is the median of `BENCH_REPS` (default 3) runs of `BENCH_SECS` (default 0.5) seconds.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futex_core::Table;

mod common;
use common::{median, Lock, Padded};

fn secs() -> Duration {
    common::secs_or(0.5)
}

fn reps() -> usize {
    common::reps_or(3)
}

fn run_threads<F>(threads: usize, body: F) -> f64
where
    F: Fn(usize, &AtomicBool) -> u64 + Send + Sync + 'static,
{
    common::run_threads(threads, secs(), body)
}

/// Lock/unlock with a short critical section, `threads` threads over `locks` locks (thread i uses lock
/// i % locks).
fn contended<L: Lock>(threads: usize, locks: usize) -> f64 {
    median(
        (0..reps())
            .map(|_| {
                let ls: Arc<Vec<Padded<L>>> =
                    Arc::new((0..locks).map(|_| Padded(L::new())).collect());
                run_threads(threads, move |i, stop| {
                    let l = &ls[i % locks].0;
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            l.with(|v| *v = black_box(v.wrapping_add(1)));
                        }
                        n += 64;
                    }
                    n
                })
            })
            .collect(),
    )
}

/// Uncontended lock + unlock, ns per pair.
fn uncontended<L: Lock>() -> f64 {
    median(
        (0..reps())
            .map(|_| {
                let l = L::new();
                let iters = 20_000_000u64;
                let t0 = Instant::now();
                for _ in 0..iters {
                    black_box(&l).with(|v| *v += 1);
                }
                t0.elapsed().as_nanos() as f64 / iters as f64
            })
            .collect(),
    )
}

/// Pairs of threads hand a token back and forth through raw wait/wake, one word per pair: round trips/s.
fn table_ping_pong(queues: usize, pairs: usize) -> (f64, f64) {
    let mut slept = Vec::new();
    let r = median(
        (0..reps())
            .map(|_| {
                let t = Arc::new(Table::new(queues));
                let t_stats = t.clone();
                let words: Arc<Vec<AtomicU32>> =
                    Arc::new((0..pairs).map(|_| AtomicU32::new(0)).collect());
                let ops = run_threads(pairs * 2, move |i, stop| {
                    let (w, side) = (&words[i / 2], (i % 2) as u32);
                    let mut n = 0u64;
                    loop {
                        // Wait for our turn (values of our parity), then pass the turn on.
                        loop {
                            let v = w.load(Ordering::Acquire);
                            if v % 2 == side {
                                break;
                            }
                            if stop.load(Ordering::Relaxed) {
                                // Release the partner for good, then leave.
                                w.store(u32::MAX - side, Ordering::Release);
                                t.wake(w, 1);
                                return n / 2;
                            }
                            let _ = t.wait(w, v, Some(Duration::from_millis(10)));
                        }
                        if w.load(Ordering::Relaxed) >= u32::MAX - 1 {
                            return n / 2;
                        }
                        w.fetch_add(1, Ordering::Release);
                        t.wake(w, 1);
                        n += 1;
                    }
                });
                let total = t_stats.totals();
                slept.push(
                    1.0 - total.counters.mismatches as f64 / total.counters.waits.max(1) as f64,
                );
                ops
            })
            .collect(),
    );
    (r, median(slept))
}

/// Link/unlink churn: each thread waits on its own address with a stale value (link, re-read, unlink)
/// and wakes it; no sleeping, so this is pure sleep-queue lock traffic: operations/s.
fn table_churn(queues: usize, threads: usize) -> f64 {
    median(
        (0..reps())
            .map(|_| {
                let t = Arc::new(Table::new(queues));
                let words: Arc<Vec<AtomicU32>> =
                    Arc::new((0..threads).map(|_| AtomicU32::new(1)).collect());
                run_threads(threads, move |i, stop| {
                    let w = &words[i];
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..64 {
                            let _ = black_box(t.wait(w, 0, None));
                            t.wake(w, 1);
                        }
                        n += 128;
                    }
                    n
                })
            })
            .collect(),
    )
}

/// Contended futex-core Mutex throughput (4 threads, 1 lock) while the default table's observer is
/// subscribed and drained by another thread, as futex-trace's demo source does.
fn contended_observed() -> f64 {
    let sub = futex_core::default_table()
        .subscribe(1 << 20)
        .expect("no other observer in the benchmark");
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut buf = Vec::with_capacity(1 << 16);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(5));
                buf.clear();
                n += sub.drain_into(&mut buf);
            }
            (n, sub.dropped())
        })
    };
    let r = contended::<futex_core::sync::Mutex<u64>>(4, 1);
    stop.store(true, Ordering::Relaxed);
    let (events, dropped) = drainer.join().unwrap();
    println!("  (observer delivered {events} events, dropped {dropped})");
    r
}

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported, every figure is printed.
    println!(
        "futex-core benchmark: {} run(s) of {:?} each, median; {} CPUs",
        reps(),
        secs(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("Mutex throughput under contention (Mops/s; ratio = futex-core / baseline)");
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>10} {:>14}",
        "workload", "futex-core", "std", "parking_lot", "vs std", "vs parking_lot"
    );
    for (threads, locks) in [(2, 1), (4, 1), (8, 1), (8, 8)] {
        let f = contended::<futex_core::sync::Mutex<u64>>(threads, locks);
        let s = contended::<std::sync::Mutex<u64>>(threads, locks);
        let p = contended::<parking_lot::Mutex<u64>>(threads, locks);
        println!(
            "{:<22} {:>10.2} {:>10.2} {:>12.2} {:>9.2}x {:>13.2}x",
            format!("{threads} threads, {locks} lock(s)"),
            f / 1e6,
            s / 1e6,
            p / 1e6,
            f / s,
            f / p
        );
    }
    println!();
    println!(
        "Observer cost: futex-core Mutex, 4 threads on 1 lock (Mops/s; ratio = observed / not)"
    );
    let plain = contended::<futex_core::sync::Mutex<u64>>(4, 1);
    let observed = contended_observed();
    println!(
        "{:<22} {:>10.2} {:>10.2} {:>9.2}x",
        "no observer / observer",
        plain / 1e6,
        observed / 1e6,
        observed / plain
    );
    println!();
    println!("Uncontended lock+unlock (ns; ratio = futex-core / baseline, lower is better)");
    let f = uncontended::<futex_core::sync::Mutex<u64>>();
    let s = uncontended::<std::sync::Mutex<u64>>();
    let p = uncontended::<parking_lot::Mutex<u64>>();
    println!(
        "{:<22} {:>10.2} {:>10.2} {:>12.2} {:>9.2}x {:>13.2}x",
        "1 thread",
        f,
        s,
        p,
        f / s,
        f / p
    );
    println!();
    println!("Sleep-queue table: 64 queues vs 1 queue (the single global lock); ratio = 64 / 1");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "workload", "64 queues", "1 queue", "ratio"
    );
    let (a, sa) = table_ping_pong(64, 4);
    let (b, sb) = table_ping_pong(1, 4);
    println!(
        "{:<34} {:>12.0} {:>12.0} {:>7.2}x",
        "ping-pong, 4 pairs (round trips/s)",
        a,
        b,
        a / b
    );
    println!(
        "{:<34} {:>11.0}% {:>11.0}%",
        "  waits that did not mismatch",
        sa * 100.0,
        sb * 100.0
    );
    let a = table_churn(64, 8);
    let b = table_churn(1, 8);
    println!(
        "{:<34} {:>12.0} {:>12.0} {:>7.2}x",
        "link/unlink churn, 8 thr (ops/s)",
        a,
        b,
        a / b
    );
}
