//! The model: events folded into the aggregates that reports, flamegraphs and the dashboard read.

use std::collections::HashMap;

use serde::Serialize;

use crate::event::{Event, EventKind, HistOf, KernelHash, Outcome, WaitKind};
use crate::kernel::OpClass;

/// A log2 histogram of nanoseconds: bucket i counts values in [2^i, 2^(i+1)) (bucket 0 also holds 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2Hist {
    pub buckets: [u64; 64],
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

impl Default for Log2Hist {
    fn default() -> Self {
        Log2Hist {
            buckets: [0; 64],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Log2Hist {
    pub fn record(&mut self, v: u64) {
        let i = 63 - (v | 1).leading_zeros() as usize;
        self.buckets[i] += 1;
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// Adds `count` values that fell in slot `slot` (kernel sources histogram in the kernel), and the
    /// `sum` and `max` of a batch of them.
    pub fn add_slot(&mut self, slot: u8, count: u64, sum: u64, max: u64) {
        self.buckets[usize::from(slot).min(63)] += count;
        self.count += count;
        self.sum = self.sum.saturating_add(sum);
        self.max = self.max.max(max);
    }

    /// The value below which a fraction `p` (0..=1) of the samples fall, to log2 resolution: the upper
    /// bound of the bucket holding that rank (capped at the maximum seen). 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (i, &c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let upper = if i >= 63 {
                    u64::MAX
                } else {
                    (1u64 << (i + 1)) - 1
                };
                return upper.min(self.max);
            }
        }
        self.max
    }
}

impl Log2Hist {
    /// The values added since `earlier` (an earlier copy of this histogram): per-slot and count
    /// differences; the sum's difference; the maximum is this one's (a maximum has no difference).
    pub fn merge(&mut self, other: &Log2Hist) {
        for (b, o) in self.buckets.iter_mut().zip(&other.buckets) {
            *b += o;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// What was recorded after `earlier` (an older copy of this histogram).
    pub fn since(&self, earlier: &Log2Hist) -> Log2Hist {
        let mut d = Log2Hist {
            count: self.count.saturating_sub(earlier.count),
            sum: self.sum.saturating_sub(earlier.sum),
            max: self.max,
            ..Log2Hist::default()
        };
        for (b, (n, o)) in d
            .buckets
            .iter_mut()
            .zip(self.buckets.iter().zip(&earlier.buckets))
        {
            *b = n.saturating_sub(*o);
        }
        d
    }

    /// As [`Log2Hist::percentile`], but placed within its log2 bucket by rank (linearly, as if the
    /// bucket's values were spread evenly over it) instead of at the bucket's upper bound; capped at the
    /// maximum seen. Reads better than bucket edges (p50 = p90 = 262 µs) and is still an estimate.
    pub fn percentile_interpolated(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = (p * self.count as f64).clamp(1.0, self.count as f64);
        let mut seen = 0.0;
        for (i, &c) in self.buckets.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let c = c as f64;
            if seen + c >= rank {
                let lo = if i == 0 { 0.0 } else { (1u64 << i) as f64 };
                let hi = if i >= 63 {
                    u64::MAX as f64
                } else {
                    (1u64 << (i + 1)) as f64
                };
                let v = lo + (rank - seen) / c * (hi - lo);
                return (v as u64).min(self.max);
            }
            seen += c;
        }
        self.max
    }
}

/// Where bucket numbers come from: futex-core's real sleep queues, or futex-core's hash applied to
/// another process's kernel futex addresses (the kernel's own table is not visible).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketOrigin {
    FutexCore,
    FutexCoreHash,
}

impl BucketOrigin {
    pub fn label(self) -> &'static str {
        match self {
            BucketOrigin::FutexCore => "bucket (futex-core sleep queue)",
            BucketOrigin::FutexCoreHash => "bucket (futex-core hash)",
        }
    }
}

/// Per-bucket aggregates; the same counters as futex-core's `QueueSnapshot`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    pub waits: u64,
    pub waits_blocked: u64,
    pub mismatches: u64,
    pub timeouts: u64,
    pub wakes: u64,
    pub woken: u64,
    pub requeues: u64,
    pub requeued_in: u64,
    pub requeued_out: u64,
    pub collisions: u64,
    pub lock_contended: u64,
    pub lock_wait_ns: u64,
    /// Waiters on the bucket now: waits started here, plus moved in, minus moved out, minus waits ended
    /// here. Accurate from the start of a trace; a trace that starts mid-wait may go below zero. Kernel
    /// sources count a wait where it began until it returns (requeues show as `requeued_in`/`_out`), and
    /// see the depth every 100 ms (`max_depth` is the largest seen then).
    pub depth: i64,
    pub max_depth: i64,
}

/// A user stack of one process: (pid, stack id in the source's stack table).
pub type StackKey = (u32, u32);

/// Waits attributed to one stack.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StackStats {
    /// Waits that slept with this stack (or, for a waker stack, waiters it released). Kernel sources
    /// sample stacks: there each sample counts for the waits it stands for (its weight), so this is an
    /// unbiased estimate, not a whole number.
    pub waits: f64,
    /// Nanoseconds those waits lasted (sampled: estimated the same way).
    pub wait_ns: u64,
    /// Samples behind the figures (every wait, for sources that do not sample).
    pub samples: u64,
}

impl StackStats {
    fn add(&mut self, waits: f64, wait_ns: u64) {
        self.waits += waits;
        self.wait_ns += wait_ns;
        self.samples += 1;
    }
}

/// One second of the time series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SecondStats {
    pub waits_blocked: u64,
    pub wait_ns: u64,
    pub wakes: u64,
    pub moved: u64,
}

/// Seconds of time series kept (ten minutes).
pub const SERIES_SECONDS: usize = 600;

/// Per-address aggregates (by the address a wait began on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrStats {
    /// The process the address belongs to (the last one seen waiting on it).
    pub pid: u32,
    pub waits: u64,
    pub waits_blocked: u64,
    pub woken: u64,
    pub timeouts: u64,
    pub mismatches: u64,
    pub wait_ns_total: u64,
    /// Time waited by waits that slept.
    pub wait_ns: Log2Hist,
    /// Waits of each kind (an address is usually of one kind).
    pub kinds: HashMap<WaitKind, u64>,
    /// Time waited here, by the waiter's stack id (kernel sources).
    pub stacks: HashMap<u32, u64>,
    /// Wake calls on this address, and the waiters they woke.
    pub wakes: u64,
    pub wakes_woke: u64,
    /// Threads waiting now that began their wait here (from the start of the trace: a wait already
    /// under way when it started is not counted, and its end is not subtracted below zero).
    pub waiting: i64,
    /// Time waited here by waiters each waker stack released (stack ids of the same process).
    pub waker_stacks: HashMap<u32, u64>,
    /// Kernel sources: the kernel futex hash table this word's calls went to last (its bucket under
    /// the slots in force then). `None`: not known (another source, or an older recording).
    pub kernel: Option<KernelHash>,
    /// When it was last seen (`CLOCK_MONOTONIC` ns): the least recent go first when the table is full.
    pub last_ts_ns: u64,
    /// `stacks` and `waker_stacks` by thread too: (stack id, thread id) → nanoseconds (the waiting
    /// thread's; the waking thread's). Profiles label samples with their thread from these.
    pub thread_stacks: HashMap<(u32, u32), u64>,
    pub waker_thread_stacks: HashMap<(u32, u32), u64>,
}

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

impl AddrStats {
    /// The kind most waits on this address had.
    pub fn kind(&self) -> WaitKind {
        self.kinds
            .iter()
            .max_by_key(|(k, n)| (**n, **k))
            .map(|(k, _)| *k)
            .unwrap_or(WaitKind::Raw)
    }

    /// The stack that waited longest on this address, and how long.
    pub fn top_stack(&self) -> Option<(u32, u64)> {
        self.stacks
            .iter()
            .max_by_key(|(id, ns)| (**ns, std::cmp::Reverse(**id)))
            .map(|(id, ns)| (*id, *ns))
    }
}

/// A bucket of a process's private kernel futex hash: (pid, slots of the table, bucket).
pub type KernelBucketKey = (u32, u32, u32);

/// What the calls on the words of one kernel futex hash bucket did (kernel sources; exact, from the
/// kernel's counts). A table resized during a trace (threads added, `prctl(PR_FUTEX_HASH)`) starts new
/// buckets under its new slot count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelBucketStats {
    pub waits: u64,
    pub waits_blocked: u64,
    pub wait_ns: u64,
    pub wakes: u64,
    pub woken: u64,
    /// Threads waiting now on its words (as of the 100 ms reads), and the most seen.
    pub waiting: i64,
    pub max_waiting: i64,
    /// The distinct words seen here: more than one is a collision (they share the bucket's lock and
    /// its list of waiters). Serialized as hex strings, as reports write addresses.
    #[serde(serialize_with = "hex_addresses")]
    pub addresses: std::collections::BTreeSet<u64>,
}

fn hex_addresses<S: serde::Serializer>(
    set: &std::collections::BTreeSet<u64>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(set.iter().map(|a| format!("{a:#x}")))
}

/// A requeue edge: waiters moved from one address to another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from_bucket: u32,
    pub to_bucket: u32,
    pub requeues: u64,
    pub moved: u64,
    pub woken: u64,
}

/// Whole-trace totals. `waits_blocked` are waits that slept (not mismatches).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub waits: u64,
    pub waits_blocked: u64,
    pub mismatches: u64,
    pub wakes: u64,
    pub woken: u64,
    pub requeues: u64,
    pub moved: u64,
    pub timeouts: u64,
    pub lock_contended: u64,
    pub lost_events: u64,
    /// Waits ended by a signal (kernel futexes).
    pub interrupted: u64,
    /// Futex calls that failed without sleeping (EINVAL, EFAULT, ...), and other ops (TRYLOCK_PI, FD).
    pub failed: u64,
    pub other_ops: u64,
    /// PI locks taken at once, without sleeping (not contention).
    #[serde(skip_serializing_if = "is_zero")]
    pub acquired: u64,
    /// Futex words dropped from the model because its word table was full (`Model::max_words`; the
    /// least recently seen go first): their counts stay in these totals.
    #[serde(skip_serializing_if = "is_zero")]
    pub evicted_words: u64,
    pub events: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Everything folded so far.
#[derive(Clone, Debug)]
pub struct Model {
    pub origin: BucketOrigin,
    pub buckets: Vec<BucketStats>,
    /// Per futex word, keyed by (pid, address): the same address in two processes is two words.
    pub addresses: HashMap<(u32, u64), AddrStats>,
    pub edges: HashMap<(u64, u64), Edge>,
    /// Time waited, by waits that slept, split into contention (Mutex, raw, kernel) and idle (Condvar).
    pub wait_contention: Log2Hist,
    pub wait_idle: Log2Hist,
    /// From the wake that released a waiter to its return.
    pub wake_to_return: Log2Hist,
    /// From `sched_wakeup` of a waiter to `sched_switch` onto a CPU (kernel sources).
    pub sched_delay: Log2Hist,
    /// Kernel sources: per bucket of the traced processes' private futex hashes.
    pub kernel_buckets: std::collections::BTreeMap<KernelBucketKey, KernelBucketStats>,
    /// Kernel sources: the slots of each process's private futex hash, as last seen.
    pub kernel_slots: std::collections::BTreeMap<u32, u32>,
    /// Time waited by each waiting stack.
    pub stacks: HashMap<StackKey, StackStats>,
    /// Time waited by the waiters each waker stack released.
    pub waker_stacks: HashMap<StackKey, StackStats>,
    /// The last [`SERIES_SECONDS`] seconds, by second since the first event.
    pub series: std::collections::BTreeMap<u64, SecondStats>,
    /// Stack samples received (kernel sources), and the events of the stacks they carried.
    pub samples: u64,
    /// Processes seen forking and ending.
    pub forks: u64,
    pub exits: u64,
    pub totals: Totals,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    /// At most this many futex words are kept (`None`: all): past it, the least recently seen tenth
    /// that has nobody waiting is dropped (counted in `totals.evicted_words`). For runs of days.
    pub max_words: Option<usize>,
}

impl Model {
    pub fn new(buckets: usize, origin: BucketOrigin) -> Self {
        Model {
            origin,
            buckets: vec![BucketStats::default(); buckets],
            addresses: HashMap::new(),
            edges: HashMap::new(),
            wait_contention: Log2Hist::default(),
            wait_idle: Log2Hist::default(),
            wake_to_return: Log2Hist::default(),
            sched_delay: Log2Hist::default(),
            kernel_buckets: Default::default(),
            kernel_slots: Default::default(),
            stacks: HashMap::new(),
            waker_stacks: HashMap::new(),
            series: Default::default(),
            samples: 0,
            forks: 0,
            exits: 0,
            totals: Totals::default(),
            first_ts_ns: 0,
            last_ts_ns: 0,
            max_words: None,
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
            EventKind::WaitStart { addr, bucket, .. } => {
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                a.waiting += 1;
                let b = self.bucket(bucket);
                b.waits += 1;
                b.depth += 1;
                b.max_depth = b.max_depth.max(b.depth);
                self.totals.waits += 1;
            }
            EventKind::WaitEnd {
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
            } => {
                let b = self.bucket(bucket);
                b.depth -= 1;
                let blocked = outcome.blocked();
                match outcome {
                    Outcome::Mismatch => b.mismatches += 1,
                    Outcome::TimedOut => b.timeouts += 1,
                    Outcome::Woken | Outcome::Interrupted | Outcome::Failed | Outcome::Acquired => {
                    }
                }
                if blocked {
                    b.waits_blocked += 1;
                }
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                a.waiting = (a.waiting - 1).max(0);
                a.waits += 1;
                *a.kinds.entry(wait).or_default() += 1;
                match outcome {
                    Outcome::Woken => a.woken += 1,
                    Outcome::TimedOut => a.timeouts += 1,
                    Outcome::Mismatch => a.mismatches += 1,
                    Outcome::Interrupted | Outcome::Failed | Outcome::Acquired => {}
                }
                let stack = kernel.and_then(|k| k.stack);
                if blocked {
                    a.waits_blocked += 1;
                    a.wait_ns_total += wait_ns;
                    a.wait_ns.record(wait_ns);
                    if let Some(id) = stack {
                        *a.stacks.entry(id).or_default() += wait_ns;
                        *a.thread_stacks.entry((id, e.tid)).or_default() += wait_ns;
                    }
                    if let Some(w) = waker {
                        if let Some(id) = w.stack {
                            *a.waker_stacks.entry(id).or_default() += wait_ns;
                            *a.waker_thread_stacks.entry((id, w.tid)).or_default() += wait_ns;
                        }
                    }
                    if wait.is_idle() {
                        self.wait_idle.record(wait_ns);
                    } else {
                        self.wait_contention.record(wait_ns);
                    }
                    self.totals.waits_blocked += 1;
                    if let Some(id) = stack {
                        self.stacks
                            .entry((e.pid, id))
                            .or_default()
                            .add(1.0, wait_ns);
                    }
                    if let Some(id) = waker.and_then(|w| w.stack) {
                        let s = self.waker_stacks.entry((e.pid, id)).or_default();
                        s.add(1.0, wait_ns);
                    }
                    let sec = self.second(e.ts_ns);
                    sec.waits_blocked += 1;
                    sec.wait_ns += wait_ns;
                }
                match outcome {
                    Outcome::Mismatch => self.totals.mismatches += 1,
                    Outcome::TimedOut => self.totals.timeouts += 1,
                    Outcome::Interrupted => self.totals.interrupted += 1,
                    Outcome::Failed => self.totals.failed += 1,
                    Outcome::Acquired => self.totals.acquired += 1,
                    Outcome::Woken => {}
                }
                if let Some(l) = wake_to_return_ns {
                    self.wake_to_return.record(l);
                }
                if let Some(d) = sched_delay_ns {
                    self.sched_delay.record(d);
                }
            }
            EventKind::Wake {
                addr,
                bucket,
                woken,
                collisions,
                ..
            } => {
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                a.wakes += 1;
                a.wakes_woke += woken as u64;
                let b = self.bucket(bucket);
                b.wakes += 1;
                b.woken += woken as u64;
                b.collisions += collisions as u64;
                self.totals.wakes += 1;
                self.totals.woken += woken as u64;
                self.second(e.ts_ns).wakes += 1;
            }
            EventKind::Requeue {
                from,
                to,
                from_bucket,
                to_bucket,
                woken,
                moved,
                collisions,
                ..
            } => {
                let b = self.bucket(from_bucket);
                b.requeues += 1;
                b.woken += woken as u64;
                b.requeued_out += moved as u64;
                b.collisions += collisions as u64;
                b.depth -= moved as i64;
                let t = self.bucket(to_bucket);
                t.requeued_in += moved as u64;
                t.depth += moved as i64;
                t.max_depth = t.max_depth.max(t.depth);
                let edge = self.edges.entry((from, to)).or_default();
                edge.from_bucket = from_bucket;
                edge.to_bucket = to_bucket;
                edge.requeues += 1;
                edge.moved += moved as u64;
                edge.woken += woken as u64;
                self.totals.requeues += 1;
                self.totals.woken += woken as u64;
                self.totals.moved += moved as u64;
                self.second(e.ts_ns).moved += moved as u64;
            }
            EventKind::LockContended {
                bucket, wait_ns, ..
            } => {
                let b = self.bucket(bucket);
                b.lock_contended += 1;
                b.lock_wait_ns += wait_ns;
                self.totals.lock_contended += 1;
            }
            EventKind::Counts {
                addr,
                op,
                hash,
                counts: c,
            } => {
                if let Some(h) = hash {
                    self.kernel_table(e.pid, addr, h);
                }
                self.counts(e, addr, op.class(), &c);
            }
            EventKind::Hist {
                of,
                slot,
                count,
                sum,
                max,
            } => {
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
            EventKind::Waiting { addr, now } => {
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
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
            EventKind::Moved {
                from,
                to,
                requeues,
                moved,
                woken,
            } => {
                let (fb, tb) = (self.bucket_of(from), self.bucket_of(to));
                self.bucket(fb).requeued_out += moved;
                self.bucket(tb).requeued_in += moved;
                let edge = self.edges.entry((from, to)).or_default();
                edge.from_bucket = fb;
                edge.to_bucket = tb;
                edge.requeues += requeues;
                edge.moved += moved;
                edge.woken += woken;
            }
            EventKind::WaitSample {
                addr,
                wait_ns,
                waker,
                stack,
                stack_rate_ns,
                waker_every,
                ..
            } => {
                self.samples += 1;
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                if let Some(id) = stack {
                    // Taken with probability p = min(1, wait_ns / rate): it stands for 1/p waits of
                    // wait_ns each, max(wait_ns, rate) nanoseconds in all.
                    let (waits, ns) = if stack_rate_ns == 0 || wait_ns >= stack_rate_ns {
                        (1.0, wait_ns)
                    } else {
                        (stack_rate_ns as f64 / wait_ns.max(1) as f64, stack_rate_ns)
                    };
                    *a.stacks.entry(id).or_default() += ns;
                    *a.thread_stacks.entry((id, e.tid)).or_default() += ns;
                    self.stacks.entry((e.pid, id)).or_default().add(waits, ns);
                }
                if let Some((id, tid)) = waker.and_then(|w| Some((w.stack?, w.tid))) {
                    let n = u64::from(waker_every.max(1));
                    *a.waker_stacks.entry(id).or_default() += n * wait_ns;
                    *a.waker_thread_stacks.entry((id, tid)).or_default() += n * wait_ns;
                    let s = self.waker_stacks.entry((e.pid, id)).or_default();
                    s.add(n as f64, n * wait_ns);
                }
            }
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
            EventKind::Fork { .. } => self.forks += 1,
            EventKind::Exit => self.exits += 1,
        }
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
        a.pid = pid;
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
    fn counts(&mut self, e: &Event, addr: u64, class: OpClass, c: &crate::event::Counts) {
        let bucket = self.bucket_of(addr);
        let ok = c.calls - c.failed.min(c.calls);
        let t = &mut self.totals;
        t.failed += c.failed;
        match class {
            OpClass::Wait => {
                t.waits += c.calls;
                t.waits_blocked += c.blocked;
                t.mismatches += c.mismatches;
                t.timeouts += c.timeouts;
                t.interrupted += c.interrupted;
                t.acquired += c.acquired;
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                a.waits += c.calls;
                *a.kinds.entry(WaitKind::Kernel).or_default() += c.calls;
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
                let b = self.bucket(bucket);
                b.waits += c.calls;
                b.waits_blocked += c.blocked;
                b.mismatches += c.mismatches;
                b.timeouts += c.timeouts;
                if c.blocked > 0 {
                    let sec = self.second(e.ts_ns);
                    sec.waits_blocked += c.blocked;
                    sec.wait_ns += c.wait_ns;
                }
            }
            OpClass::Wake => {
                t.wakes += ok;
                t.woken += c.woken;
                t.other_ops += c.failed;
                let a = word(&mut self.addresses, e.pid, addr, e.ts_ns);
                a.pid = e.pid;
                a.wakes += ok;
                a.wakes_woke += c.woken;
                if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
                    kb.wakes += ok;
                    kb.woken += c.woken;
                }
                let b = self.bucket(bucket);
                b.wakes += ok;
                b.woken += c.woken;
                if ok > 0 {
                    self.second(e.ts_ns).wakes += ok;
                }
            }
            OpClass::Requeue => {
                t.requeues += ok;
                t.woken += c.woken;
                t.moved += c.moved;
                t.other_ops += c.failed;
                if let Some(kb) = self.kernel_bucket_of(e.pid, addr) {
                    kb.woken += c.woken;
                }
                let b = self.bucket(bucket);
                b.requeues += ok;
                b.woken += c.woken;
                if c.moved > 0 {
                    self.second(e.ts_ns).moved += c.moved;
                }
            }
            OpClass::Other => t.other_ops += c.calls,
        }
    }

    /// What happened between `old` (an earlier snapshot of this model) and now, for profiles of a
    /// window (`serve`'s `?seconds=N`): per word, the waits that slept, the time waited and the time per
    /// waiting and waking stack; per stack, the waits, time and samples. Nothing else is filled in.
    pub fn stacks_since(&self, old: &Model) -> Model {
        let mut d = Model::new(self.buckets.len(), self.origin);
        fn sub<K: Copy + Eq + std::hash::Hash>(
            new: &HashMap<K, u64>,
            old: Option<&HashMap<K, u64>>,
        ) -> HashMap<K, u64> {
            new.iter()
                .filter_map(|(k, &v)| {
                    let v = v.saturating_sub(old.and_then(|o| o.get(k)).copied().unwrap_or(0));
                    (v > 0).then_some((*k, v))
                })
                .collect()
        }
        for (k, a) in &self.addresses {
            let o = old.addresses.get(k);
            let blocked = a.waits_blocked - o.map_or(0, |o| o.waits_blocked.min(a.waits_blocked));
            let waited = a
                .wait_ns_total
                .saturating_sub(o.map_or(0, |o| o.wait_ns_total));
            if blocked == 0 && waited == 0 {
                continue;
            }
            let mut x = AddrStats {
                pid: a.pid,
                waits_blocked: blocked,
                wait_ns_total: waited,
                kinds: a.kinds.clone(),
                kernel: a.kernel,
                ..AddrStats::default()
            };
            x.stacks = sub(&a.stacks, o.map(|o| &o.stacks));
            x.waker_stacks = sub(&a.waker_stacks, o.map(|o| &o.waker_stacks));
            x.thread_stacks = sub(&a.thread_stacks, o.map(|o| &o.thread_stacks));
            x.waker_thread_stacks = sub(&a.waker_thread_stacks, o.map(|o| &o.waker_thread_stacks));
            d.addresses.insert(*k, x);
        }
        for (new, old, out) in [
            (&self.stacks, &old.stacks, &mut d.stacks),
            (&self.waker_stacks, &old.waker_stacks, &mut d.waker_stacks),
        ] {
            for (k, s) in new {
                let o = old.get(k).cloned().unwrap_or_default();
                if s.samples > o.samples {
                    out.insert(
                        *k,
                        StackStats {
                            waits: s.waits - o.waits,
                            wait_ns: s.wait_ns.saturating_sub(o.wait_ns),
                            samples: s.samples - o.samples,
                        },
                    );
                }
            }
        }
        d.first_ts_ns = old.last_ts_ns;
        d.last_ts_ns = self.last_ts_ns;
        d
    }

    /// The words of `pid` in `words`, the hottest (time waited) first.
    pub fn hottest_first(&self, pid: u32, words: &std::collections::BTreeSet<u64>) -> Vec<u64> {
        let mut w: Vec<(u64, u64)> = words
            .iter()
            .map(|&a| {
                (
                    self.addresses.get(&(pid, a)).map_or(0, |s| s.wait_ns_total),
                    a,
                )
            })
            .collect();
        w.sort_by(|x, y| y.cmp(x));
        w.into_iter().map(|(_, a)| a).collect()
    }

    /// What-if: the kernel buckets the traced words would fall in with private hashes of `slots`
    /// slots (a power of two; what `prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots)` would give),
    /// keyed as [`Model::kernel_buckets`], from each private word's totals (a what-if has no history:
    /// `max_waiting` is the waiters now).
    pub fn kernel_buckets_with(
        &self,
        slots: u32,
    ) -> std::collections::BTreeMap<KernelBucketKey, KernelBucketStats> {
        let mut out = std::collections::BTreeMap::<_, KernelBucketStats>::new();
        for (&(pid, addr), a) in &self.addresses {
            if a.kernel.and_then(KernelHash::private).is_none() {
                continue;
            }
            let kb = out
                .entry((pid, slots, crate::khash::bucket(addr, slots)))
                .or_default();
            kb.waits += a.waits;
            kb.waits_blocked += a.waits_blocked;
            kb.wait_ns += a.wait_ns_total;
            kb.wakes += a.wakes;
            kb.woken += a.wakes_woke;
            kb.waiting += a.waiting;
            kb.max_waiting = kb.waiting;
            kb.addresses.insert(addr);
        }
        out
    }

    /// Folds a batch of events.
    pub fn extend(&mut self, events: &[Event]) {
        for e in events {
            self.apply(e);
        }
    }

    /// Seconds between the first and the last event.
    pub fn span_secs(&self) -> f64 {
        self.last_ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_address_in_two_processes_is_two_words() {
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        for pid in [10, 20] {
            m.apply(&Event {
                ts_ns: 1,
                pid,
                tid: pid,
                kind: EventKind::WaitEnd {
                    addr: 0x1000,
                    final_addr: 0x1000,
                    bucket: 3,
                    wait: WaitKind::Kernel,
                    outcome: Outcome::Woken,
                    wait_ns: u64::from(pid),
                    wake_to_return_ns: None,
                    requeued: 0,
                    sched_delay_ns: None,
                    waker: None,
                    kernel: None,
                },
            });
        }
        assert_eq!(m.addresses.len(), 2);
        assert_eq!(m.addresses[&(20, 0x1000)].wait_ns_total, 20);
        assert_eq!(m.buckets[3].waits_blocked, 2);
    }

    #[test]
    fn a_sample_counts_for_the_waits_it_stands_for() {
        use crate::event::{FutexOp, Waker};
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        let sample = |wait_ns, stack_rate_ns, waker_every| Event {
            ts_ns: 1,
            pid: 7,
            tid: 8,
            kind: EventKind::WaitSample {
                addr: 0x10,
                final_addr: 0x10,
                op: FutexOp::Wait,
                outcome: Outcome::Woken,
                wait_ns,
                wake_to_return_ns: None,
                sched_delay_ns: None,
                waker: Some(Waker {
                    tid: 9,
                    stack: Some(2),
                }),
                stack: Some(1),
                stack_rate_ns,
                waker_every,
            },
        };
        // 2 µs at a 10 µs rate: taken with probability 0.2, so it stands for 5 such waits, 10 µs.
        m.apply(&sample(2_000, 10_000, 4));
        let s = &m.stacks[&(7, 1)];
        assert_eq!((s.waits, s.wait_ns, s.samples), (5.0, 10_000, 1));
        // The waker's stack, taken for one wake in 4: 4 releases of 2 µs.
        let w = &m.waker_stacks[&(7, 2)];
        assert_eq!((w.waits, w.wait_ns), (4.0, 8_000));
        // Longer than the rate (or rate 0): certain, weight 1.
        m.apply(&sample(50_000, 10_000, 1));
        m.apply(&sample(3_000, 0, 1));
        let s = &m.stacks[&(7, 1)];
        assert_eq!((s.waits, s.wait_ns, s.samples), (7.0, 63_000, 3));
        assert_eq!(m.addresses[&(7, 0x10)].stacks[&1], 63_000);
        // Samples carry no counts: those come from the kernel's aggregates.
        assert_eq!((m.totals.waits, m.samples), (0, 3));
    }

    #[test]
    fn kernel_buckets_follow_the_table_of_each_call() {
        use crate::event::{Counts, FutexOp};
        let (pid, a) = (7, 0x5000_0040u64);
        // Another page's word in a's bucket of 16.
        let b = (1..)
            .map(|p| a + 0x1000 * p)
            .find(|&b| crate::khash::bucket(b, 16) == crate::khash::bucket(a, 16))
            .unwrap();
        let counts = |addr, op, hash, calls: u64| Event {
            ts_ns: 1,
            pid,
            tid: 0,
            kind: EventKind::Counts {
                addr,
                op,
                hash: Some(hash),
                counts: Counts {
                    calls,
                    blocked: calls,
                    woken: calls,
                    wait_ns: 10 * calls,
                    ..Counts::default()
                },
            },
        };
        let waiting = |addr, now| Event {
            ts_ns: 2,
            pid,
            tid: 0,
            kind: EventKind::Waiting { addr, now },
        };
        let p16 = |addr| KernelHash::of(addr, 4);
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        // Two words in one bucket of 16, one waiter on each now.
        let ka = p16(a).private().unwrap();
        assert_eq!(p16(b).private(), Some(ka));
        m.extend(&[
            waiting(a, 1),
            counts(a, FutexOp::Wait, p16(a), 3),
            counts(b, FutexOp::Wait, p16(b), 2),
            counts(a, FutexOp::Wake, p16(a), 3),
            waiting(b, 1),
        ]);
        let bucket = |m: &Model, (slots, bucket): (u32, u32)| {
            m.kernel_buckets[&(pid, slots, bucket)].clone()
        };
        let s = bucket(&m, ka);
        assert_eq!((s.waits, s.wait_ns, s.wakes, s.woken), (5, 50, 3, 3));
        assert_eq!((s.waiting, s.max_waiting, s.addresses.len()), (2, 2, 2));
        assert_eq!(m.kernel_slots[&pid], 16);
        // The process resizes to 64 slots: a's next calls go there, and its waiter moves with it.
        let p64 = KernelHash::of(a, 6);
        m.apply(&counts(a, FutexOp::Wait, p64, 1));
        let (slots, b64) = p64.private().unwrap();
        assert_eq!(slots, 64);
        let s = bucket(&m, (64, b64));
        assert_eq!((s.waits, s.waiting, s.addresses.len()), (1, 1, 1));
        assert_eq!(bucket(&m, ka).waiting, 1, "b's waiter is still there");
        assert_eq!(m.addresses[&(pid, a)].kernel, Some(p64));
        assert_eq!(m.kernel_slots[&pid], 64);
        // A shared futex is in the global table: no bucket.
        m.apply(&counts(0x9000, FutexOp::Wait, KernelHash::Global, 1));
        assert_eq!(m.addresses[&(pid, 0x9000)].kernel, Some(KernelHash::Global));
        assert_eq!(m.kernel_buckets.len(), 2);
        // What-if: every private word regrouped under another slot count, from its totals.
        let w = m.kernel_buckets_with(2);
        let total: u64 = w.values().map(|s| s.waits).sum();
        assert_eq!(total, 3 + 2 + 1);
        assert!(w.keys().all(|&(p, n, bk)| p == pid && n == 2 && bk < 2));
    }

    #[test]
    fn a_histogram_since_an_earlier_copy_holds_the_values_added_since() {
        let mut h = Log2Hist::default();
        h.record(100);
        let earlier = h.clone();
        h.record(100);
        h.record(5_000);
        let d = h.since(&earlier);
        assert_eq!((d.count, d.sum, d.max), (2, 5_100, 5_000));
        assert_eq!((d.buckets[6], d.buckets[12]), (1, 1));
        assert_eq!(d.buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn interpolated_percentiles_lie_within_their_bucket_by_rank() {
        let mut h = Log2Hist::default();
        assert_eq!(h.percentile_interpolated(0.5), 0);
        // 100 values in [1024, 2048) and one of 10 000.
        for _ in 0..100 {
            h.record(1500);
        }
        h.record(10_000);
        let (p10, p50, p90) = (
            h.percentile_interpolated(0.1),
            h.percentile_interpolated(0.5),
            h.percentile_interpolated(0.9),
        );
        assert!((1024..2048).contains(&p10) && p10 < p50 && p50 < p90 && p90 < 2048);
        // Rank 50.5 of 100 in the bucket: about its middle.
        assert!((1500..1560).contains(&p50), "{p50}");
        assert_eq!(h.percentile_interpolated(1.0), 10_000, "capped at the max");
        assert_eq!(
            h.percentile(0.5),
            2047,
            "the bucket-edge figure is unchanged"
        );
    }

    #[test]
    fn a_full_word_table_drops_the_least_recently_seen_and_keeps_the_totals() {
        use crate::event::{Counts, FutexOp};
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        m.max_words = Some(100);
        let counts = |addr: u64, ts_ns: u64| Event {
            ts_ns,
            pid: 7,
            tid: 0,
            kind: EventKind::Counts {
                addr,
                op: FutexOp::Wait,
                hash: None,
                counts: Counts {
                    calls: 1,
                    blocked: 1,
                    woken: 1,
                    wait_ns: 10,
                    ..Counts::default()
                },
            },
        };
        // The first word has a waiter all along: it is never dropped.
        m.apply(&Event {
            ts_ns: 1,
            pid: 7,
            tid: 0,
            kind: EventKind::Waiting { addr: 0, now: 1 },
        });
        for i in 0..1000u64 {
            m.apply(&counts(i * 4, 10 + i));
        }
        assert!(m.addresses.len() <= 101, "{}", m.addresses.len());
        assert_eq!(m.totals.evicted_words as usize + m.addresses.len(), 1000);
        assert_eq!((m.totals.waits, m.totals.waits_blocked), (1000, 1000));
        assert!(
            m.addresses.contains_key(&(7, 0)),
            "a word with a waiter stays"
        );
        assert!(
            m.addresses.contains_key(&(7, 999 * 4)),
            "the most recent stays"
        );
        assert!(!m.addresses.contains_key(&(7, 4)), "an old idle one went");
    }

    #[test]
    fn log2_percentiles() {
        let mut h = Log2Hist::default();
        assert_eq!(h.percentile(0.5), 0);
        for v in [1u64, 2, 3, 1000, 1000, 1000, 1000, 1000, 1000, 1_000_000] {
            h.record(v);
        }
        assert_eq!(h.count, 10);
        // 1000 lies in [512, 1024): p50 is that bucket's upper bound.
        assert_eq!(h.percentile(0.5), 1023);
        assert_eq!(h.percentile(0.1), 1);
        assert_eq!(h.percentile(1.0), 1_000_000, "capped at the max");
        assert_eq!(h.max, 1_000_000);
    }
}
