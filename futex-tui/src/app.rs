//! The dashboard's state: the latest model, fixed-size history for the heatmap and rates, and what the
//! user selected. Updated off the draw path (once per refresh); drawing only reads it.

use std::collections::{HashMap, VecDeque};

use futex_trace::event::{KernelHash, WaitKind};
use futex_trace::model::{KernelBucketStats, Model};
use futex_trace::report::word_name;
use futex_trace::session::SPEEDS;
use futex_trace::stacks::StackTable;

/// Seconds of bucket history the heatmap keeps.
pub const HISTORY: usize = 60;

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

/// One row of the top-locks table, precomputed at update time.
#[derive(Clone, Debug, PartialEq)]
pub struct LockRow {
    pub pid: u32,
    pub addr: u64,
    pub label: Option<String>,
    pub kind: WaitKind,
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

/// The frame of a stack worth a column: the innermost one that is not a syscall or futex wrapper.
pub fn telling_frame(frames: &[String]) -> Option<String> {
    frames
        .iter()
        .rev()
        .find(|f| {
            let l = f.to_lowercase();
            !(l.contains("syscall")
                || l.contains("futex")
                || l.starts_with("__lll_")
                || l.starts_with("[unknown]")
                || l.contains("parker")
                || l.contains("thread_parking"))
        })
        .or(frames.last())
        .cloned()
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
    /// The tracer's own cost, for the header: BPF run time per second (eBPF sources), or the observer's
    /// session thread's CPU per second (the demo).
    pub tracer_cost: Option<String>,
    /// Replay: playback speed.
    pub speed: Option<f64>,
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
    prev_addr_blocked: HashMap<(u32, u64), u64>,
    blocked_rates: HashMap<(u32, u64), f64>,
    prev_buckets: Vec<u64>,
    prev_addr_waits: HashMap<(u32, u64), u64>,
    prev_edges: HashMap<(u64, u64), u64>,
    prev_events: u64,
    prev_idle: u64,
    last_tick_s: f64,
}

impl App {
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
            tracer_cost: None,
            speed: None,
            bucket_view: BucketView::Kernel,
            kernel_table: None,
            kernel_rows: Vec::new(),
            what_if_slots: None,
            prev_kernel: HashMap::new(),
            kernel_rates: HashMap::new(),
            prev_addr_blocked: HashMap::new(),
            blocked_rates: HashMap::new(),
            prev_buckets: Vec::new(),
            prev_addr_waits: HashMap::new(),
            prev_edges: HashMap::new(),
            prev_events: 0,
            prev_idle: 0,
            last_tick_s: 0.0,
        }
    }

    /// Takes a new model at `uptime_s`. Once a second (or more), rates and a heatmap row are computed
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
            let idle: u64 = self
                .model
                .addresses
                .values()
                .filter(|a| a.kind().is_idle())
                .map(|a| a.waits)
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
            let mut blocked = HashMap::new();
            for (a, st) in &self.model.addresses {
                let prev = self
                    .prev_addr_blocked
                    .insert(*a, st.waits_blocked)
                    .unwrap_or(0);
                blocked.insert(*a, st.waits_blocked.saturating_sub(prev) as f64 / dt);
            }
            self.blocked_rates = blocked;
            self.last_tick_s = uptime_s;
            self.rebuild_locks(Some(&waits_per_sec));
        } else {
            self.rebuild_locks(None);
        }
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
            .filter(|(_, s)| !s.kind().is_idle())
            .map(|(&(pid, addr), s)| LockRow {
                pid,
                addr,
                label: self.labels.get(&addr).cloned().or_else(|| {
                    self.stacks
                        .as_ref()
                        .and_then(|t| t.addr_symbols.get(&(s.pid, addr)).cloned())
                }),
                kind: s.kind(),
                waits: s.waits,
                waits_per_sec: rates
                    .and_then(|r| r.get(&(pid, addr)))
                    .or(old.get(&(pid, addr)))
                    .copied()
                    .unwrap_or(0.0),
                wait_ns_total: s.wait_ns_total,
                p50: s.wait_ns.percentile(0.5),
                p99: s.wait_ns.percentile(0.99),
                timeouts: s.timeouts,
                bucket: futex_trace::bucket_of(addr, queues),
                kernel_bucket: s.kernel.and_then(KernelHash::private),
                waiting: s.waiting,
                top_stack: self
                    .stacks
                    .as_ref()
                    .zip(s.top_stack())
                    .and_then(|(t, (id, _))| telling_frame(&t.frame_names((s.pid, id)))),
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
        self.rebuild_kernel_rows();
        self.edge_selected = self
            .edge_selected
            .min(self.model.edges.len().saturating_sub(1));
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
                words: m
                    .hottest_first(pid, &b.addresses)
                    .into_iter()
                    .map(|a| word_name(pid, a, &self.labels, self.stacks.as_ref()))
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

    /// The requeue edges, most moved first.
    pub fn edges(&self) -> Vec<((u64, u64), &futex_trace::model::Edge)> {
        let mut v: Vec<_> = self.model.edges.iter().map(|(k, e)| (*k, e)).collect();
        v.sort_by(|a, b| b.1.moved.cmp(&a.1.moved).then(a.0.cmp(&b.0)));
        v
    }

    /// The hottest bucket over the heatmap's window, and its contention per second.
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

    pub fn name(&self, addr: u64) -> String {
        match self.labels.get(&addr) {
            Some(l) => l.clone(),
            None => format!("{addr:#x}"),
        }
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
                        "no kernel futex hash to show: b switches between the kernel's buckets and \
                         futex-core's for kernel traces of a multithreaded process"
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
                Focus::Locks => {
                    self.selected = (self.selected + 1).min(self.locks.len().saturating_sub(1))
                }
                Focus::Edges => {
                    self.edge_selected =
                        (self.edge_selected + 1).min(self.model.edges.len().saturating_sub(1))
                }
            },
            Key::Up | Key::Char('k') => match self.focus {
                Focus::Locks => self.selected = self.selected.saturating_sub(1),
                Focus::Edges => self.edge_selected = self.edge_selected.saturating_sub(1),
            },
            Key::Enter => {
                if self.focus == Focus::Locks && !self.locks.is_empty() {
                    self.detail = !self.detail;
                }
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
    Other,
}
