//! The locks people use, built on the sleep-queue table: [`Mutex`] and [`Condvar`], with std-like APIs and
//! no poisoning. They go through the table's public operations only (`wait_as`, `wake_as`, `requeue_as`)
//! and label their waits so that a tracer can tell lock contention from condition waits.

mod condvar;
mod mutex;

pub use condvar::{Condvar, WaitTimeoutResult};
pub use mutex::{Mutex, MutexGuard};
