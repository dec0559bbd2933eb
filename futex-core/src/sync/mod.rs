//! The locks people use, built on the sleep-queue table: [`Mutex`] and [`Condvar`], with std-like APIs and
//! no poisoning. They label their waits so that a tracer can tell lock contention from condition waits.
//! Besides the table's public operations they use two of its crate-internal ones, which let a lock change
//! its word under the queue lock: a wake that decides what the woken thread is told (the mutex's unlock,
//! which may hand the lock over) and a requeue that decides how many to wake (the condvar's `notify_all`).

mod condvar;
mod mutex;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard, FAIR_AFTER};

/// Rounds of backoff before sleeping: on a held mutex that nobody sleeps on yet, and on a condvar's
/// sequence. A short critical section, or a notify that comes soon, often ends within them.
const SPIN_ROUNDS: u32 = 10;

/// Spin-loop hints in backoff round `r`: `2 << min(r, BACKOFF_CAP)`, so 2, 4, 8, … up to 128 (about
/// 3 µs on this machine's EPYC, where a hint takes 24 ns; the whole schedule spins about 15 µs and
/// yields 7 times before sleeping).
const BACKOFF_CAP: u32 = 6;

/// One round of backoff: spin-loop hints, more each round, and from the fourth round on a yield of the
/// CPU too (a holder that was preempted, or the thread about to notify, gets to run).
///
/// Why the hints grow past parking_lot's 8: a waiter that reads the lock's word takes its cache line
/// away from the holder, whose next lock or unlock then misses. Checking less often lets a holder that
/// is running keep the line for many critical sections in a row, which is most of what separates a
/// contended lock from an uncontended one (`benches/matrix.rs`: 1.1–1.3× parking_lot on one contended
/// lock, where parking_lot's 2/4/8 hints then yields were even with it).
#[inline]
fn backoff(round: u32) {
    for _ in 0..(2u32 << round.min(BACKOFF_CAP)) {
        std::hint::spin_loop();
    }
    if round >= 3 {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        std::thread::yield_now();
    }
}
