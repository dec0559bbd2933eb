use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use super::MUTEX_BACKOFF;
use crate::facade::{AtomicU32, Ordering};
use crate::{default_table, WaitKind};

/// The lock is held. Set and cleared by CAS in `lock`/`unlock`, and by the slow unlock under the queue
/// lock.
const LOCKED: u32 = 1;
/// Some thread sleeps on the word (or was requeued onto it), so unlock must take the slow path and wake
/// one. Set by a waiter before it sleeps (or by a condvar's requeue, under the queue lock); cleared only
/// under the word's queue lock, by the unlock that wakes the last waiter. Invariant: while any waiter is
/// linked on the word, it is set.
const PARKED: u32 = 2;

/// The token a waiter wakes with when the unlock handed it the lock (still LOCKED, now its own).
pub(crate) const TOKEN_HANDOFF: u32 = 1;

/// Eventual fairness: a thread that has tried to take the lock for this long (0.5 ms, from the first time
/// it yielded the CPU or slept, across wakeups that lost the race) stops spinning, sleeps, and is handed
/// the lock by the next unlock that wakes it, instead of racing for it again. Short enough that no thread
/// starves while others barge; long enough that hand-offs, which keep the lock held while the woken
/// thread is scheduled, stay rare.
pub const FAIR_AFTER: std::time::Duration = std::time::Duration::from_micros(500);

pub(super) const FAIR_AFTER_NS: u64 = FAIR_AFTER.as_nanos() as u64;

/// Whether a thread that has spun `spins` rounds, sees the word as `s`, and began to wait at `since` (ns,
/// `sys::now_ns`, read only once it is set), spins another round: while nobody sleeps on the word, for
/// at most [`SPIN_ROUNDS`](super::SPIN_ROUNDS) rounds, and until it has tried for [`FAIR_AFTER`] (the
/// schedule's `yield_for_ns`; from then on it sleeps, so that an unlock can hand it the lock).
#[inline]
fn keep_spinning(spins: u32, s: u32, since: Option<u64>, now: impl FnOnce() -> u64) -> bool {
    s & PARKED == 0 && MUTEX_BACKOFF.again(spins, since, now)
}

/// A mutual-exclusion lock on one futex word: a LOCKED bit and a PARKED bit (parking_lot's RawMutex, on
/// the sleep-queue table). Locking a free mutex is one CAS, unlocking one nobody sleeps on another;
/// only contention enters the table (as `WaitKind::Mutex`).
///
/// No poisoning: a panic while holding the lock unlocks it.
pub struct Mutex<T: ?Sized> {
    pub(crate) state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives one thread at a time access to `data`, so a `T: Send` may be shared.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

/// Access to the data of a locked [`Mutex`]; dropping it unlocks.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
}

// SAFETY: a guard gives `&T` to whoever holds `&MutexGuard`, so sharing it needs `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T> Mutex<T> {
    /// A new unlocked mutex.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked mutex.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex, returning the data.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Acquires the lock, sleeping while another thread holds it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_slow();
        }
        MutexGuard { mutex: self }
    }

    /// Acquires the lock if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut s = self.state.load(Ordering::Relaxed);
        // Lazily: a guard made and dropped on failure would unlock a lock this thread does not hold.
        self.try_take(&mut s).then(|| MutexGuard { mutex: self })
    }

    /// Takes the lock if the word, last seen as `*s`, shows it free, keeping the other bits; retries
    /// while the word changes under it and stays free. False (and `*s` the word now) once it is held.
    #[inline]
    fn try_take(&self, s: &mut u32) -> bool {
        while *s & LOCKED == 0 {
            match self.state.compare_exchange_weak(
                *s,
                *s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => *s = now,
            }
        }
        false
    }

    /// The slow path (parking_lot's `lock_slow`, on the sleep-queue table): take the lock whenever it is
    /// free, even with sleepers (barging keeps the lock busy while a woken thread is being scheduled);
    /// spin and yield while nobody sleeps, for at most [`SPIN_ROUNDS`](super::SPIN_ROUNDS) rounds and
    /// [`FAIR_AFTER`]; then mark the word PARKED and sleep. A wakeup either hands the lock over (`TOKEN_HANDOFF`) or sends the
    /// thread round again.
    #[cold]
    pub(crate) fn lock_slow(&self) {
        // When this thread began to wait: its first yield (before it, only a few spins have passed) or
        // else its first sleep. What the unlock that wakes it compares with FAIR_AFTER.
        let mut since = None;
        let mut spins = 0u32;
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if self.try_take(&mut s) {
                return;
            }
            if keep_spinning(spins, s, since, crate::sys::now_ns) {
                MUTEX_BACKOFF.round(&mut spins, &mut since);
                s = self.state.load(Ordering::Relaxed);
                continue;
            }
            if s & PARKED == 0 {
                if let Err(now) = self.state.compare_exchange_weak(
                    s,
                    s | PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    s = now;
                    continue;
                }
            }
            // Sleeps only while the word is still LOCKED|PARKED once the waiter is linked: an unlock that
            // cleared it under the queue lock is seen, so no wakeup is lost.
            let since = *since.get_or_insert_with(crate::sys::now_ns);
            let r = default_table().wait_token(
                &self.state,
                LOCKED | PARKED,
                None,
                WaitKind::Mutex,
                Some(since),
            );
            if r == Ok(TOKEN_HANDOFF) {
                // The unlocker kept the word LOCKED for us; its release of our waiter (Release) and our
                // reading of it (Acquire) order its critical section before ours.
                return;
            }
            spins = 0;
            s = self.state.load(Ordering::Relaxed);
        }
    }

    /// Releases the lock (the guard's drop, or `unlock_fair` with `fair`): one CAS when nobody sleeps.
    #[inline]
    pub(crate) fn unlock(&self, fair: bool) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow(fair);
        }
    }

    /// Wakes the first sleeper, deciding under its queue lock what the word becomes: handed over
    /// (still LOCKED) when `fair` or the sleeper has waited past [`FAIR_AFTER`], else free, PARKED as long
    /// as others still sleep.
    #[cold]
    fn unlock_slow(&self, fair: bool) {
        default_table().wake_one_with(&self.state, WaitKind::Mutex, |w| {
            if w.woken && (fair || w.waited_ns >= FAIR_AFTER_NS) {
                if !w.more {
                    self.state.store(LOCKED, Ordering::Relaxed);
                }
                return TOKEN_HANDOFF;
            }
            self.state
                .store(if w.more { PARKED } else { 0 }, Ordering::Release);
            0
        });
    }

    /// Mutable access without locking: `&mut self` proves nobody else holds it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The futex word's address (what probes and events report for this mutex).
    pub fn addr(&self) -> usize {
        &self.state as *const AtomicU32 as usize
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves this thread holds the lock.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves this thread holds the lock, and `&mut self` that it is the only borrow.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Unlocks, handing the lock to the longest-waiting sleeper if there is one, instead of letting
    /// whoever comes first take it (parking_lot's `unlock_fair`). Slower than dropping the guard; the
    /// mutex does this by itself for a sleeper that waited past [`FAIR_AFTER`].
    pub fn unlock_fair(guard: Self) {
        let m = guard.mutex;
        std::mem::forget(guard);
        m.unlock(true);
    }
}

/// Marks a mutex's word PARKED if it is held, for a condvar that moves its waiters onto it without
/// waking any: the holder's unlock then wakes them. Returns false (nothing changed) if it is free.
/// Called under the word's queue lock.
pub(crate) fn mark_parked_if_locked(word: &AtomicU32) -> bool {
    let mut s = word.load(Ordering::Relaxed);
    loop {
        if s & LOCKED == 0 {
            return false;
        }
        match word.compare_exchange_weak(s, s | PARKED, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => s = now,
        }
    }
}

/// Marks a mutex's word PARKED, for a condvar that moved waiters onto it. Called under its queue lock.
pub(crate) fn mark_parked(word: &AtomicU32) {
    word.fetch_or(PARKED, Ordering::Relaxed);
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock(false);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::SPIN_ROUNDS;
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Holds `m` while another thread blocks on it, until that thread is asleep in the table (its
    /// word LOCKED|PARKED and its queue holding a waiter), then returns the guard and the thread, which
    /// holds the lock for 50 ms once it has it.
    fn with_a_sleeper(m: &Arc<Mutex<u32>>) -> (MutexGuard<'_, u32>, std::thread::JoinHandle<()>) {
        let g = m.lock();
        let m2 = m.clone();
        let h = std::thread::spawn(move || {
            let mut g = m2.lock();
            *g += 1;
            // Held a while, so that the test's `try_lock` right after the hand-off finds it held
            // unless the hand-off failed (then it is free until this thread wakes up).
            std::thread::sleep(Duration::from_millis(50));
            drop(g);
        });
        let queue = default_table().bucket_of(&m.state);
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.state.load(Ordering::Relaxed) != LOCKED | PARKED
            || default_table().queue_stats(queue).unwrap().depth == 0
        {
            assert!(Instant::now() < deadline, "the second thread never slept");
            std::thread::sleep(Duration::from_micros(100));
        }
        (g, h)
    }

    /// `unlock_fair` hands the lock to the sleeper: it is still held the moment after, by the woken
    /// thread, so a `try_lock` fails; a plain unlock would have left it free.
    #[test]
    fn unlock_fair_hands_the_lock_to_the_sleeper() {
        let m = Arc::new(Mutex::new(0));
        let (g, h) = with_a_sleeper(&m);
        MutexGuard::unlock_fair(g);
        assert!(
            m.try_lock().is_none(),
            "the lock was freed, not handed over"
        );
        h.join().unwrap();
        assert_eq!(*m.lock(), 1);
        assert_eq!(
            m.state.load(Ordering::Relaxed),
            0,
            "PARKED left set with nobody asleep"
        );
    }

    /// A spinner stops after SPIN_ROUNDS rounds, as soon as someone sleeps on the word, and once it has
    /// tried for FAIR_AFTER (it sleeps, to be handed the lock); otherwise it spins on.
    #[test]
    fn a_spinner_sleeps_once_it_has_tried_for_fair_after() {
        let t0 = 1_000_000_000;
        let (just_before, at, long_after) = (
            t0 + FAIR_AFTER_NS - 1,
            t0 + FAIR_AFTER_NS,
            t0 + 10 * FAIR_AFTER_NS,
        );
        let not_read = || -> u64 { panic!("the clock is read only once the wait began") };
        assert!(keep_spinning(0, LOCKED, None, not_read));
        assert!(keep_spinning(SPIN_ROUNDS - 1, LOCKED, Some(t0), || {
            just_before
        }));
        assert!(!keep_spinning(SPIN_ROUNDS, LOCKED, None, not_read));
        assert!(!keep_spinning(0, LOCKED | PARKED, None, not_read));
        assert!(!keep_spinning(1, LOCKED, Some(t0), || at));
        assert!(!keep_spinning(1, LOCKED, Some(t0), || long_after));
    }

    /// A sleeper that has waited past FAIR_AFTER is handed the lock by a plain unlock.
    #[test]
    fn a_sleeper_past_fair_after_is_handed_the_lock() {
        let m = Arc::new(Mutex::new(0));
        let (g, h) = with_a_sleeper(&m);
        std::thread::sleep(FAIR_AFTER * 4);
        drop(g);
        assert!(
            m.try_lock().is_none(),
            "the lock was freed, not handed over"
        );
        h.join().unwrap();
        assert_eq!(*m.lock(), 1);
    }
}
