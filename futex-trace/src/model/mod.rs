//! The model: events folded into the aggregates that reports, flamegraphs and the dashboard read.

mod fold;
mod hist;

use std::collections::HashMap;

use serde::Serialize;

pub use hist::Log2Hist;

use futex_core::QueueCounters;

use crate::event::{KernelHash, WaitKind};

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

/// Per-bucket aggregates: futex-core's own queue counters (the same struct its tables keep, so the
/// model of an observer or USDT trace can be checked against the table), and what a tracer adds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    #[serde(flatten)]
    pub counters: QueueCounters,
    /// Waits that slept (not mismatches), counted in the bucket where they ended.
    pub waits_blocked: u64,
    /// Waiters on the bucket now: waits started here, plus moved in, minus moved out, minus waits ended
    /// here. Accurate from the start of a trace; a trace that starts mid-wait may go below zero. Kernel
    /// sources count a wait where it began until it returns (requeues show as `requeued_in`/`_out`), and
    /// see the depth every 100 ms (`max_depth` is the largest seen then).
    pub depth: i64,
    pub max_depth: i64,
}

/// Which side of a wait a stack is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The waiting threads' stacks, weighted by the time they waited.
    Waiters,
    /// The waking threads' stacks, weighted by the time waited by the waiters they released.
    Wakers,
}

/// What one sampled wait says of how it ended: the waiting stack and thread, and who released it (the
/// waking thread, and its stack when that was taken) or that nobody did (it timed out). Wait sites and
/// their classes are read from these ([`crate::sites`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Release {
    pub waiter: StackKey,
    pub waiter_tid: u32,
    /// The waking thread, (pid, tid); `None`: nobody released it (a timeout, a signal), or not seen.
    pub waker: Option<(u32, u32)>,
    /// The waker's stack, when it was taken (one wake in `--waker-every`).
    pub waker_stack: Option<StackKey>,
    /// It ended by its timeout.
    pub timed_out: bool,
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
    pub(crate) fn add(&mut self, waits: f64, wait_ns: u64) {
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

/// The stacks (or releases) of `new` that gained samples since `old`, with what they gained.
fn stats_since<K: Copy + Eq + std::hash::Hash>(
    new: &HashMap<K, StackStats>,
    old: &HashMap<K, StackStats>,
) -> HashMap<K, StackStats> {
    let mut out = HashMap::new();
    for (k, s) in new {
        let o = old.get(k).cloned().unwrap_or_default();
        if s.samples > o.samples {
            let d = StackStats {
                waits: s.waits - o.waits,
                wait_ns: s.wait_ns.saturating_sub(o.wait_ns),
                samples: s.samples - o.samples,
            };
            out.insert(*k, d);
        }
    }
    out
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
    /// Time waited here, by the waiter's stack (of this word's process).
    pub stacks: HashMap<StackKey, u64>,
    /// Wake calls on this address, and the waiters they woke.
    pub wakes: u64,
    pub wakes_woke: u64,
    /// Threads waiting now that began their wait here (from the start of the trace: a wait already
    /// under way when it started is not counted, and its end is not subtracted below zero).
    pub waiting: i64,
    /// Time waited here by waiters each waker stack released (the waker's process may be another one:
    /// a futex in shared memory).
    pub waker_stacks: HashMap<StackKey, u64>,
    /// Kernel sources: the kernel futex hash table this word's calls went to last (its bucket under
    /// the slots in force then). `None`: not known (another source, or an older recording).
    pub kernel: Option<KernelHash>,
    /// When it was last seen (`CLOCK_MONOTONIC` ns): the least recent go first when the table is full.
    pub last_ts_ns: u64,
    /// `stacks` and `waker_stacks` by thread too: (stack, thread id) → nanoseconds (the waiting
    /// thread's; the waking thread's). Profiles label samples with their thread from these.
    pub thread_stacks: HashMap<(StackKey, u32), u64>,
    pub waker_thread_stacks: HashMap<(StackKey, u32), u64>,
    /// Kernel sources: its calls' spins on their bucket's lock, and whether several threads made them.
    pub bucket_spins: Spins,
    pub several_callers: bool,
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

    /// Adds another word's figures to these: the same futex seen by another process (a shared futex,
    /// which the kernel keys by its memory, not by its process).
    pub fn absorb(&mut self, o: &AddrStats) {
        self.waits += o.waits;
        self.waits_blocked += o.waits_blocked;
        self.woken += o.woken;
        self.timeouts += o.timeouts;
        self.mismatches += o.mismatches;
        self.wait_ns_total += o.wait_ns_total;
        self.wait_ns.merge(&o.wait_ns);
        self.wakes += o.wakes;
        self.wakes_woke += o.wakes_woke;
        self.waiting += o.waiting;
        self.last_ts_ns = self.last_ts_ns.max(o.last_ts_ns);
        self.kernel = self.kernel.or(o.kernel);
        self.bucket_spins.add(&o.bucket_spins);
        self.several_callers |= o.several_callers;
        fn add<K: Copy + Eq + std::hash::Hash>(a: &mut HashMap<K, u64>, b: &HashMap<K, u64>) {
            for (k, v) in b {
                *a.entry(*k).or_default() += v;
            }
        }
        for (k, v) in &o.kinds {
            *self.kinds.entry(*k).or_default() += v;
        }
        add(&mut self.stacks, &o.stacks);
        add(&mut self.waker_stacks, &o.waker_stacks);
        add(&mut self.thread_stacks, &o.thread_stacks);
        add(&mut self.waker_thread_stacks, &o.waker_thread_stacks);
    }

    /// The stack that waited longest on this address, and how long.
    pub fn top_stack(&self) -> Option<(StackKey, u64)> {
        self.stacks
            .iter()
            .max_by_key(|(k, ns)| (**ns, std::cmp::Reverse(**k)))
            .map(|(k, ns)| (*k, *ns))
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
    /// Contended acquisitions of its lock by traced calls (lock:contention_*), by the calls that
    /// spun, and the time spun.
    pub spins: Spins,
    /// The price of sharing it: sleepers of other words its wakes walked past (each wake's walk of the
    /// bucket's list, estimated from the waiters there at the 100 ms reads: at most that many).
    pub walked_others: u64,
}

/// Contended acquisitions of a futex bucket's lock, by the kind of call that spun, and the time spun.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Spins {
    pub wait: u64,
    pub wake: u64,
    pub requeue: u64,
    pub spin_ns: u64,
}

impl Spins {
    /// Every contended acquisition.
    pub fn count(&self) -> u64 {
        self.wait + self.wake + self.requeue
    }

    /// Adds `o`'s.
    pub fn add(&mut self, o: &Spins) {
        self.wait += o.wait;
        self.wake += o.wake;
        self.requeue += o.requeue;
        self.spin_ns += o.spin_ns;
    }

    /// These, `share` of them (0..=1), each count rounded.
    fn scaled(&self, share: f64) -> Spins {
        let f = |v: u64| (v as f64 * share).round() as u64;
        Spins {
            wait: f(self.wait),
            wake: f(self.wake),
            requeue: f(self.requeue),
            spin_ns: f(self.spin_ns),
        }
    }
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
    /// How the sampled waits with a waiting stack ended, weighted as the stacks are (see [`Release`]).
    pub releases: HashMap<Release, StackStats>,
    /// Threads' names, by (pid, tid), as last seen (kernel sources).
    pub threads: std::collections::BTreeMap<(u32, u32), crate::event::ThreadName>,
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
            threads: Default::default(),
            releases: HashMap::new(),
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
        d.stacks = stats_since(&self.stacks, &old.stacks);
        d.waker_stacks = stats_since(&self.waker_stacks, &old.waker_stacks);
        d.releases = stats_since(&self.releases, &old.releases);
        d.threads = self.threads.clone();
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
            kb.spins.add(&self.spins_with(pid, addr, a, slots));
        }
        out
    }

    /// The spins a word's calls would make on their bucket's lock with `slots` slots: its calls contend
    /// with those of its bucket's other words, and with each other only when several threads make them,
    /// in proportion to their numbers; the words that would go to another bucket stop contending. (Words that would join its bucket would add contention this cannot
    /// know: the prediction is for separating words.)
    fn spins_with(&self, pid: u32, addr: u64, a: &AddrStats, slots: u32) -> Spins {
        if a.bucket_spins.count() == 0 {
            return Spins::default();
        }
        let calls = |s: &AddrStats| s.waits + s.wakes;
        let mine = crate::khash::bucket(addr, slots);
        let (mut now, mut kept) = (0u64, 0u64);
        for (&(p, other), o) in &self.addresses {
            // Its own calls contend with it only when several threads make them.
            if o.kernel != a.kernel || p != pid || (other == addr && !a.several_callers) {
                continue;
            }
            now += calls(o);
            if other == addr || crate::khash::bucket(other, slots) == mine {
                kept += calls(o);
            }
        }
        a.bucket_spins.scaled(kept as f64 / now.max(1) as f64)
    }

    /// Seconds between the first and the last event.
    pub fn span_secs(&self) -> f64 {
        self.last_ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Outcome};

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
                    pid: 0,
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
        assert_eq!(m.addresses[&(7, 0x10)].stacks[&(7, 1)], 63_000);
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
        let p16 = |addr| KernelHash::private_of(addr, 16);
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
        assert_eq!(s.walked_others, 0, "a's wakes met only a's waiter");
        // b's 4 wakes walk past a's waiter, each: the price of sharing the bucket.
        m.apply(&counts(b, FutexOp::Wake, p16(b), 4));
        assert_eq!(bucket(&m, ka).walked_others, 4);
        assert_eq!(m.kernel_slots[&pid], 16);
        // The process resizes to 64 slots: a's next calls go there, and its waiter moves with it.
        let p64 = KernelHash::private_of(a, 64);
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
    fn the_what_if_keeps_the_spins_of_the_callers_that_stay_together() {
        use crate::event::{Counts, FutexOp};
        let (pid, a) = (7, 0x5000_0040u64);
        let b = (1..)
            .map(|p| a + 0x1000 * p)
            .find(|&b| crate::khash::bucket(b, 16) == crate::khash::bucket(a, 16))
            .unwrap();
        // Slots that would put them apart.
        let apart = [32, 64, 128, 256, 512]
            .into_iter()
            .find(|&n| crate::khash::bucket(a, n) != crate::khash::bucket(b, n))
            .unwrap();
        let hash = |addr| KernelHash::private_of(addr, 16);
        let ev = |kind| Event {
            ts_ns: 1,
            pid,
            tid: 0,
            kind,
        };
        let storm = |addr, calls, spins, several| {
            [
                ev(EventKind::Counts {
                    addr,
                    op: FutexOp::Wait,
                    hash: Some(hash(addr)),
                    counts: Counts {
                        calls,
                        mismatches: calls,
                        ..Counts::default()
                    },
                }),
                ev(EventKind::BucketSpins {
                    addr,
                    op: FutexOp::Wait,
                    hash: hash(addr),
                    spins,
                    spin_ns: 10 * spins,
                    several_callers: several,
                }),
            ]
        };
        let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
        // a: one thread, 300 calls; b: several threads, 100 calls.
        m.extend(&storm(a, 300, 60, false));
        m.extend(&storm(b, 100, 40, true));
        let spins = |m: &Model, n: u32, addr: u64| {
            m.kernel_buckets_with(n)[&(pid, n, crate::khash::bucket(addr, n))].spins
        };
        assert_eq!(spins(&m, 16, a).wait, 100, "together: as now");
        // Apart: a (one thread) stops spinning; b keeps its own callers' share, 100 of 400 calls.
        assert_eq!(spins(&m, apart, a).wait, 0);
        assert_eq!(
            spins(&m, apart, b),
            Spins {
                wait: 10,
                wake: 0,
                requeue: 0,
                spin_ns: 100
            }
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
}
