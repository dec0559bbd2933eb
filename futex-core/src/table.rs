//! The hashed sleep-queue futex of OpenBSD's `sys_futex.c` (David Gwynne's v2 diff, May 2025), in
//! userspace. Read top to bottom: the waiter, the sleep queue, the table, then `wait`, `unwait`, `wake`
//! and `requeue`.
//!
//! Locks used to protect fields in this file:
//!
//! ```text
//!     I   immutable after initialization
//!     F   the lock of the sleep queue (slpque) the waiter is linked on
//! ```

use std::ptr;
use std::time::Duration;

use crate::event::{QueueEventKind, WaitKind, WaitOutcome};
use crate::facade::{bump, AtomicU32, AtomicUsize, Ordering, UnsafeCell};
use crate::lock::{QueueGuard, QueueLock};
use crate::observer::ObserverSlot;
use crate::parker::{Parker, Unparker};
use crate::probes::{self, Probe};
use crate::stats::{QueueSnapshot, QueueStats};
use crate::sys::now_ns;
use crate::{Requeued, WaitError};

/// A thread waiting on a futex: the seed's `struct futex`. It lives on the waiting thread's stack.
///
/// The address the waiter waits on is its `ident`. Whether it is waiting or has been woken is its
/// parker's state: not released while it is linked on a sleep queue, released once a waker has unlinked
/// it. Only a thread holding the queue's lock may unlink it and release it; this is true even for the
/// waiting thread itself (`unwait`).
///
/// The waiting thread may, however, read the parker's state without the lock, so that it can return
/// without contending with the thread that just woke it. This means that once the waiter is released, its
/// thread may return and the waiter no longer exists: from then on the waker must not touch it.
///
/// tl;dr: the thread holding the slpque lock owns the waiters on its list until it releases them.
pub(crate) struct Waiter {
    /// `[F]` list linkage.
    next: UnsafeCell<*const Waiter>,
    /// `[F]` list linkage.
    prev: UnsafeCell<*const Waiter>,
    /// `[F]` the address waited on. Requeue rewrites it holding the locks of both queues; `unwait` reads
    /// it holding the lock of the queue it believes the waiter is on, and retries if the address now
    /// hashes elsewhere (the seed's `volatile ft_off`).
    ident: AtomicUsize,
    /// `[F]` times requeue moved this waiter.
    requeued: UnsafeCell<u32>,
    /// `[F]` when the waker that released it started its wake (ns), read by the waiter after release.
    woken_ns: UnsafeCell<u64>,
    /// `[F]` what the releaser tells the waiter (0 unless a [`Table::wake_one_with`] decided otherwise),
    /// read by the waiter after release.
    token: UnsafeCell<u32>,
    /// `[F]` since when (ns) the waiter's thread has waited for what it waits on: given by the waiter,
    /// reset by requeue (waiting for the new word starts then). A fair wake reads it.
    since_ns: UnsafeCell<u64>,
    /// The seed's `ft_proc`: written to released `[F]`; read without the lock by the waiting thread.
    parker: Parker,
    /// `[I]`
    kind: WaitKind,
}

impl Waiter {
    fn new(ident: usize, kind: WaitKind, since_ns: u64) -> Self {
        Self {
            next: UnsafeCell::new(ptr::null()),
            prev: UnsafeCell::new(ptr::null()),
            ident: AtomicUsize::new(ident),
            requeued: UnsafeCell::new(0),
            woken_ns: UnsafeCell::new(0),
            token: UnsafeCell::new(0),
            since_ns: UnsafeCell::new(since_ns),
            parker: Parker::new(),
            kind,
        }
    }
}

/// Under loom, the waiter's thread writes every field as it returns, as the next use of that stack memory
/// would. A waker that touched the waiter after releasing it races with these writes, and loom reports it.
#[cfg(loom)]
impl Drop for Waiter {
    fn drop(&mut self) {
        // The waiter is off every list, so only this thread can reach it, unless a waker breaks the
        // ownership rule, which is what loom is here to catch.
        // SAFETY: as just said.
        self.next.with_mut(|p| unsafe { *p = ptr::null() });
        // SAFETY: as above.
        self.prev.with_mut(|p| unsafe { *p = ptr::null() });
        // SAFETY: as above.
        self.requeued.with_mut(|p| unsafe { *p = u32::MAX });
        // SAFETY: as above.
        self.woken_ns.with_mut(|p| unsafe { *p = u64::MAX });
        // SAFETY: as above.
        self.token.with_mut(|p| unsafe { *p = u32::MAX });
        // SAFETY: as above.
        self.since_ns.with_mut(|p| unsafe { *p = u64::MAX });
    }
}

/// Reads a `[F]` field of a linked waiter.
///
/// # Safety
/// `w` is linked on a queue whose lock the caller holds (or is the caller's own waiter, not yet released).
#[inline(always)]
unsafe fn get<T: Copy>(cell: *const UnsafeCell<T>) -> T {
    // SAFETY: the caller's lock orders this read after every write (all made under the same lock).
    unsafe { (*cell).with(|p| *p) }
}

/// Writes a `[F]` field of a linked waiter.
///
/// # Safety
/// As [`get`].
#[inline(always)]
unsafe fn set<T>(cell: *const UnsafeCell<T>, v: T) {
    // SAFETY: the caller's lock excludes every other access.
    unsafe { (*cell).with_mut(|p| *p = v) }
}

/// Head and tail of a sleep queue's list.
struct List {
    head: *const Waiter,
    tail: *const Waiter,
}

/// A sleep queue: the seed's `struct futex_slpque`. Aligned to a cache line so that two queues' locks never
/// share one (the point of the design: threads on different queues do not contend).
#[repr(align(64))]
pub(crate) struct SlpQue {
    lock: QueueLock,
    /// `[F]`
    list: UnsafeCell<List>,
    /// `[I]` for lock ordering: random high bits, the queue index in the low bits (unique per table).
    id: u32,
    /// `[F]` written under the lock; snapshots read it without.
    stats: QueueStats,
}

impl SlpQue {
    fn head(&self, _g: &QueueGuard<'_>) -> *const Waiter {
        self.list.with(|l| {
            // SAFETY: `_g` proves the lock is held.
            unsafe { (*l).head }
        })
    }

    fn tail(&self, _g: &QueueGuard<'_>) -> *const Waiter {
        self.list.with(|l| {
            // SAFETY: `_g` proves the lock is held.
            unsafe { (*l).tail }
        })
    }

    /// Links `w` at the tail (the seed's `TAILQ_INSERT_TAIL`).
    ///
    /// # Safety
    /// `w` is alive and on no list, and stays alive until unlinked under this lock; `_g` is this lock.
    unsafe fn insert_tail(&self, _g: &QueueGuard<'_>, w: *const Waiter) {
        self.list.with_mut(|l| {
            // SAFETY: the lock is held; `w` and the old tail are alive (see above and the list invariant).
            unsafe {
                let old = (*l).tail;
                set(&(*w).next, ptr::null());
                set(&(*w).prev, old);
                if old.is_null() {
                    (*l).head = w;
                } else {
                    set(&(*old).next, w);
                }
                (*l).tail = w;
            }
        });
        self.stats.linked();
    }

    /// Unlinks `w` (the seed's `TAILQ_REMOVE`).
    ///
    /// # Safety
    /// `w` is linked on this queue; `_g` is this queue's lock.
    unsafe fn remove(&self, _g: &QueueGuard<'_>, w: *const Waiter) {
        self.list.with_mut(|l| {
            // SAFETY: the lock is held; `w` and its neighbours are linked, so alive.
            unsafe {
                let next = get(&(*w).next);
                let prev = get(&(*w).prev);
                if prev.is_null() {
                    (*l).head = next;
                } else {
                    set(&(*prev).next, next);
                }
                if next.is_null() {
                    (*l).tail = prev;
                } else {
                    set(&(*next).prev, prev);
                }
            }
        });
        self.stats.unlinked();
    }
}

/// Wakes collected during a critical section, issued after the queue locks are dropped (the syscall that
/// wakes a sleeping thread is slow; the queue lock should not be held across it).
struct Unparkers {
    buf: [Option<Unparker>; 16],
    len: usize,
}

impl Unparkers {
    fn new() -> Self {
        Self {
            buf: Default::default(),
            len: 0,
        }
    }

    fn push(&mut self, u: Unparker) {
        if self.len == self.buf.len() {
            // Rare (more than 16 sleepers released at once): wake this one now, under the lock.
            u.unpark();
            return;
        }
        self.buf[self.len] = Some(u);
        self.len += 1;
    }

    fn unpark_all(self) {
        for u in self.buf.into_iter().take(self.len).flatten() {
            u.unpark();
        }
    }
}

/// What [`Table::wake_one_with`]'s decision sees, under the queue lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WakeOne {
    /// A waiter on the word is being woken (the first in line).
    pub(crate) woken: bool,
    /// Another waiter on the word stays linked after it.
    pub(crate) more: bool,
    /// How long the woken waiter has waited, from the time its `wait_token` gave (ns; 0 if none woken).
    pub(crate) waited_ns: u64,
}

/// The number of sleep queues of the process-wide default table (the seed's `FUTEX_SLPQUES_SIZE`).
pub const DEFAULT_QUEUES: usize = 64;

/// A table of sleep queues. The free functions of this crate use a process-wide one of
/// [`DEFAULT_QUEUES`] queues; tests and benchmarks build others (one queue is the old global lock).
pub struct Table {
    queues: Box<[SlpQue]>,
    /// `[I]` log2 of the number of queues.
    bits: u32,
    /// `[I]` this table's id in probes and events (0: the default table).
    id: u32,
    pub(crate) observer: ObserverSlot,
}

// SAFETY: every field a thread can reach through `&Table` is either immutable, atomic, or behind a queue
// lock; waiters are reached only through the lists, under those locks.
unsafe impl Sync for Table {}
// SAFETY: a table owns no thread-bound state; the waiters on its lists belong to threads blocked in it.
unsafe impl Send for Table {}

/// Why [`Table::try_new`] refused a size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSizeError(pub usize);

impl std::fmt::Display for TableSizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a futex table needs a power-of-two number of sleep queues between 1 and 65536, not {}",
            self.0
        )
    }
}

impl std::error::Error for TableSizeError {}

static NEXT_TABLE_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// A source of randomness for the lock-ordering ids, without a dependency: std's hasher keys are random.
fn random_u32(i: usize) -> u32 {
    #[cfg(loom)]
    {
        // Deterministic under the model checker; the order still differs from the index order.
        (i as u32).wrapping_mul(0x9e37_79b9).rotate_left(7)
    }
    #[cfg(not(loom))]
    {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.finish() as u32
    }
}

impl Table {
    /// A table of `queues` sleep queues. `queues` must be a power of two from 1 to 65536.
    ///
    /// # Panics
    /// On any other size; [`Table::try_new`] returns the error instead.
    pub fn new(queues: usize) -> Table {
        match Self::try_new(queues) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// A table of `queues` sleep queues, or an error if `queues` is not a power of two from 1 to 65536.
    pub fn try_new(queues: usize) -> Result<Table, TableSizeError> {
        if !queues.is_power_of_two() || queues > 1 << 16 {
            return Err(TableSizeError(queues));
        }
        Ok(Self::with_id(
            queues,
            NEXT_TABLE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ))
    }

    pub(crate) fn with_id(queues: usize, id: u32) -> Table {
        let bits = queues.trailing_zeros();
        let mask = (queues - 1) as u32;
        let queues = (0..queues)
            .map(|i| SlpQue {
                lock: QueueLock::new(),
                list: UnsafeCell::new(List {
                    head: ptr::null(),
                    tail: ptr::null(),
                }),
                // As the seed: random high bits, the index in the low bits, so ids are unique.
                id: (random_u32(i) & !mask) | i as u32,
                stats: QueueStats::default(),
            })
            .collect();
        Table {
            queues,
            bits,
            id,
            observer: ObserverSlot::new(),
        }
    }

    /// Number of sleep queues.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Always false: a table has at least one queue.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// This table's id in probes and observer events (0 is the process-wide default table).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The queue an address maps to: the seed's `futex_get_slpque`, generalised to any table size.
    #[inline]
    pub fn bucket_of_addr(&self, addr: usize) -> usize {
        bucket_of_addr(addr, self.bits)
    }

    /// The queue a futex word maps to.
    #[inline]
    pub fn bucket_of(&self, futex: &AtomicU32) -> usize {
        self.bucket_of_addr(futex as *const AtomicU32 as usize)
    }

    /// A snapshot of every queue's statistics, in queue order.
    pub fn stats(&self) -> Vec<QueueSnapshot> {
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| q.stats.snapshot(i))
            .collect()
    }

    /// Every queue's counters added up (depth: waiters in the whole table now; `index` is 0).
    pub fn totals(&self) -> QueueSnapshot {
        self.stats()
            .iter()
            .fold(QueueSnapshot::default(), |mut total, q| {
                total.accumulate(q);
                total
            })
    }

    /// The statistics of one queue.
    pub fn queue_stats(&self, queue: usize) -> Option<QueueSnapshot> {
        self.queues.get(queue).map(|q| q.stats.snapshot(queue))
    }

    /// Takes queue `qi`'s lock, accounting (and reporting) the acquisition if it had to wait.
    #[inline]
    fn lock_queue(&self, qi: usize, addr: usize, kind: WaitKind) -> QueueGuard<'_> {
        let q = &self.queues[qi];
        let (g, waited) = q.lock.lock();
        if let Some(ns) = waited {
            bump(&q.stats.lock_contended, 1);
            bump(&q.stats.lock_wait_ns, ns);
            self.emit(
                None,
                QueueEventKind::LockContended {
                    addr,
                    bucket: qi as u32,
                    wait: kind,
                    wait_ns: ns,
                },
            );
        }
        g
    }

    /// Waits on `futex` while it holds `expected`: see [`crate::wait`]. `kind` labels the wait in
    /// statistics, probes and events.
    pub fn wait_as(
        &self,
        futex: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        kind: WaitKind,
    ) -> Result<(), WaitError> {
        self.wait_token(futex, expected, timeout, kind, None)
            .map(|_| ())
    }

    /// [`Table::wait_as`], returning the token the waker left (0 unless a [`Table::wake_one_with`] chose
    /// one). `since_ns` is when the caller began waiting for what it waits for, if before this call (a
    /// mutex's slow path that parks again after a wakeup): the age a fair wake sees.
    pub(crate) fn wait_token(
        &self,
        futex: &AtomicU32,
        expected: u32,
        timeout: Option<Duration>,
        kind: WaitKind,
        since_ns: Option<u64>,
    ) -> Result<u32, WaitError> {
        let addr = futex as *const AtomicU32 as usize;
        let start = now_ns();
        let waiter = Waiter::new(addr, kind, since_ns.unwrap_or(start));
        let w: *const Waiter = &waiter;
        let qi = self.bucket_of_addr(addr);
        let q = &self.queues[qi];
        {
            let g = self.lock_queue(qi, addr, kind);
            // SAFETY: `waiter` is on no list and outlives its linkage: this function does not return before
            // it is unlinked (by a waker, or below by `unwait`).
            unsafe { q.insert_tail(&g, w) };
            bump(&q.stats.waits, 1);
        }
        self.emit(
            None,
            QueueEventKind::WaitStart {
                addr,
                bucket: qi as u32,
                wait: kind,
                expected,
            },
        );

        // Do not return before the waiter has been removed from its queue!

        let outcome = if futex.load(Ordering::Acquire) != expected {
            // The value changed between the caller's check and our linking: do not sleep.
            if self.unwait(qi, &waiter, WaitOutcome::Mismatch) {
                WaitOutcome::Mismatch
            } else {
                WaitOutcome::Woken
            }
        } else if waiter.parker.park(timeout) || !self.unwait(qi, &waiter, WaitOutcome::TimedOut) {
            // Released by a waker, or the timeout fired but a waker released the waiter first: woken.
            WaitOutcome::Woken
        } else {
            WaitOutcome::TimedOut
        };

        // The waiter is ours again: released (the releaser's store is acquired by `is_released`), or
        // unlinked by `unwait` under the lock.
        let end = now_ns();
        // SAFETY: the waiter is off every list; no other thread accesses it any more.
        let (requeued, woken_ns, token) = unsafe {
            (
                get(&waiter.requeued),
                get(&waiter.woken_ns),
                get(&waiter.token),
            )
        };
        let final_addr = waiter.ident.load(Ordering::Relaxed);
        let wake_to_return = if outcome == WaitOutcome::Woken && woken_ns != 0 {
            end.saturating_sub(woken_ns)
        } else {
            0
        };
        self.emit(
            Some(end),
            QueueEventKind::WaitEnd {
                addr,
                bucket: self.bucket_of_addr(final_addr) as u32,
                wait: kind,
                outcome,
                wait_ns: end.saturating_sub(start),
                wake_to_return_ns: wake_to_return,
                requeued,
                final_addr,
            },
        );
        match outcome {
            WaitOutcome::Woken => Ok(token),
            WaitOutcome::TimedOut => Err(WaitError::TimedOut),
            WaitOutcome::Mismatch => Err(WaitError::Mismatch),
        }
    }

    /// Unlinks the caller's own waiter if it is still linked, following it to whichever queue requeue
    /// moved it to (the seed's `futex_unwait`). Returns true if it was still linked (the wait ends as
    /// `why`), false if a waker released it first (the wait ends as woken).
    fn unwait(&self, mut qi: usize, w: &Waiter, why: WaitOutcome) -> bool {
        // A waiter released by a waker is the caller's again; the Acquire load orders our later reads.
        if w.parker.is_released() {
            return false;
        }
        loop {
            let g = self.lock_queue(qi, w.ident.load(Ordering::Relaxed), w.kind);
            // REQUEUE can move a waiter between queues, so follow it if needed. Holding this queue's lock,
            // an ident that hashes here means the waiter is here: any mover must hold this lock too.
            let cur = self.bucket_of_addr(w.ident.load(Ordering::Relaxed));
            if cur != qi {
                drop(g);
                qi = cur;
                continue;
            }
            let q = &self.queues[qi];
            // Released only under the lock of the queue the waiter was on, which is this one.
            let linked = !w.parker.is_released();
            if linked {
                // SAFETY: linked on `q` (ident hashes here and not released), lock held.
                unsafe { q.remove(&g, w) };
                match why {
                    WaitOutcome::TimedOut => bump(&q.stats.timeouts, 1),
                    _ => bump(&q.stats.mismatches, 1),
                }
            }
            return linked;
        }
    }

    /// Releases up to `n` waiters on `addr` from queue `q`, starting at `from`. Returns how many, the
    /// collisions skipped, and the entry after the last one released (null if the list was exhausted).
    ///
    /// # Safety
    /// `g` is `q`'s lock; `from` is null or linked on `q`.
    unsafe fn release_matching(
        &self,
        q: &SlpQue,
        g: &QueueGuard<'_>,
        addr: usize,
        n: u32,
        unparkers: &mut Unparkers,
    ) -> (u32, u32, *const Waiter) {
        let mut f = q.head(g);
        if f.is_null() {
            return (0, 0, f);
        }
        let now = now_ns();
        let (mut count, mut collisions) = (0u32, 0u32);
        while !f.is_null() {
            // SAFETY: `f` is linked on `q` and we hold its lock, so it is alive and ours.
            unsafe {
                let nf = get(&(*f).next);
                if (*f).ident.load(Ordering::Relaxed) != addr {
                    collisions += 1;
                    f = nf;
                    continue;
                }
                q.remove(g, f);
                set(&(*f).woken_ns, now);
                // The last touch: after this the waiter's thread may return.
                unparkers.push(Parker::release(&(*f).parker));
                count += 1;
                f = nf;
            }
            if count == n {
                break;
            }
        }
        bump(&q.stats.woken, count as u64);
        bump(&q.stats.collisions, collisions as u64);
        (count, collisions, f)
    }

    /// Wakes up to `n` waiters on `futex`: see [`crate::wake`].
    pub fn wake_as(&self, futex: &AtomicU32, n: u32, kind: WaitKind) -> u32 {
        self.wake_addr(futex as *const AtomicU32 as usize, n, kind)
    }

    fn wake_addr(&self, addr: usize, n: u32, kind: WaitKind) -> u32 {
        if n == 0 {
            return 0;
        }
        let qi = self.bucket_of_addr(addr);
        let q = &self.queues[qi];
        let mut unparkers = Unparkers::new();
        let g = self.lock_queue(qi, addr, kind);
        bump(&q.stats.wakes, 1);
        // SAFETY: `g` is `q`'s lock.
        let (woken, collisions, _) =
            unsafe { self.release_matching(q, &g, addr, n, &mut unparkers) };
        drop(g);
        unparkers.unpark_all();
        self.emit_wake(addr, qi, kind, n, woken, collisions);
        woken
    }

    /// The `wake` event of a wake that released `woken` of `requested` waiters on `addr` (queue `qi`).
    fn emit_wake(
        &self,
        addr: usize,
        qi: usize,
        kind: WaitKind,
        requested: u32,
        woken: u32,
        collisions: u32,
    ) {
        self.emit(
            None,
            QueueEventKind::Wake {
                addr,
                bucket: qi as u32,
                wait: kind,
                requested,
                woken,
                collisions,
            },
        );
    }

    /// Wakes the first waiter on `futex` (if any), letting `decide` choose, under the queue lock, what it
    /// is told: `decide` runs whether or not a waiter was found, sees a [`WakeOne`], and returns the
    /// token the woken waiter's [`Table::wait_token`] returns. A lock built on the table changes its word
    /// inside `decide`, so that the change and the queue it describes are one atomic step to every other
    /// waiter and waker (parking_lot's `unpark_one` callback). Returns whether a waiter was woken.
    pub(crate) fn wake_one_with(
        &self,
        futex: &AtomicU32,
        kind: WaitKind,
        decide: impl FnOnce(WakeOne) -> u32,
    ) -> bool {
        let addr = futex as *const AtomicU32 as usize;
        let qi = self.bucket_of_addr(addr);
        let q = &self.queues[qi];
        let g = self.lock_queue(qi, addr, kind);
        bump(&q.stats.wakes, 1);
        let (mut first, mut more, mut collisions) = (ptr::null::<Waiter>(), false, 0u32);
        let mut f = q.head(&g);
        while !f.is_null() {
            // SAFETY: `f` is linked on `q` and we hold its lock, so it is alive and ours.
            let (ident, next) = unsafe { ((*f).ident.load(Ordering::Relaxed), get(&(*f).next)) };
            if ident != addr {
                collisions += 1;
            } else if first.is_null() {
                first = f;
            } else {
                more = true;
                break;
            }
            f = next;
        }
        let now = now_ns();
        let woken = !first.is_null();
        let waited_ns = if woken {
            // SAFETY: `first` is linked on `q`, lock held.
            now.saturating_sub(unsafe { get(&(*first).since_ns) })
        } else {
            0
        };
        let token = decide(WakeOne {
            woken,
            more,
            waited_ns,
        });
        let mut unparker = None;
        if woken {
            // SAFETY: `first` is linked on `q`, lock held; the release is the last touch.
            unsafe {
                q.remove(&g, first);
                set(&(*first).woken_ns, now);
                set(&(*first).token, token);
                unparker = Some(Parker::release(&(*first).parker));
            }
        }
        bump(&q.stats.woken, woken as u64);
        bump(&q.stats.collisions, collisions as u64);
        drop(g);
        if let Some(u) = unparker {
            u.unpark();
        }
        self.emit_wake(addr, qi, kind, 1, woken as u32, collisions);
        woken
    }

    /// Wakes up to `n` waiters on `from` and moves up to `m` more onto `to`: see [`crate::requeue`].
    pub fn requeue_as(
        &self,
        from: &AtomicU32,
        n: u32,
        to: &AtomicU32,
        m: u32,
        kind: WaitKind,
    ) -> Requeued {
        self.requeue_addr(
            from as *const AtomicU32 as usize,
            n,
            to as *const AtomicU32 as usize,
            m,
            kind,
        )
    }

    /// [`Table::requeue_as`] by addresses: the target is only an identity, never dereferenced, so a
    /// caller that cannot prove the target word alive (a condvar's remembered mutex) may still name it.
    pub(crate) fn requeue_addr(
        &self,
        fa: usize,
        n: u32,
        ta: usize,
        m: u32,
        kind: WaitKind,
    ) -> Requeued {
        if m == 0 {
            return Requeued {
                woken: self.wake_addr(fa, n, kind),
                moved: 0,
            };
        }
        self.requeue_with(fa, ta, kind, |_| (n, m), |_| {})
    }

    /// [`Table::requeue_addr`], deciding under the queue locks: `plan` may ask (by calling the function
    /// it is given) whether a waiter on `fa` is linked, and returns how many to wake and how many to move
    /// (`m` 0 moves none); `after` sees the result, still under the locks (a condvar marks its mutex's
    /// word there, before any of the moved waiters can be woken from it).
    pub(crate) fn requeue_with(
        &self,
        fa: usize,
        ta: usize,
        kind: WaitKind,
        plan: impl FnOnce(&dyn Fn() -> bool) -> (u32, u32),
        after: impl FnOnce(Requeued),
    ) -> Requeued {
        let (fi, ti) = (self.bucket_of_addr(fa), self.bucket_of_addr(ta));
        let (ofsq, nfsq) = (&self.queues[fi], &self.queues[ti]);

        // Two queue locks in the order of their random ids; one when both addresses share a queue.
        let (og, ng) = if fi == ti {
            (self.lock_queue(fi, fa, kind), None)
        } else if ofsq.id < nfsq.id {
            let og = self.lock_queue(fi, fa, kind);
            (og, Some(self.lock_queue(ti, ta, kind)))
        } else {
            let ng = self.lock_queue(ti, ta, kind);
            (self.lock_queue(fi, fa, kind), Some(ng))
        };
        bump(&ofsq.stats.requeues, 1);

        let found = || {
            let mut f = ofsq.head(&og);
            while !f.is_null() {
                // SAFETY: `f` is linked on `ofsq` and we hold its lock.
                unsafe {
                    if (*f).ident.load(Ordering::Relaxed) == fa {
                        return true;
                    }
                    f = get(&(*f).next);
                }
            }
            false
        };
        let (n, m) = plan(&found);
        let now = now_ns();

        let mut unparkers = Unparkers::new();
        let (woken, mut collisions, mut mf) = if n > 0 {
            // SAFETY: `og` is `ofsq`'s lock.
            let (w, c, next) = unsafe { self.release_matching(ofsq, &og, fa, n, &mut unparkers) };
            // Fewer than n matched: the list is exhausted, nothing is left to move.
            (w, c, if w < n { ptr::null() } else { next })
        } else {
            // n == 0 wakes nobody and only moves (the seed's v2 would wake everyone here).
            (0, 0, ofsq.head(&og))
        };

        let mut moved = 0u32;
        let mut moved_collisions = 0u32;
        if !mf.is_null() && m > 0 {
            // Only iterate from the current entry to the tail of the list as it is now, in case we are
            // requeueing onto the end of the same list.
            let last = ofsq.tail(&og);
            let ng_ref = ng.as_ref().unwrap_or(&og);
            loop {
                let f = mf;
                // SAFETY: `f` is linked on `ofsq` (between `mf` and `last`), whose lock we hold; when it is
                // moved, it goes onto `nfsq`, whose lock we hold too (`ng_ref`, or `og` for the same queue).
                unsafe {
                    mf = get(&(*f).next);
                    if (*f).ident.load(Ordering::Relaxed) == fa {
                        ofsq.remove(&og, f);
                        (*f).ident.store(ta, Ordering::Relaxed);
                        set(&(*f).requeued, get(&(*f).requeued) + 1);
                        set(&(*f).since_ns, now);
                        nfsq.insert_tail(ng_ref, f);
                        moved += 1;
                    } else {
                        moved_collisions += 1;
                    }
                }
                if moved == m || f == last {
                    break;
                }
            }
            bump(&ofsq.stats.requeued_out, moved as u64);
            bump(&nfsq.stats.requeued_in, moved as u64);
            bump(&ofsq.stats.collisions, moved_collisions as u64);
            collisions += moved_collisions;
        }
        after(Requeued { woken, moved });
        drop(ng);
        drop(og);
        unparkers.unpark_all();
        self.emit(
            None,
            QueueEventKind::Requeue {
                from: fa,
                from_bucket: fi as u32,
                to: ta,
                to_bucket: ti as u32,
                wait: kind,
                woken,
                moved,
                collisions,
            },
        );
        Requeued { woken, moved }
    }
}

/// The seed's hash, for a table of `2^bits` queues: drop the low 3 bits of the address, fold the next bits
/// down once, keep the low `bits`. Public so that a tracer can map another process's addresses the same way.
#[inline]
pub fn bucket_of_addr(addr: usize, bits: u32) -> usize {
    let mut key = (addr >> 3) as u32;
    if bits > 0 {
        key ^= key >> bits;
    }
    let mask = (1u32 << bits) - 1;
    (key & mask) as usize
}

impl Table {
    /// Reports one slow-path event: fires its USDT probe (a `nop` unless a tracer attached; arguments as
    /// [`crate::probes::encode`] packs them, `PROBES.md`) and hands it to the observer if one listens.
    /// `ts` is the event's time when the caller has it already; otherwise it is read only for the
    /// observer.
    #[inline(always)]
    fn emit(&self, ts: Option<u64>, kind: QueueEventKind) {
        let (p, a) = probes::encode(self.id, &kind);
        // One site per probe name: the macro needs the name as a token.
        match p {
            Probe::WaitStart => probe::probe!(futex_core, wait_start, a[0], a[1], a[2], a[3]),
            Probe::WaitEnd => {
                probe::probe!(futex_core, wait_end, a[0], a[1], a[2], a[3], a[4], a[5])
            }
            Probe::Wake => probe::probe!(futex_core, wake, a[0], a[1], a[2], a[3], a[4], a[5]),
            Probe::Requeue => {
                probe::probe!(futex_core, requeue, a[0], a[1], a[2], a[3], a[4], a[5])
            }
            Probe::LockContended => {
                probe::probe!(futex_core, lock_contended, a[0], a[1], a[2], a[3])
            }
        }
        if self.observer.is_active() {
            self.observer.emit(self.id, ts.unwrap_or_else(now_ns), kind);
        }
    }
}
