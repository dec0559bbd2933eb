//! Many threads, many addresses, Mutex and Condvar, raw waits: fails on a lost wakeup or a deadlock
//! (a watchdog bounds the run) and on any lost update.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use futex_core::sync::{Condvar, Mutex};

/// Runs `f` on a thread; fails the test if it has not finished in `limit`.
fn bounded(limit: Duration, what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        f();
        tx.send(()).ok();
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => h.join().unwrap(), // panicked: propagate
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: not finished after {limit:?}: a lost wakeup or a deadlock")
        }
    }
}

#[test]
fn mutexes_and_condvar_queue_under_load() {
    bounded(Duration::from_secs(120), "mutex + condvar stress", || {
        const LOCKS: usize = 16;
        const THREADS: usize = 8;
        const ITERS: usize = 20_000;
        let locks: Arc<Vec<Mutex<u64>>> = Arc::new((0..LOCKS).map(|_| Mutex::new(0)).collect());
        // A bounded producer/consumer queue on one Mutex and two Condvars (notify_all requeues).
        let queue = Arc::new((
            Mutex::new(Vec::<u64>::new()),
            Condvar::new(),
            Condvar::new(),
        ));
        let consumed = Arc::new(AtomicU64::new(0));
        let mut hs = Vec::new();
        for t in 0..THREADS {
            let locks = locks.clone();
            hs.push(thread::spawn(move || {
                for i in 0..ITERS {
                    *locks[(i * 31 + t * 7) % LOCKS].lock() += 1;
                }
            }));
        }
        const ITEMS: u64 = 20_000;
        for p in 0..2u64 {
            let q = queue.clone();
            hs.push(thread::spawn(move || {
                for i in 0..ITEMS / 2 {
                    let (m, not_empty, not_full) = &*q;
                    let mut g = not_full.wait_while(m.lock(), |v| v.len() >= 8);
                    g.push(p * ITEMS + i);
                    drop(g);
                    if i % 3 == 0 {
                        not_empty.notify_all()
                    } else {
                        not_empty.notify_one()
                    }
                }
            }));
        }
        for _ in 0..3 {
            let (q, consumed) = (queue.clone(), consumed.clone());
            hs.push(thread::spawn(move || loop {
                let (m, not_empty, not_full) = &*q;
                let mut g = m.lock();
                loop {
                    if consumed.load(Ordering::Relaxed) >= ITEMS {
                        return;
                    }
                    if !g.is_empty() {
                        break;
                    }
                    // A timeout only so the last consumers notice the end; correctness does not rest on it.
                    g = not_empty.wait_timeout(g, Duration::from_millis(50)).0;
                }
                g.pop();
                consumed.fetch_add(1, Ordering::Relaxed);
                drop(g);
                not_full.notify_all();
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        let total: u64 = locks.iter().map(|m| *m.lock()).sum();
        assert_eq!(total, (THREADS * ITERS) as u64, "lost updates");
        assert_eq!(consumed.load(Ordering::Relaxed), ITEMS);
    });
}

#[test]
fn raw_ping_pong_on_many_addresses_loses_no_wakeup() {
    bounded(Duration::from_secs(120), "raw ping-pong", || {
        // Pairs of threads hand a token back and forth through one word each; no timeouts: a lost wakeup
        // hangs and the watchdog fails the test.
        const PAIRS: usize = 6;
        const ROUNDS: u32 = 5_000;
        let words: Arc<Vec<AtomicU32>> = Arc::new((0..PAIRS).map(|_| AtomicU32::new(0)).collect());
        let mut hs = Vec::new();
        for p in 0..PAIRS {
            for side in 0..2u32 {
                let w = words.clone();
                hs.push(thread::spawn(move || {
                    let word = &w[p];
                    for r in 0..ROUNDS {
                        let mine = 2 * r + side; // side 0 acts on even values, side 1 on odd
                        loop {
                            let v = word.load(Ordering::Acquire);
                            if v == mine {
                                break;
                            }
                            let _ = futex_core::wait(word, v, None);
                        }
                        word.store(mine + 1, Ordering::Release);
                        futex_core::wake(word, 1);
                    }
                }));
            }
        }
        for h in hs {
            h.join().unwrap();
        }
        assert!(words
            .iter()
            .all(|w| w.load(Ordering::Relaxed) == 2 * ROUNDS));
    });
}
