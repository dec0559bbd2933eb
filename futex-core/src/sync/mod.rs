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
/// preempted, or the thread about to notify, gets to run). At most [`SPIN_ROUNDS`] rounds, and none
/// once `yield_for_ns` have passed since the first yield: on a loaded machine one yield can give other
/// threads whole time slices, and the rounds alone would then spin for milliseconds.
struct Backoff {
    first: u32,
    doublings: u32,
    yield_from: u32,
    yield_for_ns: u64,
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
    yield_for_ns: mutex::FAIR_AFTER_NS,
};

/// The condvar's, on its sequence: 2, 4, 8, … up to 128 hints, yielding from the fourth round, for at
/// most 100 µs from the first yield. A waiter that reads the sequence costs the holder nothing; a notify
/// that comes soon is caught soon. The whole schedule takes about 25 µs when its yields return at once;
/// past 100 µs they are handing out time slices (the machine is busy), and a waiter that sleeps then is
/// woken by the notify (on a `notify_all`, requeued) instead of competing for the CPU until it comes.
const CONDVAR_BACKOFF: Backoff = Backoff {
    first: 2,
    doublings: 6,
    yield_from: 3,
    yield_for_ns: 100_000,
};

impl Backoff {
    /// Round `*r`: its spin-loop hints, then a yield if [`Backoff::yields`], whose time is kept in
    /// `since` if it is the first (what [`Backoff::again`] measures from); then `*r` counts it.
    #[inline]
    fn round(&self, r: &mut u32, since: &mut Option<u64>) {
        for _ in 0..(self.first << (*r).min(self.doublings)) {
            std::hint::spin_loop();
        }
        if self.yields(*r) {
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            std::thread::yield_now();
            since.get_or_insert_with(crate::sys::now_ns);
        }
        *r += 1;
    }

    /// Whether a waiter that has spun `r` rounds, and first yielded at `since` (ns, `sys::now_ns`), spins
    /// another round. The clock is read only once `since` is set.
    #[inline]
    fn again(&self, r: u32, since: Option<u64>, now: impl FnOnce() -> u64) -> bool {
        r < SPIN_ROUNDS && since.is_none_or(|t| now().saturating_sub(t) < self.yield_for_ns)
    }

    /// Whether round `r` yields the CPU: from then on, time passes as other threads run.
    #[inline]
    fn yields(&self, r: u32) -> bool {
        r >= self.yield_from
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The condvar's waiter spins its rounds while its yields come back quickly, and sleeps once 100 µs
    /// have passed since its first yield (a busy machine) even with rounds left.
    #[test]
    fn a_condvar_waiter_sleeps_once_its_yields_have_taken_100us() {
        let t0 = 1_000_000_000;
        let b = &CONDVAR_BACKOFF;
        let not_read = || -> u64 { panic!("the clock is read only once the waiter has yielded") };
        assert!(b.again(0, None, not_read));
        assert!(!b.again(SPIN_ROUNDS, None, not_read));
        assert!(b.again(SPIN_ROUNDS - 1, Some(t0), || t0 + 99_999));
        assert!(!b.again(b.yield_from + 1, Some(t0), || t0 + 100_000));
        assert!(!b.again(b.yield_from + 1, Some(t0), || t0 + 4_000_000));
    }
}
