//! The sleep queue's own lock (the seed's `fsq_lock`).
//!
//! A three-state futex lock (0 free, 1 held, 2 held with sleepers), after Drepper's "Futexes Are Tricky":
//! one CAS to take it when free, a short spin, then sleep in the kernel. Critical sections under it are a
//! few list operations, so most contention resolves while spinning. It reports whether an acquisition had
//! to wait and for how long: that is the per-queue "lock contention" statistic and probe.

#[cfg(not(loom))]
use crate::facade::{AtomicU32, Ordering};

pub(crate) struct QueueLock {
    #[cfg(not(loom))]
    word: AtomicU32,
    #[cfg(loom)]
    inner: loom::sync::Mutex<()>,
}

/// Proof that the queue lock is held; dropping it unlocks.
pub(crate) struct QueueGuard<'a> {
    #[cfg(not(loom))]
    lock: &'a QueueLock,
    #[cfg(loom)]
    _inner: loom::sync::MutexGuard<'a, ()>,
}

/// Spins before sleeping on a held queue lock. Queue critical sections are short (tens of ns), while a
/// sleep and wakeup costs microseconds.
#[cfg(not(loom))]
const SPIN_LIMIT: u32 = 100;

impl QueueLock {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            word: AtomicU32::new(0),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(()),
        }
    }

    /// Takes the lock. The second value is `Some(nanoseconds waited)` when the lock was held by another
    /// thread at the first attempt, `None` when it was taken at once.
    #[inline]
    pub(crate) fn lock(&self) -> (QueueGuard<'_>, Option<u64>) {
        #[cfg(not(loom))]
        {
            if self
                .word
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return (QueueGuard { lock: self }, None);
            }
            let waited = self.lock_contended();
            (QueueGuard { lock: self }, Some(waited))
        }
        #[cfg(loom)]
        {
            match self.inner.try_lock() {
                Ok(g) => (QueueGuard { _inner: g }, None),
                Err(_) => (
                    QueueGuard {
                        _inner: self.inner.lock().unwrap(),
                    },
                    Some(0),
                ),
            }
        }
    }

    #[cfg(not(loom))]
    #[cold]
    fn lock_contended(&self) -> u64 {
        let t0 = crate::sys::now_ns();
        for _ in 0..SPIN_LIMIT {
            if self.word.load(Ordering::Relaxed) == 0
                && self
                    .word
                    .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return crate::sys::now_ns().saturating_sub(t0);
            }
            std::hint::spin_loop();
        }
        // Mark the lock as having sleepers before sleeping, so that the holder's unlock wakes one.
        while self.word.swap(2, Ordering::Acquire) != 0 {
            crate::sys::futex_wait(&self.word, 2, None);
        }
        crate::sys::now_ns().saturating_sub(t0)
    }
}

#[cfg(not(loom))]
impl Drop for QueueGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.lock.word.swap(0, Ordering::Release) == 2 {
            crate::sys::futex_wake_addr(self.lock.word.as_ptr() as usize);
        }
    }
}
