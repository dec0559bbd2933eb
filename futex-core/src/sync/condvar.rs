use std::time::Duration;

use super::mutex::{self, Mutex, MutexGuard, TOKEN_HANDOFF};
use super::{CONDVAR_BACKOFF, SPIN_ROUNDS};
use crate::facade::{AtomicU32, AtomicUsize, Ordering};
use crate::{default_table, WaitError, WaitKind};

/// No mutex seen yet.
const NO_MUTEX: usize = 0;

/// A condition variable. `notify_all` moves the waiters onto the mutex's word, so that they are woken one
/// at a time as the mutex is released, with no thundering herd: all of them if the mutex is held (its
/// holder's unlock wakes the first), all but one if it is free (that one is woken to take it).
///
/// # Panics
/// Waiting with a second, different mutex panics (as `std::sync::Condvar` documents it may): a waiter
/// requeued onto the wrong mutex's word could sleep until that mutex is next contended.
pub struct Condvar {
    /// Bumped by every notify; waiters sleep while it holds the value they read before unlocking.
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
        // Read the sequence before unlocking: a notify after the unlock changes it, so the wait below
        // returns at once instead of missing it.
        let seq = self.seq.load(Ordering::Relaxed);
        // Counted before the unlock: a notifier that changes the condition under the mutex afterwards
        // (the condition variable's contract) acquires it after this, so it sees the count.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        // A notify often comes within microseconds (a queue's producer, the rest of a broadcast round):
        // watch the sequence through a backoff before sleeping, and return without
        // entering the table if it moves. A notify in that window finds no waiter linked and wakes
        // nobody: no sleep, no wake syscall. (Returning is always allowed: waits may end spuriously.)
        let mut r = Ok(0);
        let mut round = 0;
        while self.seq.load(Ordering::Acquire) == seq {
            if round == SPIN_ROUNDS {
                r = default_table().wait_token(&self.seq, seq, timeout, WaitKind::Condvar, None);
                break;
            }
            CONDVAR_BACKOFF.round(round);
            round += 1;
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
            default_table().wake_as(&self.seq, 1, WaitKind::Condvar);
        }
    }

    /// Says whether anyone waits and, if so, bumps the sequence (a waiter between its unlock and its
    /// sleep then returns at once). Nobody waiting is the common case of a producer/consumer queue that
    /// keeps up: it costs one load, no write to a line the consumers read, no sleep-queue lock.
    ///
    /// Why a notify that reads no waiter may skip everything: a waiter counts itself while it holds the
    /// mutex, before it unlocks. If its critical section came before the notifier's change of the
    /// condition (made under the mutex, as the condition variable's contract requires), the unlock/lock
    /// pair orders its count before this load, which sees it. If it came after, the waiter sees the
    /// changed condition and does not wait. `tests/loom.rs` checks both orders, notify inside and
    /// outside the critical section.
    fn bump(&self) -> bool {
        if self.waiters.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.seq.fetch_add(1, Ordering::Release);
        true
    }

    /// Wakes one waiter and moves every other onto the mutex, to be woken one by one as it is unlocked.
    pub fn notify_all(&self) {
        if !self.bump() {
            return;
        }
        let m = self.mutex.load(Ordering::Relaxed);
        if m == NO_MUTEX {
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
