//! A workload whose futex activity is known exactly: it makes raw futex syscalls, counts them, and
//! prints what it did as JSON on stdout. futex-trace's tests trace it and compare; you can too, to
//! check that tracing works on a machine:
//!
//! ```text
//! sudo futex-trace report -- futex-workload
//! ```
//!
//! Per address (private futexes, words of this process):
//! - `a`: 4 threads wait (value unchanged, so each sleeps); the main thread wakes them one at a time.
//! - `b` → `c`: 5 threads wait on `b`; one `FUTEX_CMP_REQUEUE` wakes 1 and moves the rest to `c`; then
//!   the main thread wakes `c` until all are back.
//! - `d`: one wait with a 100 ms timeout that times out.
//! - `e`: one wait whose expected value is wrong, so it returns at once (`EAGAIN`).
//!
//! Other modes (a contended std Mutex, a futex ping-pong, FUTEX_WAKE with nobody waiting, an EAGAIN
//! storm, a FUTEX_WAKE-heavy producer/consumer, a std Condvar queue, futex-core's demo, a Condvar
//! `notify_all`, a contended futex-core Mutex): `futex-workload --help`. This crate is a test tool
//! of the workspace, not part of the product (`publish = false`).

mod kernel_hash;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_PRIVATE_FLAG: i32 = 128;

/// futex(2) on private futexes (what the workload's counts are of): [`futex_op`] with
/// `FUTEX_PRIVATE_FLAG`.
fn futex(
    word: &AtomicU32,
    op: i32,
    val: u32,
    timeout: Option<Duration>,
    val2: usize,
    word2: Option<&AtomicU32>,
    val3: u32,
) -> i64 {
    futex_op(
        word,
        op | FUTEX_PRIVATE_FLAG,
        val,
        timeout,
        val2,
        word2,
        val3,
    )
}

/// futex(2) with the op word as given (a shared futex has no `FUTEX_PRIVATE_FLAG`); returns what it
/// returned, or minus its errno.
fn futex_op(
    word: &AtomicU32,
    op: i32,
    val: u32,
    timeout: Option<Duration>,
    val2: usize,
    word2: Option<&AtomicU32>,
    val3: u32,
) -> i64 {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let utime: usize = match &ts {
        Some(t) => t as *const libc::timespec as usize,
        None => val2,
    };
    let uaddr2 = word2.map_or(std::ptr::null(), |w| w.as_ptr() as *const u32);
    // SAFETY: the words are live AtomicU32s for the duration of the call; `utime` is either a pointer
    // to a timespec that outlives the call or, for requeue, the count the kernel reads from that slot.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, utime, uaddr2, val3) };
    if r < 0 {
        -(std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as i64)
    } else {
        r
    }
}

/// Blocks until every thread in `tids` is inside a futex syscall (read from /proc).
fn wait_until_in_futex(tids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = tids.iter().all(|tid| {
            std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
                .map(|s| s.split_whitespace().next() == Some(&libc::SYS_futex.to_string()))
                .unwrap_or(false)
        });
        if all {
            // In the syscall is not yet asleep on the queue: give the kernel a moment.
            std::thread::sleep(Duration::from_millis(20));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waiters did not block within 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[inline(never)]
fn workload_waiter_on_a(word: &AtomicU32) -> i64 {
    futex(word, FUTEX_WAIT, 0, None, 0, None, 0)
}

#[inline(never)]
fn workload_waiter_on_b(word: &AtomicU32) -> i64 {
    futex(word, FUTEX_WAIT, 0, None, 0, None, 0)
}

#[inline(never)]
fn workload_waker(word: &AtomicU32) -> i64 {
    futex(word, FUTEX_WAKE, 1, None, 0, None, 0)
}

fn spawn_waiters(
    n: usize,
    word: &Arc<AtomicU32>,
    f: fn(&AtomicU32) -> i64,
) -> (Vec<std::thread::JoinHandle<i64>>, Vec<i32>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let handles = (0..n)
        .map(|_| {
            let (w, tx) = (word.clone(), tx.clone());
            std::thread::spawn(move || {
                tx.send(gettid()).unwrap();
                f(&w)
            })
        })
        .collect();
    let tids = (0..n).map(|_| rx.recv().unwrap()).collect();
    (handles, tids)
}

fn exact() {
    let words: Vec<Arc<AtomicU32>> = (0..5).map(|_| Arc::new(AtomicU32::new(0))).collect();
    let [a, b, c, d, e] = [&words[0], &words[1], &words[2], &words[3], &words[4]];
    let addr = |w: &Arc<AtomicU32>| format!("{:#x}", w.as_ptr() as usize);

    // a: 4 waiters, woken one at a time.
    let (handles, tids) = spawn_waiters(4, a, workload_waiter_on_a);
    wait_until_in_futex(&tids);
    let (mut wakes_a, mut woken_a) = (0u64, 0u64);
    while woken_a < 4 {
        let r = workload_waker(a);
        assert!(r >= 0, "FUTEX_WAKE failed: {r}");
        wakes_a += 1;
        woken_a += r as u64;
        if r == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for h in handles {
        assert_eq!(h.join().unwrap(), 0);
    }

    // b → c: 5 waiters; wake 1, move the rest; then wake c.
    let (handles, tids) = spawn_waiters(5, b, workload_waiter_on_b);
    wait_until_in_futex(&tids);
    let r = futex(b, FUTEX_CMP_REQUEUE, 1, None, i32::MAX as usize, Some(c), 0);
    assert!(r >= 1, "FUTEX_CMP_REQUEUE failed: {r}");
    let (requeue_woken, moved) = (1u64, r as u64 - 1);
    let (mut wakes_c, mut woken_c) = (0u64, 0u64);
    while woken_c < moved {
        let r = workload_waker(c);
        assert!(r >= 0);
        wakes_c += 1;
        woken_c += r as u64;
    }
    for h in handles {
        assert_eq!(h.join().unwrap(), 0);
    }

    // d: a wait that times out after 100 ms.
    let t = Instant::now();
    let r = futex(
        d,
        FUTEX_WAIT,
        0,
        Some(Duration::from_millis(100)),
        0,
        None,
        0,
    );
    let timed_wait_ns = t.elapsed().as_nanos() as u64;
    assert_eq!(r, -(libc::ETIMEDOUT as i64));

    // e: the value is not what the waiter expects: EAGAIN, no sleep.
    let r = futex(e, FUTEX_WAIT, 1, None, 0, None, 0);
    assert_eq!(r, -(libc::EAGAIN as i64));

    let report = serde_json::json!({
        "pid": std::process::id(),
        "addresses": { "a": addr(a), "b": addr(b), "c": addr(c), "d": addr(d), "e": addr(e) },
        // Waits by the address they began on.
        "waits": { "a": 4, "b": 5, "d": 1, "e": 1 },
        "woken": { "a": 4, "b": 5 },
        "timeouts": { "d": 1 },
        "mismatches": { "e": 1 },
        "wakes": { "a": wakes_a, "c": wakes_c },
        "wake_woken": { "a": woken_a, "c": woken_c },
        "requeue": { "from": addr(b), "to": addr(c), "woken": requeue_woken, "moved": moved },
        "timed_wait_ns": timed_wait_ns,
    });
    println!("{report}");
}

/// `threads` threads calling `op` (a short critical section) until `stop` is set after `secs`:
/// operations per second.
fn hammer(
    secs: f64,
    threads: usize,
    stop: &Arc<AtomicBool>,
    op: impl Fn() + Send + Sync + 'static,
) -> f64 {
    let op = Arc::new(op);
    let start = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (op, stop) = (op.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        op();
                    }
                    n += 64;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let total: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// Contended std Mutex for `secs`: prints lock acquisitions per second.
fn contend(secs: f64, threads: usize) {
    let m = std::sync::Mutex::new(0u64);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = hammer(secs, threads, &stop, move || *m.lock().unwrap() += 1);
    print_rate(ops);
}

/// Contended parking_lot Mutex for `secs`: prints lock acquisitions per second.
fn contend_parking_lot(secs: f64, threads: usize) {
    let m = parking_lot::Mutex::new(0u64);
    let stop = Arc::new(AtomicBool::new(false));
    let ops = hammer(secs, threads, &stop, move || *m.lock() += 1);
    print_rate(ops);
}

/// Prints this process's id and a throughput, the line the tests and benches read.
fn print_rate(ops: f64) {
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "ops_per_sec": ops })
    );
}

/// FUTEX_WAKE with nobody waiting, as fast as one thread can, for `secs`: the cheapest futex call, to
/// load a tracer. Prints how many calls it made.
fn spam(secs: f64) {
    let w = AtomicU32::new(0);
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..256 {
            futex(&w, FUTEX_WAKE, 1, None, 0, None, 0);
        }
        calls += 256;
    }
    let per_sec = calls as f64 / start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "calls": calls, "per_sec": per_sec })
    );
}

/// What a workload's own futex calls returned, counted by the workload as it makes them: what a tracer
/// must count too (`counts` in its JSON).
#[derive(Clone, Copy, Default)]
struct Tally {
    waits: u64,
    /// Waits that returned 0.
    woken: u64,
    eagain: u64,
    timeouts: u64,
    wakes: u64,
    /// Waiters the wakes woke (their return values, summed).
    wake_woken: u64,
}

impl Tally {
    fn wait(&mut self, r: i64) {
        self.waits += 1;
        match r {
            0.. => self.woken += 1,
            r if r == -(libc::EAGAIN as i64) => self.eagain += 1,
            r if r == -(libc::ETIMEDOUT as i64) => self.timeouts += 1,
            _ => {}
        }
    }

    fn wake(&mut self, r: i64) {
        self.wakes += 1;
        self.wake_woken += r.max(0) as u64;
    }

    fn sum(tallies: impl IntoIterator<Item = Tally>) -> Tally {
        tallies.into_iter().fold(Tally::default(), |a, b| Tally {
            waits: a.waits + b.waits,
            woken: a.woken + b.woken,
            eagain: a.eagain + b.eagain,
            timeouts: a.timeouts + b.timeouts,
            wakes: a.wakes + b.wakes,
            wake_woken: a.wake_woken + b.wake_woken,
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "waits": self.waits, "woken": self.woken, "eagain": self.eagain,
            "timeouts": self.timeouts, "wakes": self.wakes, "wake_woken": self.wake_woken,
        })
    }
}

/// The EAGAIN storm's word: a static, so that a tracer can name it. Always 0; the waits expect 1.
static EAGAIN_WORD: AtomicU32 = AtomicU32::new(0);

/// `threads` threads call FUTEX_WAIT on one word with the wrong expected value, as fast as they can, for
/// `secs`: every call returns EAGAIN at once (the cheapest wait, a storm of them). Prints the calls per
/// second and the counts.
fn eagain_storm(secs: f64, threads: usize, own_words: bool, slots: Option<u32>) {
    if let Some(n) = slots {
        kernel_hash::set_slots(n);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    // One word for all, or a word of its own per thread, each on a page of its own (its own futex key;
    // which kernel bucket it lands in is the kernel's hash's to say).
    let words: Vec<&'static AtomicU32> = (0..threads)
        .map(|_| {
            if own_words {
                let page: &'static mut [AtomicU32] =
                    Box::leak((0..1024).map(|_| AtomicU32::new(0)).collect());
                &page[0]
            } else {
                &EAGAIN_WORD
            }
        })
        .collect();
    let hs: Vec<_> = (words.iter().copied())
        .map(|word| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut t = Tally::default();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        t.wait(futex(word, FUTEX_WAIT, 1, None, 0, None, 0));
                    }
                }
                t
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let t = Tally::sum(hs.into_iter().map(|h| h.join().unwrap()));
    let per_sec = t.waits as f64 / start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "ops_per_sec": per_sec,
                            "counts": t.json(), "slots": kernel_hash::get_slots(),
                            "words": words.iter().map(|w| format!("{:#x}", *w as *const AtomicU32 as usize))
                                .collect::<Vec<_>>() })
    );
}

/// The wake storm's queue length, which is also its futex word.
static QUEUED: AtomicU32 = AtomicU32::new(0);

/// A producer/consumer queue for `secs`: the producer adds an item and calls FUTEX_WAKE for every one
/// (most find nobody waiting: a WAKE-heavy program); the consumer takes items and waits on the word when
/// the queue is empty. With `work`, the producer first does that many multiply-adds per item (a program
/// that does something between its wakes). Prints items per second and the counts.
fn wake_storm(secs: f64, work: u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let producer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut t = Tally::default();
            let mut n = 0u64;
            let mut x = 1u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    for i in 0..work {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005) + u64::from(i),
                        );
                    }
                    if QUEUED.fetch_add(1, Ordering::Release) > 1 << 16 {
                        std::thread::yield_now();
                    }
                    t.wake(futex(&QUEUED, FUTEX_WAKE, 1, None, 0, None, 0));
                }
                n += 64;
            }
            (t, n)
        })
    };
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut t = Tally::default();
            while !stop.load(Ordering::Relaxed) {
                let q = QUEUED.load(Ordering::Acquire);
                if q == 0 {
                    let timeout = Some(Duration::from_millis(10));
                    t.wait(futex(&QUEUED, FUTEX_WAIT, 0, timeout, 0, None, 0));
                } else {
                    QUEUED.fetch_sub(1, Ordering::Acquire);
                }
            }
            t
        })
    };
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let (p, items) = producer.join().unwrap();
    let t = Tally::sum([p, consumer.join().unwrap()]);
    let per_sec = items as f64 / start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "ops_per_sec": per_sec,
                            "counts": t.json() })
    );
}

/// A std Mutex + Condvar queue for `secs`: the producer pushes an item and calls `notify_one` for every
/// one; the consumer pops, waiting on the Condvar when the queue is empty. Prints items per second.
fn condvar_queue(secs: f64) {
    use std::collections::VecDeque;
    use std::sync::{Condvar, Mutex};
    let q = Arc::new((Mutex::new(VecDeque::<u64>::new()), Condvar::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let producer = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let len = {
                    let mut g = q.0.lock().unwrap();
                    g.push_back(n);
                    g.len()
                };
                q.1.notify_one();
                n += 1;
                if len > 1 << 16 {
                    std::thread::yield_now();
                }
            }
            n
        })
    };
    let consumer = {
        let (q, stop) = (q.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut g = q.0.lock().unwrap();
            while !stop.load(Ordering::Relaxed) {
                if g.pop_front().is_none() {
                    g = q.1.wait_timeout(g, Duration::from_millis(10)).unwrap().0;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let items = producer.join().unwrap();
    consumer.join().unwrap();
    let per_sec = items as f64 / start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "ops_per_sec": per_sec })
    );
}

/// Pins the calling thread to CPU `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes within it; sched_setaffinity
    // reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `n` waits with a 1 ms timeout on one word, every one of which times out (its wakeup comes from a timer,
/// in interrupt context), while another thread on the same CPU makes FUTEX_WAKE calls on another word
/// (nobody waits there) as fast as it can: a timer that fires during one of those calls must not make
/// that thread the waiter's waker. Prints the two words and how many waits timed out.
fn timeouts(n: u32) {
    let waiter_word = Arc::new(AtomicU32::new(0));
    let other_word = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let waker = {
        let (w, done) = (other_word.clone(), done.clone());
        std::thread::spawn(move || {
            pin_to(0);
            while !done.load(Ordering::Relaxed) {
                futex(&w, FUTEX_WAKE, 1, None, 0, None, 0);
            }
        })
    };
    pin_to(0);
    let mut timed_out = 0;
    for _ in 0..n {
        let r = futex(
            &waiter_word,
            FUTEX_WAIT,
            0,
            Some(Duration::from_millis(1)),
            0,
            None,
            0,
        );
        if r == -(libc::ETIMEDOUT as i64) {
            timed_out += 1;
        }
    }
    done.store(true, Ordering::Relaxed);
    waker.join().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "waiter_word": format!("{:#x}", waiter_word.as_ptr() as usize),
            "other_word": format!("{:#x}", other_word.as_ptr() as usize),
            "timed_out": timed_out,
        })
    );
}

const FUTEX_LOCK_PI: i32 = 6;
const FUTEX_UNLOCK_PI: i32 = 7;
const FUTEX_WAIT_REQUEUE_PI: i32 = 11;
const FUTEX_CMP_REQUEUE_PI: i32 = 12;

/// `n` FUTEX_LOCK_PI + FUTEX_UNLOCK_PI on a free PI word (the kernel takes it at once: no sleep), then
/// one FUTEX_LOCK_PI on it while another thread holds it for 50 ms (a sleep). Prints the word and both
/// counts.
fn lock_pi(n: u32) {
    let word = Arc::new(AtomicU32::new(0));
    for _ in 0..n {
        assert_eq!(futex(&word, FUTEX_LOCK_PI, 0, None, 0, None, 0), 0);
        assert_eq!(futex(&word, FUTEX_UNLOCK_PI, 0, None, 0, None, 0), 0);
    }
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let holder = {
        let word = word.clone();
        std::thread::spawn(move || {
            assert_eq!(futex(&word, FUTEX_LOCK_PI, 0, None, 0, None, 0), 0);
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(futex(&word, FUTEX_UNLOCK_PI, 0, None, 0, None, 0), 0);
        })
    };
    held_rx.recv().unwrap();
    assert_eq!(futex(&word, FUTEX_LOCK_PI, 0, None, 0, None, 0), 0);
    assert_eq!(futex(&word, FUTEX_UNLOCK_PI, 0, None, 0, None, 0), 0);
    holder.join().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "word": format!("{:#x}", word.as_ptr() as usize),
            "locks": n + 2,
            "slept": 1,
        })
    );
}

/// `n` threads wait with FUTEX_WAIT_REQUEUE_PI on a condition word; the main thread, which holds the PI
/// lock word, requeues them all with one FUTEX_CMP_REQUEUE_PI: the top waiter cannot take the lock, so
/// none is woken and all `n` are moved. Then the lock is handed from thread to thread by FUTEX_UNLOCK_PI.
/// Prints the words and the requeue's true counts.
fn requeue_pi(n: usize) {
    let cond = Arc::new(AtomicU32::new(0));
    let lock = Arc::new(AtomicU32::new(0));
    assert_eq!(futex(&lock, FUTEX_LOCK_PI, 0, None, 0, None, 0), 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (cond, lock, tx) = (cond.clone(), lock.clone(), tx.clone());
            std::thread::spawn(move || {
                tx.send(gettid()).unwrap();
                // Returns holding the lock.
                let r = futex(&cond, FUTEX_WAIT_REQUEUE_PI, 0, None, 0, Some(&lock), 0);
                assert_eq!(r, 0, "FUTEX_WAIT_REQUEUE_PI");
                assert_eq!(futex(&lock, FUTEX_UNLOCK_PI, 0, None, 0, None, 0), 0);
            })
        })
        .collect();
    let tids: Vec<i32> = (0..n).map(|_| rx.recv().unwrap()).collect();
    wait_until_in_futex(&tids);
    let r = futex(
        &cond,
        FUTEX_CMP_REQUEUE_PI,
        1,
        None,
        i32::MAX as usize,
        Some(&lock),
        0,
    );
    assert_eq!(r, n as i64, "FUTEX_CMP_REQUEUE_PI moved them all");
    assert_eq!(futex(&lock, FUTEX_UNLOCK_PI, 0, None, 0, None, 0), 0);
    for h in handles {
        h.join().unwrap();
    }
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "from": format!("{:#x}", cond.as_ptr() as usize),
            "to": format!("{:#x}", lock.as_ptr() as usize),
            "woken": 0,
            "moved": n,
        })
    );
}

/// The ping-pong's futex word: a static, so that a tracer can name it.
static PINGPONG_TURN: AtomicU32 = AtomicU32::new(0);

/// Two threads hand a turn back and forth through one futex word for `secs`: every hand-off is a wake
/// and (usually) a wait. Prints hand-offs per second.
fn pingpong(secs: f64) {
    let turn: &'static AtomicU32 = &PINGPONG_TURN;
    let stop = Arc::new(AtomicBool::new(false));
    let player = |me: u32, turn: &'static AtomicU32, stop: Arc<AtomicBool>| {
        move || {
            let (mut n, mut tally) = (0u64, Tally::default());
            loop {
                let t = turn.load(Ordering::Acquire);
                if t == 2 {
                    return (n, tally);
                }
                if t != me {
                    tally.wait(futex(
                        turn,
                        FUTEX_WAIT,
                        t,
                        Some(Duration::from_millis(50)),
                        0,
                        None,
                        0,
                    ));
                    continue;
                }
                let next = if stop.load(Ordering::Relaxed) {
                    2
                } else {
                    1 - me
                };
                turn.store(next, Ordering::Release);
                tally.wake(futex(turn, FUTEX_WAKE, 1, None, 0, None, 0));
                n += 1;
            }
        }
    };
    let start = Instant::now();
    let a = std::thread::spawn(player(0, turn, stop.clone()));
    let b = std::thread::spawn(player(1, turn, stop.clone()));
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let ((na, ta), (nb, tb)) = (a.join().unwrap(), b.join().unwrap());
    let per_sec = (na + nb) as f64 / start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "ops_per_sec": per_sec,
                            "counts": Tally::sum([ta, tb]).json() })
    );
}

/// futex-trace's demo (futex-core Mutexes, a Condvar broadcast, colliding locks) for `secs`, then
/// futex-core's own statistics of its default table, per queue, as JSON: what a USDT trace must equal.
/// `--shared N`: a parent and the child it forks hand a turn back and forth N times through one word of
/// a MAP_SHARED mapping, with shared (not private) futex calls: the parent waits while the word is 0 and
/// the child while it is 1. Each side waits, then flips the word and wakes the other, so both wait and
/// wake about N times. Prints `{"pid", "child", "addr", "turns"}` (the mapping is inherited: the word
/// has the same address in both). The child stays a second after its turns.
fn shared_pingpong(turns: u32) {
    // SAFETY: an anonymous shared mapping of one page, checked below; it outlives both processes' use.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert!(page != libc::MAP_FAILED, "mmap a shared page");
    // SAFETY: the page is mapped, zeroed, aligned and lives for the whole program.
    let word: &AtomicU32 = unsafe { &*(page as *const AtomicU32) };
    let turn = |mine: u32| {
        for _ in 0..turns {
            while word.load(Ordering::Acquire) != mine {
                futex_op(word, libc::FUTEX_WAIT, 1 - mine, None, 0, None, 0);
            }
            word.store(1 - mine, Ordering::Release);
            futex_op(word, libc::FUTEX_WAKE, 1, None, 0, None, 0);
        }
    };
    // SAFETY: fork in a single-threaded program; the child only runs `turn` and exits.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        turn(1);
        // Stay a second: a tracer reads a process's maps (where the shared word lies) once it sees it,
        // and a process gone by then cannot be read.
        std::thread::sleep(Duration::from_secs(1));
        // SAFETY: _exit ends the child without running the parent's atexit handlers.
        unsafe { libc::_exit(0) };
    }
    turn(0);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    println!(
        "{{\"pid\": {}, \"child\": {child}, \"addr\": \"{:#x}\", \"turns\": {turns}}}",
        std::process::id(),
        page as u64
    );
}

fn futex_core_demo(secs: f64) {
    let demo = futex_trace::demo::Demo::start(&futex_trace::demo::DemoConfig::default());
    std::thread::sleep(Duration::from_secs_f64(secs));
    demo.stop();
    let queues: Vec<serde_json::Value> = futex_core::default_table()
        .stats()
        .iter()
        .map(|q| {
            serde_json::json!({
                "bucket": q.index, "waits": q.counters.waits, "mismatches": q.counters.mismatches,
                "timeouts": q.counters.timeouts, "wakes": q.counters.wakes, "woken": q.counters.woken,
                "requeues": q.counters.requeues, "requeued_in": q.counters.requeued_in,
                "requeued_out": q.counters.requeued_out, "collisions": q.counters.collisions,
                "lock_contended": q.counters.lock_contended, "lock_wait_ns": q.counters.lock_wait_ns,
            })
        })
        .collect();
    println!(
        "{}",
        serde_json::json!({ "pid": std::process::id(), "queues": queues })
    );
}

/// `n` threads wait on a futex-core Condvar; once all are asleep on its queue, one `notify_all`:
/// futex-core wakes one and requeues the rest onto the mutex. Prints the addresses and buckets.
fn notify_all(n: usize) {
    use futex_core::sync::{Condvar, Mutex};
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let pair = pair.clone();
            std::thread::spawn(move || {
                let (m, cv) = &*pair;
                let mut go = m.lock();
                while !*go {
                    go = cv.wait(go);
                }
            })
        })
        .collect();
    let (m, cv) = &*pair;
    let table = futex_core::default_table();
    let cv_bucket = futex_trace::bucket_of(cv.addr() as u64, table.len());
    let deadline = Instant::now() + Duration::from_secs(10);
    while table.stats()[cv_bucket].depth < n as u64 {
        assert!(Instant::now() < deadline, "the waiters never all slept");
        std::thread::sleep(Duration::from_millis(5));
    }
    *m.lock() = true;
    cv.notify_all();
    for h in handles {
        h.join().unwrap();
    }
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "condvar": format!("{:#x}", cv.addr()),
            "mutex": format!("{:#x}", m.addr()),
            "condvar_bucket": cv_bucket,
            "mutex_bucket": futex_trace::bucket_of(m.addr() as u64, table.len()),
            "waiters": n,
        })
    );
}

/// `threads` threads on one futex-core Mutex for `secs` (short critical sections); with `observe`, this
/// process also subscribes to futex-core's observer and drains it every 5 ms. Prints lock
/// acquisitions per second.
fn core_mutex(secs: f64, threads: usize, observe: bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let observer = observe.then(|| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sub = futex_core::default_table()
                .subscribe(1 << 16)
                .expect("subscribe");
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                buf.clear();
                sub.drain_into(&mut buf);
            }
        })
    });
    let m = futex_core::sync::Mutex::new(0u64);
    let ops = hammer(secs, threads, &stop, move || *m.lock() += 1);
    if let Some(o) = observer {
        o.join().unwrap();
    }
    print_rate(ops);
}

/// Makes futex calls whose counts are known and prints them as JSON on stdout. With no mode, the exact
/// sequence described in the module documentation (addresses a..e).
#[derive(clap::Parser)]
#[command(name = "futex-workload")]
struct Cli {
    /// Wait for a line on stdin before starting (so that a tracer can attach by pid first).
    #[arg(long)]
    wait_stdin: bool,
    #[command(flatten)]
    mode: Mode,
    /// Threads for --contend and --parking-lot (default 2) and --core-mutex (default 4).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// --wake-storm: multiply-adds the producer does per item before queueing it.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "wake_storm")]
    work: u32,
    /// --kernel-hash, --eagain: first set the private futex hash to N slots (prctl
    /// PR_FUTEX_HASH_SET_SLOTS).
    #[arg(long, value_name = "N")]
    slots: Option<u32>,
    /// --kernel-hash: then set it to N slots and do it all again.
    #[arg(long, value_name = "N", requires = "kernel_hash")]
    resize_to: Option<u32>,
    /// --eagain: each thread waits on a word of its own (on a page of its own) instead of one for all.
    #[arg(long, requires = "eagain")]
    own_words: bool,
    /// --core-mutex: subscribe to futex-core's observer while contending.
    #[arg(long, requires = "core_mutex")]
    observe: bool,
}

#[derive(clap::Args)]
#[group(multiple = false)]
struct Mode {
    /// A contended std::sync::Mutex for SECS; prints its throughput.
    #[arg(long, value_name = "SECS")]
    contend: Option<f64>,
    /// A contended parking_lot::Mutex for SECS (see --threads, default 2); prints its throughput.
    #[arg(long, value_name = "SECS")]
    parking_lot: Option<f64>,
    /// Hand a turn between two threads through a futex for SECS; prints hand-offs per second.
    #[arg(long, value_name = "SECS")]
    pingpong: Option<f64>,
    /// FUTEX_WAKE with nobody waiting, as fast as one thread can, for SECS; prints how many.
    #[arg(long, value_name = "SECS")]
    spam: Option<f64>,
    /// futex-trace's demo on futex-core for SECS; prints futex-core's own statistics per queue.
    #[arg(long, value_name = "SECS")]
    futex_core: Option<f64>,
    /// N waiters on a futex-core Condvar, woken by one notify_all; prints addresses and buckets.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=4096))]
    notify_all: Option<u16>,
    /// N waits that time out while another thread on the same CPU makes FUTEX_WAKE calls on another
    /// word; prints the words and how many timed out.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    timeouts: Option<u32>,
    /// N PI locks taken at once, and one taken after sleeping; prints the word and the counts.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    lock_pi: Option<u32>,
    /// N FUTEX_WAIT_REQUEUE_PI waiters moved by one FUTEX_CMP_REQUEUE_PI onto a held PI lock.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    requeue_pi: Option<u16>,
    /// A contended futex-core Mutex for SECS (see --threads, --observe); prints its throughput.
    #[arg(long, value_name = "SECS")]
    core_mutex: Option<f64>,
    /// FUTEX_WAIT calls that return EAGAIN, from --threads threads (default 4) on one word, for SECS.
    #[arg(long, value_name = "SECS")]
    eagain: Option<f64>,
    /// A producer that calls FUTEX_WAKE for every item it queues, and a consumer, for SECS.
    #[arg(long, value_name = "SECS")]
    wake_storm: Option<f64>,
    /// A std Mutex + Condvar producer/consumer queue (notify_one per item) for SECS.
    #[arg(long, value_name = "SECS")]
    condvar: Option<f64>,
    /// WORDS futex words spread over pages, grouped by the bucket of this process's private kernel
    /// futex hash they share (found by timing the kernel: see kernel_hash.rs), then ping-ponged; and a
    /// shared futex (MAP_SHARED, no private flag). See --slots and --resize-to.
    #[arg(long, value_name = "WORDS", value_parser = clap::value_parser!(u16).range(2..=256))]
    kernel_hash: Option<u16>,
    /// N turns handed between two processes (this one and a child it forks) through one futex word
    /// in shared memory (MAP_SHARED, no private flag); prints the word's address in each and the
    /// counts each side made.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    shared: Option<u32>,
}

fn main() {
    let cli = <Cli as clap::Parser>::parse();
    if cli.wait_stdin {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    let m = cli.mode;
    let threads = |default: usize| cli.threads.map_or(default, usize::from);
    if let Some(secs) = m.spam {
        spam(secs)
    } else if let Some(secs) = m.pingpong {
        pingpong(secs)
    } else if let Some(secs) = m.futex_core {
        futex_core_demo(secs)
    } else if let Some(n) = m.notify_all {
        notify_all(n.into())
    } else if let Some(n) = m.timeouts {
        timeouts(n)
    } else if let Some(n) = m.lock_pi {
        lock_pi(n)
    } else if let Some(n) = m.requeue_pi {
        requeue_pi(n.into())
    } else if let Some(secs) = m.core_mutex {
        core_mutex(secs, threads(4), cli.observe)
    } else if let Some(secs) = m.contend {
        contend(secs, threads(2))
    } else if let Some(secs) = m.parking_lot {
        contend_parking_lot(secs, threads(2))
    } else if let Some(secs) = m.eagain {
        eagain_storm(secs, threads(4), cli.own_words, cli.slots)
    } else if let Some(secs) = m.wake_storm {
        wake_storm(secs, cli.work)
    } else if let Some(secs) = m.condvar {
        condvar_queue(secs)
    } else if let Some(n) = m.kernel_hash {
        kernel_hash::run(n.into(), cli.slots, cli.resize_to)
    } else if let Some(n) = m.shared {
        shared_pingpong(n)
    } else {
        exact()
    }
}
