//! futex-core: the OpenBSD 2025 hashed sleep-queue futex, in userspace Rust, with its contention visible
//! by construction.
//!
//! Threads wait on the address of an [`AtomicU32`]. Waiters are hashed by that address into one of 64
//! cache-line-aligned sleep queues, each with its own lock; a waiter lives on its own thread's stack; a
//! waker unlinks it under the queue lock and hands it back, so the woken thread returns without taking the
//! lock again; `requeue` moves waiters from one address (and queue) to another, and a waiter that times
//! out follows its futex to whichever queue it was moved to. See `table.rs` for the algorithm and the
//! ownership rule it rests on.
//!
//! On top: [`sync::Mutex`] and [`sync::Condvar`] (whose `notify_all` requeues waiters onto the mutex).
//! Every slow path keeps per-queue statistics ([`Table::stats`]), fires a USDT probe (`PROBES.md`), and
//! reaches an in-process observer when one is subscribed ([`Table::subscribe`]).
//!
//! ```
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//!
//! let word = AtomicU32::new(0);
//! // Nobody changes the word, so the wait times out.
//! assert_eq!(
//!     futex_core::wait(&word, 0, Some(Duration::from_millis(1))),
//!     Err(futex_core::WaitError::TimedOut)
//! );
//! // The value is not what the caller expected: return at once.
//! word.store(1, Ordering::Release);
//! assert_eq!(futex_core::wait(&word, 0, None), Err(futex_core::WaitError::Mismatch));
//! assert_eq!(futex_core::wake(&word, 1), 0); // nobody was waiting
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod event;
mod facade;
pub mod frames;
mod lock;
pub mod observer;
mod parker;
pub mod probes;
mod stats;
pub mod sync;
mod sys;
mod table;

use std::time::Duration;

pub use event::{QueueEvent, QueueEventKind, WaitKind, WaitOutcome};
pub use observer::{SubscribeError, Subscription};
pub use stats::{QueueCounters, QueueSnapshot};
pub use table::{bucket_of_addr, Table, TableSizeError, DEFAULT_QUEUES};

/// The futex word type: `std::sync::atomic::AtomicU32` (loom's under `--cfg loom`).
#[cfg(loom)]
pub use loom::sync::atomic::AtomicU32;
#[cfg(not(loom))]
pub use std::sync::atomic::AtomicU32;

/// Why a [`wait`] returned without being woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitError {
    /// The futex did not hold the expected value when re-read after linking in (`EAGAIN`).
    Mismatch,
    /// The timeout passed before a wake.
    TimedOut,
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Mismatch => "futex value did not match the expected value",
            Self::TimedOut => "futex wait timed out",
        })
    }
}

impl std::error::Error for WaitError {}

/// What a [`requeue`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Requeued {
    /// Waiters woken on the source address.
    pub woken: u32,
    /// Waiters moved onto the target address.
    pub moved: u32,
}

#[cfg(not(loom))]
static DEFAULT: std::sync::OnceLock<Table> = std::sync::OnceLock::new();

/// The process-wide table of [`DEFAULT_QUEUES`] sleep queues behind the free functions and [`sync`].
/// Its id in probes and events is 0.
#[cfg(not(loom))]
pub fn default_table() -> &'static Table {
    DEFAULT.get_or_init(|| Table::with_id(DEFAULT_QUEUES, 0))
}

// One queue under loom: which queue a word hashes to depends on where it was allocated, which loom does
// not keep the same between executions, and the order a requeue takes two queues' locks in must be.
#[cfg(loom)]
loom::lazy_static! {
    static ref DEFAULT: Table = Table::with_id(1, 0);
}

/// The process-wide table (per model execution under loom, with one queue).
#[cfg(loom)]
pub fn default_table() -> &'static Table {
    &DEFAULT
}

/// Waits on `futex` while it holds `expected`, for at most `timeout` (forever if `None`).
///
/// The waiter is linked onto its sleep queue first, then the value is re-read: if it is not `expected`,
/// returns [`WaitError::Mismatch`] at once. Otherwise sleeps until a [`wake`] or [`requeue`] releases it
/// (`Ok`) or the timeout passes ([`WaitError::TimedOut`]). A waker that releases the waiter before it
/// could unlink itself wins: the wait is then `Ok`, never a timeout, so no wakeup is lost.
pub fn wait(futex: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Result<(), WaitError> {
    default_table().wait_as(futex, expected, timeout, WaitKind::Raw)
}

/// Wakes up to `n` threads waiting on `futex`, oldest first. Returns how many were woken.
pub fn wake(futex: &AtomicU32, n: u32) -> u32 {
    default_table().wake_as(futex, n, WaitKind::Raw)
}

/// Wakes up to `n` threads waiting on `from`, then moves up to `m` of the remaining ones to wait on `to`
/// instead. `m == 0` is a plain [`wake`]; `n == 0` wakes nobody and only moves.
pub fn requeue(from: &AtomicU32, n: u32, to: &AtomicU32, m: u32) -> Requeued {
    default_table().requeue_as(from, n, to, m, WaitKind::Raw)
}

impl Table {
    /// [`wait`] on this table.
    pub fn wait(
        &self,
        futex: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
    ) -> Result<(), WaitError> {
        self.wait_as(futex, expected, timeout, WaitKind::Raw)
    }

    /// [`wake`] on this table.
    pub fn wake(&self, futex: &AtomicU32, n: u32) -> u32 {
        self.wake_as(futex, n, WaitKind::Raw)
    }

    /// [`requeue`] on this table.
    pub fn requeue(&self, from: &AtomicU32, n: u32, to: &AtomicU32, m: u32) -> Requeued {
        self.requeue_as(from, n, to, m, WaitKind::Raw)
    }
}
