//! Kernel futex events: the decoding of what the eBPF programs send (samples and process events through
//! the ring, [`RawEvent`]) and keep (the aggregates they count in maps, [`RawAgg`], read as
//! differences), all defined in `ebpf/futex_abi.h`, into [`Event`]s. Pure code, tested without
//! privileges; the loader is in [`crate::ebpf`].

use crate::ebpf::abi::{
    RawAgg, RawAggKey, RawEdge, RawEdgeKey, RawEvent, RawHist, FT_EXIT, FT_FORK, FT_HASH_GLOBAL,
    FT_HASH_SHARED, FT_SAMPLE, FT_USDT, LAT_SCHED_DELAY,
};
use crate::event::{
    Counts, Event, EventKind, FutexOp, HistOf, KernelHash, OpClass, Outcome, Waker,
};

/// The operation number the eBPF side sends: a `futex(2)` command (`op & 127`, the kernel's numbers), or
/// `FT_OP_FUTEX2_*` for the futex2 syscalls.
pub fn futex_op(op: u8) -> FutexOp {
    use crate::ebpf::abi::*;
    const COMMANDS: [(i32, FutexOp); 14] = [
        (libc::FUTEX_WAIT, FutexOp::Wait),
        (libc::FUTEX_WAKE, FutexOp::Wake),
        (libc::FUTEX_FD, FutexOp::Fd),
        (libc::FUTEX_REQUEUE, FutexOp::Requeue),
        (libc::FUTEX_CMP_REQUEUE, FutexOp::CmpRequeue),
        (libc::FUTEX_WAKE_OP, FutexOp::WakeOp),
        (libc::FUTEX_LOCK_PI, FutexOp::LockPi),
        (libc::FUTEX_UNLOCK_PI, FutexOp::UnlockPi),
        (libc::FUTEX_TRYLOCK_PI, FutexOp::TrylockPi),
        (libc::FUTEX_WAIT_BITSET, FutexOp::WaitBitset),
        (libc::FUTEX_WAKE_BITSET, FutexOp::WakeBitset),
        (libc::FUTEX_WAIT_REQUEUE_PI, FutexOp::WaitRequeuePi),
        (libc::FUTEX_CMP_REQUEUE_PI, FutexOp::CmpRequeuePi),
        (libc::FUTEX_LOCK_PI2, FutexOp::LockPi2),
    ];
    match op {
        FT_OP_FUTEX2_WAIT => FutexOp::Futex2Wait,
        FT_OP_FUTEX2_WAKE => FutexOp::Futex2Wake,
        FT_OP_FUTEX2_REQUEUE => FutexOp::Futex2Requeue,
        FT_OP_FUTEX2_WAITV => FutexOp::Futex2Waitv,
        _ => COMMANDS
            .iter()
            .find(|(c, _)| *c == i32::from(op))
            .map_or(FutexOp::Unknown, |(_, o)| *o),
    }
}

/// How a wait ended, as the eBPF side classified its return value (`FT_OUT_*`: the one place it is
/// read is `wait_outcome` in futex.bpf.c).
pub fn outcome(out: u8) -> Outcome {
    use crate::ebpf::abi::*;
    match out {
        FT_OUT_WOKEN => Outcome::Woken,
        FT_OUT_EAGAIN => Outcome::Mismatch,
        FT_OUT_TIMEDOUT => Outcome::TimedOut,
        FT_OUT_INTERRUPTED => Outcome::Interrupted,
        FT_OUT_ACQUIRED => Outcome::Acquired,
        _ => Outcome::Failed,
    }
}

/// A ring-buffer record as an event (`None`: a kind this version does not know, or a futex-core probe of
/// another table).
pub fn decode(r: &RawEvent) -> Option<Event> {
    let kind = match r.kind {
        FT_SAMPLE => {
            let outcome = outcome(r.outcome);
            let woken = outcome == Outcome::Woken;
            let final_addr = if r.final_uaddr != 0 {
                r.final_uaddr
            } else {
                r.uaddr
            };
            EventKind::WaitSample {
                addr: r.uaddr,
                final_addr,
                op: futex_op(r.op),
                outcome,
                wait_ns: r.ts.saturating_sub(r.start_ts),
                wake_to_return_ns: (woken && r.wake_ts != 0 && r.waker_tid != 0)
                    .then(|| r.ts.saturating_sub(r.wake_ts)),
                sched_delay_ns: (r.wakeup_ts != 0 && r.oncpu_ts >= r.wakeup_ts)
                    .then(|| r.oncpu_ts - r.wakeup_ts),
                waker: (woken && r.waker_tid != 0).then(|| Waker {
                    tid: r.waker_tid,
                    pid: r.waker_pid,
                    stack: (r.waker_stack_id >= 0).then_some(r.waker_stack_id as u32),
                }),
                stack: (r.stack_id >= 0).then_some(r.stack_id as u32),
                stack_rate_ns: r.stack_rate,
                waker_every: r.waker_every,
            }
        }
        FT_EXIT => EventKind::Exit,
        FT_FORK => EventKind::Fork { child: r.val },
        FT_USDT => return usdt_event(r),
        _ => return None,
    };
    Some(Event {
        ts_ns: r.ts,
        pid: r.pid,
        tid: r.tid,
        kind,
    })
}

/// The events that say what changed in one key of the `aggs` map between two reads (`old`: the
/// previous read, zeros for a new key), stamped `ts`: a [`EventKind::Counts`] and, for waits that
/// slept, one [`EventKind::Hist`] per slot that grew. Nothing when nothing changed.
pub fn agg_delta(ts: u64, key: &RawAggKey, new: &RawAgg, old: &RawAgg, out: &mut Vec<Event>) {
    if new == old {
        return;
    }
    let d = |n: u64, o: u64| n.saturating_sub(o);
    let op = futex_op(key.op);
    let mut counts = Counts {
        calls: d(new.calls, old.calls),
        blocked: d(new.blocked, old.blocked),
        mismatches: d(new.eagain, old.eagain),
        timeouts: d(new.timeouts, old.timeouts),
        interrupted: d(new.interrupted, old.interrupted),
        failed: d(new.failed, old.failed),
        acquired: d(new.acquired, old.acquired),
        woken: d(new.woken, old.woken),
        moved: d(new.moved, old.moved),
        wait_ns: d(new.wait_ns, old.wait_ns),
    };
    if op.class() == OpClass::Wait {
        // Not kept for waits in the kernel (one atomic add less per wait): their outcomes add up to it.
        let c = &counts;
        counts.calls = c.woken + c.mismatches + c.timeouts + c.interrupted + c.failed + c.acquired;
    }
    let ev = |kind| Event {
        ts_ns: ts,
        pid: key.pid,
        tid: 0,
        kind,
    };
    let hash = kernel_hash(key.uaddr, key.hash_shift);
    out.push(ev(EventKind::Counts {
        addr: key.uaddr,
        op,
        hash: Some(hash),
        counts,
    }));
    let spins = d(new.spins, old.spins);
    if spins > 0 {
        out.push(ev(EventKind::BucketSpins {
            addr: key.uaddr,
            op,
            hash,
            spins,
            spin_ns: d(new.spin_ns, old.spin_ns),
            several_callers: new.several != 0,
        }));
    }
    let of = HistOf::Wait { addr: key.uaddr };
    let (sum, max) = (counts.wait_ns, new.max_wait_ns);
    hist_delta(ts, key.pid, of, (&new.hist, &old.hist), (sum, max), out);
}

/// One [`EventKind::Hist`] per slot that grew between `slots.1` (the last read) and `slots.0`, the
/// `sum` and `max` of the new values on the first of them.
fn hist_delta(
    ts: u64,
    pid: u32,
    of: HistOf,
    slots: (&[u64], &[u64]),
    (mut sum, mut max): (u64, u64),
    out: &mut Vec<Event>,
) {
    for (slot, (&n, &o)) in slots.0.iter().zip(slots.1).enumerate() {
        if n > o {
            out.push(Event {
                ts_ns: ts,
                pid,
                tid: 0,
                kind: EventKind::Hist {
                    of,
                    slot: slot as u8,
                    count: n - o,
                    sum: std::mem::take(&mut sum),
                    max: std::mem::take(&mut max),
                },
            });
        }
    }
}

/// The kernel futex hash table of the word at `addr`, from what the eBPF side recorded: `FT_HASH_GLOBAL`,
/// or log2 of the slots of the process's private hash.
pub fn kernel_hash(addr: u64, hash_shift: u8) -> KernelHash {
    if hash_shift == FT_HASH_SHARED {
        return KernelHash::Shared;
    }
    if hash_shift == FT_HASH_GLOBAL || hash_shift >= 32 {
        return KernelHash::Global;
    }
    KernelHash::private_of(addr, 1 << hash_shift)
}

/// As [`agg_delta`], for a key of the `edges` map.
pub fn edge_delta(ts: u64, key: &RawEdgeKey, new: &RawEdge, old: &RawEdge, out: &mut Vec<Event>) {
    if new == old {
        return;
    }
    out.push(Event {
        ts_ns: ts,
        pid: key.pid,
        tid: 0,
        kind: EventKind::Moved {
            from: key.from,
            to: key.to,
            requeues: new.requeues.saturating_sub(old.requeues),
            moved: new.moved.saturating_sub(old.moved),
            woken: new.woken.saturating_sub(old.woken),
        },
    });
}

/// As [`agg_delta`], for a whole-trace latency histogram (`LAT_*`), summed over CPUs.
pub fn latency_delta(ts: u64, lat: u32, new: &RawHist, old: &RawHist, out: &mut Vec<Event>) {
    if new.count == old.count {
        return;
    }
    let of = if lat == LAT_SCHED_DELAY {
        HistOf::SchedDelay
    } else {
        HistOf::WakeToReturn
    };
    let sum_max = (new.sum.saturating_sub(old.sum), new.max);
    hist_delta(ts, 0, of, (&new.slot, &old.slot), sum_max, out);
}

/// A futex-core probe's arguments as an event, decoded by futex-core's own encoding
/// ([`futex_core::probes`]). Only the process-wide default table (id 0): its queues are the model's
/// buckets; events of other tables are not shown.
fn usdt_event(r: &RawEvent) -> Option<Event> {
    let probe = futex_core::probes::Probe::from_u8(r.op)?;
    let (table, kind) = futex_core::probes::decode(probe, r.usdt_args())?;
    if table != 0 {
        return None;
    }
    let core = futex_core::QueueEvent {
        ts_ns: r.ts,
        tid: r.tid,
        table,
        kind,
        stack: 0,
    };
    let stack = (r.stack_id >= 0).then_some(r.stack_id as u32);
    Some(Event::from_core(r.pid, &core).with_stack(stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_shift_names_the_table() {
        let addr = 0x5640_c3be_f454u64;
        assert_eq!(kernel_hash(addr, 4), KernelHash::private_of(addr, 16));
        assert_eq!(kernel_hash(addr, FT_HASH_GLOBAL), KernelHash::Global);
        assert_eq!(kernel_hash(addr, FT_HASH_SHARED), KernelHash::Shared);
    }
    use crate::ebpf::abi::{FT_OUT_EAGAIN, FT_OUT_TIMEDOUT, FT_OUT_WOKEN, LAT_WAKE_TO_RETURN};
    use crate::event::WaitKind;

    fn sample(outcome: u8) -> RawEvent {
        RawEvent {
            kind: FT_SAMPLE,
            op: libc::FUTEX_WAIT_BITSET as u8,
            ts: 5_000,
            start_ts: 1_000,
            uaddr: 0x1000,
            pid: 7,
            tid: 8,
            stack_id: 3,
            waker_stack_id: -1,
            outcome,
            stack_rate: 10_000,
            ..RawEvent::default()
        }
    }

    #[test]
    fn a_woken_sample_has_its_waker_latencies_and_weights() {
        let mut r = sample(FT_OUT_WOKEN);
        r.wake_ts = 4_000;
        r.wakeup_ts = 4_100;
        r.oncpu_ts = 4_600;
        r.waker_tid = 9;
        r.waker_stack_id = 12;
        r.waker_every = 4;
        r.final_uaddr = 0x2000;
        let e = decode(&r).unwrap();
        assert_eq!((e.pid, e.tid, e.ts_ns), (7, 8, 5_000));
        assert_eq!(
            e.kind,
            EventKind::WaitSample {
                addr: 0x1000,
                final_addr: 0x2000,
                op: FutexOp::WaitBitset,
                outcome: Outcome::Woken,
                wait_ns: 4_000,
                wake_to_return_ns: Some(1_000),
                sched_delay_ns: Some(500),
                waker: Some(Waker {
                    tid: 9,
                    stack: Some(12),
                    pid: 0,
                }),
                stack: Some(3),
                stack_rate_ns: 10_000,
                waker_every: 4,
            }
        );
    }

    #[test]
    fn outcomes_come_from_the_kernel_side() {
        for (out, want) in [
            (FT_OUT_WOKEN, Outcome::Woken),
            (FT_OUT_EAGAIN, Outcome::Mismatch),
            (FT_OUT_TIMEDOUT, Outcome::TimedOut),
            (crate::ebpf::abi::FT_OUT_INTERRUPTED, Outcome::Interrupted),
            (crate::ebpf::abi::FT_OUT_FAILED, Outcome::Failed),
            (crate::ebpf::abi::FT_OUT_ACQUIRED, Outcome::Acquired),
        ] {
            assert_eq!(outcome(out), want);
        }
        // A wait that timed out has no waker, whatever ran on its CPU.
        let EventKind::WaitSample {
            waker,
            wake_to_return_ns,
            ..
        } = decode(&sample(FT_OUT_TIMEDOUT)).unwrap().kind
        else {
            panic!()
        };
        assert_eq!((waker, wake_to_return_ns), (None, None));
    }

    #[test]
    fn aggregates_are_sent_as_differences() {
        let key = RawAggKey {
            uaddr: 0x1000,
            pid: 7,
            op: libc::FUTEX_WAIT as u8,
            ..RawAggKey::default()
        };
        let mut old = RawAgg {
            woken: 2,
            blocked: 1,
            wait_ns: 500,
            max_wait_ns: 500,
            ..RawAgg::default()
        };
        old.hist[8] = 1;
        let mut new = old;
        let mut out = Vec::new();
        agg_delta(1, &key, &new, &old, &mut out);
        assert!(out.is_empty(), "nothing changed, nothing sent");
        new.blocked = 3;
        new.eagain = 1;
        new.woken = 4;
        new.wait_ns = 500 + 3_000;
        new.max_wait_ns = 2_000;
        new.hist[8] += 1;
        new.hist[10] += 1;
        agg_delta(9, &key, &new, &old, &mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!((out[0].pid, out[0].ts_ns), (7, 9));
        assert_eq!(
            out[0].kind,
            EventKind::Counts {
                addr: 0x1000,
                op: FutexOp::Wait,
                hash: Some(KernelHash::Global),
                counts: Counts {
                    calls: 3,
                    blocked: 2,
                    mismatches: 1,
                    woken: 2,
                    wait_ns: 3_000,
                    ..Counts::default()
                }
            }
        );
        let of = HistOf::Wait { addr: 0x1000 };
        assert_eq!(
            out[1].kind,
            EventKind::Hist {
                of,
                slot: 8,
                count: 1,
                sum: 3_000,
                max: 2_000
            }
        );
        assert_eq!(
            out[2].kind,
            EventKind::Hist {
                of,
                slot: 10,
                count: 1,
                sum: 0,
                max: 0
            }
        );
        // Folded, the model has what the kernel counted.
        let mut m = crate::model::Model::new(64, crate::model::BucketOrigin::FutexCoreHash);
        m.extend(&out);
        let a = &m.addresses[&(7, 0x1000)];
        assert_eq!(
            (a.waits, a.waits_blocked, a.mismatches, a.woken, a.waiting),
            (3, 2, 1, 2, 0)
        );
        assert_eq!(
            (a.wait_ns.count, a.wait_ns.sum, a.wait_ns.max),
            (2, 3_000, 2_000)
        );
        assert_eq!(a.kind(), WaitKind::Kernel);
        assert_eq!(m.wait_contention.count, 2);
        assert_eq!((m.totals.waits, m.totals.waits_blocked), (3, 2));
    }

    #[test]
    fn edges_and_latencies_are_sent_as_differences() {
        let key = RawEdgeKey {
            from: 1,
            to: 2,
            pid: 7,
            pad: 0,
        };
        let old = RawEdge {
            requeues: 1,
            moved: 3,
            woken: 1,
        };
        let new = RawEdge {
            requeues: 2,
            moved: 10,
            woken: 2,
        };
        let mut out = Vec::new();
        edge_delta(5, &key, &new, &old, &mut out);
        assert_eq!(
            out[0].kind,
            EventKind::Moved {
                from: 1,
                to: 2,
                requeues: 1,
                moved: 7,
                woken: 1
            }
        );
        let mut h = RawHist::default();
        let old = h;
        h.count = 2;
        h.sum = 300;
        h.max = 200;
        h.slot[6] = 1;
        h.slot[7] = 1;
        out.clear();
        latency_delta(5, LAT_WAKE_TO_RETURN, &h, &old, &mut out);
        let mut m = crate::model::Model::new(64, crate::model::BucketOrigin::FutexCoreHash);
        m.extend(&out);
        assert_eq!(
            (
                m.wake_to_return.count,
                m.wake_to_return.sum,
                m.wake_to_return.max
            ),
            (2, 300, 200)
        );
        assert_eq!(m.wake_to_return.percentile(1.0), 200);
    }

    #[test]
    fn usdt_records_follow_probes_md() {
        let usdt = |op: u8, a: [u64; 6]| RawEvent {
            kind: FT_USDT,
            op,
            ts: 9,
            pid: 1,
            tid: 2,
            uaddr: a[0],
            uaddr2: a[1],
            wake_ts: a[2],
            wakeup_ts: a[3],
            oncpu_ts: a[4],
            final_uaddr: a[5],
            stack_id: 4,
            ..RawEvent::default()
        };
        // wait_end of a Mutex waiter, woken, requeued twice, on the default table.
        let e = decode(&usdt(1, [0x10, 7, 1 | 2 << 16, 500, 40, 0x20])).unwrap();
        let EventKind::WaitEnd {
            addr,
            final_addr,
            bucket,
            wait,
            outcome,
            wait_ns,
            wake_to_return_ns,
            requeued,
            kernel,
            ..
        } = e.kind
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (
                addr,
                final_addr,
                bucket,
                wait,
                outcome,
                wait_ns,
                wake_to_return_ns,
                requeued
            ),
            (
                0x10,
                0x20,
                7,
                WaitKind::Mutex,
                Outcome::Woken,
                500,
                Some(40),
                2
            )
        );
        assert_eq!(kernel.and_then(|k| k.stack), Some(4));
        // requeue: queues and woken/moved packed in pairs.
        let e = decode(&usdt(3, [0x10, 0x20, 2, 3 | 9 << 32, 1 | 4 << 32, 0])).unwrap();
        assert!(matches!(
            e.kind,
            EventKind::Requeue {
                from_bucket: 3,
                to_bucket: 9,
                woken: 1,
                moved: 4,
                wait: WaitKind::Condvar,
                ..
            }
        ));
        // Another table's events are not the model's buckets.
        assert_eq!(decode(&usdt(0, [0x10, 7, 1 << 32, 0, 0, 0])), None);
    }
}
