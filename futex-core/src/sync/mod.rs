//! The locks people use, built on the sleep-queue table: [`Mutex`] and [`Condvar`], with std-like APIs and
//! no poisoning. They label their waits so that a tracer can tell lock contention from condition waits.
//! Besides the table's public operations they use two of its crate-internal ones, which let a lock change
//! its word under the queue lock: a wake that decides what the woken thread is told (the mutex's unlock,
//! which may hand the lock over) and a requeue that decides how many to wake (the condvar's `notify_all`).

mod condvar;
mod mutex;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard, FAIR_AFTER};

/// Rounds of spinning (3, with exponential backoff) and yielding (the rest) before sleeping: on a held
/// mutex that nobody sleeps on yet, and on a condvar's sequence. A short critical section, or a notify
/// that comes soon, often ends within them. The schedule of parking_lot's SpinWait.
const SPIN_ROUNDS: u32 = 10;

/// One round of that schedule: 2, 4, 8 spin-loop hints, then a yield of the CPU (a holder that was
/// preempted, or the thread about to notify, gets to run).
#[inline]
fn backoff(round: u32) {
    if round < 3 {
        for _ in 0..(2u32 << round) {
            std::hint::spin_loop();
        }
    } else {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }
}
