//! The rules of the sleep-queue table: mismatch, timeout, wake counts, requeue, unwait, statistics.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use futex_core::{Requeued, Table, WaitError};

/// Polls until queue `q` of `t` holds `depth` waiters, or fails after 10 s.
fn wait_depth(t: &Table, q: usize, depth: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.queue_stats(q).unwrap().depth != depth {
        assert!(
            Instant::now() < deadline,
            "queue {q} never reached depth {depth}: {:?}",
            t.queue_stats(q)
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Two words that hash to different queues of `t`.
fn words_on_different_queues(t: &Table) -> (Arc<Vec<AtomicU32>>, usize, usize) {
    let words: Arc<Vec<AtomicU32>> = Arc::new((0..64).map(|_| AtomicU32::new(0)).collect());
    for j in 1..words.len() {
        if t.bucket_of(&words[0]) != t.bucket_of(&words[j]) {
            return (words, 0, j);
        }
    }
    unreachable!("64 consecutive words all hashed to one queue")
}

/// Spawns `k` threads waiting (no timeout) on `words[i]` in `t`; they must all be woken.
fn spawn_waiters(
    t: &Arc<Table>,
    words: &Arc<Vec<AtomicU32>>,
    i: usize,
    k: usize,
) -> Vec<thread::JoinHandle<Result<(), WaitError>>> {
    (0..k)
        .map(|_| {
            let (t, w) = (t.clone(), words.clone());
            thread::spawn(move || t.wait(&w[i], 0, None))
        })
        .collect()
}

#[test]
fn mismatch_returns_at_once_unlinked() {
    let t = Table::new(64);
    let w = AtomicU32::new(5);
    assert_eq!(t.wait(&w, 4, None), Err(WaitError::Mismatch));
    let q = t.queue_stats(t.bucket_of(&w)).unwrap();
    assert_eq!(
        (
            q.counters.waits,
            q.counters.mismatches,
            q.depth,
            q.counters.timeouts
        ),
        (1, 1, 0, 0)
    );
}

#[test]
fn timeout_returns_timed_out_after_the_timeout() {
    let t = Table::new(64);
    let w = AtomicU32::new(0);
    let t0 = Instant::now();
    assert_eq!(
        t.wait(&w, 0, Some(Duration::from_millis(30))),
        Err(WaitError::TimedOut)
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(30),
        "returned early: {:?}",
        t0.elapsed()
    );
    let q = t.queue_stats(t.bucket_of(&w)).unwrap();
    assert_eq!((q.counters.waits, q.counters.timeouts, q.depth), (1, 1, 0));
}

#[test]
fn wake_count_is_exact_and_wakes_only_its_address() {
    let t = Arc::new(Table::new(1)); // one queue: every word collides
    let words: Arc<Vec<AtomicU32>> = Arc::new((0..2).map(|_| AtomicU32::new(0)).collect());
    let a = spawn_waiters(&t, &words, 0, 5);
    let b = spawn_waiters(&t, &words, 1, 2);
    wait_depth(&t, 0, 7);
    assert_eq!(t.wake(&words[0], 0), 0, "n = 0 wakes nobody");
    assert_eq!(t.wake(&words[0], 2), 2);
    wait_depth(&t, 0, 5);
    assert_eq!(t.wake(&words[0], 10), 3);
    assert_eq!(t.wake(&words[0], 10), 0);
    for h in a {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
    assert_eq!(t.wake(&words[1], u32::MAX), 2);
    for h in b {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
    let q = t.queue_stats(0).unwrap();
    assert_eq!(
        (q.counters.waits, q.counters.woken, q.depth, q.max_depth),
        (7, 7, 0, 7)
    );
    assert!(
        q.counters.collisions >= 2,
        "the b waiters sat in the way of a wakes: {q:?}"
    );
}

#[test]
fn timeout_racing_a_wake_is_woken_or_timed_out_never_both() {
    let t = Arc::new(Table::new(64));
    let (mut woken, mut timed_out) = (0, 0);
    for i in 0..300 {
        let w = Arc::new(AtomicU32::new(0));
        let (t2, w2) = (t.clone(), w.clone());
        let h = thread::spawn(move || t2.wait(&w2, 0, Some(Duration::from_micros(200))));
        // Aim the wake at around the timeout.
        thread::sleep(Duration::from_micros(150 + (i % 100)));
        let n = t.wake(&w, 1);
        let r = h.join().unwrap();
        match (n, r) {
            (1, Ok(())) => woken += 1,
            (0, Err(WaitError::TimedOut)) => timed_out += 1,
            // The waiter had not linked in yet when the wake ran: it timed out alone.
            other => panic!(
                "wake returned {} but the wait returned {:?}",
                other.0, other.1
            ),
        }
    }
    assert_eq!(woken + timed_out, 300);
    let total = t.totals();
    assert_eq!(total.counters.woken, woken);
    assert_eq!(total.counters.timeouts, timed_out);
    assert_eq!(total.depth, 0);
}

#[test]
fn requeue_to_another_queue_wakes_n_and_moves_m() {
    let t = Arc::new(Table::new(64));
    let (words, a, b) = words_on_different_queues(&t);
    let (qa, qb) = (t.bucket_of(&words[a]), t.bucket_of(&words[b]));
    let hs = spawn_waiters(&t, &words, a, 4);
    wait_depth(&t, qa, 4);
    assert_eq!(
        t.requeue(&words[a], 1, &words[b], 2),
        Requeued { woken: 1, moved: 2 }
    );
    let (sa, sb) = (t.queue_stats(qa).unwrap(), t.queue_stats(qb).unwrap());
    assert_eq!(
        (
            sa.depth,
            sa.counters.woken,
            sa.counters.requeued_out,
            sa.counters.requeues
        ),
        (1, 1, 2, 1)
    );
    assert_eq!((sb.depth, sb.counters.requeued_in), (2, 2));
    assert_eq!(t.wake(&words[a], 10), 1, "one left on a");
    assert_eq!(t.wake(&words[b], 10), 2, "two moved to b");
    for h in hs {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
}

#[test]
fn requeue_onto_the_same_queue_terminates_and_moves() {
    let t = Arc::new(Table::new(1));
    let words: Arc<Vec<AtomicU32>> = Arc::new((0..2).map(|_| AtomicU32::new(0)).collect());
    let hs = spawn_waiters(&t, &words, 0, 5);
    wait_depth(&t, 0, 5);
    // Everything is moved onto the tail of the very list being walked: must stop at the old tail.
    assert_eq!(
        t.requeue(&words[0], 1, &words[1], u32::MAX),
        Requeued { woken: 1, moved: 4 }
    );
    assert_eq!(t.wake(&words[0], 10), 0);
    // Same address as target: moves onto its own tail, still terminates.
    assert_eq!(
        t.requeue(&words[1], 0, &words[1], u32::MAX),
        Requeued { woken: 0, moved: 4 }
    );
    assert_eq!(t.wake(&words[1], 10), 4);
    for h in hs {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
    let q = t.queue_stats(0).unwrap();
    assert_eq!(
        (q.depth, q.counters.requeued_in, q.counters.requeued_out),
        (0, 8, 8)
    );
}

#[test]
fn n_zero_only_moves_and_m_zero_only_wakes() {
    let t = Arc::new(Table::new(64));
    let (words, a, b) = words_on_different_queues(&t);
    let hs = spawn_waiters(&t, &words, a, 3);
    wait_depth(&t, t.bucket_of(&words[a]), 3);
    assert_eq!(
        t.requeue(&words[a], 0, &words[b], 2),
        Requeued { woken: 0, moved: 2 }
    );
    assert_eq!(
        t.requeue(&words[a], 5, &words[b], 0),
        Requeued { woken: 1, moved: 0 }
    );
    assert_eq!(
        t.requeue(&words[b], 0, &words[a], 0),
        Requeued { woken: 0, moved: 0 }
    );
    assert_eq!(t.wake(&words[b], 5), 2);
    for h in hs {
        assert_eq!(h.join().unwrap(), Ok(()));
    }
}

#[test]
fn unwait_follows_a_requeued_waiter() {
    let t = Arc::new(Table::new(64));
    let (words, a, b) = words_on_different_queues(&t);
    let (qa, qb) = (t.bucket_of(&words[a]), t.bucket_of(&words[b]));
    let (t2, w2) = (t.clone(), words.clone());
    let h = thread::spawn(move || t2.wait(&w2[a], 0, Some(Duration::from_millis(100))));
    wait_depth(&t, qa, 1);
    assert_eq!(
        t.requeue(&words[a], 0, &words[b], 1),
        Requeued { woken: 0, moved: 1 }
    );
    assert_eq!(h.join().unwrap(), Err(WaitError::TimedOut));
    let (sa, sb) = (t.queue_stats(qa).unwrap(), t.queue_stats(qb).unwrap());
    assert_eq!(
        (sa.depth, sb.depth),
        (0, 0),
        "the waiter unlinked itself from b"
    );
    assert_eq!((sa.counters.timeouts, sb.counters.timeouts), (0, 1));
}

#[test]
fn table_sizes() {
    assert!(Table::try_new(0).is_err());
    assert!(Table::try_new(3).is_err());
    assert!(Table::try_new(1 << 17).is_err());
    let e = Table::try_new(48).err().unwrap().to_string();
    assert!(e.contains("power-of-two") && e.contains("48"), "{e}");
    let one = Table::new(1);
    let w = AtomicU32::new(0);
    assert_eq!(one.bucket_of(&w), 0);
    let t = Table::new(64);
    let words: Vec<AtomicU32> = (0..1024).map(AtomicU32::new).collect();
    let mut seen = std::collections::HashSet::new();
    for w in &words {
        let b = t.bucket_of(w);
        assert!(b < 64);
        seen.insert(b);
    }
    assert_eq!(seen.len(), 64, "1024 consecutive words cover all 64 queues");
    assert_eq!(
        futex_core::default_table().len(),
        futex_core::DEFAULT_QUEUES
    );
    assert_eq!(futex_core::default_table().id(), 0);
}

#[test]
fn free_functions_use_the_default_table() {
    let w = Arc::new(AtomicU32::new(0));
    let w2 = w.clone();
    let h = thread::spawn(move || futex_core::wait(&w2, 0, Some(Duration::from_secs(10))));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        w.store(0, Ordering::Relaxed);
        if futex_core::wake(&w, 1) == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "waiter never showed up");
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.join().unwrap(), Ok(()));
}
