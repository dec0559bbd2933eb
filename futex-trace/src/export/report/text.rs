//! The report as text, for people: the same rows as the JSON report, a section at a time.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{build, KernelBucketRow, Latency, Report, SourceInfo};
use crate::model::Model;
use crate::sites::{Analysis, Class, Site};
use crate::stacks::Names;

fn ns(v: u64) -> String {
    match v {
        0..=9_999 => format!("{v} ns"),
        10_000..=9_999_999 => format!("{:.1} µs", v as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} ms", v as f64 / 1e6),
        _ => format!("{:.2} s", v as f64 / 1e9),
    }
}

/// A latency for people, at the precision a log2 histogram has (about one significant digit): `~30 µs`.
fn approx(v: u64) -> String {
    if v == 0 {
        return "0".into();
    }
    let (unit, div) = match v {
        0..=999 => ("ns", 1.0),
        1_000..=999_999 => ("µs", 1e3),
        1_000_000..=999_999_999 => ("ms", 1e6),
        _ => ("s", 1e9),
    };
    let x = v as f64 / div;
    let mag = 10f64.powi(x.log10().floor() as i32);
    format!("~{} {unit}", (x / mag).round() * mag)
}

/// The report as text, `top` rows per table.
pub fn text(an: &Analysis<'_>, src: &SourceInfo, top: usize, what_if_slots: Option<u32>) -> String {
    let (m, names) = (an.model, an.names);
    let r = build(an, src, what_if_slots);
    let mut o = String::new();
    header(&mut o, &r, src);
    processes(&mut o, an);
    if an.sites.sites.is_empty() {
        words(&mut o, &r, top);
    } else {
        sites(&mut o, an, top);
    }
    if !r.kernel_buckets.is_empty() {
        kernel_buckets(&mut o, m, &r, names, top);
    }
    buckets(&mut o, m, &r, top);
    requeue_edges(&mut o, &r, names, top);
    latencies(&mut o, &r);
    o
}

/// The processes of a trace of several (a server's workers, a command's children), by name.
fn processes(o: &mut String, an: &Analysis<'_>) {
    let Some(t) = an.names.stacks else { return };
    let pids: BTreeSet<u32> = an.model.addresses.keys().map(|k| k.0).collect();
    if pids.len() < 2 {
        return;
    }
    let mut by_name: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for &p in &pids {
        by_name
            .entry(crate::sites::process_name(t, an.model, p))
            .or_default()
            .push(p);
    }
    let list: Vec<String> = by_name
        .iter()
        .map(|(n, p)| match p.len() {
            1 => format!("{n} ({})", p[0]),
            k => format!(
                "{n} ×{k} ({}{})",
                some_pids(p),
                if k > 4 { ", …" } else { "" }
            ),
        })
        .collect();
    let _ = writeln!(o, "processes: {}", list.join(" · "));
}

fn some_pids(p: &[u32]) -> String {
    let v: Vec<String> = p.iter().take(4).map(u32::to_string).collect();
    v.join(", ")
}

/// The wait sites: contention first, then idle, then what nothing classified; each with why, where its
/// waiters were released from, and its words.
fn sites(o: &mut String, an: &Analysis<'_>, top: usize) {
    let total: u64 = an.sites.sites.iter().map(|s| s.wait_ns).sum::<u64>().max(1);
    type Keep = fn(Class) -> bool;
    let sections: [(&str, Keep); 3] = [
        (
            "Where threads wait: contention (a lock, a hand-off), the most time waited first",
            Class::is_contention,
        ),
        ("Idle: waiting for work or for time to pass", Class::is_idle),
        (
            "Unclassified: nothing seen decides what these waits are",
            |c| c == Class::Unclassified,
        ),
    ];
    for (title, keep) in sections {
        let rows: Vec<&Site> = an.sites.sites.iter().filter(|s| keep(s.class)).collect();
        if rows.is_empty() && title.starts_with("Unclassified") {
            continue;
        }
        let _ = writeln!(o, "\n{title}");
        if rows.is_empty() {
            let _ = writeln!(o, "  none");
            continue;
        }
        let _ = writeln!(
            o,
            "  {:>10} {:>6} {:>8} {:>7}  {:<16} site",
            "time", "share", "waits", "threads", "class"
        );
        for s in rows.into_iter().take(top) {
            site_rows(o, an, s, total);
        }
    }
}

/// One site: its line, then why, where from, and on which words.
fn site_rows(o: &mut String, an: &Analysis<'_>, s: &Site, total: u64) {
    let _ = writeln!(
        o,
        "  {:>10} {:>5.1}% {:>8.0} {:>7}  {:<16} {}",
        ns(s.wait_ns),
        s.wait_ns as f64 * 100.0 / total as f64,
        s.waits,
        s.threads,
        s.class.name(),
        s.label()
    );
    let _ = writeln!(o, "{:>14}why: {}", "", s.evidence);
    if let Some((from, ns_from)) = s.released_from.first() {
        let more = match s.released_from.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        let _ = writeln!(
            o,
            "{:>14}released from: {from} ({}){more}",
            "",
            ns(*ns_from)
        );
    }
    if let Some(threads) = s.thread_groups(an.names) {
        let _ = writeln!(o, "{:>14}threads: {threads}", "");
    }
    if !s.words.is_empty() {
        let _ = writeln!(o, "{:>14}words: {}", "", site_words(an, s));
    }
    if s.truncated_share > 0.1 {
        let _ = writeln!(
            o,
            "{:>14}{:.0}% of its stacks were cut short: the site may be deeper than shown",
            "",
            s.truncated_share * 100.0
        );
    }
}

/// A site's words in a few words: per-thread words counted, shared ones named.
fn site_words(an: &Analysis<'_>, s: &Site) -> String {
    let name = |w: &crate::sites::SiteWord| {
        let n = an.names.word(w.pid, w.addr);
        if w.with_next {
            format!("{n} (a condvar: 2 words)")
        } else {
            n
        }
    };
    let per_thread = s.words.iter().filter(|w| w.threads == 1).count();
    if s.words.len() > 2 && per_thread * 2 > s.words.len() {
        let list: Vec<String> = s.words.iter().take(3).map(name).collect();
        return format!(
            "{} words, one per waiting thread ({}{})",
            s.words.len(),
            list.join(", "),
            if s.words.len() > 3 { ", …" } else { "" }
        );
    }
    let list: Vec<String> = (s.words.iter().take(3))
        .map(|w| match w.threads {
            1 => format!("{} (1 thread)", name(w)),
            n => format!("{} ({n} threads)", name(w)),
        })
        .collect();
    some(&list, 3)
        + &if s.words.len() > 3 {
            format!(" (of {} words)", s.words.len())
        } else {
            String::new()
        }
}

/// The title, the totals, and what the reader must know (warnings, losses, stacks cut short).
fn header(o: &mut String, r: &Report<'_>, src: &SourceInfo) {
    let t = r.totals;
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
}

/// A trace without stacks: its words, contention first, then idle ones, each with where the program
/// waited when known.
fn words(o: &mut String, r: &Report<'_>, top: usize) {
    for (title, idle) in [
        (
            "Top locks (contention: time waited; this trace has no stacks: by word)",
            false,
        ),
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
        let rows = (r.addresses.iter()).filter(|a| a.idle == idle && a.waits_blocked > 0);
        for a in rows.take(top) {
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
}

/// The hottest buckets of the model's own bucket numbering (futex-core's queues or its hash).
fn buckets(o: &mut String, m: &Model, r: &Report<'_>, top: usize) {
    if r.buckets.is_empty() {
        return;
    }
    match m.origin {
        crate::model::BucketOrigin::FutexCore => {
            let _ = writeln!(o, "\nHottest buckets — futex-core's sleep queues");
        }
        crate::model::BucketOrigin::FutexCoreHash => {
            let _ = writeln!(
                o,
                "\nWhat-if — these words in futex-core's table of {} sleep queues (its hash, not the \
                 kernel's table)",
                m.buckets.len()
            );
        }
    }
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
            s.counters.waits,
            s.waits_blocked,
            s.counters.wakes,
            s.counters.collisions,
            s.counters.lock_contended,
            s.max_depth
        );
    }
}

/// The requeue edges, the words named by their labels.
fn requeue_edges(o: &mut String, r: &Report<'_>, names: Names<'_>, top: usize) {
    let _ = writeln!(o, "\nRequeue edges (from → to)");
    if r.requeue_edges.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for e in r.requeue_edges.iter().take(top) {
        let name = |a: &str| {
            u64::from_str_radix(a.trim_start_matches("0x"), 16)
                .ok()
                .and_then(|v| names.labels.get(&v))
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
}

/// The four latencies.
fn latencies(o: &mut String, r: &Report<'_>) {
    let _ = writeln!(
        o,
        "\nLatency (percentiles to a factor of two, as log2 histograms keep them; the maximum exact)"
    );
    let rows: [(&str, &Latency); 5] = [
        ("time waited, contention", &r.wait_contention),
        ("time waited, idle", &r.wait_idle),
        ("time waited, unclassified", &r.wait_unclassified),
        ("wake-to-return", &r.wake_to_return),
        ("scheduler delay", &r.sched_delay),
    ];
    for (name, l) in rows {
        if l.count == 0 && name.ends_with("unclassified") {
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<26} n={:<9} p50 {:>8}  p90 {:>8}  p99 {:>8}  max {:>9}",
            name,
            l.count,
            approx(l.p50_ns),
            approx(l.p90_ns),
            approx(l.p99_ns),
            ns(l.max_ns)
        );
    }
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
fn bucket_words(m: &Model, pid: u32, words: &BTreeSet<u64>, names: Names<'_>) -> Vec<String> {
    m.hottest_first(pid, words)
        .into_iter()
        .map(|a| names.word(pid, a))
        .collect()
}

/// Whether word `a` of `pid` slept at least once.
fn slept(m: &Model, pid: u32, a: u64) -> bool {
    m.addresses
        .get(&(pid, a))
        .is_some_and(|s| s.waits_blocked > 0)
}

/// How many of a kernel bucket's words slept.
fn hot_words(m: &Model, b: &KernelBucketRow<'_>) -> usize {
    (b.stats.addresses.iter())
        .filter(|&&a| slept(m, b.pid, a))
        .count()
}

/// The kernel's buckets section of the text report: the hottest buckets, the hot words that share one,
/// and, with `--slots`, what another slot count would change.
fn kernel_buckets(o: &mut String, m: &Model, r: &Report<'_>, names: Names<'_>, top: usize) {
    let tables: Vec<String> = m
        .kernel_slots
        .iter()
        .map(|(pid, n)| format!("pid {pid}: {n} slots"))
        .collect();
    let _ = writeln!(
        o,
        "\nKernel futex buckets — each process's private futex hash, as the kernel has it ({}); the most \
         contended first",
        tables.join(", ")
    );
    let _ = writeln!(
        o,
        "  (shared futexes and processes without a private hash use the global table: no bucket shown)"
    );
    let _ = writeln!(
        o,
        "  {:>7} {:>6} {:>6} {:>8} {:>8} {:>11} {:>11} {:>8} {:>7} {:>7} {:>10}  words",
        "pid",
        "slots",
        "bucket",
        "waits",
        "slept",
        "contention",
        "total",
        "wakes",
        "max now",
        "spins",
        "spun"
    );
    for b in r.kernel_buckets.iter().take(top) {
        let s = &b.stats;
        let _ = writeln!(
            o,
            "  {:>7} {:>6} {:>6} {:>8} {:>8} {:>11} {:>11} {:>8} {:>7} {:>7} {:>10}  {}",
            b.pid,
            b.slots,
            b.bucket,
            s.waits,
            s.waits_blocked,
            ns(b.contention_ns),
            ns(s.wait_ns),
            s.wakes,
            s.max_waiting,
            s.spins.count(),
            ns(s.spins.spin_ns),
            some(&bucket_words(m, b.pid, &s.addresses, names), 3)
        );
    }
    let spun: u64 = (r.kernel_buckets.iter())
        .map(|b| b.stats.spins.count())
        .sum();
    if spun > 0 {
        let _ = writeln!(
            o,
            "  spins: contended acquisitions of a bucket's lock by the traced calls (waits, wakes and \
             requeues take it), and the time spun"
        );
    }
    // Words that slept and share a bucket of the table in force now.
    let shared: Vec<&KernelBucketRow> = r
        .kernel_buckets
        .iter()
        .filter(|b| m.kernel_slots.get(&b.pid) == Some(&b.slots))
        .filter(|b| hot_words(m, b) > 1)
        .collect();
    if shared.is_empty() {
        let _ = writeln!(o, "  no two words that slept share a kernel bucket");
    }
    for b in shared.iter().take(top) {
        let _ = writeln!(
            o,
            "  shared: {} — kernel bucket {} of {} (pid {}): one lock, one list of waiters{}",
            bucket_words(m, b.pid, &b.stats.addresses, names).join(" and "),
            b.bucket,
            b.slots,
            b.pid,
            if b.stats.walked_others > 0 {
                format!(
                    "; its wakes walked past up to {} sleepers of each other's words",
                    b.stats.walked_others
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(w) = &r.kernel_buckets_what_if {
        let _ = writeln!(o, "\nWhat-if — {}", w.label);
        let split = what_if_splits(o, m, &shared[..shared.len().min(top)], w.slots, names);
        let joined = what_if_joins(o, m, &w.buckets, w.slots, names);
        let spun = what_if_spins(o, m, r, &w.buckets, w.slots);
        if !split && !joined && !spun {
            let _ = writeln!(
                o,
                "  no hot words share a bucket now or would with {} slots",
                w.slots
            );
        }
    }
}

/// What-if: the spins on the buckets' locks now (the tables in force) and about how many `slots` slots
/// would leave (`what_if`: the buckets regrouped). True when there were any to say.
fn what_if_spins(
    o: &mut String,
    m: &Model,
    r: &Report<'_>,
    what_if: &[KernelBucketRow<'_>],
    slots: u32,
) -> bool {
    let now: u64 = (r.kernel_buckets.iter())
        .filter(|b| m.kernel_slots.get(&b.pid) == Some(&b.slots))
        .map(|b| b.stats.spins.count())
        .sum();
    if now == 0 {
        return false;
    }
    let then: u64 = what_if.iter().map(|b| b.stats.spins.count()).sum();
    let _ = writeln!(
        o,
        "  spins on the buckets' locks: {now} now, about {then} with {slots} slots (the calls of \
         words that would be apart stop contending; a word one thread calls never contends with \
         itself)"
    );
    true
}

/// What-if, for each bucket hot words share now: whether `slots` slots would split them. True when
/// there was one to say.
fn what_if_splits(
    o: &mut String,
    m: &Model,
    shared: &[&KernelBucketRow<'_>],
    slots: u32,
    names: Names<'_>,
) -> bool {
    for b in shared {
        // The hot words of a shared bucket now, and where each would go with the other slot count.
        let words: Vec<u64> = (b.stats.addresses.iter().copied())
            .filter(|&a| slept(m, b.pid, a))
            .collect();
        let buckets: BTreeSet<u32> = words
            .iter()
            .map(|&a| crate::khash::bucket(a, slots))
            .collect();
        let words: Vec<String> = words.iter().map(|&a| names.word(b.pid, a)).collect();
        let _ = writeln!(
            o,
            "  {} (bucket {} of {} now): {} with {} slots",
            words.join(" and "),
            b.bucket,
            b.slots,
            if buckets.len() > 1 {
                "would be split"
            } else {
                "would still share a bucket"
            },
            slots
        );
    }
    !shared.is_empty()
}

/// What-if: the hot words in different buckets now that `slots` slots would put in one. True when
/// there was one to say.
fn what_if_joins(
    o: &mut String,
    m: &Model,
    what_if: &[KernelBucketRow<'_>],
    slots: u32,
    names: Names<'_>,
) -> bool {
    let mut any = false;
    for b in what_if.iter().filter(|b| hot_words(m, b) > 1) {
        let now: BTreeSet<Option<(u32, u32)>> = (b.stats.addresses.iter())
            .map(|&a| {
                m.addresses
                    .get(&(b.pid, a))
                    .and_then(|s| s.kernel?.private())
            })
            .collect();
        if now.len() > 1 {
            any = true;
            let words = bucket_words(m, b.pid, &b.stats.addresses, names);
            let _ = writeln!(
                o,
                "  {} words in {} buckets now would share bucket {} of {}: {}",
                words.len(),
                now.len(),
                b.bucket,
                slots,
                some(&words, 4)
            );
        }
    }
    any
}
