//! futex-core against parking_lot and std on every contention shape, in one run (issue 16's matrix).
//!
//! ```sh
//! cargo bench -p futex-core --bench matrix                    # ~3 min
//! BENCH_SECS=0.1 BENCH_REPS=3 cargo bench -p futex-core --bench matrix   # a quick look
//! BENCH_ONLY=2x20x1,16x0x1,broadcast cargo bench -p futex-core --bench matrix   # some parts
//! ```
//! `BENCH_ONLY` names cells as `threads`x`work`x`locks` and the other parts as `uncontended`,
//! `broadcast`, `pc` and `starvation`.
//! - Mutex throughput: threads 2 / 4 / 8 / 16 × critical section empty / 20 / 200 multiply-adds × 1 lock /
//!   8 locks; the three locks alternated within each repetition; medians of `BENCH_REPS` (default 5) runs
//!   of `BENCH_SECS` (default 0.25) s. Summary: the geometric mean and the worst cell of futex-core /
//!   parking_lot (and / std).
//! - Uncontended lock + unlock.
//! - Condvar broadcast: 16 waiters woken 10,000 times by `notify_all`: time, and the process's context
//!   switches (getrusage).
//! - Producer/consumer: one producer, two consumers, a queue under a Mutex + Condvar: items/s.
//! - Starvation: 4 threads in a tight lock loop for 2 s: the longest any thread went without the lock.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::{median, Lock, Padded};

type FutexCore = futex_core::sync::Mutex<u64>;
type Std = std::sync::Mutex<u64>;
type ParkingLot = parking_lot::Mutex<u64>;

/// `work` multiply-adds on the protected value (0: a bare increment).
#[inline(always)]
fn critical(v: &mut u64, work: u32) {
    if work == 0 {
        *v = black_box(v.wrapping_add(1));
        return;
    }
    let mut x = *v;
    for _ in 0..work {
        x = black_box(
            x.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        );
    }
    *v = x;
}

/// Lock/unlock with `work` in the critical section, `threads` threads over `locks` locks: ops/s.
fn contended<L: Lock>(threads: usize, locks: usize, work: u32, secs: Duration) -> f64 {
    let ls: Arc<Vec<Padded<L>>> = Arc::new((0..locks).map(|_| Padded(L::new())).collect());
    common::run_threads(threads, secs, move |i, stop| {
        let l = &ls[i % locks].0;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for _ in 0..16 {
                l.with(|v| critical(v, work));
            }
            n += 16;
        }
        n
    })
}

/// Uncontended lock + unlock: ns per pair.
fn uncontended<L: Lock>() -> f64 {
    let l = L::new();
    let iters = 10_000_000u64;
    let t0 = Instant::now();
    for _ in 0..iters {
        black_box(&l).with(|v| *v += 1);
    }
    t0.elapsed().as_nanos() as f64 / iters as f64
}

/// Context switches of this process so far: voluntary (the thread slept) and involuntary (it was
/// preempted, or yielded the CPU to another thread).
fn context_switches() -> (i64, i64) {
    // SAFETY: a zeroed rusage is a valid value for getrusage to fill.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    (u.ru_nvcsw, u.ru_nivcsw)
}

/// 16 waiters, `rounds` rounds: each round the broadcaster bumps a generation and calls notify_all, and
/// waits (on a second condvar) until all 16 have seen it. Returns (seconds, (voluntary, involuntary)
/// context switches).
macro_rules! broadcast {
    ($name:ident, $mutex:ty, $cv:ty, lock($lm:ident) $lock:expr, wait($wc:ident, $wg:ident) $wait:expr) => {
        fn $name(rounds: u64) -> (f64, (i64, i64)) {
            const WAITERS: u64 = 16;
            // (generation, waiters that saw it)
            let state = Arc::new((<$mutex>::new((0u64, 0u64)), <$cv>::new(), <$cv>::new()));
            let hs: Vec<_> = (0..WAITERS)
                .map(|_| {
                    let state = state.clone();
                    thread::spawn(move || {
                        let (m, go, done) = &*state;
                        let mut seen = 0;
                        while seen < rounds {
                            let mut g = {
                                let $lm = m;
                                $lock
                            };
                            while g.0 == seen {
                                g = {
                                    let ($wc, $wg) = (go, g);
                                    $wait
                                };
                            }
                            seen = g.0;
                            g.1 += 1;
                            if g.1 == WAITERS {
                                done.notify_one();
                            }
                        }
                    })
                })
                .collect();
            let (m, go, done) = &*state;
            let (t0, c0) = (Instant::now(), context_switches());
            for r in 1..=rounds {
                let mut g = {
                    let $lm = m;
                    $lock
                };
                g.0 = r;
                g.1 = 0;
                go.notify_all();
                while g.1 < WAITERS {
                    g = {
                        let ($wc, $wg) = (done, g);
                        $wait
                    };
                }
            }
            let secs = t0.elapsed().as_secs_f64();
            let c1 = context_switches();
            let switches = (c1.0 - c0.0, c1.1 - c0.1);
            hs.into_iter().for_each(|h| h.join().unwrap());
            (secs, switches)
        }
    };
}

broadcast!(
    broadcast_futex_core,
    futex_core::sync::Mutex<(u64, u64)>,
    futex_core::sync::Condvar,
    lock(m) m.lock(),
    wait(cv, g) cv.wait(g)
);
broadcast!(
    broadcast_parking_lot,
    parking_lot::Mutex<(u64, u64)>,
    parking_lot::Condvar,
    lock(m) m.lock(),
    wait(cv, g) {
        let mut g = g;
        cv.wait(&mut g);
        g
    }
);
broadcast!(
    broadcast_std,
    std::sync::Mutex<(u64, u64)>,
    std::sync::Condvar,
    lock(m) m.lock().unwrap(),
    wait(cv, g) cv.wait(g).unwrap()
);

/// One producer, two consumers, a queue of items under a mutex and a condvar, for `secs`: items/s.
macro_rules! producer_consumer {
    ($name:ident, $mutex:ty, $cv:ty, lock($lm:ident) $lock:expr, wait($wc:ident, $wg:ident) $wait:expr) => {
        fn $name(secs: Duration) -> f64 {
            let state = Arc::new((<$mutex>::new(VecDeque::<u64>::new()), <$cv>::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let (state, stop) = (state.clone(), stop.clone());
                    thread::spawn(move || {
                        let (m, cv) = &*state;
                        let mut n = 0u64;
                        loop {
                            let mut q = {
                                let $lm = m;
                                $lock
                            };
                            while q.is_empty() {
                                if stop.load(Ordering::Relaxed) {
                                    return n;
                                }
                                q = {
                                    let ($wc, $wg) = (cv, q);
                                    $wait
                                };
                            }
                            black_box(q.pop_front());
                            n += 1;
                        }
                    })
                })
                .collect();
            let (m, cv) = &*state;
            let t0 = Instant::now();
            let mut i = 0u64;
            while t0.elapsed() < secs {
                for _ in 0..64 {
                    let mut q = {
                        let $lm = m;
                        $lock
                    };
                    // Bounded: the producer waits for room like a real pipeline would.
                    if q.len() < 1024 {
                        q.push_back(i);
                        i += 1;
                    }
                    drop(q);
                    cv.notify_one();
                }
            }
            stop.store(true, Ordering::Relaxed);
            cv.notify_all();
            let consumed: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
            consumed as f64 / t0.elapsed().as_secs_f64()
        }
    };
}

producer_consumer!(
    pc_futex_core,
    futex_core::sync::Mutex<VecDeque<u64>>,
    futex_core::sync::Condvar,
    lock(m) m.lock(),
    wait(cv, g) cv.wait_timeout(g, Duration::from_millis(10)).0
);
producer_consumer!(
    pc_parking_lot,
    parking_lot::Mutex<VecDeque<u64>>,
    parking_lot::Condvar,
    lock(m) m.lock(),
    wait(cv, g) {
        let mut g = g;
        cv.wait_for(&mut g, Duration::from_millis(10));
        g
    }
);
producer_consumer!(
    pc_std,
    std::sync::Mutex<VecDeque<u64>>,
    std::sync::Condvar,
    lock(m) m.lock().unwrap(),
    wait(cv, g) cv.wait_timeout(g, Duration::from_millis(10)).unwrap().0
);

/// 4 threads in a tight lock loop for `secs`: the longest any thread went between two acquisitions.
fn starvation<L: Lock>(secs: Duration) -> Duration {
    let l = Arc::new(L::new());
    let stop = Arc::new(AtomicBool::new(false));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let (l, stop) = (l.clone(), stop.clone());
            thread::spawn(move || {
                let mut last = Instant::now();
                let mut longest = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    l.with(|v| critical(v, 20));
                    let now = Instant::now();
                    longest = longest.max(now - last);
                    last = now;
                }
                longest
            })
        })
        .collect();
    thread::sleep(secs);
    stop.store(true, Ordering::Relaxed);
    hs.into_iter().map(|h| h.join().unwrap()).max().unwrap()
}

/// Whether `BENCH_ONLY` (a comma-separated list) selects `part`; everything when it is unset.
fn selected(part: &str) -> bool {
    match std::env::var("BENCH_ONLY") {
        Ok(only) if !only.is_empty() => only.split(',').any(|p| p.trim() == part),
        _ => true,
    }
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: then a short smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs = common::secs_or(if smoke { 0.02 } else { 0.25 });
    let reps = common::reps_or(if smoke { 1 } else { 5 });
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    println!("futex-core matrix: medians of {reps} alternated runs of {secs:?}; {cpus} CPUs");
    println!(
        "\n{:<28} {:>11} {:>11} {:>11} {:>8} {:>8} {:>9} {:>8}",
        "Mops/s: threads × work × locks",
        "futex-core",
        "parking_lot",
        "std",
        "vs pl",
        "vs std",
        "ceiling",
        "pl/ceil"
    );
    // The most any lock could do in a cell: one thread alone on a lock with the same critical section
    // (the best of the three locks), times the critical sections that can run at once (one per lock,
    // one per CPU). Holding one lock serializes its critical sections, and nothing is cheaper than an
    // uncontended, cached lock; where parking_lot is near this, no lock can be far ahead of it.
    let mut alone = std::collections::HashMap::new();
    let mut ceilings = Vec::new();
    let (mut vs_pl, mut vs_std) = (Vec::new(), Vec::new());
    let mut worst = (f64::MAX, String::new());
    let thread_counts: &[usize] = if smoke { &[2] } else { &[2, 4, 8, 16] };
    for &threads in thread_counts {
        for work in [0u32, 20, 200] {
            for locks in [1usize, 8] {
                if !selected(&format!("{threads}x{work}x{locks}")) {
                    continue;
                }
                let (f, p, s) = alternated(
                    reps,
                    || contended::<FutexCore>(threads, locks, work, secs),
                    || contended::<ParkingLot>(threads, locks, work, secs),
                    || contended::<Std>(threads, locks, work, secs),
                );
                let one: f64 = *alone.entry(work).or_insert_with(|| {
                    let (a, b, c) = alternated(
                        reps,
                        || contended::<FutexCore>(1, 1, work, secs),
                        || contended::<ParkingLot>(1, 1, work, secs),
                        || contended::<Std>(1, 1, work, secs),
                    );
                    a.max(b).max(c)
                });
                let ceiling = one * threads.min(locks).min(cpus) as f64;
                let cell = format!("{threads:>2} × {work:>3} × {locks}");
                println!(
                    "{:<28} {:>11.2} {:>11.2} {:>11.2} {:>7.2}x {:>7.2}x {:>9.2} {:>8.2}",
                    cell,
                    f / 1e6,
                    p / 1e6,
                    s / 1e6,
                    f / p,
                    f / s,
                    ceiling / 1e6,
                    p / ceiling
                );
                ceilings.push(ceiling / p);
                if f / p < worst.0 {
                    worst = (f / p, cell);
                }
                vs_pl.push(f / p);
                vs_std.push(f / s);
            }
        }
    }
    if vs_pl.is_empty() {
        worst.0 = f64::NAN;
    }
    println!(
        "summary: futex-core / parking_lot geometric mean {:.3}, worst {:.3} ({}); / std geometric \
         mean {:.3}",
        geomean(&vs_pl),
        worst.0,
        worst.1,
        geomean(&vs_std)
    );
    println!(
        "ceiling: the most any lock could reach here, ceiling / parking_lot, geometric mean {:.3}",
        geomean(&ceilings)
    );

    if selected("uncontended") {
        uncontended_part(reps);
    }
    let rounds = if smoke { 50 } else { 10_000 };
    if selected("broadcast") {
        broadcast_part(rounds, reps.min(3));
    }
    if selected("pc") {
        pc_part(reps, secs);
    }
    let window = if smoke {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(2)
    };
    if selected("starvation") {
        starvation_part(window, reps);
    }
}

/// `reps` runs each of futex-core's, parking_lot's and std's version of a measurement, the three
/// alternated within each repetition (so that a change in the machine's load hits all three).
fn alternated_runs<T>(
    reps: usize,
    mut f: impl FnMut() -> T,
    mut p: impl FnMut() -> T,
    mut s: impl FnMut() -> T,
) -> [Vec<T>; 3] {
    let mut runs = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..reps {
        runs[0].push(f());
        runs[1].push(p());
        runs[2].push(s());
    }
    runs
}

/// The medians of [`alternated_runs`].
fn alternated(
    reps: usize,
    f: impl FnMut() -> f64,
    p: impl FnMut() -> f64,
    s: impl FnMut() -> f64,
) -> (f64, f64, f64) {
    let [f, p, s] = alternated_runs(reps, f, p, s);
    (median(f), median(p), median(s))
}

/// The three locks' names, in the order [`alternated_runs`] returns their runs.
const LOCKS: [&str; 3] = ["futex-core", "parking_lot", "std"];

fn uncontended_part(reps: usize) {
    let (f, p, s) = alternated(
        reps,
        uncontended::<FutexCore>,
        uncontended::<ParkingLot>,
        uncontended::<Std>,
    );
    println!(
        "\nuncontended lock+unlock: futex-core {f:.2} ns, parking_lot {p:.2} ns, std {s:.2} ns \
         (futex-core / std {:.3})",
        f / s
    );
}

fn broadcast_part(rounds: u64, reps: usize) {
    println!(
        "\nCondvar broadcast, 16 waiters × {rounds} notify_all, medians of {reps} alternated runs \
         (seconds; context switches: voluntary = slept, involuntary = preempted or yielded):"
    );
    let runs = alternated_runs(
        reps,
        || broadcast_futex_core(rounds),
        || broadcast_parking_lot(rounds),
        || broadcast_std(rounds),
    );
    for (name, runs) in LOCKS.iter().zip(runs) {
        let t = median(runs.iter().map(|r| r.0).collect());
        let v = median(runs.iter().map(|r| r.1 .0 as f64).collect());
        let n = median(runs.iter().map(|r| r.1 .1 as f64).collect());
        println!(
            "  {name:<12} {t:>7.3} s {:>9.0} switches ({v:.0} voluntary + {n:.0} involuntary)",
            v + n
        );
    }
}

fn pc_part(reps: usize, secs: Duration) {
    println!("\nproducer/consumer, 1 producer + 2 consumers (M items/s):");
    let (f, p, s) = alternated(
        reps,
        || pc_futex_core(secs),
        || pc_parking_lot(secs),
        || pc_std(secs),
    );
    println!(
        "  futex-core {:.2}, parking_lot {:.2}, std {:.2}",
        f / 1e6,
        p / 1e6,
        s / 1e6
    );
}

fn starvation_part(window: Duration, reps: usize) {
    println!(
        "\nstarvation: 4 threads, one lock, {reps} alternated windows of {window:?}: the longest a \
         thread went without it (median of the windows, and the worst)"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let longest = alternated_runs(
        reps,
        || ms(starvation::<FutexCore>(window)),
        || ms(starvation::<ParkingLot>(window)),
        || ms(starvation::<Std>(window)),
    );
    for (name, l) in LOCKS.iter().zip(longest) {
        let worst = l.iter().cloned().fold(0.0, f64::max);
        println!("  {name:<12} {:>7.2} ms  (worst {worst:.2} ms)", median(l));
    }
}
