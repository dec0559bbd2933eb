//! The locks people use, built on the sleep-queue table: [`Mutex`] and [`Condvar`], with std-like APIs and
//! no poisoning. They label their waits so that a tracer can tell lock contention from condition waits.
//! Besides the table's public operations they use two of its crate-internal ones, which let a lock change
//! its word under the queue lock: a wake that decides what the woken thread is told (the mutex's unlock,
//! which may hand the lock over) and a requeue that decides how many to wake (the condvar's `notify_all`).

mod condvar;
mod mutex;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard, FAIR_AFTER};
