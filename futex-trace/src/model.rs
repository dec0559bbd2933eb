//! The model: events folded into the aggregates that reports, flamegraphs and the dashboard read.

use std::collections::HashMap;

use serde::Serialize;

use crate::event::{Event, EventKind, Outcome, WaitKind};

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
    /// here. Accurate from the start of a trace; a trace that starts mid-wait may go below zero.
    pub depth: i64,
    pub max_depth: i64,
}

/// A user stack of one process: (pid, stack id in the source's stack table).
pub type StackKey = (u32, u32);

/// Waits attributed to one stack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StackStats {
    /// Waits that slept with this stack (or, for a waker stack, waiters it released).
    pub waits: u64,
    /// Nanoseconds those waits lasted.
    pub wait_ns: u64,
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
    /// Time waited by each waiting stack.
    pub stacks: HashMap<StackKey, StackStats>,
    /// Time waited by the waiters each waker stack released.
    pub waker_stacks: HashMap<StackKey, StackStats>,
    /// The last [`SERIES_SECONDS`] seconds, by second since the first event.
    pub series: std::collections::BTreeMap<u64, SecondStats>,
    /// Processes seen forking and ending.
    pub forks: u64,
    pub exits: u64,
    pub totals: Totals,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
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
            stacks: HashMap::new(),
            waker_stacks: HashMap::new(),
            series: Default::default(),
            forks: 0,
            exits: 0,
            totals: Totals::default(),
            first_ts_ns: 0,
            last_ts_ns: 0,
        }
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
        if e.ts_ns != 0 {
            if self.first_ts_ns == 0 || e.ts_ns < self.first_ts_ns {
                self.first_ts_ns = e.ts_ns;
            }
            self.last_ts_ns = self.last_ts_ns.max(e.ts_ns);
        }
        match e.kind {
            EventKind::WaitStart { addr, bucket, .. } => {
                let a = self.addresses.entry((e.pid, addr)).or_default();
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
                let a = self.addresses.entry((e.pid, addr)).or_default();
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
                    }
                    if let Some(id) = waker.and_then(|w| w.stack) {
                        *a.waker_stacks.entry(id).or_default() += wait_ns;
                    }
                    if wait.is_idle() {
                        self.wait_idle.record(wait_ns);
                    } else {
                        self.wait_contention.record(wait_ns);
                    }
                    self.totals.waits_blocked += 1;
                    if let Some(id) = stack {
                        let s = self.stacks.entry((e.pid, id)).or_default();
                        s.waits += 1;
                        s.wait_ns += wait_ns;
                    }
                    if let Some(id) = waker.and_then(|w| w.stack) {
                        let s = self.waker_stacks.entry((e.pid, id)).or_default();
                        s.waits += 1;
                        s.wait_ns += wait_ns;
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
                let a = self.addresses.entry((e.pid, addr)).or_default();
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
