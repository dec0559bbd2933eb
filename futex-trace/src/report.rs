//! Reports of a model: JSON (scripts depend on its `totals` and `addresses`) and text (people read it).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::event::WaitKind;
use crate::khash::KernelHash;
use crate::model::{
    BucketOrigin, BucketStats, KernelBucketKey, KernelBucketStats, Log2Hist, Model, Totals,
};
use crate::stacks::StackTable;

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
    pub fn of(f: &crate::session::Finished) -> SourceInfo {
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
    label: Option<&'a str>,
    kind: WaitKind,
    /// Condvar waits are idle (waiting for work), not lock contention.
    idle: bool,
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
    /// More than one word in the bucket: they share its lock and its list of waiters.
    collision: bool,
}

/// Rows of kernel buckets, the hottest (time waited, then waits) first.
fn kernel_rows<'a>(
    buckets: impl Iterator<Item = (KernelBucketKey, Cow<'a, KernelBucketStats>)>,
) -> Vec<KernelBucketRow<'a>> {
    let mut rows: Vec<KernelBucketRow> = buckets
        .map(|((pid, slots, bucket), stats)| KernelBucketRow {
            pid,
            slots,
            bucket,
            collision: stats.addresses.len() > 1,
            stats,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.stats.wait_ns, b.stats.waits)
            .cmp(&(a.stats.wait_ns, a.stats.waits))
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

fn hex(a: u64) -> String {
    format!("{a:#x}")
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

fn build<'a>(
    m: &'a Model,
    src: &'a SourceInfo,
    labels: &'a HashMap<u64, String>,
    stacks: Option<&'a StackTable>,
    what_if_slots: Option<u32>,
) -> Report<'a> {
    let wait_split = m.wait_split(stacks);
    let mut addresses: Vec<AddressRow> = m
        .addresses
        .iter()
        .map(|(&(_, a), s)| {
            let kind = s.kind_in(stacks);
            // The hottest stack's frames, and where the program itself waited in them.
            let top = stacks
                .zip(s.top_stack())
                .map(|(t, (id, _))| (t.frame_names((s.pid, id)), t.program_frame((s.pid, id))));
            AddressRow {
                kernel_table: s.kernel.map(|h| match h {
                    KernelHash::Private { .. } => "private",
                    KernelHash::Global => "global",
                }),
                kernel_bucket: s.kernel.and_then(KernelHash::private).map(|(_, b)| b),
                kernel_slots: s.kernel.and_then(KernelHash::private).map(|(n, _)| n),
                what_if_kernel_bucket: what_if_slots
                    .filter(|_| s.kernel.and_then(KernelHash::private).is_some())
                    .map(|n| crate::khash::bucket(a, n)),
                address: hex(a),
                pid: s.pid,
                label: labels.get(&a).map(String::as_str).or_else(|| {
                    stacks.and_then(|t| t.addr_symbols.get(&(s.pid, a)).map(String::as_str))
                }),
                kind,
                idle: kind.is_idle(),
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
        })
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
        .filter(|(_, b)| b.waits + b.wakes + b.requeues + b.requeued_in + b.lock_contended > 0)
        .map(|(bucket, stats)| BucketRow { bucket, stats })
        .collect();
    let mut requeue_edges: Vec<EdgeRow> = m
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
    requeue_edges.sort_by(|a, b| b.moved.cmp(&a.moved).then(a.from.cmp(&b.from)));
    let kernel_buckets = kernel_rows(
        m.kernel_buckets
            .iter()
            .map(|(&k, stats)| (k, Cow::Borrowed(stats))),
    );
    let kernel_buckets_what_if = what_if_slots.map(|slots| WhatIf {
        slots,
        label: what_if_label(slots),
        buckets: kernel_rows(
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
        requeue_edges,
        wait_contention: (&wait_split.0).into(),
        wait_idle: (&wait_split.1).into(),
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
pub fn json(
    m: &Model,
    src: &SourceInfo,
    labels: &HashMap<u64, String>,
    stacks: Option<&StackTable>,
    what_if_slots: Option<u32>,
) -> String {
    serde_json::to_string_pretty(&build(m, src, labels, stacks, what_if_slots))
        .expect("a report always serialises")
}

fn ns(v: u64) -> String {
    match v {
        0..=9_999 => format!("{v} ns"),
        10_000..=9_999_999 => format!("{:.1} µs", v as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} ms", v as f64 / 1e6),
        _ => format!("{:.2} s", v as f64 / 1e9),
    }
}

/// The report as text, `top` rows per table.
pub fn text(
    m: &Model,
    src: &SourceInfo,
    labels: &HashMap<u64, String>,
    stacks: Option<&StackTable>,
    top: usize,
    what_if_slots: Option<u32>,
) -> String {
    let r = build(m, src, labels, stacks, what_if_slots);
    let t = r.totals;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "futex-trace report — {} — pid {} — {:.1} s",
        src.source, src.pid, src.duration_s
    );
    let _ = writeln!(
        o,
        "waits {} (slept {}, value changed {}, timed out {}) · wakes {} woke {} · requeues {} moved {} · \
         queue-lock contention {} · events {}",
        t.waits, t.waits_blocked, t.mismatches, t.timeouts, t.wakes, t.woken, t.requeues, t.moved,
        t.lock_contended, t.events
    );
    if t.interrupted + t.failed + t.other_ops > 0 {
        let _ = writeln!(
            o,
            "waits ended by a signal {} · failed calls {} · other ops (trylock, fd) {}",
            t.interrupted, t.failed, t.other_ops
        );
    }
    if t.acquired > 0 {
        let _ = writeln!(
            o,
            "PI locks taken at once, without sleeping: {}",
            t.acquired
        );
    }
    for w in &src.warnings {
        let _ = writeln!(o, "WARNING: {w}");
    }
    if t.lost_events > 0 {
        let _ = writeln!(
            o,
            "LOST EVENTS: {} (the counts above are lower bounds)",
            t.lost_events
        );
    } else {
        let _ = writeln!(o, "lost events: 0");
    }
    if let Some(cut) = r.stacks_truncated_share.filter(|&c| c > 0.0) {
        let _ = writeln!(
            o,
            "stacks cut short (truncated): {:.1}% of the sampled waiting time",
            cut * 100.0
        );
    }
    for (title, idle) in [
        ("Top locks (contention: time waited)", false),
        (
            "Idle waits (condvar, join, semaphore: waiting for work or a thread, not contention)",
            true,
        ),
    ] {
        let _ = writeln!(o, "\n{title}");
        let _ = writeln!(
            o,
            "  {:<18} {:<8} {:>8} {:>8} {:>11} {:>10} {:>10}  label",
            "address", "kind", "waits", "slept", "total", "p50", "p99"
        );
        for a in r.addresses.iter().filter(|a| a.idle == idle).take(top) {
            let _ = writeln!(
                o,
                "  {:<18} {:<8} {:>8} {:>8} {:>11} {:>10} {:>10}  {}",
                a.address,
                a.kind.name(),
                a.waits,
                a.waits_blocked,
                ns(a.wait_ns_total),
                ns(a.p50_wait_ns),
                ns(a.p99_wait_ns),
                a.label.unwrap_or("")
            );
            if let Some(stack) = &a.top_stack {
                // Where the program waited: from its first frame outside the threading library
                // (glibc, Rust std's and parking_lot's locks), three callers up, innermost last.
                let at = a.top_stack_caller.unwrap_or(stack.len());
                let tail = &stack[at.saturating_sub(4)..at];
                let _ = writeln!(o, "      stack: {}", tail.join(" → "));
            }
        }
    }
    let _ = writeln!(o, "\nHottest buckets — {}", m.origin.label());
    let _ = writeln!(
        o,
        "  {:>6} {:>8} {:>8} {:>8} {:>10} {:>11} {:>9}",
        "bucket", "waits", "slept", "wakes", "collisions", "lock waits", "max depth"
    );
    let mut buckets: Vec<_> = r.buckets.iter().collect();
    buckets.sort_by_key(|b| std::cmp::Reverse(b.stats.waits_blocked));
    for b in buckets.iter().take(top) {
        let s = b.stats;
        let _ = writeln!(
            o,
            "  {:>6} {:>8} {:>8} {:>8} {:>10} {:>11} {:>9}",
            b.bucket,
            s.waits,
            s.waits_blocked,
            s.wakes,
            s.collisions,
            s.lock_contended,
            s.max_depth
        );
    }
    if !r.kernel_buckets.is_empty() {
        kernel_buckets_text(&mut o, m, &r, labels, stacks, top);
    }
    let _ = writeln!(o, "\nRequeue edges (from → to)");
    if r.requeue_edges.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for e in r.requeue_edges.iter().take(top) {
        let name = |a: &str| {
            u64::from_str_radix(a.trim_start_matches("0x"), 16)
                .ok()
                .and_then(|v| labels.get(&v))
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        };
        let _ = writeln!(
            o,
            "  {}{} [bucket {}] → {}{} [bucket {}]: {} requeues, {} moved, {} woken",
            e.from,
            name(&e.from),
            e.from_bucket,
            e.to,
            name(&e.to),
            e.to_bucket,
            e.requeues,
            e.moved,
            e.woken
        );
    }
    let _ = writeln!(o, "\nLatency (log2 resolution)");
    for (name, l) in [
        ("time waited, contention", &r.wait_contention),
        ("time waited, idle", &r.wait_idle),
        ("wake-to-return", &r.wake_to_return),
        ("scheduler delay", &r.sched_delay),
    ] {
        let _ = writeln!(
            o,
            "  {:<24} n={:<9} p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}",
            name,
            l.count,
            ns(l.p50_ns),
            ns(l.p90_ns),
            ns(l.p99_ns),
            ns(l.max_ns)
        );
    }
    o
}

/// The name of a word: its label (the demo's locks) or its static symbol, else its address.
pub fn word_name(
    pid: u32,
    addr: u64,
    labels: &HashMap<u64, String>,
    stacks: Option<&StackTable>,
) -> String {
    labels
        .get(&addr)
        .or_else(|| stacks.and_then(|t| t.addr_symbols.get(&(pid, addr))))
        .cloned()
        .unwrap_or_else(|| hex(addr))
}

/// The first `n` names, and how many more.
fn some(names: &[String], n: usize) -> String {
    let mut s = names[..names.len().min(n)].join(", ");
    if names.len() > n {
        let _ = write!(s, " and {} more", names.len() - n);
    }
    s
}

/// Words of a bucket, the hottest (time waited) first, by name.
fn bucket_words(
    m: &Model,
    pid: u32,
    words: &std::collections::BTreeSet<u64>,
    labels: &HashMap<u64, String>,
    stacks: Option<&StackTable>,
) -> Vec<String> {
    m.hottest_first(pid, words)
        .into_iter()
        .map(|a| word_name(pid, a, labels, stacks))
        .collect()
}

/// The kernel's buckets section of the text report: the hottest buckets, the hot words that share one,
/// and, with `--slots`, what another slot count would change.
fn kernel_buckets_text(
    o: &mut String,
    m: &Model,
    r: &Report<'_>,
    labels: &HashMap<u64, String>,
    stacks: Option<&StackTable>,
    top: usize,
) {
    let tables: Vec<String> = m
        .kernel_slots
        .iter()
        .map(|(pid, n)| format!("pid {pid}: {n} slots"))
        .collect();
    let _ = writeln!(
        o,
        "\nKernel futex buckets — each process's private futex hash, as the kernel has it ({})",
        tables.join(", ")
    );
    let _ = writeln!(
        o,
        "  (shared futexes and processes without a private hash use the global table: no bucket shown)"
    );
    let _ = writeln!(
        o,
        "  {:>7} {:>6} {:>6} {:>8} {:>8} {:>11} {:>8} {:>7}  words",
        "pid", "slots", "bucket", "waits", "slept", "total", "wakes", "max now"
    );
    for b in r.kernel_buckets.iter().take(top) {
        let s = &b.stats;
        let _ = writeln!(
            o,
            "  {:>7} {:>6} {:>6} {:>8} {:>8} {:>11} {:>8} {:>7}  {}",
            b.pid,
            b.slots,
            b.bucket,
            s.waits,
            s.waits_blocked,
            ns(s.wait_ns),
            s.wakes,
            s.max_waiting,
            some(&bucket_words(m, b.pid, &s.addresses, labels, stacks), 3)
        );
    }
    // Words that slept and share a bucket of the table in force now.
    let hot = |pid: u32, a: u64| {
        m.addresses
            .get(&(pid, a))
            .is_some_and(|s| s.waits_blocked > 0)
    };
    let shared: Vec<&KernelBucketRow> = r
        .kernel_buckets
        .iter()
        .filter(|b| m.kernel_slots.get(&b.pid) == Some(&b.slots))
        .filter(|b| b.stats.addresses.iter().filter(|&&a| hot(b.pid, a)).count() > 1)
        .collect();
    if shared.is_empty() {
        let _ = writeln!(o, "  no two words that slept share a kernel bucket");
    }
    for b in shared.iter().take(top) {
        let _ = writeln!(
            o,
            "  shared: {} — kernel bucket {} of {} (pid {}): one lock, one list of waiters",
            bucket_words(m, b.pid, &b.stats.addresses, labels, stacks).join(" and "),
            b.bucket,
            b.slots,
            b.pid
        );
    }
    let Some(w) = &r.kernel_buckets_what_if else {
        return;
    };
    let _ = writeln!(o, "\nWhat-if — {}", w.label);
    let mut any = false;
    for b in shared.iter().take(top) {
        // The hot words of a shared bucket now, and where each would go with the other slot count.
        let words: Vec<u64> = b
            .stats
            .addresses
            .iter()
            .copied()
            .filter(|&a| hot(b.pid, a))
            .collect();
        let mut by_bucket: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        for &a in &words {
            by_bucket
                .entry(crate::khash::bucket(a, w.slots))
                .or_default()
                .push(a);
        }
        let name = |a: &u64| word_name(b.pid, *a, labels, stacks);
        let split = by_bucket.len() > 1;
        any = true;
        let _ = writeln!(
            o,
            "  {} (bucket {} of {} now): {} with {} slots",
            words.iter().map(name).collect::<Vec<_>>().join(" and "),
            b.bucket,
            b.slots,
            if split {
                "would be split"
            } else {
                "would still share a bucket"
            },
            w.slots
        );
    }
    for b in w
        .buckets
        .iter()
        .filter(|b| b.stats.addresses.iter().filter(|&&a| hot(b.pid, a)).count() > 1)
    {
        let now: std::collections::BTreeSet<Option<(u32, u32)>> = b
            .stats
            .addresses
            .iter()
            .map(|&a| {
                m.addresses
                    .get(&(b.pid, a))
                    .and_then(|s| s.kernel?.private())
            })
            .collect();
        if now.len() > 1 {
            any = true;
            let words = bucket_words(m, b.pid, &b.stats.addresses, labels, stacks);
            let _ = writeln!(
                o,
                "  {} words in {} buckets now would share bucket {} of {}: {}",
                words.len(),
                now.len(),
                b.bucket,
                w.slots,
                some(&words, 4)
            );
        }
    }
    if !any {
        let _ = writeln!(
            o,
            "  no hot words share a bucket now or would with {} slots",
            w.slots
        );
    }
}
