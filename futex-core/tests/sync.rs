//! Mutex and Condvar, including notify_all's requeue onto the mutex, seen through the observer.
#![cfg(not(loom))]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futex_core::sync::{Condvar, Mutex};
use futex_core::{QueueEventKind, WaitKind};

#[test]
fn mutex_excludes_and_counts() {
    let m = Arc::new(Mutex::new(0u64));
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let m = m.clone();
            thread::spawn(move || {
                for _ in 0..20_000 {
                    *m.lock() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(*m.lock(), 80_000);
}

#[test]
fn try_lock_fails_while_held() {
    let m = Mutex::new(1);
    let g = m.lock();
    assert!(m.try_lock().is_none());
    // A failed try_lock leaves the lock as it was: still held.
    assert!(
        m.try_lock().is_none(),
        "a failed try_lock released the lock"
    );
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 1);
    assert_eq!(m.into_inner(), 1);
}

#[test]
fn condvar_wait_timeout_times_out_and_relocks() {
    let m = Mutex::new(false);
    let c = Condvar::new();
    let t0 = Instant::now();
    let (g, r) = c.wait_timeout(m.lock(), Duration::from_millis(20));
    assert!(r.timed_out());
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert!(m.try_lock().is_none(), "the guard holds the lock again");
    drop(g);
}

#[test]
#[should_panic(expected = "more than one mutex")]
fn condvar_with_a_second_mutex_panics_before_waiting() {
    let (a, b) = (Mutex::new(()), Mutex::new(()));
    let c = Condvar::new();
    drop(c.wait_timeout(a.lock(), Duration::from_millis(1)));
    drop(c.wait_timeout(b.lock(), Duration::from_millis(1)));
}

#[test]
fn wait_timeout_while_returns_on_condition_or_time() {
    let m = Mutex::new(0);
    let c = Condvar::new();
    let (g, r) = c.wait_timeout_while(m.lock(), Duration::from_millis(15), |v| *v == 0);
    assert!(r.timed_out());
    drop(g);
    *m.lock() = 1;
    let (g, r) = c.wait_timeout_while(m.lock(), Duration::from_secs(10), |v| *v == 0);
    assert!(!r.timed_out());
    assert_eq!(*g, 1);
}

#[test]
fn condvar_notify_one_wakes_a_waiter() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    let h = thread::spawn(move || {
        let (m, c) = &*p2;
        let g = c.wait_while(m.lock(), |ready| !*ready);
        assert!(*g);
    });
    thread::sleep(Duration::from_millis(10));
    *pair.0.lock() = true;
    pair.1.notify_one();
    h.join().unwrap();
}

/// notify_all with N waiters, the mutex free: 1 woken, N−1 moved from the condvar's word to the mutex's
/// word; the mutex held (notify inside the critical section): none woken, all N moved (the holder's unlock
/// wakes the first). Then all return. The only test in this binary that subscribes to the default table.
#[test]
fn notify_all_moves_the_waiters_onto_the_mutex() {
    for under_lock in [false, true] {
        notify_all_once(under_lock);
    }
}

fn notify_all_once(under_lock: bool) {
    const N: usize = 6;
    let pair = Arc::new((Mutex::new((false, 0usize)), Condvar::new()));
    let sub = futex_core::default_table().subscribe(1 << 16).unwrap();
    let hs: Vec<_> = (0..N)
        .map(|_| {
            let p = pair.clone();
            thread::spawn(move || {
                let (m, c) = &*p;
                let mut g = m.lock();
                g.1 += 1;
                let mut g = c.wait_while(g, |s| !s.0);
                g.1 -= 1;
            })
        })
        .collect();
    let (m, c) = &*pair;
    // All N must be linked on the condvar before the notify, so that exactly one notify_all sees them:
    // count this condvar's own wait_start/wait_end events (other tests' waiters may share its bucket).
    let mut evs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        sub.drain_into(&mut evs);
        let linked = evs.iter().fold(0i64, |n, e| match e.kind {
            QueueEventKind::WaitStart { addr, .. } if addr == c.addr() => n + 1,
            QueueEventKind::WaitEnd { addr, .. } if addr == c.addr() => n - 1,
            _ => n,
        });
        if linked == N as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "waiters never all slept ({linked} of {N})"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let mut g = m.lock();
    g.0 = true;
    if under_lock {
        c.notify_all();
        drop(g);
    } else {
        drop(g);
        c.notify_all();
    }
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(m.lock().1, 0);
    sub.drain_into(&mut evs);
    let rq: Vec<_> = evs
        .iter()
        .filter_map(|e| match e.kind {
            QueueEventKind::Requeue {
                from,
                to,
                woken,
                moved,
                wait: kind,
                ..
            } if from == c.addr() => Some((to, woken, moved, kind)),
            _ => None,
        })
        .collect();
    let woken: usize = if under_lock { 0 } else { 1 };
    assert_eq!(
        rq,
        vec![(
            m.addr(),
            woken as u32,
            (N - woken) as u32,
            WaitKind::Condvar
        )],
        "under the lock: {under_lock}"
    );
    // The moved waiters ended their waits on the mutex's word, requeued once.
    let moved_ends = evs
        .iter()
        .filter(|e| {
            matches!(e.kind, QueueEventKind::WaitEnd { addr, final_addr, requeued: 1, .. }
            if addr == c.addr() && final_addr == m.addr())
        })
        .count();
    assert_eq!(moved_ends, N - woken);
    assert_eq!(sub.dropped(), 0);
}
