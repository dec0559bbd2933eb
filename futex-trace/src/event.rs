//! The one event type every source produces (futex-core's observer now; eBPF and recorded traces next).

use serde::{Deserialize, Serialize};

pub use crate::khash::KernelHash;

/// What kind of wait or waker: lock contention (`mutex`, `rw_lock`), condition or idle waits (`condvar`),
/// direct futex calls (`raw`), a kernel futex of another process whose purpose is unknown (`kernel`).
/// Kernel futexes are classified by their stacks (see [`crate::stacks::stack_class`]): `join` (waiting for a thread
/// to end), `semaphore` (a semaphore or barrier), `idle` (a `--idle-frame` rule matched), besides the
/// others. Events carry only the first four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Raw,
    Mutex,
    Condvar,
    Kernel,
    RwLock,
    Join,
    Semaphore,
    Idle,
}

impl WaitKind {
    /// Waits of this kind are idle (waiting for work, a signal or another thread's end), not contention
    /// for a lock.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            WaitKind::Condvar | WaitKind::Join | WaitKind::Semaphore | WaitKind::Idle
        )
    }

    /// Its name in reports (as in JSON).
    pub fn name(self) -> &'static str {
        match self {
            WaitKind::Raw => "raw",
            WaitKind::Mutex => "mutex",
            WaitKind::Condvar => "condvar",
            WaitKind::Kernel => "kernel",
            WaitKind::RwLock => "rw_lock",
            WaitKind::Join => "join",
            WaitKind::Semaphore => "semaphore",
            WaitKind::Idle => "idle",
        }
    }
}

impl From<futex_core::WaitKind> for WaitKind {
    fn from(k: futex_core::WaitKind) -> Self {
        match k {
            futex_core::WaitKind::Raw => WaitKind::Raw,
            futex_core::WaitKind::Mutex => WaitKind::Mutex,
            futex_core::WaitKind::Condvar => WaitKind::Condvar,
        }
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Released by a waker.
    Woken,
    /// The timeout passed.
    TimedOut,
    /// The value had changed: returned without sleeping (`EAGAIN`).
    Mismatch,
    /// A signal ended the sleep (`EINTR`; kernel futexes only).
    Interrupted,
    /// The call failed without sleeping (`EINVAL`, `EFAULT`, `ENOSYS`, ...; kernel futexes only).
    Failed,
    /// A PI lock (`FUTEX_LOCK_PI`) taken at once, without sleeping (kernel futexes only).
    Acquired,
}

impl Outcome {
    /// The wait slept (as opposed to returning at once: value changed, or the call failed).
    pub fn blocked(self) -> bool {
        !matches!(
            self,
            Outcome::Mismatch | Outcome::Failed | Outcome::Acquired
        )
    }
}

/// The futex operation of a kernel event: a `futex(2)` command, or one of the futex2 syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FutexOp {
    Wait,
    Wake,
    Fd,
    Requeue,
    CmpRequeue,
    WakeOp,
    LockPi,
    UnlockPi,
    TrylockPi,
    WaitBitset,
    WakeBitset,
    WaitRequeuePi,
    CmpRequeuePi,
    LockPi2,
    /// futex2: `futex_wait(2)`.
    Futex2Wait,
    /// futex2: `futex_wake(2)`.
    Futex2Wake,
    /// futex2: `futex_requeue(2)`.
    Futex2Requeue,
    /// futex2: `futex_waitv(2)`; the event shows the first word.
    Futex2Waitv,
    Unknown,
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

impl From<futex_core::WaitOutcome> for Outcome {
    fn from(o: futex_core::WaitOutcome) -> Self {
        match o {
            futex_core::WaitOutcome::Woken => Outcome::Woken,
            futex_core::WaitOutcome::TimedOut => Outcome::TimedOut,
            futex_core::WaitOutcome::Mismatch => Outcome::Mismatch,
        }
    }
}

/// One event. Addresses are futex word addresses in the traced process; buckets are sleep queues
/// (futex-core's own, or futex-core's hash of a kernel futex address; see [`crate::model::BucketOrigin`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `CLOCK_MONOTONIC` nanoseconds.
    pub ts_ns: u64,
    pub pid: u32,
    pub tid: u32,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// The user stacks the event names, each as (pid, stack id): its thread's own, and its waker's (of
    /// the waker's process: a futex in shared memory is released by another process).
    pub fn stack_keys(&self) -> [Option<(u32, u32)>; 2] {
        let waker = |w: Option<Waker>| w.and_then(|w| Some((w.pid_or(self.pid), w.stack?)));
        let (own, w) = match self.kind {
            EventKind::WaitStart { kernel, .. }
            | EventKind::Wake { kernel, .. }
            | EventKind::Requeue { kernel, .. } => (kernel.and_then(|k| k.stack), None),
            EventKind::WaitEnd {
                kernel, waker: wk, ..
            } => (kernel.and_then(|k| k.stack), waker(wk)),
            EventKind::WaitSample {
                stack, waker: wk, ..
            } => (stack, waker(wk)),
            _ => (None, None),
        };
        [own.map(|id| (self.pid, id)), w]
    }
}

/// What a kernel futex event adds: the operation, its private flag, and the user stack at entry (an id
/// into the source's stack table, per process). Absent for futex-core's observer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    pub op: Option<FutexOp>,
    pub private: bool,
    pub stack: Option<u32>,
}

/// Who released a waiter, when known (kernel futexes: the traced thread whose futex call woke it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waker {
    pub tid: u32,
    /// The waker's user stack (an id into the source's stack table, of the waker's process).
    pub stack: Option<u32>,
    /// The waker's process, when it is known (0: recorded before it was, or the waiter's own): a futex
    /// in shared memory is released by another process than its waiter's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pid: u32,
}

impl Waker {
    /// The waker's process: its own, or else the waiter's (`waiter_pid`).
    pub fn pid_or(&self, waiter_pid: u32) -> u32 {
        if self.pid == 0 {
            waiter_pid
        } else {
            self.pid
        }
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// A thread's name (its `comm`, at most 15 bytes), as the kernel keeps it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadName(pub [u8; 16]);

impl ThreadName {
    /// The name, up to its first NUL.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let end = self.0.iter().position(|&b| b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.0[..end])
    }

    /// A name of at most 15 bytes (longer ones are cut, as the kernel cuts them).
    pub fn new(name: &str) -> ThreadName {
        let mut b = [0u8; 16];
        let n = name.len().min(15);
        b[..n].copy_from_slice(&name.as_bytes()[..n]);
        ThreadName(b)
    }
}

impl std::fmt::Debug for ThreadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl Serialize for ThreadName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for ThreadName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ThreadName::new(&s))
    }
}

/// What the kernel counted for the calls of one operation on one futex word since the previous such
/// event of the same word and operation (kernel sources count in the kernel and send the difference
/// every 100 ms). Exact, whatever the rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Calls returned.
    pub calls: u64,
    /// Waits that slept (woken, timed out or interrupted).
    pub blocked: u64,
    pub mismatches: u64,
    pub timeouts: u64,
    pub interrupted: u64,
    /// Calls that failed otherwise (EINVAL, EFAULT, ...).
    pub failed: u64,
    /// PI locks taken at once.
    pub acquired: u64,
    /// Waits: returned woken. Wakes and requeues: waiters they woke.
    pub woken: u64,
    /// Requeues: waiters they moved.
    pub moved: u64,
    /// Waits that slept: time, summed.
    pub wait_ns: u64,
}

/// Which histogram a [`EventKind::Hist`] adds to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum HistOf {
    /// Time waited by waits that slept on one futex word (of the event's process).
    Wait { addr: u64 },
    /// From a waiter's wakeup by its waker to its return (whole trace).
    WakeToReturn,
    /// From a waiter's `sched_wakeup` to its running on a CPU (whole trace).
    SchedDelay,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    WaitStart {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel: Option<Kernel>,
    },
    WaitEnd {
        /// Where the wait began.
        addr: u64,
        /// Where it ended (differs after a requeue).
        final_addr: u64,
        bucket: u32,
        wait: WaitKind,
        outcome: Outcome,
        wait_ns: u64,
        /// From the wake that released it to its return; `None` when not woken or not measured.
        wake_to_return_ns: Option<u64>,
        requeued: u32,
        /// From `sched_wakeup` to `sched_switch` onto a CPU (kernel futexes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sched_delay_ns: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waker: Option<Waker>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel: Option<Kernel>,
    },
    Wake {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
        requested: u32,
        woken: u32,
        collisions: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel: Option<Kernel>,
    },
    Requeue {
        from: u64,
        to: u64,
        from_bucket: u32,
        to_bucket: u32,
        wait: WaitKind,
        woken: u32,
        moved: u32,
        collisions: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel: Option<Kernel>,
    },
    LockContended {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
        wait_ns: u64,
    },
    /// Kernel sources: what the kernel counted on one word for one operation (see [`Counts`]), in one
    /// of the kernel's futex hash tables (`None` in recordings made before it was recorded).
    Counts {
        addr: u64,
        op: FutexOp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hash: Option<KernelHash>,
        counts: Counts,
    },
    /// Kernel sources: `count` more values in slot `slot` of a log2 histogram (values in [2^slot,
    /// 2^(slot+1)) ns); `sum` and `max` are those of all the values of the same update, given on its
    /// first slot and 0 on the others.
    Hist {
        of: HistOf,
        slot: u8,
        count: u64,
        sum: u64,
        max: u64,
    },
    /// Kernel sources: threads waiting now whose wait began on `addr` (read every 100 ms; sent when it
    /// changes).
    Waiting { addr: u64, now: u32 },
    /// Kernel sources: requeue calls from one word to another since the previous such event.
    Moved {
        from: u64,
        to: u64,
        requeues: u64,
        moved: u64,
        woken: u64,
    },
    /// Kernel sources: one wait that slept, sampled for its stacks (the counts are in [`EventKind::Counts`],
    /// never here). Its stack was taken with probability min(1, wait_ns / stack_rate_ns) (Go's
    /// block-profile rule; rate 0: every wait), so it stands for max(wait_ns, stack_rate_ns) of waiting;
    /// its waker's stack with probability 1 / waker_every, so it stands for `waker_every` such releases
    /// (a wait as long as the stack rate always has its waker's stack: `waker_every` 1).
    WaitSample {
        addr: u64,
        final_addr: u64,
        op: FutexOp,
        outcome: Outcome,
        wait_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wake_to_return_ns: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sched_delay_ns: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        waker: Option<Waker>,
        /// The waiter's user stack (an id into the source's stack table); `None`: only the waker's
        /// stack was sampled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stack: Option<u32>,
        stack_rate_ns: u64,
        waker_every: u32,
    },
    /// Events the source could not deliver (ring full): counted, never silent.
    Lost { count: u64 },
    /// A kernel futex call that neither waits, wakes nor requeues (`FUTEX_TRYLOCK_PI`, `FUTEX_FD`), or
    /// an unknown command; `ret` is what the syscall returned.
    OtherOp { addr: u64, op: FutexOp, ret: i64 },
    /// Kernel sources: the event's thread is named `name` (said when a thread is first seen waiting,
    /// and when its name changes).
    ThreadName { name: ThreadName },
    /// Kernel sources: contended acquisitions of the futex bucket lock (a private hash's) of word `addr`
    /// in its `op` calls, and the time spun for them, since the previous such event (from the kernel's
    /// `lock:contention_*` tracepoints).
    BucketSpins {
        addr: u64,
        op: FutexOp,
        hash: KernelHash,
        spins: u64,
        spin_ns: u64,
        /// Several threads made these calls (one thread's calls cannot contend with each other).
        several_callers: bool,
    },
    /// A traced process forked `child`, which is traced from now on.
    Fork { child: u32 },
    /// A traced process ended.
    Exit,
}

impl Event {
    /// The event with its user stack (an id into the source's stack table), where the event kind has
    /// one: a wait's end, a wake, a requeue (futex-core's probes, traced through eBPF).
    pub fn with_stack(mut self, stack: Option<u32>) -> Event {
        let Some(id) = stack else { return self };
        let with = Some(Kernel {
            op: None,
            private: true,
            stack: Some(id),
        });
        match &mut self.kind {
            EventKind::WaitEnd { kernel, .. }
            | EventKind::Wake { kernel, .. }
            | EventKind::Requeue { kernel, .. } => *kernel = with,
            _ => {}
        }
        self
    }

    /// Converts a futex-core event (from its observer, or decoded from its probes) of process `pid`: the
    /// same fields under the same names, addresses widened, a woken waiter's wake-to-return kept.
    pub fn from_core(pid: u32, e: &futex_core::QueueEvent) -> Event {
        use futex_core::QueueEventKind as K;
        let kind = match e.kind {
            K::WaitStart {
                addr, bucket, wait, ..
            } => EventKind::WaitStart {
                addr: addr as u64,
                bucket,
                wait: wait.into(),
                kernel: None,
            },
            K::WaitEnd {
                addr,
                bucket,
                wait,
                outcome,
                wait_ns,
                wake_to_return_ns,
                requeued,
                final_addr,
            } => EventKind::WaitEnd {
                addr: addr as u64,
                final_addr: final_addr as u64,
                bucket,
                wait: wait.into(),
                outcome: outcome.into(),
                wait_ns,
                wake_to_return_ns: (outcome == futex_core::WaitOutcome::Woken
                    && wake_to_return_ns > 0)
                    .then_some(wake_to_return_ns),
                requeued,
                sched_delay_ns: None,
                waker: None,
                kernel: None,
            },
            K::Wake {
                addr,
                bucket,
                wait,
                requested,
                woken,
                collisions,
            } => EventKind::Wake {
                addr: addr as u64,
                bucket,
                wait: wait.into(),
                requested,
                woken,
                collisions,
                kernel: None,
            },
            K::Requeue {
                from,
                from_bucket,
                to,
                to_bucket,
                wait,
                woken,
                moved,
                collisions,
            } => EventKind::Requeue {
                from: from as u64,
                to: to as u64,
                from_bucket,
                to_bucket,
                wait: wait.into(),
                woken,
                moved,
                collisions,
                kernel: None,
            },
            K::LockContended {
                addr,
                bucket,
                wait,
                wait_ns,
            } => EventKind::LockContended {
                addr: addr as u64,
                bucket,
                wait: wait.into(),
                wait_ns,
            },
        };
        Event {
            ts_ns: e.ts_ns,
            pid,
            tid: e.tid,
            kind,
        }
    }
}
