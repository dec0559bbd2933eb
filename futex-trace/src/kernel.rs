//! Kernel futex events: the decoding of the records the eBPF programs send ([`RawEvent`], defined in
//! `ebpf/futex_abi.h`) into [`Event`]s. Pure code, tested without privileges; the loader is in
//! [`crate::ebpf`].

use crate::abi::{RawEvent, FT_EXIT, FT_FORK, FT_FUTEX, FT_USDT, FT_WAIT_BEGIN};
use crate::event::{Event, EventKind, FutexOp, Kernel, Outcome, WaitKind, Waker};

const FUTEX_PRIVATE_FLAG: u32 = libc::FUTEX_PRIVATE_FLAG as u32;
const EAGAIN: i64 = libc::EAGAIN as i64;
const EINTR: i64 = libc::EINTR as i64;
const ETIMEDOUT: i64 = libc::ETIMEDOUT as i64;
/// The kernel's internal restart codes (ERESTARTSYS..ERESTART_RESTARTBLOCK), seen at syscall exit when
/// a signal interrupts a sleep.
const ERESTART: std::ops::RangeInclusive<i64> = 512..=516;

/// The operation number the eBPF side sends: a `futex(2)` command (`op & 127`, the kernel's numbers), or
/// `FT_OP_FUTEX2_*` for the futex2 syscalls.
pub fn futex_op(op: u8) -> FutexOp {
    use crate::abi::*;
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

/// What an operation does, for the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpClass {
    Wait,
    Wake,
    Requeue,
    Other,
}

impl FutexOp {
    pub fn class(self) -> OpClass {
        use FutexOp::*;
        match self {
            Wait | WaitBitset | WaitRequeuePi | LockPi | LockPi2 | Futex2Wait | Futex2Waitv => {
                OpClass::Wait
            }
            Wake | WakeBitset | WakeOp | UnlockPi | Futex2Wake => OpClass::Wake,
            Requeue | CmpRequeue | CmpRequeuePi | Futex2Requeue => OpClass::Requeue,
            Fd | TrylockPi | Unknown => OpClass::Other,
        }
    }
}

/// How a wait's return value reads.
pub fn wait_outcome(ret: i64) -> Outcome {
    match ret {
        r if r >= 0 => Outcome::Woken, // 0, or futex_waitv's index of the word that woke it
        r if r == -EAGAIN => Outcome::Mismatch,
        r if r == -ETIMEDOUT => Outcome::TimedOut,
        r if r == -EINTR || ERESTART.contains(&-r) => Outcome::Interrupted,
        // Anything else failed without sleeping (EINVAL, EFAULT, EDEADLK, ENOSYS, ...).
        _ => Outcome::Failed,
    }
}

/// Turns raw records into events. Buckets are futex-core's hash of each address over `buckets` queues.
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    pub buckets: usize,
}

impl Decoder {
    fn bucket(&self, addr: u64) -> u32 {
        crate::bucket_of(addr, self.buckets) as u32
    }

    pub fn decode(&self, r: &RawEvent) -> Option<Event> {
        let stack = (r.stack_id >= 0).then_some(r.stack_id as u32);
        let op = futex_op(r.op);
        let kernel = Some(Kernel {
            op: Some(op),
            private: r.flags & FUTEX_PRIVATE_FLAG != 0,
            stack,
        });
        let kind = match r.kind {
            FT_WAIT_BEGIN => EventKind::WaitStart {
                addr: r.uaddr,
                bucket: self.bucket(r.uaddr),
                wait: WaitKind::Kernel,
                kernel,
            },
            FT_FUTEX => match op.class() {
                OpClass::Wait => {
                    let mut outcome = wait_outcome(r.ret);
                    // FUTEX_LOCK_PI returns 0 whether it slept or took the lock at once.
                    if outcome == Outcome::Woken
                        && matches!(op, FutexOp::LockPi | FutexOp::LockPi2)
                        && r.slept == 0
                    {
                        outcome = Outcome::Acquired;
                    }
                    let final_addr = if r.final_uaddr != 0 {
                        r.final_uaddr
                    } else {
                        r.uaddr
                    };
                    let woken = outcome == Outcome::Woken;
                    EventKind::WaitEnd {
                        addr: r.uaddr,
                        final_addr,
                        bucket: self.bucket(final_addr),
                        wait: WaitKind::Kernel,
                        outcome,
                        wait_ns: r.ts.saturating_sub(r.start_ts),
                        wake_to_return_ns: (woken && r.wake_ts != 0 && r.waker_tid != 0)
                            .then(|| r.ts.saturating_sub(r.wake_ts)),
                        requeued: u32::from(final_addr != r.uaddr),
                        sched_delay_ns: (r.wakeup_ts != 0 && r.oncpu_ts >= r.wakeup_ts)
                            .then(|| r.oncpu_ts - r.wakeup_ts),
                        waker: (woken && r.waker_tid != 0).then(|| Waker {
                            tid: r.waker_tid,
                            stack: (r.waker_stack_id >= 0).then_some(r.waker_stack_id as u32),
                        }),
                        kernel,
                    }
                }
                OpClass::Wake if r.ret >= 0 => EventKind::Wake {
                    addr: r.uaddr,
                    bucket: self.bucket(r.uaddr),
                    wait: WaitKind::Kernel,
                    requested: r.val,
                    // UNLOCK_PI returns 0 whether or not it woke anyone: count the wakeups seen.
                    woken: if op == FutexOp::UnlockPi {
                        r.woken_seen
                    } else {
                        r.ret as u32
                    },
                    collisions: 0,
                    kernel,
                },
                OpClass::Requeue if r.ret >= 0 => {
                    // The kernel returns woken + moved. It wakes up to nr_wake first, except for
                    // CMP_REQUEUE_PI, whose top waiter is woken only if it can take the PI lock at
                    // once (else it is moved too): there, count the wakeups seen.
                    let total = r.ret as u32;
                    let woken = if op == FutexOp::CmpRequeuePi {
                        r.woken_seen.min(total)
                    } else {
                        total.min(r.val)
                    };
                    EventKind::Requeue {
                        from: r.uaddr,
                        to: r.uaddr2,
                        from_bucket: self.bucket(r.uaddr),
                        to_bucket: self.bucket(r.uaddr2),
                        wait: WaitKind::Kernel,
                        woken,
                        moved: total - woken,
                        collisions: 0,
                        kernel,
                    }
                }
                _ => EventKind::OtherOp {
                    addr: r.uaddr,
                    op,
                    ret: r.ret,
                },
            },
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
    let core = futex_core::Event {
        ts_ns: r.ts,
        tid: r.tid,
        table,
        kind,
    };
    let stack = (r.stack_id >= 0).then_some(r.stack_id as u32);
    Some(Event::from_core(r.pid, &core).with_stack(stack))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u8, op: u8, ret: i64) -> RawEvent {
        RawEvent {
            kind,
            op,
            ret,
            ts: 5_000,
            start_ts: 1_000,
            uaddr: 0x1000,
            uaddr2: 0x2000,
            pid: 7,
            tid: 8,
            stack_id: 3,
            waker_stack_id: -1,
            flags: op as u32 | FUTEX_PRIVATE_FLAG,
            ..RawEvent::default()
        }
    }

    const D: Decoder = Decoder { buckets: 64 };

    #[test]
    fn wait_outcomes() {
        let cases = [
            (0, Outcome::Woken),
            (-11, Outcome::Mismatch),
            (-110, Outcome::TimedOut),
            (-4, Outcome::Interrupted),
            (-512, Outcome::Interrupted),
            (-22, Outcome::Failed),
        ];
        for (ret, want) in cases {
            let e = D.decode(&raw(FT_FUTEX, 0, ret)).unwrap();
            match e.kind {
                EventKind::WaitEnd {
                    outcome, wait_ns, ..
                } => {
                    assert_eq!(outcome, want, "ret {ret}");
                    assert_eq!(wait_ns, 4_000);
                }
                k => panic!("{k:?}"),
            }
        }
    }

    #[test]
    fn woken_waiter_has_waker_latency_and_final_address() {
        let mut r = raw(FT_FUTEX, 9, 0);
        r.wake_ts = 4_000;
        r.wakeup_ts = 4_100;
        r.oncpu_ts = 4_600;
        r.waker_tid = 9;
        r.waker_stack_id = 12;
        r.final_uaddr = 0x2000;
        let e = D.decode(&r).unwrap();
        let EventKind::WaitEnd {
            addr,
            final_addr,
            bucket,
            wake_to_return_ns,
            sched_delay_ns,
            waker,
            requeued,
            kernel,
            ..
        } = e.kind
        else {
            panic!("{e:?}")
        };
        assert_eq!((addr, final_addr, requeued), (0x1000, 0x2000, 1));
        assert_eq!(bucket as usize, crate::bucket_of(0x2000, 64));
        assert_eq!(wake_to_return_ns, Some(1_000));
        assert_eq!(sched_delay_ns, Some(500));
        assert_eq!(
            waker,
            Some(Waker {
                tid: 9,
                stack: Some(12)
            })
        );
        let k = kernel.unwrap();
        assert_eq!(
            (k.op, k.private, k.stack),
            (Some(FutexOp::WaitBitset), true, Some(3))
        );
    }

    #[test]
    fn requeue_splits_woken_and_moved() {
        let mut r = raw(FT_FUTEX, 4, 5); // CMP_REQUEUE returned 5 = woken + moved
        r.val = 1; // nr_wake
        r.val2 = i32::MAX as u32;
        let EventKind::Requeue {
            from,
            to,
            woken,
            moved,
            ..
        } = D.decode(&r).unwrap().kind
        else {
            panic!()
        };
        assert_eq!((from, to, woken, moved), (0x1000, 0x2000, 1, 4));
        // Fewer waiters than nr_wake: all woken, none moved.
        r.val = 8;
        let EventKind::Requeue { woken, moved, .. } = D.decode(&r).unwrap().kind else {
            panic!()
        };
        assert_eq!((woken, moved), (5, 0));
        // CMP_REQUEUE_PI: the top waiter is woken only if it took the lock; the wakeups seen say so.
        let mut pi = raw(FT_FUTEX, libc::FUTEX_CMP_REQUEUE_PI as u8, 5);
        pi.val = 1;
        pi.woken_seen = 0;
        let EventKind::Requeue { woken, moved, .. } = D.decode(&pi).unwrap().kind else {
            panic!()
        };
        assert_eq!((woken, moved), (0, 5));
        pi.woken_seen = 1;
        let EventKind::Requeue { woken, moved, .. } = D.decode(&pi).unwrap().kind else {
            panic!()
        };
        assert_eq!((woken, moved), (1, 4));
    }

    #[test]
    fn a_pi_lock_that_never_slept_was_acquired_not_woken() {
        let mut r = raw(FT_FUTEX, libc::FUTEX_LOCK_PI as u8, 0);
        let outcome = |r: &RawEvent| match D.decode(r).unwrap().kind {
            EventKind::WaitEnd { outcome, .. } => outcome,
            k => panic!("{k:?}"),
        };
        assert_eq!(outcome(&r), Outcome::Acquired);
        assert!(!Outcome::Acquired.blocked());
        r.slept = 1;
        assert_eq!(outcome(&r), Outcome::Woken);
        // A plain wait that returns 0 was woken, slept flag or not.
        assert_eq!(outcome(&raw(FT_FUTEX, 0, 0)), Outcome::Woken);
    }

    #[test]
    fn wakes_failures_and_process_events() {
        let mut r = raw(FT_FUTEX, 1, 3);
        r.val = i32::MAX as u32;
        assert!(matches!(
            D.decode(&r).unwrap().kind,
            EventKind::Wake { woken: 3, .. }
        ));
        let mut u = raw(FT_FUTEX, 7, 0);
        u.woken_seen = 1;
        assert!(matches!(
            D.decode(&u).unwrap().kind,
            EventKind::Wake { woken: 1, .. }
        ));
        assert!(matches!(
            D.decode(&raw(FT_FUTEX, 1, -14)).unwrap().kind,
            EventKind::OtherOp { ret: -14, .. }
        ));
        assert!(matches!(
            D.decode(&raw(FT_FUTEX, 8, 0)).unwrap().kind,
            EventKind::OtherOp {
                op: FutexOp::TrylockPi,
                ..
            }
        ));
        let mut f = raw(FT_FORK, 0, 0);
        f.val = 99;
        assert_eq!(D.decode(&f).unwrap().kind, EventKind::Fork { child: 99 });
        assert_eq!(D.decode(&raw(FT_EXIT, 0, 0)).unwrap().kind, EventKind::Exit);
        assert_eq!(D.decode(&raw(200, 0, 0)), None);
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
        let e = D
            .decode(&usdt(1, [0x10, 7, 1 | 2 << 16, 500, 40, 0x20]))
            .unwrap();
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
        let e = D
            .decode(&usdt(3, [0x10, 0x20, 2, 3 | 9 << 32, 1 | 4 << 32, 0]))
            .unwrap();
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
        assert_eq!(D.decode(&usdt(0, [0x10, 7, 1 << 32, 0, 0, 0])), None);
    }
}
