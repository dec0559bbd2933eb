//! Parking one waiting thread: the seed's `ft_proc`, `sleep_finish` and `wakeup_proc`.
//!
//! A [`Parker`] lives inside a waiter, on the waiting thread's stack. Its state word says who owns the
//! waiter: while it is not `RELEASED` the waiter is on a sleep queue and the holder of that queue's lock owns
//! it; storing `RELEASED` (done only with that lock held, by [`Parker::release`]) hands it back to the
//! waiting thread, which may return at once, without taking the lock again. The releasing thread keeps only
//! an [`Unparker`], which holds no reference to the waiter.

use std::time::{Duration, Instant};

use crate::facade::{AtomicU32, Ordering};

/// The waiter has been handed back: the seed's `ft_proc == NULL`.
const RELEASED: u32 = 0;
/// Linked on a queue, the waiting thread not (yet) asleep in the kernel.
const WAITING: u32 = 1;
/// Linked on a queue and asleep in `futex_wait` on the state word: the releaser must issue a wake.
const SLEEPING: u32 = 2;

pub(crate) struct Parker {
    /// Written to `RELEASED` only under the lock of the queue the waiter is on `[F]`; `WAITING → SLEEPING`
    /// by the waiting thread alone, without the lock (it changes nothing a lock holder relies on).
    state: AtomicU32,
    /// The thread to unpark under loom, which cannot model `futex(2)` `[I]`.
    #[cfg(loom)]
    thread: loom::thread::Thread,
}

/// What a releaser keeps to wake the thread after dropping the queue lock: an address or a thread handle,
/// never a reference into the released waiter.
#[must_use = "a released waiter that is asleep must be unparked"]
pub(crate) struct Unparker {
    #[cfg(not(loom))]
    addr: usize,
    #[cfg(loom)]
    thread: Option<loom::thread::Thread>,
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(WAITING),
            #[cfg(loom)]
            thread: loom::thread::current(),
        }
    }

    /// True once a waker has handed the waiter back. Acquire: everything the waker wrote to the waiter
    /// before releasing it (its wake timestamp, its requeue count) is visible after this returns true.
    #[inline]
    pub(crate) fn is_released(&self) -> bool {
        self.state.load(Ordering::Acquire) == RELEASED
    }

    /// Sleeps until released or until `timeout` has passed. Returns true if released.
    #[cfg(not(loom))]
    pub(crate) fn park(&self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // WAITING → SLEEPING, or already SLEEPING after a spurious wakeup; RELEASED: done.
            if let Err(RELEASED) =
                self.state
                    .compare_exchange(WAITING, SLEEPING, Ordering::Acquire, Ordering::Acquire)
            {
                return true;
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => return self.is_released(),
                },
            };
            // A plain reference: this thread owns its own stack frame.
            let word: &std::sync::atomic::AtomicU32 = &self.state;
            crate::sys::futex_wait(word, SLEEPING, remaining);
        }
    }

    /// Under loom a timeout is a nondeterministic event: it fires right away, and the model checker explores
    /// every order of it against the wakers.
    #[cfg(loom)]
    pub(crate) fn park(&self, timeout: Option<Duration>) -> bool {
        let _ = Instant::now;
        loop {
            if self.is_released() {
                return true;
            }
            if timeout.is_some() {
                return false;
            }
            self.state
                .compare_exchange(WAITING, SLEEPING, Ordering::Acquire, Ordering::Acquire)
                .ok();
            loom::thread::park();
        }
    }

    /// Hands the waiter back to its thread (the seed's `f->ft_proc = NULL`).
    ///
    /// # Safety
    /// `this` points at a live parker of a waiter that is linked on a queue whose lock the caller holds, and
    /// the caller has already unlinked it or read everything it needs from it: from the store on, the
    /// waiting thread may return and its stack frame, with the parker in it, may be gone.
    pub(crate) unsafe fn release(this: *const Parker) -> Unparker {
        #[cfg(loom)]
        // SAFETY: the waiter is still owned by the lock holder (the caller), so it is alive.
        let thread = unsafe { (*this).thread.clone() };
        // SAFETY: as above; this store is the last access to the waiter.
        let prev = unsafe { (*this).state.swap(RELEASED, Ordering::Release) };
        debug_assert_ne!(prev, RELEASED, "a waiter was released twice");
        #[cfg(not(loom))]
        {
            Unparker {
                // Address 0 means: not asleep, no syscall needed.
                addr: if prev == SLEEPING { this as usize } else { 0 },
            }
        }
        #[cfg(loom)]
        {
            let _ = prev;
            Unparker {
                thread: Some(thread),
            }
        }
    }
}

impl Unparker {
    /// Wakes the released thread if it was asleep. Called after the queue lock has been dropped.
    pub(crate) fn unpark(self) {
        #[cfg(not(loom))]
        if self.addr != 0 {
            // The word the waiter sleeps on is the parker's `state` field.
            crate::sys::futex_wake_addr(self.addr + std::mem::offset_of!(Parker, state));
        }
        #[cfg(loom)]
        if let Some(t) = self.thread {
            t.unpark();
        }
    }
}
