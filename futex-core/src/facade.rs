//! One place that picks the concurrency primitives: `std` normally, `loom` under `--cfg loom`.
//!
//! Everything in the table that another thread can observe goes through this module, so that the
//! model-checking tests (`tests/loom.rs`) see every atomic access, every access to a field protected by a
//! queue lock, and every park/unpark.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};

pub(crate) use std::sync::atomic::Ordering;

/// A cell for fields protected by a queue lock (`[F]`). Under loom every access is tracked, so an access
/// that is not ordered by the lock (or by the waiter's release) is reported as a data race.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Reads through a shared pointer; the caller holds whatever protects the cell.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Writes through a unique pointer; the caller holds whatever protects the cell.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Increments a statistics counter that is only written with its queue lock held (`[F]`): a relaxed load and
/// store, not a locked read-modify-write, because the lock already excludes other writers; readers of a
/// snapshot take no lock and may see a value a few events old.
#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}
