//! What futex-core reports about its slow paths: the USDT probes and the in-process observer's events.
//!
//! Both carry the same facts, one probe firing for one event. `PROBES.md` is the contract: names,
//! argument order and meaning. The eBPF side and anyone with bpftrace or perf are written against it.

use std::cell::Cell;

/// What kind of wait (or of waker) an operation is. Users need it to tell an idle condition-variable wait
/// from lock contention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum WaitKind {
    /// A direct call of `wait`/`wake`/`requeue`.
    Raw = 0,
    /// [`crate::sync::Mutex`]: waiting for a held lock, or an unlock waking a waiter.
    Mutex = 1,
    /// [`crate::sync::Condvar`]: waiting for a notification, or a notify.
    Condvar = 2,
}

impl WaitKind {
    /// The probe argument's value back to a kind; unknown values are `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Raw),
            1 => Some(Self::Mutex),
            2 => Some(Self::Condvar),
            _ => None,
        }
    }

    /// Lower-case name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Mutex => "mutex",
            Self::Condvar => "condvar",
        }
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WaitOutcome {
    /// Released by a `wake` or `requeue` (including a waker that won the race against a timeout or a
    /// mismatch: the waker counted it as woken, so it is reported woken).
    Woken = 0,
    /// The timeout fired and the waiter unlinked itself.
    TimedOut = 1,
    /// The value differed from `expected` at the re-read after linking: returned without sleeping.
    Mismatch = 2,
}

impl WaitOutcome {
    /// The probe argument's value back to an outcome; unknown values are `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Woken),
            1 => Some(Self::TimedOut),
            2 => Some(Self::Mismatch),
            _ => None,
        }
    }
}

/// One slow-path event of a [`crate::Table`], as the observer delivers it (and a probe fires it). futex-trace
/// turns it into its own `Event`, whose fields carry the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueEvent {
    /// `CLOCK_MONOTONIC` nanoseconds (the clock of eBPF's `bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// Kernel thread id of the thread the event happened on.
    pub tid: u32,
    /// Id of the table (0 is the process-wide default table).
    pub table: u32,
    /// What happened.
    pub kind: QueueEventKind,
    /// The observer's id of the waiting thread's stack ([`crate::frames::Stack`], delivered by
    /// [`crate::Subscription::drain_stacks_into`]) for a wait that slept; 0: none.
    pub stack: u32,
}

/// The five events; each matches the probe of the same name in `PROBES.md`. A `bucket` is the index of
/// a sleep queue in its table (the queue a futex word hashes to); `wait` is what kind of operation it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueEventKind {
    /// A waiter was linked onto sleep queue `bucket`.
    WaitStart {
        addr: usize,
        bucket: u32,
        wait: WaitKind,
        expected: u32,
    },
    /// A wait returned. `bucket` and `final_addr` are where it ended (requeue may have moved it).
    WaitEnd {
        addr: usize,
        bucket: u32,
        wait: WaitKind,
        outcome: WaitOutcome,
        /// Entry to return.
        wait_ns: u64,
        /// From the wake/requeue that released it to its return; 0 unless `outcome` is `Woken`.
        wake_to_return_ns: u64,
        /// How many times requeue moved it.
        requeued: u32,
        final_addr: usize,
    },
    /// A `wake` (or a `requeue` with m = 0).
    Wake {
        addr: usize,
        bucket: u32,
        wait: WaitKind,
        requested: u32,
        woken: u32,
        /// Entries skipped because they wait on another address of the same queue.
        collisions: u32,
    },
    /// A `requeue` with m > 0.
    Requeue {
        from: usize,
        from_bucket: u32,
        to: usize,
        to_bucket: u32,
        wait: WaitKind,
        woken: u32,
        moved: u32,
        collisions: u32,
    },
    /// A queue-lock acquisition that found the lock held.
    LockContended {
        addr: usize,
        bucket: u32,
        wait: WaitKind,
        wait_ns: u64,
    },
}

/// The calling thread's kernel thread id, cached per thread (one syscall per thread, ever).
pub(crate) fn current_tid() -> u32 {
    thread_local!(static TID: Cell<u32> = const { Cell::new(0) });
    TID.with(|t| {
        let mut v = t.get();
        if v == 0 {
            // SAFETY: gettid has no preconditions.
            v = unsafe { libc::gettid() } as u32;
            t.set(v);
        }
        v
    })
}
