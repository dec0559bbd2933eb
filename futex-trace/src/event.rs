//! The one event type every source produces (futex-core's observer now; eBPF and recorded traces next).

use serde::{Deserialize, Serialize};

/// What kind of wait or waker: lock contention (`mutex`), condition or idle waits (`condvar`), direct futex
/// calls (`raw`), or a kernel futex of another process whose purpose is unknown (`kernel`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Raw,
    Mutex,
    Condvar,
    Kernel,
}

impl WaitKind {
    /// Waits of this kind are idle (waiting for work or a signal), not contention for a lock.
    pub fn is_idle(self) -> bool {
        matches!(self, WaitKind::Condvar)
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

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    WaitStart {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
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
    },
    Wake {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
        requested: u32,
        woken: u32,
        collisions: u32,
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
    },
    LockContended {
        addr: u64,
        bucket: u32,
        wait: WaitKind,
        wait_ns: u64,
    },
    /// Events the source could not deliver (ring full): counted, never silent.
    Lost { count: u64 },
}

impl Event {
    /// Converts a futex-core observer event of process `pid`.
    pub fn from_core(pid: u32, e: &futex_core::Event) -> Event {
        use futex_core::EventKind as K;
        let kind = match e.kind {
            K::WaitStart {
                addr, queue, kind, ..
            } => EventKind::WaitStart {
                addr: addr as u64,
                bucket: queue,
                wait: kind.into(),
            },
            K::WaitEnd {
                addr,
                queue,
                kind,
                outcome,
                wait_ns,
                wake_to_return_ns,
                requeued,
                final_addr,
            } => EventKind::WaitEnd {
                addr: addr as u64,
                final_addr: final_addr as u64,
                bucket: queue,
                wait: kind.into(),
                outcome: outcome.into(),
                wait_ns,
                wake_to_return_ns: (outcome == futex_core::WaitOutcome::Woken
                    && wake_to_return_ns > 0)
                    .then_some(wake_to_return_ns),
                requeued,
            },
            K::Wake {
                addr,
                queue,
                kind,
                requested,
                woken,
                collisions,
            } => EventKind::Wake {
                addr: addr as u64,
                bucket: queue,
                wait: kind.into(),
                requested,
                woken,
                collisions,
            },
            K::Requeue {
                from,
                from_queue,
                to,
                to_queue,
                kind,
                woken,
                moved,
                collisions,
            } => EventKind::Requeue {
                from: from as u64,
                to: to as u64,
                from_bucket: from_queue,
                to_bucket: to_queue,
                wait: kind.into(),
                woken,
                moved,
                collisions,
            },
            K::LockContended {
                addr,
                queue,
                kind,
                wait_ns,
            } => EventKind::LockContended {
                addr: addr as u64,
                bucket: queue,
                wait: kind.into(),
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
