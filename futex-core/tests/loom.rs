//! Model checking (loom) of the three races the seed's review argues about. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p futex-core --test loom --release` (the README's test script
//! does). Under loom, timeouts fire at any point the model checker chooses, and the waiter's thread writes
//! every field of its waiter as it returns, so a waker that touched a released waiter is a reported race.
#![cfg(loom)]

use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futex_core::{Requeued, Table, WaitError};

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Words for a 2-queue table, and the index of one on queue 0 and one on queue 1.
///
/// The model must be deterministic: which queue a word hashes to depends on where it was allocated, so
/// words are chosen by queue, never by position (otherwise the requeue's lock order could change between
/// iterations). 16 words span 8 consecutive hash keys, which always cover both queues.
fn words_on_both_queues(t: &Table) -> (Arc<Vec<AtomicU32>>, usize, usize) {
    let w: Arc<Vec<AtomicU32>> = Arc::new((0..16).map(|_| AtomicU32::new(0)).collect());
    let on = |q: usize| (0..w.len()).find(|&i| t.bucket_of(&w[i]) == q).unwrap();
    let (a, b) = (on(0), on(1));
    (w, a, b)
}

/// Wake vs timeout: the wait is woken iff the wake counted it; never both, never neither.
#[test]
fn wake_vs_timeout() {
    model(|| {
        // One queue: the word's queue does not depend on its address.
        let t = Arc::new(Table::new(1));
        let w = Arc::new(AtomicU32::new(0));
        let (t2, w2) = (t.clone(), w.clone());
        let h = thread::spawn(move || t2.wait(&w2, 0, Some(Duration::from_millis(1))));
        let n = t.wake(&w, 1);
        let r = h.join().unwrap();
        match (n, r) {
            (1, Ok(())) | (0, Err(WaitError::TimedOut)) => {}
            other => panic!(
                "wake counted {} but the wait returned {:?}",
                other.0, other.1
            ),
        }
        let s = t.stats();
        assert_eq!(s.iter().map(|q| q.depth).sum::<u64>(), 0);
        assert_eq!(
            s.iter()
                .map(|q| q.counters.woken + q.counters.timeouts)
                .sum::<u64>(),
            1
        );
    });
}

/// Requeue vs unwait: a timing-out waiter follows its waiter to the queue requeue moved it to, and the
/// waiter ends up on no list whatever the order.
#[test]
fn requeue_vs_unwait() {
    model(|| {
        let t = Arc::new(Table::new(2));
        let (w, a, b) = words_on_both_queues(&t);
        let (t2, w2) = (t.clone(), w.clone());
        let h = thread::spawn(move || t2.wait(&w2[a], 0, Some(Duration::from_millis(1))));
        let r = t.requeue(&w[a], 0, &w[b], 1);
        let res = h.join().unwrap();
        assert_eq!(r.woken, 0);
        // Timed out from wherever it was, or still on a list: never.
        assert_eq!(res, Err(WaitError::TimedOut));
        let s = t.stats();
        assert_eq!(s.iter().map(|q| q.depth).sum::<u64>(), 0, "{s:?}");
        assert_eq!(s[1].counters.timeouts, r.moved as u64, "{s:?}");
        assert_eq!(t.wake(&w[b], 1) + t.wake(&w[a], 1), 0);
    });
}

/// Requeue races a waker on the target and a timing-out waiter: the moved waiter is woken from the new
/// queue or times out there, counted once.
#[test]
fn requeue_then_wake_target_vs_timeout() {
    model(|| {
        let t = Arc::new(Table::new(2));
        let (w, a, b) = words_on_both_queues(&t);
        let (t2, w2) = (t.clone(), w.clone());
        let h = thread::spawn(move || t2.wait(&w2[a], 0, Some(Duration::from_millis(1))));
        let Requeued { moved, .. } = t.requeue(&w[a], 0, &w[b], 1);
        let woken = t.wake(&w[b], 1);
        let res = h.join().unwrap();
        assert!(woken <= moved);
        assert_eq!(
            res.is_ok(),
            woken == 1,
            "woken {woken} moved {moved} res {res:?}"
        );
        assert_eq!(t.stats().iter().map(|q| q.depth).sum::<u64>(), 0);
    });
}

/// The waker's last touch of a waiter on another thread's stack: two waiters without timeouts, one
/// waker. Loom reports a race if the waker reads or writes a waiter after releasing it (the waiter's
/// thread overwrites it as it returns).
#[test]
fn waker_never_touches_a_released_waiter() {
    model(|| {
        let t = Arc::new(Table::new(1));
        let w = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (t2, w2) = (t.clone(), w.clone());
                thread::spawn(move || {
                    // Mismatch (the waker changed the word first) or woken; loop until the value moved.
                    while w2.load(Ordering::Acquire) == 0 {
                        let _ = t2.wait(&w2, 0, None);
                    }
                })
            })
            .collect();
        w.store(1, Ordering::Release);
        t.wake(&w, u32::MAX);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.stats()[0].depth, 0);
    });
}

/// A Condvar's notify that finds no waiter counted skips the sleep queues: it must still never miss a
/// waiter that checks the condition under the mutex, whether the notify runs inside the critical
/// section or after it. A lost notify leaves the waiter asleep forever: loom reports the deadlock.
#[test]
fn condvar_notify_without_waiters_never_loses_a_wakeup() {
    use futex_core::sync::{Condvar, Mutex};
    for notify_under_lock in [false, true] {
        model(move || {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let p2 = pair.clone();
            let h = thread::spawn(move || {
                let (m, c) = &*p2;
                let mut ready = m.lock();
                while !*ready {
                    ready = c.wait(ready);
                }
            });
            let (m, c) = &*pair;
            let mut ready = m.lock();
            *ready = true;
            if notify_under_lock {
                c.notify_one();
                drop(ready);
            } else {
                drop(ready);
                c.notify_one();
            }
            h.join().unwrap();
        });
    }
}

/// A notify_one that finds the sequence's SLEEPING bit clear skips the table, and one that leaves
/// nobody linked clears it: two waiters, each taking one of two items, against two notify_one calls.
/// A clear that raced a waiter's link and left it asleep with the bit cleared would make the second
/// notify skip it: loom reports the deadlock.
#[test]
fn condvar_notify_one_never_skips_a_sleeping_waiter() {
    use futex_core::sync::{Condvar, Mutex};
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(2).min(2));
    b.check(|| {
        let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let p = pair.clone();
                thread::spawn(move || {
                    let (m, c) = &*p;
                    let mut items = m.lock();
                    while *items == 0 {
                        items = c.wait(items);
                    }
                    *items -= 1;
                })
            })
            .collect();
        let (m, c) = &*pair;
        for _ in 0..2 {
            *m.lock() += 1;
            c.notify_one();
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 0);
    });
}

/// The Mutex's two ways out of a contended unlock: the lock freed with the PARKED bit kept for the
/// sleepers left, and the lock handed to the first sleeper (`unlock_fair`; by itself, the mutex does it
/// for a sleeper that waited past `FAIR_AFTER`, which loom's clock never reaches). The data is a loom
/// cell: a hand-off that did not order the holder's writes before the new holder's is a reported race;
/// a sleeper left behind with the bit cleared is a reported deadlock.
#[test]
fn mutex_hands_off_and_frees_without_losing_a_sleeper() {
    use futex_core::sync::{Mutex, MutexGuard};
    use loom::cell::UnsafeCell;
    for fair in [false, true] {
        model(move || {
            let m = Arc::new(Mutex::new(UnsafeCell::new(0u32)));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        for _ in 0..2 {
                            let g = m.lock();
                            // SAFETY: the mutex is held.
                            g.with_mut(|v| unsafe { *v += 1 });
                            if fair {
                                MutexGuard::unlock_fair(g);
                            } else {
                                drop(g);
                            }
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            let g = m
                .try_lock()
                .expect("the mutex is free once every thread is done");
            // SAFETY: the mutex is held.
            assert_eq!(g.with(|v| unsafe { *v }), 4);
            assert_eq!(futex_core::default_table().stats()[0].depth, 0);
        });
    }
}

/// notify_all moves every waiter onto the mutex's word, waking none if the mutex is held (its holder's
/// unlock must then wake the first, so the PARKED bit is set under the queue lock) and one if it is
/// free. Whether the notify runs inside the critical section or after it, and whether the holder then
/// unlocks plainly or hands the lock to the first moved waiter (`unlock_fair`: that waiter's condvar
/// wait returns owning the mutex), every waiter returns.
#[test]
fn condvar_notify_all_requeues_without_losing_a_waiter() {
    use futex_core::sync::{Condvar, Mutex, MutexGuard};
    for (notify_under_lock, fair) in [(false, false), (true, false), (true, true)] {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(b.preemption_bound.unwrap_or(2).min(2));
        b.check(move || {
            let pair = Arc::new((Mutex::new(false), Condvar::new()));
            let hs: Vec<_> = (0..2)
                .map(|_| {
                    let p = pair.clone();
                    thread::spawn(move || {
                        let (m, c) = &*p;
                        let mut ready = m.lock();
                        while !*ready {
                            ready = c.wait(ready);
                        }
                    })
                })
                .collect();
            let (m, c) = &*pair;
            let mut ready = m.lock();
            *ready = true;
            if notify_under_lock {
                c.notify_all();
                if fair {
                    MutexGuard::unlock_fair(ready);
                } else {
                    drop(ready);
                }
            } else {
                drop(ready);
                c.notify_all();
            }
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(futex_core::default_table().stats()[0].depth, 0);
        });
    }
}
