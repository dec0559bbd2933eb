use std::time::Duration;

use super::mutex::{self, Mutex, MutexGuard, TOKEN_HANDOFF};
use super::CONDVAR_BACKOFF;
use crate::facade::{AtomicU32, AtomicUsize, Ordering};
use crate::{default_table, WaitError, WaitKind};

/// No mutex seen yet.
const NO_MUTEX: usize = 0;

/// The sequence's low bit: a waiter may be linked on it in the table (set by a waiter before it sleeps,
/// cleared under the sequence's queue lock by a notify that leaves nobody linked). A notify that finds
/// it clear bumps the count and is done: nobody sleeps, so nobody needs the table.
const SLEEPING: u32 = 1;
/// The count is the rest of the sequence: every notify adds this.
const ONE_NOTIFY: u32 = 2;

/// A condition variable. `notify_all` moves the waiters onto the mutex's word, so that they are woken one
/// at a time as the mutex is released, with no thundering herd: all of them if the mutex is held (its
/// holder's unlock wakes the first), all but one if it is free (that one is woken to take it).
///
/// # Panics
/// Waiting with a second, different mutex panics (as `std::sync::Condvar` documents it may): a waiter
/// requeued onto the wrong mutex's word could sleep until that mutex is next contended.
pub struct Condvar {
    /// A count bumped by every notify (by [`ONE_NOTIFY`]), and the [`SLEEPING`] bit. Waiters sleep while
    /// the count is the one they read before unlocking.
    /// [I] SLEEPING: while a waiter is linked on it, set (a waiter whose link races a clear finds the
    /// word changed and does not sleep). Cleared only under its queue lock.
    seq: AtomicU32,
    /// Threads inside a wait: incremented with the mutex held, before it is unlocked, and decremented
    /// once the wait returns. A notify that reads 0 has nobody to wake and leaves the table alone.
    /// [I] incremented under the mutex; read by notifiers after they changed the condition under it.
    waiters: AtomicU32,
    /// Address of the mutex's futex word used by waits, or NO_MUTEX; set once.
    mutex: AtomicUsize,
}

/// Whether a [`Condvar::wait_timeout`] returned because the time passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeoutResult(bool);

impl WaitTimeoutResult {
    /// True if the wait timed out.
    pub fn timed_out(&self) -> bool {
        self.0
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Condvar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

impl Condvar {
    /// A new condition variable.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            mutex: AtomicUsize::new(NO_MUTEX),
        }
    }

    /// A new condition variable.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            mutex: AtomicUsize::new(NO_MUTEX),
        }
    }

    /// Unlocks the guard's mutex, sleeps until notified (or spuriously), and locks it again.
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.wait_inner(guard, None).0
    }

    /// Like [`Condvar::wait`], for at most `timeout`.
    pub fn wait_timeout<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        self.wait_inner(guard, Some(timeout))
    }

    /// Waits while `condition` holds, handling spurious wakeups.
    pub fn wait_while<'a, T: ?Sized, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T> {
        while condition(&mut *guard) {
            guard = self.wait(guard);
        }
        guard
    }

    /// Waits while `condition` holds, for at most `timeout` in all; the result says whether time ran out
    /// with the condition still holding.
    pub fn wait_timeout_while<'a, T: ?Sized, F: FnMut(&mut T) -> bool>(
        &self,
        mut guard: MutexGuard<'a, T>,
        timeout: Duration,
        mut condition: F,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let deadline = std::time::Instant::now() + timeout;
        while condition(&mut *guard) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return (guard, WaitTimeoutResult(true));
            }
            guard = self.wait_timeout(guard, left).0;
        }
        (guard, WaitTimeoutResult(false))
    }

    fn wait_inner<'a, T: ?Sized>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Option<Duration>,
    ) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
        let mutex: &'a Mutex<T> = guard.mutex;
        self.note_mutex(mutex.addr());
        // Read the count before unlocking: a notify after the unlock changes it, so the wait below
        // returns at once instead of missing it.
        let seq = self.seq.load(Ordering::Relaxed) & !SLEEPING;
        // Counted before the unlock: a notifier that changes the condition under the mutex afterwards
        // (the condition variable's contract) acquires it after this, so it sees the count.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        // A notify often comes within microseconds (a queue's producer, the rest of a broadcast round):
        // watch the count through a backoff before sleeping, and return without entering the table if
        // it moves. A notify in that window finds SLEEPING clear and only bumps the count: no sleep, no
        // sleep-queue lock, no wake syscall. (Returning is always allowed: waits may end spuriously.)
        let mut r = Ok(0);
        let mut round = 0;
        let mut since = None;
        loop {
            let now = self.seq.load(Ordering::Acquire);
            if now & !SLEEPING != seq {
                break;
            }
            if CONDVAR_BACKOFF.again(round, since, crate::sys::now_ns) {
                CONDVAR_BACKOFF.round(&mut round, &mut since);
                continue;
            }
            // Say that a waiter sleeps before linking it: a notify whose bump comes after this sees
            // the bit and enters the table; one before it changed the count, so the exchange fails.
            if now & SLEEPING == 0
                && self
                    .seq
                    .compare_exchange_weak(
                        now,
                        now | SLEEPING,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    )
                    .is_err()
            {
                continue;
            }
            // Sleeps only while the word is still this count with the bit: a notify since, or a clear
            // by a notify that left nobody linked (made under the queue lock, before this link), is
            // seen once linked.
            r = default_table().wait_token(
                &self.seq,
                seq | SLEEPING,
                timeout,
                WaitKind::Condvar,
                None,
            );
            break;
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        // Moved onto the mutex's word by a notify_all, a waiter may be woken by the mutex's fair unlock
        // with the lock handed to it; otherwise it takes the lock like any thread.
        let guard = if r == Ok(TOKEN_HANDOFF) {
            MutexGuard { mutex }
        } else {
            mutex.lock()
        };
        (guard, WaitTimeoutResult(r == Err(WaitError::TimedOut)))
    }

    fn note_mutex(&self, addr: usize) {
        match self
            .mutex
            .compare_exchange(NO_MUTEX, addr, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => {}
            Err(cur) if cur == addr => {}
            Err(cur) => panic!(
                "futex_core::sync::Condvar used with more than one mutex (first {cur:#x}, now {addr:#x}): \
                 use one Condvar per Mutex"
            ),
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        if self.bump() {
            default_table().wake_one_with(&self.seq, WaitKind::Condvar, |w| {
                if !w.more {
                    self.seq.fetch_and(!SLEEPING, Ordering::Relaxed);
                }
                0
            });
        }
    }

    /// Says whether anyone waits and, if so, bumps the count (a waiter between its unlock and its sleep
    /// then returns at once); true if one may sleep in the table. Nobody waiting is the common case of a
    /// producer/consumer queue that keeps up: it costs one load, no write to a line the consumers read,
    /// no sleep-queue lock. Waiters that only watch the count (they sleep after a backoff) are the next
    /// most common: one increment, no sleep-queue lock.
    ///
    /// Why a notify that reads no waiter may skip everything: a waiter counts itself while it holds the
    /// mutex, before it unlocks. If its critical section came before the notifier's change of the
    /// condition (made under the mutex, as the condition variable's contract requires), the unlock/lock
    /// pair orders its count before this load, which sees it. If it came after, the waiter sees the
    /// changed condition and does not wait. `tests/loom.rs` checks both orders, notify inside and
    /// outside the critical section.
    ///
    /// Why a bump that finds SLEEPING clear may skip the table: a waiter sets it (by an exchange that
    /// expects its count) before it links, and links before it checks the word a last time. A bump
    /// ordered before the exchange changed the count: the exchange fails, the waiter returns. One after
    /// it reads the bit, unless a clear came between; a clear is made under the queue lock by a notify
    /// that leaves no waiter linked, so the waiter links after it and sees the cleared word: no sleep.
    /// Once linked, a waiter keeps the bit set: every clear is decided under the lock, by a notify that
    /// sees it linked and wakes or moves it. `tests/loom.rs` checks two waiters against two notifies.
    fn bump(&self) -> bool {
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.seq.fetch_add(ONE_NOTIFY, Ordering::Release) & SLEEPING != 0
    }

    /// Wakes one waiter and moves every other onto the mutex, to be woken one by one as it is unlocked.
    pub fn notify_all(&self) {
        if !self.bump() {
            return;
        }
        let m = self.mutex.load(Ordering::Relaxed);
        if m == NO_MUTEX {
            // (Leaves SLEEPING set: a later notify finds nobody and clears it.)
            default_table().wake_as(&self.seq, u32::MAX, WaitKind::Condvar);
            return;
        }
        // Waiters still on `seq` hold a borrow of that mutex, so while one is linked, which `found()`
        // says under the queue lock, the word is alive; otherwise it is not dereferenced.
        // SAFETY: only called with a waiter linked (found, or just moved onto the mutex's word).
        let word = || unsafe { &*(m as *const AtomicU32) };
        default_table().requeue_with(
            self.seq_addr(),
            m,
            WaitKind::Condvar,
            |found| {
                // Every waiter on the sequence is woken or moved: nobody is left linked on it.
                self.seq.fetch_and(!SLEEPING, Ordering::Relaxed);
                if !found() {
                    (0, 0)
                } else if mutex::mark_parked_if_locked(word()) {
                    // Held: move them all; the holder's unlock wakes the first.
                    (0, u32::MAX)
                } else {
                    // Free: wake one to take it, move the rest behind it.
                    (1, u32::MAX)
                }
            },
            |r| {
                if r.moved > 0 {
                    mutex::mark_parked(word());
                }
            },
        );
    }

    /// The futex word's address (what probes and events report for this condvar's waits).
    pub fn addr(&self) -> usize {
        self.seq_addr()
    }

    fn seq_addr(&self) -> usize {
        &self.seq as *const AtomicU32 as usize
    }
}
