//! Reports of a trace: JSON (scripts depend on its `totals`, `addresses` and now `sites`) and text (people
//! read it). The unit of the answer is the wait site ([`crate::sites`]): where in the program threads
//! waited, with its class and the evidence for it; the words are detail beneath it.

mod text;

use std::borrow::Cow;

use serde::Serialize;

use crate::event::WaitKind;
use crate::khash::KernelHash;
use crate::model::{
    AddrStats, BucketOrigin, BucketStats, KernelBucketKey, KernelBucketStats, Log2Hist, Model,
    Totals,
};
use crate::sites::{Analysis, Class, Site};
use crate::stacks::hex;

pub use text::text;

/// What the report says about where the events came from.
#[derive(Clone, Debug, Serialize)]
pub struct SourceInfo {
    /// "demo (futex-core observer)", "kernel futexes (eBPF)", …
    pub source: String,
    /// The traced process (the first, when several).
    pub pid: u32,
    pub duration_s: f64,
    /// Something the reader must know (stacks cut short, a recording that did not end cleanly).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl SourceInfo {
    /// What a report says of the source of what a session gathered.
    pub fn of(f: &crate::trace::Finished) -> SourceInfo {
        SourceInfo {
            source: f.title.clone(),
            pid: f.pid(),
            duration_s: f.duration_s(),
            warnings: f.warnings.clone(),
        }
    }
}

#[derive(Serialize)]
struct Latency {
    count: u64,
    p50_ns: u64,
    p90_ns: u64,
    p99_ns: u64,
    max_ns: u64,
}

impl From<&Log2Hist> for Latency {
    fn from(h: &Log2Hist) -> Self {
        Latency {
            count: h.count,
            p50_ns: h.percentile(0.5),
            p90_ns: h.percentile(0.9),
            p99_ns: h.percentile(0.99),
            max_ns: h.max,
        }
    }
}

#[derive(Serialize)]
struct AddressRow<'a> {
    address: String,
    pid: u32,
    /// A shared futex that several processes waited or woke on (the kernel keys it by its memory):
    /// every one of them; `address` and `pid` are the first's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pids: Vec<u32>,
    label: Option<&'a str>,
    /// The primitive its waits sleep on (from its events, or its stacks' frames).
    kind: WaitKind,
    /// Idle (waiting for work, a sleep), not contention: decided by behaviour, as its site's class.
    idle: bool,
    /// Its class: that of the site that waited on it longest (see `sites`).
    class: Class,
    /// That site (`process: frame ← caller`), when its stacks were taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    waits: u64,
    waits_blocked: u64,
    wait_ns_total: u64,
    woken: u64,
    timeouts: u64,
    /// Waits that returned at once: the value had changed (EAGAIN).
    mismatches: u64,
    /// Wake calls on this address, and how many waiters they woke.
    wakes: u64,
    wakes_woke: u64,
    p50_wait_ns: u64,
    p99_wait_ns: u64,
    /// The stack that waited longest here, outermost frame first (eBPF sources and the observer).
    top_stack: Option<Vec<String>>,
    top_stack_wait_ns: Option<u64>,
    /// In `top_stack`: how many frames lead to the program's own frame that waited (the first one
    /// outside the threading library, counted from the outermost), e.g. `take_lock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    top_stack_caller: Option<usize>,
    /// That frame's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    waited_in: Option<String>,
    /// Kernel sources: which kernel futex hash the word's calls went to last: `private` (the process's
    /// own table) or `global` (a shared futex, or a process without a private hash); null when unknown.
    kernel_table: Option<&'static str>,
    /// Its bucket in the process's private hash, and that table's slots (null unless `private`).
    kernel_bucket: Option<u32>,
    kernel_slots: Option<u32>,
    /// With `--slots N`: its bucket in a private hash of N slots (a what-if).
    #[serde(skip_serializing_if = "Option::is_none")]
    what_if_kernel_bucket: Option<u32>,
}

#[derive(Serialize)]
struct KernelBucketRow<'a> {
    pid: u32,
    slots: u32,
    bucket: u32,
    /// The model's (traced), or computed for a what-if.
    #[serde(flatten)]
    stats: Cow<'a, KernelBucketStats>,
    /// Of `wait_ns`, the time of its words whose class is contention (a lock, a hand-off).
    contention_ns: u64,
    /// More than one word in the bucket: they share its lock and its list of waiters.
    collision: bool,
}

/// Rows of kernel buckets, the most contended (time waited on contended words, then all time waited,
/// then waits) first.
fn kernel_rows<'a>(
    a: &Analysis<'_>,
    buckets: impl Iterator<Item = (KernelBucketKey, Cow<'a, KernelBucketStats>)>,
) -> Vec<KernelBucketRow<'a>> {
    let mut rows: Vec<KernelBucketRow> = buckets
        .map(|((pid, slots, bucket), stats)| KernelBucketRow {
            pid,
            slots,
            bucket,
            collision: stats.addresses.len() > 1,
            contention_ns: (stats.addresses.iter())
                .filter(|&&w| a.word_class((pid, w)).is_contention())
                .filter_map(|&w| a.model.addresses.get(&(pid, w)))
                .map(|s| s.wait_ns_total)
                .sum(),
            stats,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.contention_ns, b.stats.wait_ns, b.stats.waits)
            .cmp(&(a.contention_ns, a.stats.wait_ns, a.stats.waits))
            .then((a.pid, a.slots, a.bucket).cmp(&(b.pid, b.slots, b.bucket)))
    });
    rows
}

#[derive(Serialize)]
struct WhatIf<'a> {
    /// The slot count asked for (`--slots`).
    slots: u32,
    label: String,
    buckets: Vec<KernelBucketRow<'a>>,
}

#[derive(Serialize)]
struct BucketRow<'a> {
    bucket: usize,
    #[serde(flatten)]
    stats: &'a BucketStats,
}

#[derive(Serialize)]
struct EdgeRow {
    from: String,
    to: String,
    from_bucket: u32,
    to_bucket: u32,
    requeues: u64,
    moved: u64,
    woken: u64,
}

#[derive(Serialize)]
struct Report<'a> {
    format: &'static str,
    #[serde(flatten)]
    source: &'a SourceInfo,
    bucket_origin: BucketOrigin,
    bucket_label: &'static str,
    totals: &'a Totals,
    /// Where threads waited, the hottest first: one row per wait site, with its class and evidence.
    sites: &'a [Site],
    addresses: Vec<AddressRow<'a>>,
    buckets: Vec<BucketRow<'a>>,
    requeue_edges: Vec<EdgeRow>,
    /// Kernel sources: which kernel futex hash tables `kernel_buckets` shows, in words.
    kernel_buckets_label: &'static str,
    /// Kernel sources: per (pid, slots, bucket) of the processes' private futex hashes, the hottest
    /// (time waited) first; empty for other sources.
    kernel_buckets: Vec<KernelBucketRow<'a>>,
    /// With `--slots N`: the same buckets had the processes N slots.
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel_buckets_what_if: Option<WhatIf<'a>>,
    wait_contention: Latency,
    wait_idle: Latency,
    /// Time waited on words whose class nothing decided.
    wait_unclassified: Latency,
    /// Of the time waited in sampled stacks, the share (0..=1) in stacks cut short: at a frame outside
    /// every mapping, or deeper than the stack copy (null: no stacks).
    stacks_truncated_share: Option<f64>,
    wake_to_return: Latency,
    sched_delay: Latency,
    /// Per second since the first event (the last ten minutes): waits that slept, their time, wakes,
    /// waiters moved by requeue.
    series: Vec<SeriesRow<'a>>,
}

#[derive(Serialize)]
struct SeriesRow<'a> {
    second: u64,
    #[serde(flatten)]
    stats: &'a crate::model::SecondStats,
}

/// What `kernel_buckets` shows, in words.
pub const KERNEL_BUCKETS_LABEL: &str = "kernel futex hash buckets: each traced process's own private \
     table (Linux 6.17+), as the kernel had it at each call; shared futexes and processes without a \
     private table use the kernel's global table, of which no bucket is shown";

/// What the what-if of `slots` slots shows, in words.
fn what_if_label(slots: u32) -> String {
    format!(
        "what-if: the private futexes' kernel buckets had each process {slots} slots \
         (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, {slots})); computed, not traced"
    )
}

/// One row of `addresses`: a word's counts, its kind, its hottest stack and where it lies in the
/// kernel's futex hash.
fn address_row<'a>(
    an: &Analysis<'a>,
    (pid, a): (u32, u64),
    (s, pids): &(AddrStats, std::collections::BTreeSet<u32>),
    what_if_slots: Option<u32>,
) -> AddressRow<'a> {
    let names = an.names;
    let stacks = names.stacks;
    let kind = s.kind_in(stacks);
    let class = an.word_class((pid, a));
    let site = (s.top_stack())
        .and_then(|(k, _)| an.sites.site_of(k, None))
        .map(Site::label);
    // The hottest stack's frames, and where the program itself waited in them.
    let top = stacks
        .zip(s.top_stack())
        .map(|(t, (key, _))| (t.frame_names(key), t.program_frame(key)));
    let private = s.kernel.and_then(KernelHash::private);
    AddressRow {
        kernel_table: s.kernel.map(|h| match h {
            KernelHash::Private { .. } => "private",
            KernelHash::Global | KernelHash::Shared => "global",
        }),
        kernel_bucket: private.map(|(_, b)| b),
        kernel_slots: private.map(|(n, _)| n),
        what_if_kernel_bucket: what_if_slots
            .filter(|_| private.is_some())
            .map(|n| crate::khash::bucket(a, n)),
        address: hex(a),
        pid: s.pid,
        pids: if pids.len() > 1 {
            pids.iter().copied().collect()
        } else {
            Vec::new()
        },
        label: names.label(pid, a),
        kind,
        idle: class.is_idle(),
        class,
        site,
        waits: s.waits,
        waits_blocked: s.waits_blocked,
        wait_ns_total: s.wait_ns_total,
        woken: s.woken,
        timeouts: s.timeouts,
        mismatches: s.mismatches,
        wakes: s.wakes,
        wakes_woke: s.wakes_woke,
        p50_wait_ns: s.wait_ns.percentile(0.5),
        p99_wait_ns: s.wait_ns.percentile(0.99),
        top_stack_caller: top.as_ref().and_then(|(_, at)| *at).map(|i| i + 1),
        waited_in: top
            .as_ref()
            .and_then(|(names, at)| names.get((*at)?).cloned()),
        top_stack: top.map(|(names, _)| names),
        top_stack_wait_ns: s.top_stack().map(|(_, ns)| ns),
    }
}

/// The requeue edges, most moved first.
fn edge_rows(m: &Model) -> Vec<EdgeRow> {
    let mut rows: Vec<EdgeRow> = m
        .edges
        .iter()
        .map(|(&(f, t), e)| EdgeRow {
            from: hex(f),
            to: hex(t),
            from_bucket: e.from_bucket,
            to_bucket: e.to_bucket,
            requeues: e.requeues,
            moved: e.moved,
            woken: e.woken,
        })
        .collect();
    rows.sort_by(|a, b| b.moved.cmp(&a.moved).then(a.from.cmp(&b.from)));
    rows
}

fn build<'a>(an: &'a Analysis<'a>, src: &'a SourceInfo, what_if_slots: Option<u32>) -> Report<'a> {
    let m = an.model;
    let stacks = an.names.stacks;
    let wait_split = an.wait_split();
    let mut addresses: Vec<AddressRow> = (an.words().iter())
        .map(|(&k, s)| address_row(an, k, s, what_if_slots))
        .collect();
    addresses.sort_by(|a, b| {
        b.wait_ns_total
            .cmp(&a.wait_ns_total)
            .then(a.address.cmp(&b.address))
    });
    let buckets = m
        .buckets
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            b.counters.waits
                + b.counters.wakes
                + b.counters.requeues
                + b.counters.requeued_in
                + b.counters.lock_contended
                > 0
        })
        .map(|(bucket, stats)| BucketRow { bucket, stats })
        .collect();
    let kernel_buckets = kernel_rows(
        an,
        m.kernel_buckets
            .iter()
            .map(|(&k, stats)| (k, Cow::Borrowed(stats))),
    );
    let kernel_buckets_what_if = what_if_slots.map(|slots| WhatIf {
        slots,
        label: what_if_label(slots),
        buckets: kernel_rows(
            an,
            m.kernel_buckets_with(slots)
                .into_iter()
                .map(|(k, stats)| (k, Cow::Owned(stats))),
        ),
    });
    Report {
        kernel_buckets_label: KERNEL_BUCKETS_LABEL,
        kernel_buckets,
        kernel_buckets_what_if,
        format: "futex-trace report v1",
        source: src,
        bucket_origin: m.origin,
        bucket_label: m.origin.label(),
        totals: &m.totals,
        addresses,
        buckets,
        requeue_edges: edge_rows(m),
        sites: &an.sites.sites,
        wait_contention: (&wait_split.0).into(),
        wait_idle: (&wait_split.1).into(),
        wait_unclassified: (&wait_split.2).into(),
        stacks_truncated_share: stacks
            .map(|t| t.truncated_share(m.stacks.iter().map(|(k, s)| (k, s.wait_ns)))),
        wake_to_return: (&m.wake_to_return).into(),
        sched_delay: (&m.sched_delay).into(),
        series: m
            .series
            .iter()
            .map(|(&second, stats)| SeriesRow { second, stats })
            .collect(),
    }
}

/// The report as pretty JSON.
pub fn json(an: &Analysis<'_>, src: &SourceInfo, what_if_slots: Option<u32>) -> String {
    serde_json::to_string_pretty(&build(an, src, what_if_slots))
        .expect("a report always serialises")
}
