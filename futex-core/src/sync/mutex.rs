use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::facade::{AtomicU32, Ordering};
use crate::{default_table, WaitKind};

/// Free.
const UNLOCKED: u32 = 0;
/// Held, nobody (known to be) waiting: unlock needs no wake.
const LOCKED: u32 = 1;
/// Held, and some thread may be waiting on the word (or was requeued onto it): unlock wakes one.
const CONTENDED: u32 = 2;

/// Rounds of spinning (3, with exponential backoff) and yielding (the rest) before sleeping on a held
/// mutex: a short critical section often ends within them. The same schedule as parking_lot's SpinWait.
const SPIN_ROUNDS: u32 = 10;

/// A mutual-exclusion lock on one futex word (Drepper's three-state mutex). Locking a free mutex is one
/// CAS and never enters the sleep-queue table; only contention does (as `WaitKind::Mutex`).
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
            state: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked mutex.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
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
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(false);
        }
        MutexGuard { mutex: self }
    }

    /// Acquires the lock if it is free, without waiting.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard { mutex: self })
    }

    /// The slow path. `requeued` is true for a thread coming back from a condvar wait: it may have been
    /// woken as the head of a `notify_all` whose other waiters were moved onto this word, so it must take
    /// the lock as CONTENDED, to make its unlock wake the next of them.
    #[cold]
    pub(crate) fn lock_contended(&self, requeued: bool) {
        if !requeued {
            // Spin with exponential backoff, then yield the CPU a few times (a holder that was preempted
            // gets to run and release), as long as nobody sleeps on the word yet.
            for round in 0..SPIN_ROUNDS {
                let s = self.state.load(Ordering::Relaxed);
                if s == CONTENDED {
                    break; // others already sleep: join them rather than steal
                }
                if s == UNLOCKED
                    && self
                        .state
                        .compare_exchange_weak(
                            UNLOCKED,
                            LOCKED,
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                {
                    return;
                }
                if round < 3 {
                    for _ in 0..(2u32 << round) {
                        std::hint::spin_loop();
                    }
                } else {
                    std::thread::yield_now();
                }
            }
        }
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            // Mismatch (the word changed) and wakeups alike lead back to the swap.
            let _ = default_table().wait_as(&self.state, CONTENDED, None, WaitKind::Mutex);
        }
    }

    /// Releases the lock (the guard's drop).
    #[inline]
    pub(crate) fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.wake_one();
        }
    }

    #[cold]
    fn wake_one(&self) {
        default_table().wake_as(&self.state, 1, WaitKind::Mutex);
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

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
