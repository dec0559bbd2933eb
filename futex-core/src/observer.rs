//! The in-process observer: a program subscribes to a table and receives its slow-path events without root.
//!
//! The futex path never blocks on the observer: events go into a bounded lock-free ring; when it is full
//! the event is dropped and counted, and the subscriber sees the count. When nobody subscribes, the cost
//! on a slow path is one load of a pointer.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::ArrayQueue;

use crate::event::{current_tid, QueueEvent, QueueEventKind, WaitOutcome};
use crate::frames::{Stack, MAX_FRAMES};
use crate::Table;

/// Ring of events of one subscription.
pub(crate) struct Ring {
    events: ArrayQueue<QueueEvent>,
    dropped: AtomicU64,
    /// The stacks of waits that slept; events name them by id.
    stacks: ArrayQueue<Stack>,
    stacks_dropped: AtomicU64,
    /// The last stack id given (ids start at 1; 0 means none).
    next_stack: AtomicU32,
}

/// Stacks buffered per subscription: a tenth of a second of a busy program's sleeping waits.
const STACK_CAPACITY: usize = 8192;

/// A table's observer slot.
///
/// Rings are never freed while the table lives (`rings` keeps every ring ever made, reused by capacity),
/// so an emitter that loaded `active` may push into it at any later time without a reference count on
/// the hot path.
pub(crate) struct ObserverSlot {
    /// The ring of the current subscription, or null. Written under `rings`' lock; read lock-free.
    active: AtomicPtr<Ring>,
    /// Every ring made for this table; the lock also serialises subscribe and unsubscribe.
    rings: Mutex<Vec<Arc<Ring>>>,
}

impl ObserverSlot {
    pub(crate) fn new() -> Self {
        Self {
            active: AtomicPtr::new(std::ptr::null_mut()),
            rings: Mutex::new(Vec::new()),
        }
    }

    /// Whether someone listens; the emit paths skip building events otherwise.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        !self.active.load(Ordering::Relaxed).is_null()
    }

    #[inline]
    pub(crate) fn emit(&self, table: u32, ts_ns: u64, kind: QueueEventKind) {
        let ring = self.active.load(Ordering::Acquire);
        if ring.is_null() {
            return;
        }
        // SAFETY: every ring published in `active` is owned by `rings`, which only grows while the table
        // (and so `self`) lives.
        let ring = unsafe { &*ring };
        // Where a wait that slept waited: the waiting thread's stack (after the sleep, off the hot
        // path of waits that returned at once).
        let slept = matches!(kind, QueueEventKind::WaitEnd { outcome, .. } if outcome != WaitOutcome::Mismatch);
        let stack = if slept { ring.capture_stack() } else { 0 };
        let ev = QueueEvent {
            ts_ns,
            tid: current_tid(),
            table,
            kind,
            stack,
        };
        if ring.events.push(ev).is_err() {
            ring.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Ring {
    /// Takes the calling thread's stack into the stack ring; its id, or 0 if the ring was full.
    #[inline(never)]
    fn capture_stack(&self) -> u32 {
        let mut frames = [0; MAX_FRAMES];
        // The first return address is into this function: the observer's own frame, not the program's.
        let len = crate::frames::walk(&mut frames).saturating_sub(1);
        frames.copy_within(1.., 0);
        let id = match self
            .next_stack
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
        {
            0 => self
                .next_stack
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1),
            id => id,
        };
        let s = Stack {
            id,
            len: len as u8,
            frames,
        };
        if self.stacks.push(s).is_err() {
            self.stacks_dropped.fetch_add(1, Ordering::Relaxed);
            return 0;
        }
        id
    }
}

/// Why [`Table::subscribe`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    /// Another subscription to this table is live; a table has one observer at a time.
    Busy,
    /// A capacity of zero can hold no event.
    ZeroCapacity,
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => f.write_str(
                "this futex-core table already has an observer; drop the other Subscription first",
            ),
            Self::ZeroCapacity => f.write_str("observer capacity must be at least 1 event"),
        }
    }
}

impl std::error::Error for SubscribeError {}

/// A live subscription to a table's events. Dropping it unsubscribes.
pub struct Subscription<'t> {
    table: &'t Table,
    ring: Arc<Ring>,
}

impl Table {
    /// Subscribes to this table's slow-path events, buffering at most `capacity` undelivered events;
    /// beyond that, events are dropped and counted ([`Subscription::dropped`]).
    ///
    /// Events of operations that were already under way when the subscription began may be missing or
    /// may arrive at its very start: compare counts over a window that starts after subscribing.
    pub fn subscribe(&self, capacity: usize) -> Result<Subscription<'_>, SubscribeError> {
        if capacity == 0 {
            return Err(SubscribeError::ZeroCapacity);
        }
        let mut rings = self
            .observer
            .rings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !self.observer.active.load(Ordering::Relaxed).is_null() {
            return Err(SubscribeError::Busy);
        }
        let ring = match rings.iter().find(|r| r.events.capacity() == capacity) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(Ring {
                    events: ArrayQueue::new(capacity),
                    dropped: AtomicU64::new(0),
                    stacks: ArrayQueue::new(STACK_CAPACITY),
                    stacks_dropped: AtomicU64::new(0),
                    next_stack: AtomicU32::new(0),
                });
                rings.push(r.clone());
                r
            }
        };
        while ring.events.pop().is_some() {}
        while ring.stacks.pop().is_some() {}
        ring.dropped.store(0, Ordering::Relaxed);
        ring.stacks_dropped.store(0, Ordering::Relaxed);
        self.observer
            .active
            .store(Arc::as_ptr(&ring) as *mut Ring, Ordering::Release);
        Ok(Subscription { table: self, ring })
    }
}

impl Subscription<'_> {
    /// The next buffered event, if any. Never blocks.
    pub fn try_recv(&self) -> Option<QueueEvent> {
        self.ring.events.pop()
    }

    /// Moves every buffered event into `out`; returns how many.
    pub fn drain_into(&self, out: &mut Vec<QueueEvent>) -> usize {
        let before = out.len();
        while let Some(e) = self.ring.events.pop() {
            out.push(e);
        }
        out.len() - before
    }

    /// Moves every buffered stack into `out`; returns how many. A stack is buffered before the event
    /// that names it: drain the events first, then the stacks, and every stack those events name is
    /// there.
    pub fn drain_stacks_into(&self, out: &mut Vec<Stack>) -> usize {
        let before = out.len();
        while let Some(s) = self.ring.stacks.pop() {
            out.push(s);
        }
        out.len() - before
    }

    /// Stacks not kept because their buffer was full (their events have no stack).
    pub fn stacks_dropped(&self) -> u64 {
        self.ring.stacks_dropped.load(Ordering::Relaxed)
    }

    /// Events dropped because the buffer was full, since the subscription began.
    pub fn dropped(&self) -> u64 {
        self.ring.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the buffer now.
    pub fn len(&self) -> usize {
        self.ring.events.len()
    }

    /// True when no event is buffered.
    pub fn is_empty(&self) -> bool {
        self.ring.events.is_empty()
    }

    /// The table subscribed to.
    pub fn table(&self) -> &Table {
        self.table
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let _rings = self
            .table
            .observer
            .rings
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.table
            .observer
            .active
            .store(std::ptr::null_mut(), Ordering::Release);
    }
}
