//! Always-on per-queue statistics.
//!
//! Every counter is written only with its queue's lock held (`[F]`), on slow paths, with a relaxed load and
//! store (see [`crate::facade::bump`]): no locked instruction, no extra cache line (the counters share the
//! queue's line, which the writer already owns). A snapshot reads them without the lock.

use crate::facade::{bump, AtomicU64, Ordering};

/// Counters of one sleep queue. All `[F]`.
#[derive(Default)]
pub(crate) struct QueueStats {
    pub(crate) lock_contended: AtomicU64,
    pub(crate) lock_wait_ns: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) mismatches: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) wakes: AtomicU64,
    pub(crate) woken: AtomicU64,
    pub(crate) requeues: AtomicU64,
    pub(crate) requeued_in: AtomicU64,
    pub(crate) requeued_out: AtomicU64,
    pub(crate) collisions: AtomicU64,
    pub(crate) depth: AtomicU64,
    pub(crate) max_depth: AtomicU64,
}

impl QueueStats {
    /// One waiter more on the queue. `[F]`
    #[inline]
    pub(crate) fn linked(&self) {
        let d = self.depth.load(Ordering::Relaxed) + 1;
        self.depth.store(d, Ordering::Relaxed);
        if d > self.max_depth.load(Ordering::Relaxed) {
            self.max_depth.store(d, Ordering::Relaxed);
        }
    }

    /// One waiter fewer on the queue. `[F]`
    #[inline]
    pub(crate) fn unlinked(&self) {
        bump(&self.depth, u64::MAX); // wrapping −1
    }

    pub(crate) fn snapshot(&self, index: usize) -> QueueSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        QueueSnapshot {
            index,
            counters: QueueCounters {
                waits: r(&self.waits),
                mismatches: r(&self.mismatches),
                timeouts: r(&self.timeouts),
                wakes: r(&self.wakes),
                woken: r(&self.woken),
                requeues: r(&self.requeues),
                requeued_in: r(&self.requeued_in),
                requeued_out: r(&self.requeued_out),
                collisions: r(&self.collisions),
                lock_contended: r(&self.lock_contended),
                lock_wait_ns: r(&self.lock_wait_ns),
            },
            depth: r(&self.depth),
            max_depth: r(&self.max_depth),
        }
    }
}

/// Declares [`QueueCounters`] with its fields listed once: the struct and the arithmetic on every field.
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$doc:meta])* pub $field:ident: u64,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl $name {
            /// Adds another queue's counters to these (for totals).
            pub fn accumulate(&mut self, o: &$name) {
                $(self.$field += o.$field;)*
            }

            /// What was counted after `earlier` (an older reading of the same counters).
            pub fn since(&self, earlier: &$name) -> $name {
                $name {
                    $($field: self.$field.saturating_sub(earlier.$field),)*
                }
            }
        }
    };
}

counters! {
    /// What happened on one sleep queue (or several, added up): one counter per kind of slow-path event.
    /// A [`QueueSnapshot`] holds a queue's, read from the table; futex-trace's model holds the same
    /// counters folded from the probes' or the observer's events, so a tracer that lost nothing can be
    /// checked against the table with one comparison.
    ///
    /// Each counter has a probe and an observer event that matches it one for one (see `PROBES.md`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    pub struct QueueCounters {
        /// Waiters linked onto this queue by `wait` (probe `wait_start`), whatever their outcome.
        pub waits: u64,
        /// Waits that found the value changed at the re-read and returned without sleeping (`EAGAIN`).
        pub mismatches: u64,
        /// Waits that timed out and unlinked themselves from this queue (following requeues).
        pub timeouts: u64,
        /// `wake` calls (and `requeue` calls with m = 0) on an address of this queue (probe `wake`).
        pub wakes: u64,
        /// Waiters released from this queue by `wake` or `requeue`.
        pub woken: u64,
        /// `requeue` calls (m > 0) whose source address is on this queue (probe `requeue`).
        pub requeues: u64,
        /// Waiters moved onto this queue by requeue.
        pub requeued_in: u64,
        /// Waiters moved off this queue by requeue.
        pub requeued_out: u64,
        /// Entries a wake or requeue scan skipped because they wait on another address hashed to this
        /// queue.
        pub collisions: u64,
        /// Acquisitions of the queue lock that found it held and had to wait (probe `lock_contended`).
        pub lock_contended: u64,
        /// Total nanoseconds spent waiting for the queue lock in those acquisitions.
        pub lock_wait_ns: u64,
    }
}

/// The statistics of one sleep queue at one moment, as [`crate::Table::stats`] returns them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Index of the queue in its table.
    pub index: usize,
    /// What happened on it.
    pub counters: QueueCounters,
    /// Waiters linked on the queue now.
    pub depth: u64,
    /// The largest depth seen.
    pub max_depth: u64,
}

impl QueueSnapshot {
    /// Adds another snapshot's counters to this one (for totals). Depth and max depth are summed too.
    pub fn accumulate(&mut self, o: &QueueSnapshot) {
        self.counters.accumulate(&o.counters);
        self.depth += o.depth;
        self.max_depth += o.max_depth;
    }
}
