//! The dashboard's state: the latest model, fixed-size history for the buckets, rates and time series, and what the
//! user selected. Updated off the draw path (once per refresh); drawing only reads it.

use std::collections::{HashMap, VecDeque};

use futex_trace::event::{KernelHash, WaitKind};
use futex_trace::model::StackKey;
use futex_trace::model::{KernelBucketStats, Model};
use futex_trace::sites::{Analysis, Class, Rules};
use futex_trace::stacks::{Names, StackTable};
use futex_trace::trace::SPEEDS;

/// Seconds of per-bucket history kept (futex-core's buckets: their rates and the hottest one).
pub const HISTORY: usize = 60;

/// Seconds of the time series kept (the activity panel shows as many as fit, newest right).
pub const SERIES: usize = 300;

/// Locks (from the top of the table) whose own time series is kept.
pub const TRACKED_LOCKS: usize = 64;

/// One second of activity, of the whole process or of one lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Point {
    /// Waits that slept, per second.
    pub slept: u64,
    /// Nanoseconds waited per second (by waits that slept).
    pub waited_ns: u64,
    /// p99 of that second's values (interpolated in log2 buckets): wake-to-return for the process,
    /// time waited for a lock. 0: none.
    pub p99_ns: u64,
}

/// Latency thresholds for colour: below `warn` is fine (green), from `warn` worth a look (yellow),
/// from `crit` bad (red). `--warn`, `--crit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub warn_ns: u64,
    pub crit_ns: u64,
}

/// The defaults: 100 µs (a wait a context switch or two explains) and 10 ms (a scheduler tick's worth:
/// a thread missing its deadlines).
impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_ns: 100_000,
            crit_ns: 10_000_000,
        }
    }
}

/// How bad a latency is, by the thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Fine,
    Warn,
    Crit,
}

impl Thresholds {
    pub fn of(&self, ns: u64) -> Severity {
        if ns >= self.crit_ns {
            Severity::Crit
        } else if ns >= self.warn_ns {
            Severity::Warn
        } else {
            Severity::Fine
        }
    }
}

/// Where the last frame drew what a mouse can point at (set while drawing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Areas {
    pub locks: ratatui::layout::Rect,
    pub edges: ratatui::layout::Rect,
}

/// One row of futex-core's buckets panel (its real queues, or its hash of kernel addresses).
#[derive(Clone, Debug, PartialEq)]
pub struct CoreBucketRow {
    pub bucket: usize,
    pub slept_per_sec: f64,
    pub depth: i64,
    pub max_depth: i64,
    /// Wakes that met another word's waiters in the queue (futex-core's own count).
    pub collisions: u64,
    /// Contended acquisitions of the queue's lock, so far (futex-core's own count).
    pub spins: u64,
    /// The words that map here, hottest first, by name.
    pub words: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    Locks,
    Edges,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    TotalWait,
    WaitsPerSec,
    P99,
}

impl SortBy {
    pub fn next(self) -> Self {
        match self {
            SortBy::TotalWait => SortBy::WaitsPerSec,
            SortBy::WaitsPerSec => SortBy::P99,
            SortBy::P99 => SortBy::TotalWait,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SortBy::TotalWait => "total wait",
            SortBy::WaitsPerSec => "waits/s",
            SortBy::P99 => "p99",
        }
    }
}

/// What the locks panel lists: wait sites (where in the program threads wait, every word and thread
/// there together) or words (futex addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockView {
    Sites,
    Words,
}

/// One wait site, as the report ranks it: contention first, then idle, then unclassified.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteRow {
    /// `process: frame ← caller [group]`.
    pub label: String,
    pub class: Class,
    /// What decided the class.
    pub why: String,
    pub threads: usize,
    /// Its threads by name (`teller-N ×4`), when names are known.
    pub thread_names: Option<String>,
    pub waits: u64,
    pub wait_ns: u64,
    /// Of all time waited at sites.
    pub share: f64,
    /// The words waited on, by name, the hottest first.
    pub words: Vec<String>,
    /// Where its waiters were released from, the hottest first.
    pub released_from: Vec<String>,
    /// Its waiting stacks, the hottest first.
    pub stacks: Vec<(StackKey, u64)>,
    pub truncated_share: f64,
}

/// One row of the top-locks table, precomputed at update time.
#[derive(Clone, Debug, PartialEq)]
pub struct LockRow {
    pub pid: u32,
    pub addr: u64,
    pub label: Option<String>,
    pub kind: WaitKind,
    /// Its class, by behaviour (the class of the site where it was waited on longest).
    pub class: Class,
    pub waits: u64,
    pub waits_per_sec: f64,
    pub wait_ns_total: u64,
    pub p50: u64,
    pub p99: u64,
    pub timeouts: u64,
    /// Its futex-core bucket (futex-core's queue, or futex-core's hash of a kernel address: a what-if).
    pub bucket: usize,
    /// Kernel sources: its bucket in its process's private kernel futex hash, and that table's slots
    /// (`None`: the global table, or not known).
    pub kernel_bucket: Option<(u32, u32)>,
    /// Threads waiting on it now.
    pub waiting: i64,
    /// The innermost telling frame of the stack that waited longest here (eBPF sources).
    pub top_stack: Option<String>,
}

/// Which buckets the buckets panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketView {
    /// The kernel's own futex hash of the traced process (kernel sources that have one).
    Kernel,
    /// The same words in a kernel hash of another slot count (`--slots`): a what-if.
    WhatIf(u32),
    /// futex-core's buckets: its real queues (demo, USDT), or its hash of the addresses (a what-if).
    FutexCore,
}

/// One row of the kernel buckets panel, precomputed at update time.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelBucketRow {
    pub bucket: u32,
    /// Waits that slept per second (contention), over the last second.
    pub slept_per_sec: f64,
    pub wait_ns: u64,
    pub waiting: i64,
    pub max_waiting: i64,
    /// Contended acquisitions of its lock by the traced calls, so far (lock:contention_*).
    pub spins: u64,
    /// Its words' names, hottest first (more than one: a collision).
    pub words: Vec<String>,
}

pub struct App {
    pub source: String,
    pub pid: u32,
    pub model: Model,
    pub labels: HashMap<u64, String>,
    pub uptime_s: f64,
    pub events_per_sec: f64,
    /// Per second, per bucket: waits that slept (contention per second), newest last.
    pub heat: VecDeque<Vec<u64>>,
    /// Contention rows, sorted by `sort`.
    pub locks: Vec<LockRow>,
    /// Wait sites (traces with stacks), recomputed once a second.
    pub sites: Vec<SiteRow>,
    /// Each word's class by behaviour, from the same analysis.
    pub classes: HashMap<(u32, u64), Class>,
    /// Sites or words in the locks panel (`v`).
    pub view: LockView,
    pub site_selected: usize,
    /// Idle (condvar) waits per second, all addresses.
    pub idle_per_sec: f64,
    pub edge_rates: HashMap<(u64, u64), f64>,
    pub focus: Focus,
    pub sort: SortBy,
    pub selected: usize,
    pub edge_selected: usize,
    pub paused: bool,
    pub help: bool,
    pub detail: bool,
    /// A one-line message for the user (errors, hints), shown in the footer.
    pub message: Option<String>,
    /// What stays wrong with the source (a recording damaged or cut short), shown in the header.
    pub warning: Option<String>,
    /// Stacks and symbols of an eBPF source (none for the observer).
    pub stacks: Option<StackTable>,
    /// The user's rules for wait classes (`--idle-frame`, `--lock-frame`).
    pub rules: Rules,
    /// The tracer's own cost, for the header: BPF run time per second (eBPF sources), or the observer's
    /// session thread's CPU per second (the demo).
    pub tracer_cost: Option<String>,
    /// Replay: playback speed.
    pub speed: Option<f64>,
    /// The whole process's activity, a point a second, newest last.
    pub series: VecDeque<Point>,
    /// Each lock's, by (pid, address).
    pub lock_series: HashMap<(u32, u64), VecDeque<Point>>,
    /// futex-core's buckets that saw waits, most contended first.
    pub core_rows: Vec<CoreBucketRow>,
    pub thresholds: Thresholds,
    /// Set by drawing (a `Cell`: drawing only reads the app).
    pub areas: std::cell::Cell<Areas>,
    prev_wake_hist: futex_trace::model::Log2Hist,
    prev_lock_hist: HashMap<(u32, u64), futex_trace::model::Log2Hist>,
    series_totals: (u64, u64),
    /// Each word's waits that slept and time waited at the last second: the per-second differences.
    lock_totals: HashMap<(u32, u64), (u64, u64)>,
    /// What the buckets panel shows (`b` switches, where there is a kernel table to show).
    pub bucket_view: BucketView,
    /// Kernel sources: the traced process's private futex hash (pid, slots) and its active buckets,
    /// most contended first.
    pub kernel_table: Option<(u32, u32)>,
    pub kernel_rows: Vec<KernelBucketRow>,
    /// `--slots N`: the what-if `b` also offers.
    pub what_if_slots: Option<u32>,
    prev_kernel: HashMap<futex_trace::model::KernelBucketKey, u64>,
    kernel_rates: HashMap<futex_trace::model::KernelBucketKey, f64>,
    /// Waits that slept per second, per word (for what-if buckets, which have no history).
    blocked_rates: HashMap<(u32, u64), f64>,
    prev_buckets: Vec<u64>,
    prev_addr_waits: HashMap<(u32, u64), u64>,
    prev_edges: HashMap<(u64, u64), u64>,
    prev_events: u64,
    prev_idle: u64,
    last_tick_s: f64,
}

impl App {
    /// How the trace names words and frames.
    pub fn names(&self) -> Names<'_> {
        Names::new(&self.labels, self.stacks.as_ref())
    }

    pub fn new(source: String, pid: u32, model: Model, labels: HashMap<u64, String>) -> Self {
        App {
            source,
            pid,
            model,
            labels,
            uptime_s: 0.0,
            events_per_sec: 0.0,
            heat: VecDeque::with_capacity(HISTORY),
            locks: Vec::new(),
            sites: Vec::new(),
            classes: HashMap::new(),
            view: LockView::Sites,
            site_selected: 0,
            idle_per_sec: 0.0,
            edge_rates: HashMap::new(),
            focus: Focus::Locks,
            sort: SortBy::TotalWait,
            selected: 0,
            edge_selected: 0,
            paused: false,
            help: false,
            detail: false,
            message: None,
            warning: None,
            stacks: None,
            rules: Rules::default(),
            tracer_cost: None,
            speed: None,
            series: VecDeque::with_capacity(SERIES),
            lock_series: HashMap::new(),
            core_rows: Vec::new(),
            thresholds: Thresholds::default(),
            areas: Default::default(),
            prev_wake_hist: Default::default(),
            prev_lock_hist: HashMap::new(),
            series_totals: (0, 0),
            lock_totals: HashMap::new(),
            bucket_view: BucketView::Kernel,
            kernel_table: None,
            kernel_rows: Vec::new(),
            what_if_slots: None,
            prev_kernel: HashMap::new(),
            kernel_rates: HashMap::new(),
            blocked_rates: HashMap::new(),
            prev_buckets: Vec::new(),
            prev_addr_waits: HashMap::new(),
            prev_edges: HashMap::new(),
            prev_events: 0,
            prev_idle: 0,
            last_tick_s: 0.0,
        }
    }

    /// Takes a new model at `uptime_s`. Once a second (or more), rates, a bucket-history row and a time-series point are computed
    /// from the difference with the previous second; the lock rows are rebuilt every time.
    pub fn update(&mut self, model: Model, uptime_s: f64) {
        // Paused freezes the display; in a replay it pauses playback instead (and `n` steps).
        if self.paused && self.speed.is_none() {
            return;
        }
        self.model = model;
        self.uptime_s = uptime_s;
        let dt = uptime_s - self.last_tick_s;
        if dt >= 1.0 || self.heat.is_empty() {
            let dt = dt.max(1e-3);
            let row: Vec<u64> = self
                .model
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    b.waits_blocked
                        .saturating_sub(*self.prev_buckets.get(i).unwrap_or(&0))
                })
                .collect();
            self.prev_buckets = self.model.buckets.iter().map(|b| b.waits_blocked).collect();
            if self.heat.len() == HISTORY {
                self.heat.pop_front();
            }
            self.heat.push_back(row);
            self.events_per_sec =
                self.model.totals.events.saturating_sub(self.prev_events) as f64 / dt;
            self.prev_events = self.model.totals.events;
            self.rebuild_sites();
            let idle: u64 = (self.model.addresses.iter())
                .filter(|(&w, a)| self.class_of(w, a).is_idle())
                .map(|(_, a)| a.waits)
                .sum();
            self.idle_per_sec = idle.saturating_sub(self.prev_idle) as f64 / dt;
            self.prev_idle = idle;
            let mut rates = HashMap::new();
            for (k, e) in &self.model.edges {
                let prev = self.prev_edges.insert(*k, e.moved).unwrap_or(0);
                rates.insert(*k, e.moved.saturating_sub(prev) as f64 / dt);
            }
            self.edge_rates = rates;
            let mut waits_per_sec = HashMap::new();
            for (a, s) in &self.model.addresses {
                let prev = self.prev_addr_waits.insert(*a, s.waits).unwrap_or(0);
                waits_per_sec.insert(*a, s.waits.saturating_sub(prev) as f64 / dt);
            }
            let mut kernel_rates = HashMap::new();
            for (k, b) in &self.model.kernel_buckets {
                let prev = self.prev_kernel.insert(*k, b.waits_blocked).unwrap_or(0);
                kernel_rates.insert(*k, b.waits_blocked.saturating_sub(prev) as f64 / dt);
            }
            self.kernel_rates = kernel_rates;
            self.add_points(dt);
            self.last_tick_s = uptime_s;
            self.rebuild_locks(Some(&waits_per_sec));
            // The buckets' rows change with their rates: once a second.
            self.rebuild_kernel_rows();
            self.rebuild_core_rows();
        } else {
            self.rebuild_locks(None);
        }
    }

    /// A word's class by behaviour: as the last analysis found it, else (a word newer than it) by its
    /// primitive.
    pub fn class_of(&self, word: (u32, u64), a: &futex_trace::model::AddrStats) -> Class {
        self.classes
            .get(&word)
            .copied()
            .unwrap_or_else(|| match a.kind_in(self.stacks.as_ref()) {
                WaitKind::Mutex | WaitKind::RwLock => Class::Lock,
                WaitKind::Raw | WaitKind::Kernel => Class::Unclassified,
                _ => Class::Work,
            })
    }

    /// The wait sites and each word's class, as the report decides them (once a second: the analysis
    /// walks every stack).
    fn rebuild_sites(&mut self) {
        let an = Analysis::new(&self.model, self.names(), &self.rules);
        let classes = (self.model.addresses.keys())
            .map(|&w| (w, an.word_class(w)))
            .collect();
        let all: u64 = an.sites.sites.iter().map(|s| s.wait_ns).sum();
        let mut rows: Vec<SiteRow> = (an.sites.sites.iter())
            .filter(|s| s.wait_ns > 0)
            .map(|s| SiteRow {
                label: s.label(),
                class: s.class,
                why: s.evidence.clone(),
                threads: s.threads,
                thread_names: s.thread_groups(an.names),
                waits: s.waits.round() as u64,
                wait_ns: s.wait_ns,
                share: if all == 0 {
                    0.0
                } else {
                    s.wait_ns as f64 / all as f64
                },
                words: (s.words.iter())
                    .map(|w| an.names.word(w.pid, w.addr))
                    .collect(),
                released_from: s.released_from.iter().map(|(f, _)| f.clone()).collect(),
                stacks: s.stacks.clone(),
                truncated_share: s.truncated_share,
            })
            .collect();
        // Contention first, then idle, then what is unclassified; the most time waited first in each.
        let rank = |c: Class| {
            if c.is_contention() {
                0
            } else if c.is_idle() {
                1
            } else {
                2
            }
        };
        rows.sort_by(|a, b| {
            (rank(a.class).cmp(&rank(b.class)))
                .then(b.wait_ns.cmp(&a.wait_ns))
                .then(a.label.cmp(&b.label))
        });
        self.classes = classes;
        self.sites = rows;
        self.site_selected = self.site_selected.min(self.sites.len().saturating_sub(1));
    }

    /// Rows of the locks panel (sites or words).
    pub fn rows(&self) -> usize {
        if self.shows_sites() {
            self.sites.len()
        } else {
            self.locks.len()
        }
    }

    /// `v`: sites ↔ words; a trace without stacks has no sites, and says so.
    fn switch_view(&mut self) {
        if self.sites.is_empty() {
            self.message = Some(
                "v: no wait sites: they come from stacks, and this trace has none (yet)".into(),
            );
            return;
        }
        self.view = match self.view {
            LockView::Sites => LockView::Words,
            LockView::Words => LockView::Sites,
        };
        self.detail = false;
    }

    /// The locks panel shows sites: chosen, and the trace has stacks to find them in.
    pub fn shows_sites(&self) -> bool {
        self.view == LockView::Sites && !self.sites.is_empty()
    }

    fn rebuild_locks(&mut self, rates: Option<&HashMap<(u32, u64), f64>>) {
        let old: HashMap<(u32, u64), f64> = self
            .locks
            .iter()
            .map(|r| ((r.pid, r.addr), r.waits_per_sec))
            .collect();
        let queues = self.model.buckets.len().max(1);
        let mut rows: Vec<LockRow> = self
            .model
            .addresses
            .iter()
            .map(|(&k, s)| (k, s, self.class_of(k, s)))
            .filter(|(_, s, class)| !class.is_idle() && s.waits_blocked + s.timeouts > 0)
            .map(|((pid, addr), s, class)| LockRow {
                pid,
                addr,
                label: self.names().label(s.pid, addr).map(str::to_string),
                kind: s.kind_in(self.stacks.as_ref()),
                class,
                waits: s.waits,
                waits_per_sec: rates
                    .and_then(|r| r.get(&(pid, addr)))
                    .or(old.get(&(pid, addr)))
                    .copied()
                    .unwrap_or(0.0),
                wait_ns_total: s.wait_ns_total,
                p50: s.wait_ns.percentile_interpolated(0.5),
                p99: s.wait_ns.percentile_interpolated(0.99),
                timeouts: s.timeouts,
                bucket: futex_trace::bucket_of(addr, queues),
                kernel_bucket: s.kernel.and_then(KernelHash::private),
                waiting: s.waiting,
                top_stack: self
                    .stacks
                    .as_ref()
                    .zip(s.top_stack())
                    .and_then(|(t, (key, _))| {
                        // The program's own frame that waited (not glibc's or std's lock code).
                        let names = t.frame_names(key);
                        t.program_frame(key)
                            .and_then(|i| names.get(i).cloned())
                            .or_else(|| names.last().cloned())
                    }),
            })
            .collect();
        // Ties broken by address, so the order does not depend on hash-map iteration.
        rows.sort_by_key(|r| (r.addr, r.pid));
        match self.sort {
            SortBy::TotalWait => rows.sort_by_key(|r| std::cmp::Reverse(r.wait_ns_total)),
            SortBy::WaitsPerSec => rows.sort_by(|a, b| b.waits_per_sec.total_cmp(&a.waits_per_sec)),
            SortBy::P99 => rows.sort_by_key(|r| std::cmp::Reverse(r.p99)),
        }
        self.locks = rows;
        self.selected = self.selected.min(self.locks.len().saturating_sub(1));
        self.edge_selected = self
            .edge_selected
            .min(self.model.edges.len().saturating_sub(1));
    }

    /// A point of the time series for the last `dt` seconds: the whole process's, and each lock's.
    fn add_points(&mut self, dt: f64) {
        let m = &self.model;
        let per_sec = |v: u64| (v as f64 / dt).round() as u64;
        let now = (
            m.totals.waits_blocked,
            m.addresses.values().map(|a| a.wait_ns_total).sum::<u64>(),
        );
        let last = std::mem::replace(&mut self.series_totals, now);
        let wake = m.wake_to_return.since(&self.prev_wake_hist);
        self.prev_wake_hist = m.wake_to_return.clone();
        push(
            &mut self.series,
            Point {
                slept: per_sec(now.0.saturating_sub(last.0)),
                waited_ns: per_sec(now.1.saturating_sub(last.1)),
                p99_ns: wake.percentile_interpolated(0.99),
            },
        );
        // Per-lock series for the locks at the top of the table only: memory stays bounded however
        // many words a process has (a lock that enters the top starts its series then).
        let tracked: std::collections::HashSet<(u32, u64)> = self
            .locks
            .iter()
            .take(TRACKED_LOCKS)
            .map(|r| (r.pid, r.addr))
            .collect();
        self.lock_series.retain(|k, _| tracked.contains(k));
        self.prev_lock_hist.retain(|k, _| tracked.contains(k));
        let mut blocked_rates = HashMap::new();
        for (k, a) in &m.addresses {
            let (slept0, waited0) = self
                .lock_totals
                .insert(*k, (a.waits_blocked, a.wait_ns_total))
                .unwrap_or_default();
            blocked_rates.insert(*k, a.waits_blocked.saturating_sub(slept0) as f64 / dt);
            if self.class_of(*k, a).is_idle() || !tracked.contains(k) {
                continue;
            }
            let prev = self.prev_lock_hist.entry(*k).or_default();
            let h = a.wait_ns.since(prev);
            *prev = a.wait_ns.clone();
            push(
                self.lock_series.entry(*k).or_default(),
                Point {
                    slept: per_sec(a.waits_blocked.saturating_sub(slept0)),
                    waited_ns: per_sec(a.wait_ns_total.saturating_sub(waited0)),
                    p99_ns: h.percentile_interpolated(0.99),
                },
            );
        }
        self.blocked_rates = blocked_rates;
    }

    /// futex-core's buckets that saw waits, wakes or waiters, with the words that map to each.
    fn rebuild_core_rows(&mut self) {
        let m = &self.model;
        let queues = m.buckets.len().max(1);
        let last = self.heat.back();
        let mut words: HashMap<usize, Vec<(u64, u32, u64)>> = HashMap::new();
        for (&(pid, addr), a) in &m.addresses {
            words
                .entry(futex_trace::bucket_of(addr, queues))
                .or_default()
                .push((a.wait_ns_total, pid, addr));
        }
        let mut rows: Vec<CoreBucketRow> = m
            .buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| {
                b.counters.waits + b.counters.wakes + b.counters.requeued_in > 0 || b.depth != 0
            })
            .map(|(i, b)| {
                let mut w = words.remove(&i).unwrap_or_default();
                w.sort_by(|x, y| y.cmp(x));
                CoreBucketRow {
                    bucket: i,
                    slept_per_sec: last.and_then(|r| r.get(i)).copied().unwrap_or(0) as f64,
                    depth: b.depth,
                    max_depth: b.max_depth,
                    collisions: b.counters.collisions,
                    spins: b.counters.lock_contended,
                    words: w
                        .into_iter()
                        .map(|(_, pid, a)| self.names().word(pid, a))
                        .collect(),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.slept_per_sec
                .total_cmp(&a.slept_per_sec)
                .then(b.max_depth.cmp(&a.max_depth))
                .then(a.bucket.cmp(&b.bucket))
        });
        self.core_rows = rows;
    }

    /// The kernel table to show: the traced process's (the first with one, when it has none), as its
    /// slots are now, and its buckets that saw calls, most contended first.
    fn rebuild_kernel_rows(&mut self) {
        let m = &self.model;
        self.kernel_table = m
            .kernel_slots
            .get_key_value(&self.pid)
            .or_else(|| m.kernel_slots.first_key_value())
            .map(|(&p, &n)| (p, n));
        let Some((pid, slots)) = self.kernel_table else {
            self.kernel_rows.clear();
            return;
        };
        // The what-if regroups the same words; its rates are its words'.
        let what_if = match self.bucket_view {
            BucketView::WhatIf(n) => Some(m.kernel_buckets_with(n)),
            _ => None,
        };
        let (buckets, slots) = match (&what_if, self.bucket_view) {
            (Some(w), BucketView::WhatIf(n)) => (w, n),
            _ => (&m.kernel_buckets, slots),
        };
        let rate = |k: &futex_trace::model::KernelBucketKey, b: &KernelBucketStats| match what_if {
            Some(_) => b
                .addresses
                .iter()
                .filter_map(|&a| self.blocked_rates.get(&(pid, a)))
                .sum(),
            None => self.kernel_rates.get(k).copied().unwrap_or(0.0),
        };
        let mut rows: Vec<KernelBucketRow> = buckets
            .range((pid, slots, 0)..=(pid, slots, u32::MAX))
            .map(|(k, b)| KernelBucketRow {
                bucket: k.2,
                slept_per_sec: rate(k, b),
                wait_ns: b.wait_ns,
                waiting: b.waiting,
                max_waiting: b.max_waiting,
                spins: b.spins.count(),
                words: m
                    .hottest_first(pid, &b.addresses)
                    .into_iter()
                    .map(|a| self.names().word(pid, a))
                    .collect(),
            })
            .collect();
        rows.sort_by(|a, b| {
            b.slept_per_sec
                .total_cmp(&a.slept_per_sec)
                .then(b.wait_ns.cmp(&a.wait_ns))
                .then(a.bucket.cmp(&b.bucket))
        });
        self.kernel_rows = rows;
    }

    /// The buckets panel shows a kernel table (the process's, or a what-if of it): chosen, and there
    /// is one to show.
    pub fn shows_kernel_buckets(&self) -> bool {
        self.bucket_view != BucketView::FutexCore && self.kernel_table.is_some()
    }

    /// A click on a row of the locks or requeue table selects it; a second click on the selected lock
    /// opens its detail.
    fn click(&mut self, x: u16, y: u16) {
        let areas = self.areas.get();
        let at = ratatui::layout::Position::new(x, y);
        // Rows start below the border and the header; the table scrolls so that the selection shows.
        let row = |area: ratatui::layout::Rect, selected: usize| -> Option<usize> {
            let first = area.y + 2;
            let visible = area.height.saturating_sub(3).max(1) as usize;
            let offset = selected.saturating_sub(visible - 1);
            (y >= first && y < area.y + area.height - 1).then(|| offset + (y - first) as usize)
        };
        if areas.locks.contains(at) {
            self.focus = Focus::Locks;
            let sites = self.shows_sites();
            let selected = if sites {
                &mut self.site_selected
            } else {
                &mut self.selected
            };
            let rows = if sites {
                self.sites.len()
            } else {
                self.locks.len()
            };
            if let Some(i) = row(areas.locks, *selected).filter(|&i| i < rows) {
                if i == *selected {
                    self.detail = !self.detail;
                }
                *selected = i;
            }
        } else if areas.edges.contains(at) {
            self.focus = Focus::Edges;
            if let Some(i) =
                row(areas.edges, self.edge_selected).filter(|&i| i < self.model.edges.len())
            {
                self.edge_selected = i;
            }
        } else if self.detail {
            self.detail = false;
        }
    }

    /// The requeue edges, most moved first.
    pub fn edges(&self) -> Vec<((u64, u64), &futex_trace::model::Edge)> {
        let mut v: Vec<_> = self.model.edges.iter().map(|(k, e)| (*k, e)).collect();
        v.sort_by(|a, b| b.1.moved.cmp(&a.1.moved).then(a.0.cmp(&b.0)));
        v
    }

    /// The hottest bucket over the bucket history's window, and its contention per second.
    pub fn hottest_bucket(&self) -> Option<(usize, f64)> {
        let n = self.heat.len().max(1) as f64;
        let width = self.heat.iter().map(Vec::len).max().unwrap_or(0);
        (0..width)
            .map(|b| {
                let sum: u64 = self
                    .heat
                    .iter()
                    .map(|r| r.get(b).copied().unwrap_or(0))
                    .sum();
                (b, sum as f64 / n)
            })
            .filter(|(_, v)| *v > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// A word of the traced process by name: its label, its static symbol, or its address.
    pub fn name(&self, addr: u64) -> String {
        self.names().word(self.pid, addr)
    }

    /// The selected lock's row, if any.
    pub fn selected_lock(&self) -> Option<&LockRow> {
        self.locks.get(self.selected)
    }

    /// Handles a key: changes what is shown, and returns what `main` must do (the app does no I/O and
    /// steers no source itself).
    pub fn on_key(&mut self, key: Key) -> Action {
        self.message = None;
        match key {
            Key::Quit => return Action::Quit,
            Key::Char('?') => self.help = !self.help,
            Key::Esc if self.help || self.detail => {
                self.help = false;
                self.detail = false;
            }
            Key::Esc => return Action::Quit,
            Key::Char('p') => {
                self.paused = !self.paused;
                if self.speed.is_some() {
                    return Action::Pause(self.paused);
                }
            }
            Key::Char('f') => return Action::WriteFlamegraph,
            Key::Char('b') => {
                if self.kernel_table.is_none() {
                    self.message = Some(
                        "b: no kernel futex hash here (kernel traces of threaded processes have one)"
                            .into(),
                    );
                } else {
                    self.bucket_view = match (self.bucket_view, self.what_if_slots) {
                        (BucketView::Kernel, Some(n)) => BucketView::WhatIf(n),
                        (BucketView::Kernel | BucketView::WhatIf(_), _) => BucketView::FutexCore,
                        (BucketView::FutexCore, _) => BucketView::Kernel,
                    };
                    self.rebuild_kernel_rows();
                }
            }
            Key::Char('+') if self.speed.is_some() => {
                let s = self.speed.map(|s| (s * 2.0).min(*SPEEDS.end()));
                self.speed = s;
                return Action::Speed(s.unwrap_or(1.0));
            }
            Key::Char('-') if self.speed.is_some() => {
                let s = self.speed.map(|s| (s / 2.0).max(*SPEEDS.start()));
                self.speed = s;
                return Action::Speed(s.unwrap_or(1.0));
            }
            Key::Char('n') if self.speed.is_some() => return Action::Step,
            Key::Char('+' | '-' | 'n') => {
                self.message =
                    Some("+, - and n steer a replay (--replay FILE): this is live".into())
            }
            Key::Char('v') => self.switch_view(),
            Key::Char('s') if self.shows_sites() => {
                self.message = Some("sites rank by class, then time: s sorts the words (v)".into())
            }
            Key::Char('s') => {
                self.sort = self.sort.next();
                self.rebuild_locks(None);
            }
            Key::Tab => {
                self.focus = match self.focus {
                    Focus::Locks => Focus::Edges,
                    Focus::Edges => Focus::Locks,
                }
            }
            Key::Down | Key::Char('j') => match self.focus {
                Focus::Locks if self.shows_sites() => {
                    self.site_selected =
                        (self.site_selected + 1).min(self.sites.len().saturating_sub(1))
                }
                Focus::Locks => {
                    self.selected = (self.selected + 1).min(self.locks.len().saturating_sub(1))
                }
                Focus::Edges => {
                    self.edge_selected =
                        (self.edge_selected + 1).min(self.model.edges.len().saturating_sub(1))
                }
            },
            Key::Up | Key::Char('k') => match self.focus {
                Focus::Locks if self.shows_sites() => {
                    self.site_selected = self.site_selected.saturating_sub(1)
                }
                Focus::Locks => self.selected = self.selected.saturating_sub(1),
                Focus::Edges => self.edge_selected = self.edge_selected.saturating_sub(1),
            },
            Key::Enter => {
                if self.focus == Focus::Locks && self.rows() > 0 {
                    self.detail = !self.detail;
                } else if self.focus == Focus::Edges {
                    self.message =
                        Some("Enter opens a lock's detail: Tab back to the locks".into());
                }
            }
            Key::Click(x, y) => self.click(x, y),
            Key::ScrollUp(x, y) | Key::ScrollDown(x, y) => {
                let down = matches!(key, Key::ScrollDown(..));
                let areas = self.areas.get();
                let at = ratatui::layout::Position::new(x, y);
                if areas.locks.contains(at) {
                    self.focus = Focus::Locks;
                } else if areas.edges.contains(at) {
                    self.focus = Focus::Edges;
                }
                return self.on_key(if down { Key::Down } else { Key::Up });
            }
            Key::Char(_) | Key::Other => {}
        }
        Action::None
    }
}

/// What `main` does after a key: the effects outside the app's own state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    None,
    Quit,
    /// Write a flamegraph of what is shown (`f`).
    WriteFlamegraph,
    /// Pause or resume a replay.
    Pause(bool),
    /// Set a replay's speed.
    Speed(f64),
    /// Advance a paused replay by a second.
    Step,
}

/// Keys the app understands, independent of the terminal library (tests drive the app with these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Quit,
    Esc,
    Tab,
    Up,
    Down,
    Enter,
    Char(char),
    /// A left click at (column, row) of the terminal.
    Click(u16, u16),
    /// The mouse wheel, over the panel at (column, row).
    ScrollUp(u16, u16),
    ScrollDown(u16, u16),
    Other,
}

/// Appends a point, dropping the oldest past [`SERIES`].
fn push(series: &mut VecDeque<Point>, p: Point) {
    if series.len() == SERIES {
        series.pop_front();
    }
    series.push_back(p);
}
