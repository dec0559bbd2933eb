//! `/metrics`: the model as Prometheus/OpenMetrics text, through the official `prometheus-client` crate.

use std::collections::HashMap;

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::khash::KernelHash;
use crate::model::{Log2Hist, Model};
use crate::sites::{Analysis, Rules};
use crate::stacks::{Names, StackTable};

/// What /metrics shows besides the model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra {
    /// Lost events the source counted (the model's total may lag it).
    pub lost_events: u64,
    /// Runs of the eBPF programs the kernel skipped.
    pub missed_runs: u64,
    /// Locks with series of their own.
    pub top_locks: usize,
    /// Profiles pushed to Pyroscope: (ok, given up on); `None` when not pushing.
    pub pushes: Option<(u64, u64)>,
}

/// The model as OpenMetrics text (`openmetrics`), or as Prometheus' classic text format.
pub fn metrics_text(
    model: Model,
    stacks: Option<StackTable>,
    labels: &HashMap<u64, String>,
    rules: &Rules,
    extra: Extra,
    openmetrics: bool,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        model,
        stacks,
        labels: labels.clone(),
        rules: rules.clone(),
        extra,
    }));
    let mut out = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    }
    .expect("encoding to a String cannot fail");
    out
}

/// A snapshot of the model, encoded on each scrape.
#[derive(Debug)]
struct Snapshot {
    model: Model,
    stacks: Option<StackTable>,
    labels: HashMap<u64, String>,
    rules: Rules,
    extra: Extra,
}

type Labels = Vec<(&'static str, String)>;

/// Processes with series of their own in /metrics (the rest are summed): a bound on the series.
const TOP_PROCESSES: usize = 20;

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in series {
        let mut f = m.encode_family(labels)?;
        f.encode_counter::<prometheus_client::encoding::NoLabelSet, f64, f64>(v, None)?;
    }
    Ok(())
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

/// A log2 histogram of nanoseconds as a Prometheus histogram in seconds: buckets at 2^i ns from 1 µs to
/// about 34 s, then +Inf.
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Log2Hist,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    // Slot i holds values in [2^i, 2^(i+1)) ns: below the bound 2^(i+1) ns.
    let below: u64 = h.buckets[..10].iter().sum();
    buckets.push(((1u64 << 10) as f64 / 1e9, below));
    for i in 10..35 {
        buckets.push(((1u64 << (i + 1)) as f64 / 1e9, h.buckets[i]));
    }
    let rest: u64 = h.buckets[35..].iter().sum();
    buckets.push((f64::INFINITY, rest));
    let mut m = e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum as f64 / 1e9,
        h.count,
        &buckets,
        None,
    )
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let names = Names::new(&self.labels, self.stacks.as_ref());
        let an = Analysis::new(&self.model, names, &self.rules);
        self.totals(&mut e)?;
        self.processes(&mut e, &an)?;
        self.locks(&mut e, &an)?;
        self.sites(&mut e, &an)?;
        self.buckets(&mut e)?;
        self.latencies(&mut e, &an)?;
        self.tracer(&mut e)
    }
}

impl Snapshot {
    /// The whole trace's counters.
    fn totals(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = &self.model.totals;
        for (name, help, v) in [
            (
                "futex_waits",
                "Futex waits returned (all outcomes).",
                t.waits,
            ),
            (
                "futex_waits_slept",
                "Futex waits that slept (woken, timed out or interrupted).",
                t.waits_blocked,
            ),
            (
                "futex_waits_value_changed",
                "Futex waits that returned at once: the value had changed (EAGAIN).",
                t.mismatches,
            ),
            (
                "futex_waits_timed_out",
                "Futex waits that timed out.",
                t.timeouts,
            ),
            ("futex_wakes", "Futex wake calls.", t.wakes),
            (
                "futex_woken",
                "Waiters woken by wake and requeue calls.",
                t.woken,
            ),
            ("futex_requeues", "Futex requeue calls.", t.requeues),
            (
                "futex_requeue_moved",
                "Waiters moved from one futex word to another by requeues.",
                t.moved,
            ),
            (
                "futex_trace_lost_events",
                "Events futex-trace could not deliver (its counts are then lower bounds).",
                t.lost_events.max(self.extra.lost_events),
            ),
            (
                "futex_trace_evicted_words",
                "Futex words dropped from futex-trace's table when it was full (--max-words; the least recently seen first).",
                t.evicted_words,
            ),
        ] {
            counter(e, name, help, None, &[(vec![], v as f64)])?;
        }
        Ok(())
    }

    /// Each traced process's waits (the most time waited first, [`TOP_PROCESSES`] of them; the rest
    /// summed under `pid="other"`), labelled with its pid, name, cgroup (v2) and container id, so a fleet
    /// can group by service or container.
    fn processes(
        &self,
        e: &mut DescriptorEncoder,
        an: &Analysis<'_>,
    ) -> Result<(), std::fmt::Error> {
        let mut by: HashMap<u32, (u64, u64, u64, u64)> = HashMap::new();
        for (&(pid, _), a) in &self.model.addresses {
            let p = by.entry(pid).or_default();
            p.0 += a.waits;
            p.1 += a.waits_blocked;
            p.2 += a.wait_ns_total;
            p.3 += a.wakes;
        }
        let mut procs: Vec<(u32, (u64, u64, u64, u64))> = by.into_iter().collect();
        procs.sort_by(|a, b| b.1 .2.cmp(&a.1 .2).then(a.0.cmp(&b.0)));
        let mut series: [Vec<(Labels, f64)>; 4] = Default::default();
        let mut other = (0u64, 0u64, 0u64, 0u64);
        for (i, (pid, v)) in procs.iter().enumerate() {
            if i >= TOP_PROCESSES {
                other = (other.0 + v.0, other.1 + v.1, other.2 + v.2, other.3 + v.3);
                continue;
            }
            // As the trace knows it (a recording's processes may be gone), else as it is now.
            let info = an.names.stacks.and_then(|t| t.processes.get(pid));
            let cgroup = (info.map(|p| p.cgroup.clone()))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| crate::stacks::cgroup_of(*pid));
            let container = crate::stacks::container_id(&cgroup)
                .unwrap_or_default()
                .to_string();
            let l: Labels = vec![
                ("pid", pid.to_string()),
                ("comm", an.names.process_name(*pid)),
                ("cgroup", cgroup),
                ("container", container),
            ];
            for (s, x) in series.iter_mut().zip([v.0, v.1, v.2, v.3]) {
                s.push((l.clone(), x as f64));
            }
        }
        if procs.len() > TOP_PROCESSES {
            let l: Labels = vec![
                ("pid", "other".into()),
                ("comm", String::new()),
                ("cgroup", String::new()),
                ("container", String::new()),
            ];
            for (s, x) in series.iter_mut().zip([other.0, other.1, other.2, other.3]) {
                s.push((l.clone(), x as f64));
            }
        }
        let [waits, slept, ns, wakes] = series;
        let secs: Vec<(Labels, f64)> = ns.into_iter().map(|(l, v)| (l, v / 1e9)).collect();
        counter(
            e,
            "futex_process_waits",
            "Futex waits returned, by process.",
            None,
            &waits,
        )?;
        counter(
            e,
            "futex_process_waits_slept",
            "Futex waits that slept, by process.",
            None,
            &slept,
        )?;
        counter(
            e,
            "futex_process_wait",
            "Time waited in futex waits that slept, by process.",
            Some(&Unit::Seconds),
            &secs,
        )?;
        counter(
            e,
            "futex_process_wakes",
            "Futex wake calls, by process.",
            None,
            &wakes,
        )
    }

    /// The locks that waited longest, by name; the rest summed, so the label set stays bounded.
    fn locks(&self, e: &mut DescriptorEncoder, an: &Analysis<'_>) -> Result<(), std::fmt::Error> {
        let m = &self.model;
        let mut locks: Vec<_> = m
            .addresses
            .iter()
            .filter(|(&w, a)| a.waits > 0 && !an.word_class(w).is_idle())
            .collect();
        locks.sort_by(|a, b| b.1.wait_ns_total.cmp(&a.1.wait_ns_total).then(a.0.cmp(b.0)));
        let mut slept = Vec::new();
        let mut waited = Vec::new();
        let (mut other_slept, mut other_ns) = (0u64, 0u64);
        for (i, (&(pid, addr), a)) in locks.iter().enumerate() {
            if i < self.extra.top_locks {
                let name = an.names.word(pid, addr);
                let l: Labels = vec![("lock", name), ("pid", pid.to_string())];
                slept.push((l.clone(), a.waits_blocked as f64));
                waited.push((l, a.wait_ns_total as f64 / 1e9));
            } else {
                other_slept += a.waits_blocked;
                other_ns += a.wait_ns_total;
            }
        }
        if locks.len() > self.extra.top_locks {
            let l: Labels = vec![("lock", "other".into()), ("pid", String::new())];
            slept.push((l.clone(), other_slept as f64));
            waited.push((l, other_ns as f64 / 1e9));
        }
        counter(
            e,
            "futex_lock_waits_slept",
            "Waits that slept, per lock (the top locks by time waited; lock=\"other\": the rest).",
            None,
            &slept,
        )?;
        counter(
            e,
            "futex_lock_wait",
            "Time waited by waits that slept, per lock (as futex_lock_waits_slept).",
            Some(&Unit::Seconds),
            &waited,
        )?;
        Ok(())
    }

    /// The wait sites that waited longest, by process, site and class; the rest summed, so that the
    /// label set stays bounded (`--top-locks` series).
    fn sites(&self, e: &mut DescriptorEncoder, an: &Analysis<'_>) -> Result<(), std::fmt::Error> {
        let mut waited = Vec::new();
        let mut other = 0u64;
        for (i, s) in an.sites.sites.iter().enumerate() {
            if i < self.extra.top_locks {
                let l: Labels = vec![
                    ("process", s.process.clone()),
                    ("site", s.name()),
                    ("class", s.class.name().into()),
                ];
                waited.push((l, s.wait_ns as f64 / 1e9));
            } else {
                other += s.wait_ns;
            }
        }
        if an.sites.sites.len() > self.extra.top_locks {
            let l: Labels = vec![
                ("process", String::new()),
                ("site", "other".into()),
                ("class", String::new()),
            ];
            waited.push((l, other as f64 / 1e9));
        }
        counter(
            e,
            "futex_site_wait",
            "Time waited at each wait site (the program's frame above the threading library and runtime), estimated from sampled stacks, with the site's class decided by behaviour (site=\"other\": the rest).",
            Some(&Unit::Seconds),
            &waited,
        )
    }

    /// Per bucket: the kernel's private futex hashes as the processes have them now, else
    /// futex-core's.
    fn buckets(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.model;
        let mut bucket_slept = Vec::new();
        let mut bucket_waiting = Vec::new();
        let (mut spins, mut spun) = (Vec::new(), Vec::new());
        for (&(pid, slots, bucket), b) in &m.kernel_buckets {
            if m.kernel_slots.get(&pid) != Some(&slots) {
                continue;
            }
            let l: Labels = vec![
                ("table", "kernel".into()),
                ("pid", pid.to_string()),
                ("slots", slots.to_string()),
                ("bucket", bucket.to_string()),
            ];
            bucket_slept.push((l.clone(), b.waits_blocked as f64));
            if b.spins.count() > 0 {
                for (call, n) in [
                    ("wait", b.spins.wait),
                    ("wake", b.spins.wake),
                    ("requeue", b.spins.requeue),
                ] {
                    let mut l = l.clone();
                    l.push(("call", call.into()));
                    spins.push((l, n as f64));
                }
                spun.push((l.clone(), b.spins.spin_ns as f64 / 1e9));
            }
            bucket_waiting.push((l, b.waiting));
        }
        counter(e, "futex_bucket_lock_spins", "Contended acquisitions of a kernel futex bucket's lock by the traced calls (lock:contention_begin), by the kind of call that spun.", None, &spins)?;
        counter(
            e,
            "futex_bucket_lock_spin",
            "Time spun for a kernel futex bucket's lock by the traced calls.",
            Some(&Unit::Seconds),
            &spun,
        )?;
        if m.kernel_buckets.is_empty() {
            for (i, b) in m
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.counters.waits > 0)
            {
                let l: Labels = vec![
                    ("table", "futex_core".into()),
                    ("pid", String::new()),
                    ("slots", m.buckets.len().to_string()),
                    ("bucket", i.to_string()),
                ];
                bucket_slept.push((l.clone(), b.waits_blocked as f64));
                bucket_waiting.push((l, b.depth));
            }
        }
        counter(e, "futex_bucket_waits_slept", "Waits that slept, per bucket: table=\"kernel\" is the process's own private futex hash (Linux 6.17+), \"futex_core\" futex-core's queues (or its hash of kernel addresses).", None, &bucket_slept)?;
        gauge(
            e,
            "futex_bucket_waiters",
            "Threads waiting now, per bucket (as futex_bucket_waits_slept).",
            &bucket_waiting,
        )?;
        let private: i64 = m
            .addresses
            .values()
            .filter(|a| matches!(a.kernel, Some(KernelHash::Private { .. })))
            .count() as i64;
        gauge(
            e,
            "futex_words_private_hash",
            "Futex words seen in a private kernel futex hash.",
            &[(vec![], private)],
        )?;
        Ok(())
    }

    /// The latency histograms, in seconds.
    fn latencies(
        &self,
        e: &mut DescriptorEncoder,
        an: &Analysis<'_>,
    ) -> Result<(), std::fmt::Error> {
        let m = &self.model;
        let (busy, idle, unclassified) = an.wait_split();
        histogram(
            e,
            "futex_wait",
            "Time waited by waits that slept on locks: contention (a lock, a hand-off), by the behaviour of their wait site.",
            &busy,
        )?;
        histogram(
            e,
            "futex_idle_wait",
            "Time waited by idle waits (waiting for work, sleeps), by the behaviour of their wait site.",
            &idle,
        )?;
        histogram(
            e,
            "futex_unclassified_wait",
            "Time waited by waits whose class nothing seen decides.",
            &unclassified,
        )?;
        histogram(
            e,
            "futex_wake_to_return",
            "From the wake that released a waiter to its return.",
            &m.wake_to_return,
        )?;
        histogram(
            e,
            "futex_sched_delay",
            "From a woken waiter's sched_wakeup to its running on a CPU (kernel sources).",
            &m.sched_delay,
        )?;
        Ok(())
    }

    /// futex-trace's own: its version, skipped program runs, pushes, and its CPU time.
    fn tracer(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(
            e,
            "futex_trace_build_info",
            "futex-trace's version (the value is 1).",
            &[(vec![("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
        )?;
        counter(
            e,
            "futex_trace_missed_runs",
            "Runs of futex-trace's eBPF programs the kernel skipped (another BPF program was running on \
             that CPU): each may have lost a waiter's waker or latency.",
            None,
            &[(vec![], self.extra.missed_runs as f64)],
        )?;
        if let Some((ok, failed)) = self.extra.pushes {
            let series = [
                (vec![("result", "ok".to_string())], ok as f64),
                (vec![("result", "failed".to_string())], failed as f64),
            ];
            counter(
                e,
                "futex_trace_pushes",
                "Profiles pushed to Pyroscope, by result (failed: given up on after retries).",
                None,
                &series,
            )?;
        }
        counter(
            e,
            "futex_trace_cpu",
            "CPU time of the futex-trace process (with --demo, the demo's threads too).",
            Some(&Unit::Seconds),
            &[(
                vec![],
                crate::clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as f64 / 1e9,
            )],
        )?;
        Ok(())
    }
}
