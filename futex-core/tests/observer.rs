//! The observer delivers one event per counted slow-path action: per-queue counts rebuilt from the events
//! equal the table's own statistics exactly when nothing was dropped.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use futex_core::{QueueEventKind, QueueSnapshot, SubscribeError, Table, WaitOutcome};

fn rebuild(events: &[futex_core::QueueEvent]) -> HashMap<usize, QueueSnapshot> {
    let mut m: HashMap<usize, QueueSnapshot> = HashMap::new();
    for e in events {
        match e.kind {
            QueueEventKind::WaitStart { bucket: queue, .. } => {
                m.entry(queue as usize).or_default().counters.waits += 1
            }
            QueueEventKind::WaitEnd {
                bucket: queue,
                outcome,
                ..
            } => {
                let q = m.entry(queue as usize).or_default();
                match outcome {
                    WaitOutcome::TimedOut => q.counters.timeouts += 1,
                    WaitOutcome::Mismatch => q.counters.mismatches += 1,
                    WaitOutcome::Woken => {}
                }
            }
            QueueEventKind::Wake {
                bucket: queue,
                woken,
                collisions,
                ..
            } => {
                let q = m.entry(queue as usize).or_default();
                q.counters.wakes += 1;
                q.counters.woken += woken as u64;
                q.counters.collisions += collisions as u64;
            }
            QueueEventKind::Requeue {
                from_bucket: from_queue,
                to_bucket: to_queue,
                woken,
                moved,
                collisions,
                ..
            } => {
                let q = m.entry(from_queue as usize).or_default();
                q.counters.requeues += 1;
                q.counters.woken += woken as u64;
                q.counters.requeued_out += moved as u64;
                q.counters.collisions += collisions as u64;
                m.entry(to_queue as usize).or_default().counters.requeued_in += moved as u64;
            }
            QueueEventKind::LockContended {
                bucket: queue,
                wait_ns,
                ..
            } => {
                let q = m.entry(queue as usize).or_default();
                q.counters.lock_contended += 1;
                q.counters.lock_wait_ns += wait_ns;
            }
        }
    }
    m
}

#[test]
fn events_rebuild_the_statistics_exactly() {
    let t = Arc::new(Table::new(4)); // few queues: collisions and lock contention happen
    let sub = t.subscribe(1 << 20).unwrap();
    assert_eq!(t.subscribe(16).err(), Some(SubscribeError::Busy));
    let words: Arc<Vec<AtomicU32>> = Arc::new((0..16).map(|_| AtomicU32::new(0)).collect());
    let hs: Vec<_> = (0..6)
        .map(|k| {
            let (t, w) = (t.clone(), words.clone());
            thread::spawn(move || {
                for i in 0..2_000usize {
                    let a = &w[(i * 7 + k) % 16];
                    match i % 4 {
                        0 => drop(t.wait(a, 0, Some(Duration::from_micros(50)))),
                        1 => drop(t.wake(a, 2)),
                        2 => drop(t.requeue(a, 1, &w[(i + k + 1) % 16], 3)),
                        _ => drop(t.wait(a, 1, None)), // mismatch: the words stay 0
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // Leftover waiters cannot exist: every blocking wait had a timeout.
    let mut evs = Vec::new();
    sub.drain_into(&mut evs);
    assert_eq!(sub.dropped(), 0);
    let rebuilt = rebuild(&evs);
    for s in t.stats() {
        let r = rebuilt.get(&s.index).copied().unwrap_or_default();
        let mut expect = s;
        expect.index = 0;
        expect.depth = 0;
        expect.max_depth = 0;
        assert_eq!(r, expect, "queue {}", s.index);
        assert_eq!(s.depth, 0);
    }
    let total_waits: u64 = t.stats().iter().map(|s| s.counters.waits).sum();
    assert_eq!(
        total_waits,
        6 * 1000,
        "two of every four operations are waits"
    );
    // Timestamps and thread ids are real.
    assert!(evs
        .iter()
        .all(|e| e.ts_ns > 0 && e.tid > 0 && e.table == t.id()));
}

#[test]
fn overflow_is_counted_not_blocking() {
    let t = Table::new(64);
    let sub = t.subscribe(8).unwrap();
    let w = AtomicU32::new(0);
    for _ in 0..100 {
        t.wake(&w, 1);
    }
    assert_eq!(sub.len(), 8);
    assert_eq!(sub.dropped(), 92);
    drop(sub);
    // After unsubscribing, nothing is recorded; a new subscription starts empty.
    t.wake(&w, 1);
    let sub = t.subscribe(8).unwrap();
    assert!(sub.is_empty());
    assert_eq!(sub.dropped(), 0);
    assert_eq!(t.subscribe(0).err(), Some(SubscribeError::ZeroCapacity));
}

#[inline(never)]
fn marker_waiting_function(t: &Table, w: &AtomicU32) {
    // Times out (nobody wakes it): a wait that slept.
    let _ = std::hint::black_box(t.wait(w, 0, Some(Duration::from_millis(2))));
}

#[test]
fn a_wait_that_slept_names_its_stack_and_a_mismatch_has_none() {
    let t = Table::new(4);
    let sub = t.subscribe(64).unwrap();
    let w = AtomicU32::new(0);
    marker_waiting_function(&t, &w);
    let _ = t.wait(&w, 1, None); // mismatch: returns at once
    let mut evs = Vec::new();
    sub.drain_into(&mut evs);
    let mut stacks = Vec::new();
    sub.drain_stacks_into(&mut stacks);
    let ends: Vec<_> = evs
        .iter()
        .filter_map(|e| match e.kind {
            QueueEventKind::WaitEnd { outcome, .. } => Some((outcome, e.stack)),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2, "{evs:?}");
    let (slept, mismatch) = (ends[0], ends[1]);
    assert_eq!(slept.0, WaitOutcome::TimedOut);
    assert_eq!(mismatch, (WaitOutcome::Mismatch, 0));
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].id, slept.1);
    assert_ne!(slept.1, 0);
    // The walk reaches this test through the waiting function: a return address lies just after
    // the call in each (this workspace builds with frame pointers).
    let frames = stacks[0].frames();
    let near =
        |start: usize, within: usize| frames.iter().any(|&r| r > start && r - start < within);
    let waiting = marker_waiting_function as *const () as usize;
    let test = a_wait_that_slept_names_its_stack_and_a_mismatch_has_none as *const () as usize;
    assert!(near(waiting, 256), "{frames:x?} vs {waiting:#x}");
    assert!(near(test, 4096), "{frames:x?} vs {test:#x}");
    assert_eq!(sub.stacks_dropped(), 0);
}
