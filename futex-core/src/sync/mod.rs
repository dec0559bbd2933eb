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

/// A backoff schedule: round `r` spins `first << min(r, doublings)` spin-loop hints (a hint takes about
/// 24 ns on this machine's EPYC), then, from round `yield_from` on, yields the CPU (a holder that was
/// preempted, or the thread about to notify, gets to run).
struct Backoff {
    first: u32,
    doublings: u32,
    yield_from: u32,
}

/// The mutex's: 16, 32, 64, then 128 hints a round (0.4 to 3 µs), yielding from the second round; the
/// whole schedule spins about 25 µs and yields 9 times before sleeping.
///
/// Why so few reads of the word, and none soon after losing the race: a waiter that reads the lock's
/// word takes its cache line away from the holder, whose next lock or unlock then misses. A thread that
/// just lost the word to a barging holder is the most likely to read it again at once, and each read
/// that finds it free moves the line and the lock back. Checking rarely lets a running holder keep the
/// line for many critical sections in a row, which is most of what separates a contended lock from an
/// uncontended one (`benches/matrix.rs`, empty critical sections: 1.5–2.2× parking_lot, whose 2/4/8
/// hints then yields it had been even with). What this costs in fairness, a spinner gets back by
/// sleeping once it has tried for [`FAIR_AFTER`]: the unlock that wakes it hands it the lock.
const MUTEX_BACKOFF: Backoff = Backoff {
    first: 16,
    doublings: 3,
    yield_from: 1,
};

/// The condvar's, on its sequence: 2, 4, 8, … up to 128 hints, yielding from the fourth round. A waiter
/// that reads the sequence costs the holder nothing; a notify that comes soon is caught soon.
const CONDVAR_BACKOFF: Backoff = Backoff {
    first: 2,
    doublings: 6,
    yield_from: 3,
};

impl Backoff {
    /// One round: the round's spin-loop hints, then a yield if [`Backoff::yields`].
    #[inline]
    fn round(&self, r: u32) {
        for _ in 0..(self.first << r.min(self.doublings)) {
            std::hint::spin_loop();
        }
        if self.yields(r) {
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
    }

    /// Whether round `r` yields the CPU: from then on, time passes as other threads run.
    #[inline]
    fn yields(&self, r: u32) -> bool {
        r >= self.yield_from
    }
}
