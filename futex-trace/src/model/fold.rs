//! Folding events into the model: one function per event kind, and the charges they share (a word's
//! counts, its kernel bucket, the time series, the stacks a wait is charged to).

use std::collections::HashMap;

use super::{
    AddrStats, BucketStats, KernelBucketStats, Model, Release, SecondStats, Side, Spins, StackKey,
    StackStats, SERIES_SECONDS,
};
use crate::event::{Counts, Event, EventKind, HistOf, KernelHash, OpClass, Outcome, Waker};

/// The word (pid, addr) of `map`, created on first sight, marked seen at `ts_ns`.
fn word(
    map: &mut HashMap<(u32, u64), AddrStats>,
    pid: u32,
    addr: u64,
    ts_ns: u64,
) -> &mut AddrStats {
    let a = map.entry((pid, addr)).or_default();
    a.pid = pid;
    a.last_ts_ns = a.last_ts_ns.max(ts_ns);
    a
}

/// What a wait that slept is charged to its stacks: its waiting thread's stack, and its waker's.
struct WaitCharge {
    /// The waiting thread and its stack.
    waiter: Option<(u32, StackKey)>,
    /// The waking thread and its stack (of its own process).
    waker: Option<(u32, StackKey)>,
    /// Waits the waiter's stack stands for, and their nanoseconds.
    waits: f64,
    ns: u64,
    /// The same for the waker's stack.
    waker_waits: f64,
    waker_ns: u64,
    /// The waking thread, (pid, tid), when known.
    waker_thread: Option<(u32, u32)>,
    /// It ended by its timeout.
    timed_out: bool,
}

impl Model {
    /// Folds a batch of events.
    pub fn extend(&mut self, events: &[Event]) {
        for e in events {
            self.apply(e);
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, e: &Event) {
        self.totals.events += 1;
        if self.max_words.is_some_and(|cap| self.addresses.len() > cap) {
            self.evict();
        }
        if e.ts_ns != 0 {
            if self.first_ts_ns == 0 || e.ts_ns < self.first_ts_ns {
                self.first_ts_ns = e.ts_ns;
            }
            self.last_ts_ns = self.last_ts_ns.max(e.ts_ns);
        }
        match e.kind {
            EventKind::WaitStart { addr, bucket, .. } => self.wait_start(e, addr, bucket),
            EventKind::WaitEnd { .. } => self.wait_end(e),
            EventKind::Wake {
                addr,
                bucket,
                woken,
                collisions,
                ..
            } => self.wake(e, addr, bucket, woken, collisions),
            EventKind::Requeue { .. } => self.requeue(e),
            EventKind::LockContended {
                bucket, wait_ns, ..
            } => {
                let b = self.bucket(bucket);
                b.counters.lock_contended += 1;
                b.counters.lock_wait_ns += wait_ns;
                self.totals.lock_contended += 1;
            }
            EventKind::Counts {
                addr,
                op,
                hash,
                counts,
            } => {
                if let Some(h) = hash {
                    self.kernel_table(e.pid, addr, h);
                }
                self.counts(e, addr, op.class(), &counts);
            }
            EventKind::BucketSpins {
                addr,
                op,
                hash,
                spins,
                spin_ns,
                several_callers,
            } => {
                self.kernel_table(e.pid, addr, hash);
                let mut s = Spins {
                    spin_ns,
                    ..Spins::default()
                };
                match op.class() {
                    OpClass::Wait => s.wait = spins,
                    OpClass::Requeue => s.requeue = spins,
                    _ => s.wake = spins,
                }
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.bucket_spins.add(&s);
                a.several_callers |= several_callers;
                if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
                    kb.spins.add(&s);
                }
            }
            EventKind::Hist { .. } => self.hist(e),
            EventKind::Waiting { addr, now } => self.waiting(e, addr, now),
            EventKind::Moved { .. } => self.moved(e),
            EventKind::WaitSample { .. } => self.sample(e),
            EventKind::Lost { count } => {
                self.totals.lost_events += count;
                // Lost ends would leave waiters counted forever: start counting "waiting now" afresh.
                for a in self.addresses.values_mut() {
                    a.waiting = 0;
                }
            }
            EventKind::OtherOp { ret, .. } => {
                self.totals.other_ops += 1;
                if ret < 0 {
                    self.totals.failed += 1;
                }
            }
            EventKind::ThreadName { name } => {
                self.threads.insert((e.pid, e.tid), name);
            }
            EventKind::Fork { .. } => self.forks += 1,
            EventKind::Exit => self.exits += 1,
        }
    }

    /// A waiter linked onto a futex-core queue.
    fn wait_start(&mut self, e: &Event, addr: u64, bucket: u32) {
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        a.waiting += 1;
        let b = self.bucket(bucket);
        b.counters.waits += 1;
        b.depth += 1;
        b.max_depth = b.max_depth.max(b.depth);
        self.totals.waits += 1;
    }

    /// A wait returned (futex-core's events, one per wait).
    fn wait_end(&mut self, e: &Event) {
        let EventKind::WaitEnd {
            addr,
            bucket,
            wait,
            outcome,
            wait_ns,
            wake_to_return_ns,
            sched_delay_ns,
            waker,
            kernel,
            ..
        } = e.kind
        else {
            return;
        };
        let blocked = outcome.blocked();
        let b = self.bucket(bucket);
        b.depth -= 1;
        match outcome {
            Outcome::Mismatch => b.counters.mismatches += 1,
            Outcome::TimedOut => b.counters.timeouts += 1,
            _ => {}
        }
        if blocked {
            b.waits_blocked += 1;
        }
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        a.waiting = (a.waiting - 1).max(0);
        a.waits += 1;
        *a.kinds.entry(wait).or_default() += 1;
        match outcome {
            Outcome::Woken => a.woken += 1,
            Outcome::TimedOut => a.timeouts += 1,
            Outcome::Mismatch => a.mismatches += 1,
            Outcome::Interrupted | Outcome::Failed | Outcome::Acquired => {}
        }
        if blocked {
            a.waits_blocked += 1;
            a.wait_ns_total += wait_ns;
            a.wait_ns.record(wait_ns);
            let charge = WaitCharge {
                waiter: kernel.and_then(|k| Some((e.tid, (e.pid, k.stack?)))),
                waker: waker.and_then(|w: Waker| Some((w.tid, (w.pid_or(e.pid), w.stack?)))),
                waits: 1.0,
                ns: wait_ns,
                waker_waits: 1.0,
                waker_ns: wait_ns,
                waker_thread: waker.map(|w| (w.pid_or(e.pid), w.tid)),
                timed_out: outcome == Outcome::TimedOut,
            };
            self.charge(e.pid, addr, &charge);
            if wait.is_idle() {
                self.wait_idle.record(wait_ns);
            } else {
                self.wait_contention.record(wait_ns);
            }
            self.totals.waits_blocked += 1;
            let sec = self.second(e.ts_ns);
            sec.waits_blocked += 1;
            sec.wait_ns += wait_ns;
        }
        self.outcome(outcome);
        if let Some(l) = wake_to_return_ns {
            self.wake_to_return.record(l);
        }
        if let Some(d) = sched_delay_ns {
            self.sched_delay.record(d);
        }
    }

    /// A wait's outcome in the totals (a woken one counts nowhere of its own).
    fn outcome(&mut self, outcome: Outcome) {
        let t = &mut self.totals;
        match outcome {
            Outcome::Mismatch => t.mismatches += 1,
            Outcome::TimedOut => t.timeouts += 1,
            Outcome::Interrupted => t.interrupted += 1,
            Outcome::Failed => t.failed += 1,
            Outcome::Acquired => t.acquired += 1,
            Outcome::Woken => {}
        }
    }

    /// A wake call (futex-core's events).
    fn wake(&mut self, e: &Event, addr: u64, bucket: u32, woken: u32, collisions: u32) {
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        a.wakes += 1;
        a.wakes_woke += u64::from(woken);
        let b = self.bucket(bucket);
        b.counters.wakes += 1;
        b.counters.woken += u64::from(woken);
        b.counters.collisions += u64::from(collisions);
        self.totals.wakes += 1;
        self.totals.woken += u64::from(woken);
        self.second(e.ts_ns).wakes += 1;
    }

    /// A requeue call (futex-core's events): waiters moved from one queue to another.
    fn requeue(&mut self, e: &Event) {
        let EventKind::Requeue {
            from,
            to,
            from_bucket,
            to_bucket,
            woken,
            moved,
            collisions,
            ..
        } = e.kind
        else {
            return;
        };
        let (woken, moved) = (u64::from(woken), u64::from(moved));
        let b = self.bucket(from_bucket);
        b.counters.requeues += 1;
        b.counters.woken += woken;
        b.counters.requeued_out += moved;
        b.counters.collisions += u64::from(collisions);
        b.depth -= moved as i64;
        let t = self.bucket(to_bucket);
        t.counters.requeued_in += moved;
        t.depth += moved as i64;
        t.max_depth = t.max_depth.max(t.depth);
        self.edge(from, to, (from_bucket, to_bucket), (1, moved, woken));
        self.totals.requeues += 1;
        self.totals.woken += woken;
        self.totals.moved += moved;
        self.second(e.ts_ns).moved += moved;
    }

    /// Adds `(requeues, moved, woken)` to the requeue edge from `from` to `to`.
    fn edge(&mut self, from: u64, to: u64, buckets: (u32, u32), (r, m, w): (u64, u64, u64)) {
        let edge = self.edges.entry((from, to)).or_default();
        (edge.from_bucket, edge.to_bucket) = buckets;
        edge.requeues += r;
        edge.moved += m;
        edge.woken += w;
    }

    /// Kernel sources: requeue calls from one word to another since the last such event.
    fn moved(&mut self, e: &Event) {
        let EventKind::Moved {
            from,
            to,
            requeues,
            moved,
            woken,
        } = e.kind
        else {
            return;
        };
        let (fb, tb) = (self.bucket_of(from), self.bucket_of(to));
        self.bucket(fb).counters.requeued_out += moved;
        self.bucket(tb).counters.requeued_in += moved;
        self.edge(from, to, (fb, tb), (requeues, moved, woken));
    }

    /// Kernel sources: a histogram slot's new values.
    fn hist(&mut self, e: &Event) {
        let EventKind::Hist {
            of,
            slot,
            count,
            sum,
            max,
        } = e.kind
        else {
            return;
        };
        let h = match of {
            HistOf::Wait { addr } => {
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.wait_ns.add_slot(slot, count, sum, max);
                if a.kind().is_idle() {
                    &mut self.wait_idle
                } else {
                    &mut self.wait_contention
                }
            }
            HistOf::WakeToReturn => &mut self.wake_to_return,
            HistOf::SchedDelay => &mut self.sched_delay,
        };
        h.add_slot(slot, count, sum, max);
    }

    /// Kernel sources: the threads waiting now on a word (read every 100 ms).
    fn waiting(&mut self, e: &Event, addr: u64, now: u32) {
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        let change = i64::from(now) - a.waiting;
        a.waiting = i64::from(now);
        if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
            kb.waiting += change;
            kb.max_waiting = kb.max_waiting.max(kb.waiting);
        }
        let b = self.bucket_of(addr);
        let b = self.bucket(b);
        b.depth += change;
        b.max_depth = b.max_depth.max(b.depth);
    }

    /// Kernel sources: a sampled wait, charged to its stacks for the waits it stands for (its counts
    /// came in [`EventKind::Counts`]).
    fn sample(&mut self, e: &Event) {
        let EventKind::WaitSample {
            addr,
            outcome,
            wait_ns,
            waker,
            stack,
            stack_rate_ns,
            waker_every,
            ..
        } = e.kind
        else {
            return;
        };
        self.samples += 1;
        word(&mut self.addresses, e.pid, addr, e.ts_ns);
        // Taken with probability p = min(1, wait_ns / rate): it stands for 1/p waits of wait_ns each,
        // max(wait_ns, rate) nanoseconds in all.
        let (waits, ns) = if stack_rate_ns == 0 || wait_ns >= stack_rate_ns {
            (1.0, wait_ns)
        } else {
            (stack_rate_ns as f64 / wait_ns.max(1) as f64, stack_rate_ns)
        };
        // The waker's stack was taken for one release in `waker_every`: it stands for that many.
        let n = u64::from(waker_every.max(1));
        let charge = WaitCharge {
            waiter: stack.map(|id| (e.tid, (e.pid, id))),
            waker: waker.and_then(|w| Some((w.tid, (w.pid_or(e.pid), w.stack?)))),
            waits,
            ns,
            waker_waits: n as f64,
            waker_ns: n * wait_ns,
            waker_thread: waker.map(|w| (w.pid_or(e.pid), w.tid)),
            timed_out: outcome == Outcome::TimedOut,
        };
        self.charge(e.pid, addr, &charge);
    }

    /// Charges a wait that slept on word (pid, addr) to its waiter's stack and its waker's stack: the
    /// word's time per stack and per (stack, thread), and each stack's own totals.
    fn charge(&mut self, pid: u32, addr: u64, c: &WaitCharge) {
        if let Some((tid, waiter)) = c.waiter {
            let release = Release {
                waiter,
                waiter_tid: tid,
                waker: c.waker_thread,
                waker_stack: c.waker.map(|(_, k)| k),
                timed_out: c.timed_out,
            };
            self.releases.entry(release).or_default().add(c.waits, c.ns);
        }
        let sides = [
            (Side::Waiters, c.waiter, c.waits, c.ns),
            (Side::Wakers, c.waker, c.waker_waits, c.waker_ns),
        ];
        for (side, who, waits, ns) in sides {
            let Some((tid, key)) = who else { continue };
            let a = self.addresses.entry((pid, addr)).or_default();
            let (by_stack, by_thread) = match side {
                Side::Waiters => (&mut a.stacks, &mut a.thread_stacks),
                Side::Wakers => (&mut a.waker_stacks, &mut a.waker_thread_stacks),
            };
            *by_stack.entry(key).or_default() += ns;
            *by_thread.entry((key, tid)).or_default() += ns;
            let stacks: &mut HashMap<StackKey, StackStats> = match side {
                Side::Waiters => &mut self.stacks,
                Side::Wakers => &mut self.waker_stacks,
            };
            stacks.entry(key).or_default().add(waits, ns);
        }
    }

    /// Keeps the word table within `max_words` (see there).
    fn evict(&mut self) {
        let Some(cap) = self.max_words else { return };
        if self.addresses.len() <= cap {
            return;
        }
        let keep = cap - cap / 10;
        let mut idle: Vec<(u64, (u32, u64))> = self
            .addresses
            .iter()
            .filter(|(_, a)| a.waiting == 0)
            .map(|(k, a)| (a.last_ts_ns, *k))
            .collect();
        idle.sort_unstable();
        let drop = self.addresses.len().saturating_sub(keep).min(idle.len());
        for &(_, k) in &idle[..drop] {
            if let Some(a) = self.addresses.remove(&k) {
                if let Some((slots, bucket)) = a.kernel.and_then(KernelHash::private) {
                    if let Some(kb) = self.kernel_buckets.get_mut(&(k.0, slots, bucket)) {
                        kb.addresses.remove(&k.1);
                    }
                }
            }
        }
        self.totals.evicted_words += drop as u64;
    }

    fn bucket(&mut self, b: u32) -> &mut BucketStats {
        let i = b as usize;
        if i >= self.buckets.len() {
            self.buckets.resize(i + 1, BucketStats::default());
        }
        &mut self.buckets[i]
    }

    fn second(&mut self, ts_ns: u64) -> &mut SecondStats {
        let sec = ts_ns.saturating_sub(self.first_ts_ns) / 1_000_000_000;
        while self.series.len() >= SERIES_SECONDS {
            match self.series.first_key_value() {
                Some((&k, _)) if k < sec => {
                    self.series.pop_first();
                }
                _ => break,
            }
        }
        self.series.entry(sec).or_default()
    }

    /// The bucket an address hashes to (futex-core's hash over the model's buckets).
    fn bucket_of(&self, addr: u64) -> u32 {
        crate::bucket_of(addr, self.buckets.len().max(1)) as u32
    }

    /// The kernel futex hash bucket `addr` of `pid` is in now, if it is in a private hash.
    fn kernel_bucket_of(&mut self, pid: u32, addr: u64) -> Option<&mut KernelBucketStats> {
        let (slots, bucket) = self.addresses.get(&(pid, addr))?.kernel?.private()?;
        self.kernel_buckets.get_mut(&(pid, slots, bucket))
    }

    /// Notes that the calls of `pid` on `addr` now go to table `h`: the word's waiters now move with it
    /// (the kernel rehashes them into a resized table).
    fn kernel_table(&mut self, pid: u32, addr: u64, h: KernelHash) {
        let a = word(&mut self.addresses, pid, addr, 0);
        if a.kernel == Some(h) {
            return;
        }
        let (old, waiting) = (a.kernel.replace(h), a.waiting);
        if let Some((slots, bucket)) = old.and_then(KernelHash::private) {
            if let Some(kb) = self.kernel_buckets.get_mut(&(pid, slots, bucket)) {
                kb.waiting -= waiting;
            }
        }
        if let Some((slots, bucket)) = h.private() {
            self.kernel_slots.insert(pid, slots);
            let kb = self.kernel_buckets.entry((pid, slots, bucket)).or_default();
            kb.addresses.insert(addr);
            kb.waiting += waiting;
            kb.max_waiting = kb.max_waiting.max(kb.waiting);
        }
    }

    /// Folds what the kernel counted on one word (kernel sources; see [`EventKind::Counts`]).
    fn counts(&mut self, e: &Event, addr: u64, class: OpClass, c: &Counts) {
        self.totals.failed += c.failed;
        match class {
            OpClass::Wait => self.wait_counts(e, addr, c),
            OpClass::Wake => self.wake_counts(e, addr, c),
            OpClass::Requeue => self.requeue_counts(e, addr, c),
            OpClass::Other => self.totals.other_ops += c.calls,
        }
    }

    /// What the kernel counted of the waits on one word.
    fn wait_counts(&mut self, e: &Event, addr: u64, c: &Counts) {
        let t = &mut self.totals;
        t.waits += c.calls;
        t.waits_blocked += c.blocked;
        t.mismatches += c.mismatches;
        t.timeouts += c.timeouts;
        t.interrupted += c.interrupted;
        t.acquired += c.acquired;
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        a.waits += c.calls;
        *a.kinds.entry(crate::event::WaitKind::Kernel).or_default() += c.calls;
        a.woken += c.woken;
        a.timeouts += c.timeouts;
        a.mismatches += c.mismatches;
        a.waits_blocked += c.blocked;
        a.wait_ns_total += c.wait_ns;
        if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
            kb.waits += c.calls;
            kb.waits_blocked += c.blocked;
            kb.wait_ns += c.wait_ns;
        }
        let bucket = self.bucket_of(addr);
        let b = self.bucket(bucket);
        b.counters.waits += c.calls;
        b.waits_blocked += c.blocked;
        b.counters.mismatches += c.mismatches;
        b.counters.timeouts += c.timeouts;
        if c.blocked > 0 {
            let sec = self.second(e.ts_ns);
            sec.waits_blocked += c.blocked;
            sec.wait_ns += c.wait_ns;
        }
    }

    /// What the kernel counted of the wake calls on one word.
    fn wake_counts(&mut self, e: &Event, addr: u64, c: &Counts) {
        let ok = c.calls - c.failed.min(c.calls);
        let t = &mut self.totals;
        t.wakes += ok;
        t.woken += c.woken;
        t.other_ops += c.failed;
        let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
        a.wakes += ok;
        a.wakes_woke += c.woken;
        let mine = a.waiting;
        if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
            kb.wakes += ok;
            kb.woken += c.woken;
            // A wake walks the bucket's list past the sleepers of its other words: as many as wait
            // there now (as of the last 100 ms read), at most, per wake.
            let others = u64::try_from(kb.waiting - mine).unwrap_or(0);
            kb.walked_others += ok * others;
        }
        let bucket = self.bucket_of(addr);
        let b = self.bucket(bucket);
        b.counters.wakes += ok;
        b.counters.woken += c.woken;
        if ok > 0 {
            self.second(e.ts_ns).wakes += ok;
        }
    }

    /// What the kernel counted of the requeue calls from one word.
    fn requeue_counts(&mut self, e: &Event, addr: u64, c: &Counts) {
        let ok = c.calls - c.failed.min(c.calls);
        let t = &mut self.totals;
        t.requeues += ok;
        t.woken += c.woken;
        t.moved += c.moved;
        t.other_ops += c.failed;
        if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
            kb.woken += c.woken;
        }
        let bucket = self.bucket_of(addr);
        let b = self.bucket(bucket);
        b.counters.requeues += ok;
        b.counters.woken += c.woken;
        if c.moved > 0 {
            self.second(e.ts_ns).moved += c.moved;
        }
    }
}
