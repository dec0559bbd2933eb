//! Benchmark of kernel futex tracing (root only; prints why it skips otherwise). In one run:
//!
//! 1. decode + model: synthetic sample records through `kernel::decode` and `Model::apply` (the
//!    userspace ceiling, events/s on one core);
//! 2. futex-core's Mutex with nothing listening, its observer, and its USDT probes over eBPF;
//! 3. the tracer's cost: six workloads (an EAGAIN wait storm, a bare FUTEX_WAKE storm, a FUTEX_WAKE
//!    producer/consumer that does work per item, a futex ping-pong, a contended std Mutex, a std Condvar
//!    queue), each untraced, traced by futex-trace and traced by a bpftrace one-liner that counts enter and
//!    exit per (pid, address), alternated, medians; then one run traced by both at once, whose counts
//!    must agree with each other and with the workload's own.
//!
//! `cargo bench -p futex-trace --bench ebpf` (BENCH_SECS=3 per run, BENCH_ROUNDS=5 by default).
//! Figures: BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, reason = "the bench uses the workload and bpftrace helpers")]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::bpftrace::Bpftrace;

use futex_trace::ebpf::abi::{RawEvent, FT_SAMPLE};
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::session::{Session, SessionOptions};
use futex_trace::source::{KernelOptions, KernelSource, LiveTarget};

/// The test workload (its own crate), built if needed.
static WORKLOAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| common::workload().display().to_string());

fn decode_and_model() -> f64 {
    let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
    let raws: Vec<RawEvent> = (0..4096u64)
        .map(|i| RawEvent {
            kind: FT_SAMPLE,
            op: [0u8, 9][(i % 2) as usize],
            stack_rate: 1_000_000,
            ts: 1_000_000 + i * 1000,
            start_ts: 1_000_000 + i * 1000 - 500,
            uaddr: 0x7f00_0000_1000 + (i % 500) * 64,
            uaddr2: 0x7f00_0000_9000,
            ret: (i % 3) as i64,
            pid: 1,
            tid: (i % 16) as u32,
            val: 1,
            stack_id: (i % 200) as i32,
            waker_stack_id: -1,
            ..RawEvent::default()
        })
        .collect();
    let n = 2_000_000usize;
    let t = Instant::now();
    for i in 0..n {
        if let Some(e) = futex_trace::ebpf::decode::decode(&raws[i % raws.len()]) {
            m.apply(&e);
        }
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Starts the workload with `args`, held until a line on stdin.
fn held(args: &[&str]) -> std::process::Child {
    Command::new(WORKLOAD.as_str())
        .arg("--wait-stdin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start futex-workload")
}

fn release(c: &mut std::process::Child) {
    c.stdin.take().unwrap().write_all(b"go\n").unwrap();
}

fn result(c: std::process::Child) -> serde_json::Value {
    serde_json::from_slice(&c.wait_with_output().unwrap().stdout).unwrap()
}

struct Traced {
    workload: serde_json::Value,
    events: u64,
    lost: u64,
}

/// Runs the workload with `args` traced by pid until it exits.
fn traced(args: &[&str], no_stacks: bool) -> Traced {
    traced_with(args, no_stacks, false)
}

/// As [`traced`]; with `usdt`, through the program's futex-core USDT probes instead of its kernel futexes.
fn traced_with(args: &[&str], no_stacks: bool, usdt: bool) -> Traced {
    let mut child = held(args);
    let source = KernelSource::start(
        &LiveTarget::Pids(vec![child.id()]),
        KernelOptions {
            usdt,
            stacks: futex_trace::ebpf::StackOptions {
                no_stacks,
                ..Default::default()
            },
            ..KernelOptions::default()
        },
    )
    .expect("start the tracer");
    // The session product code runs: its fold thread reads the ring, folds, resolves stacks.
    let session = Session::start(Box::new(source), SessionOptions::default(), vec![])
        .expect("start the session");
    release(&mut child);
    let f = session.wait().expect("trace");
    let model = &f.model;
    Traced {
        workload: result(child),
        events: model.totals.events - model.totals.lost_events.min(1),
        lost: model.totals.lost_events,
    }
}

fn untraced(args: &[&str]) -> serde_json::Value {
    let mut c = held(args);
    release(&mut c);
    result(c)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks: nothing to list
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then a short smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 0.2 } else { 3.0 });
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke { 1 } else { 5 });
    let s = secs.to_string();

    // BENCH_PART=memory: only the tracer's memory.
    if std::env::var("BENCH_PART").as_deref() == Ok("memory") {
        if let Err(e) = futex_trace::ebpf::check_can_trace() {
            println!("SKIPPED: {e}");
            return;
        }
        memory(secs.max(1.0), rounds);
        return;
    }

    println!("decode + model (userspace ceiling, one core)");
    println!("  {:.2} M events/s", decode_and_model() / 1e6);

    if let Err(e) = futex_trace::ebpf::check_can_trace() {
        println!("\nSKIPPED the eBPF parts: {e}");
        return;
    }

    // futex-core's own Mutex: nothing listening, the in-process observer, the USDT probes over eBPF.
    println!(
        "\nfutex-core Mutex, 4 threads on 1 lock: ops/s with nothing listening, with the observer \
         subscribed, with the USDT probes attached; alternating runs"
    );
    let args = ["--core-mutex", &s, "--threads", "4"];
    let observed_args = ["--core-mutex", &s, "--threads", "4", "--observe"];
    let (mut base, mut obs, mut usdt) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        base.push(untraced(&args)["ops_per_sec"].as_f64().unwrap());
        obs.push(untraced(&observed_args)["ops_per_sec"].as_f64().unwrap());
        let t = traced_with(&args, false, true);
        usdt.push(t.workload["ops_per_sec"].as_f64().unwrap());
        println!(
            "  nothing {:>12.0}   observer {:>12.0}   USDT {:>12.0}   ({} USDT events, {} lost)",
            base.last().unwrap(),
            obs.last().unwrap(),
            usdt.last().unwrap(),
            t.events,
            t.lost
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, o, u) = (median(&mut base), median(&mut obs), median(&mut usdt));
    println!(
        "  median observer/nothing {:.3} ({:+.1}%), USDT/nothing {:.3} ({:+.1}%)",
        o / b,
        (o / b - 1.0) * 100.0,
        u / b,
        (u / b - 1.0) * 100.0
    );

    tracer_cost(&s, rounds);
    memory(secs.max(1.0), rounds);
}

/// Peak RSS of the `futex-trace record -p` binary tracing a busy process (a contended std Mutex, 4
/// threads) for `secs`, by ring size: 64M (the rings' fixed size before --ring-size: the baseline),
/// the default (8M), and the default with --no-stacks; alternated, medians.
fn memory(secs: f64, rounds: usize) {
    println!(
        "\nfutex-trace record -p of a contended std Mutex (4 threads), {secs} s: peak RSS (MB); \
         alternating runs"
    );
    let configs: [(&str, &[&str]); 3] = [
        ("rings 64M (before)", &["--ring-size", "64M"]),
        ("default (8M)", &[]),
        ("default, --no-stacks", &["--no-stacks"]),
    ];
    let mut peaks: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let out = std::env::temp_dir().join(format!("futex-trace-bench-{}.ftr", std::process::id()));
    for _ in 0..rounds {
        let mut line = String::from(" ");
        for ((name, args), peak) in configs.iter().zip(&mut peaks) {
            let secs_s = format!("{}", secs * 2.0 + 1.0);
            let mut w = Command::new(WORKLOAD.as_str())
                .args(["--contend", &secs_s, "--threads", "4"])
                .stdout(Stdio::null())
                .spawn()
                .expect("start futex-workload");
            #[allow(
                clippy::zombie_processes,
                reason = "reaped by wait4 below, which also gives its peak RSS"
            )]
            let tracer = Command::new(env!("CARGO_BIN_EXE_futex-trace"))
                .args([
                    "record",
                    "-p",
                    &w.id().to_string(),
                    "-d",
                    &format!("{secs}s"),
                    "-o",
                ])
                .arg(&out)
                .args(*args)
                .stderr(Stdio::null())
                .spawn()
                .expect("start futex-trace");
            let mut status = 0;
            // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: waits for our own child, writing into the two locals.
            unsafe { libc::wait4(tracer.id() as i32, &mut status, 0, &mut usage) };
            let _ = w.kill();
            let _ = w.wait();
            let mb = usage.ru_maxrss as f64 / 1024.0;
            peak.push(mb);
            line.push_str(&format!("  {name} {mb:>6.1}"));
        }
        println!("{line}");
    }
    let _ = std::fs::remove_file(&out);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base = median(&mut peaks[0]);
    for ((name, _), p) in configs.iter().zip(&mut peaks) {
        let m = median(p);
        println!(
            "  median {name}: {m:.1} MB ({:.2} of the baseline)",
            m / base
        );
    }
}

/// The five workloads of the tracer's cost, each: (name, futex-workload arguments, whether it prints its
/// own counts).
fn workloads(s: &str) -> Vec<(&'static str, Vec<String>, bool)> {
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            "EAGAIN wait storm (4 threads, 1 word)",
            v(&["--eagain", s, "--threads", "4"]),
            true,
        ),
        (
            "FUTEX_WAKE storm (producer/consumer)",
            v(&["--wake-storm", s]),
            true,
        ),
        (
            "FUTEX_WAKE producer/consumer, ~15 µs work/item",
            v(&["--wake-storm", s, "--work", "10000"]),
            true,
        ),
        (
            "ping-pong through a futex (2 threads)",
            v(&["--pingpong", s]),
            true,
        ),
        (
            "contended std::sync::Mutex (2 threads)",
            v(&["--contend", s, "--threads", "2"]),
            false,
        ),
        ("std Condvar producer/consumer", v(&["--condvar", s]), false),
    ]
}

fn traced_by_bpftrace(args: &[&str], ret: bool) -> (serde_json::Value, String) {
    let mut child = held(args);
    let bt = Bpftrace::start(child.id(), ret);
    release(&mut child);
    let r = result(child);
    (r, bt.stop())
}

/// The tracer's cost on each workload: untraced, traced by futex-trace (the session, in this process),
/// traced by the bpftrace counter, alternated; then one run traced by both at once, whose counts must
/// agree (and equal the workload's own, where it counts them).
fn tracer_cost(s: &str, rounds: usize) {
    let have_bpftrace = Command::new("bpftrace").arg("--version").output().is_ok();
    if !have_bpftrace {
        println!(
            "\nSKIPPED the comparison with bpftrace: it is not installed (apt install bpftrace)"
        );
    }
    let mut summary = Vec::new();
    for (name, args, own_counts) in workloads(s) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        println!("\n{name}: ops/s untraced, traced by futex-trace, traced by the bpftrace counter");
        let (mut base, mut ours, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
        let ops = |v: &serde_json::Value| v["ops_per_sec"].as_f64().unwrap();
        for _ in 0..rounds {
            base.push(ops(&untraced(&args)));
            let t = traced(&args, false);
            ours.push(ops(&t.workload));
            if have_bpftrace {
                theirs.push(ops(&traced_by_bpftrace(&args, false).0));
            }
            println!(
                "  untraced {:>12.0}   futex-trace {:>12.0}   bpftrace {:>12.0}   ({} events, {} lost)",
                base.last().unwrap(),
                ours.last().unwrap(),
                theirs.last().copied().unwrap_or(f64::NAN),
                t.events,
                t.lost
            );
        }
        // Medians: a 2-core machine's scheduling noise swings single runs by tens of percent.
        let median = |v: &mut Vec<f64>| {
            if v.is_empty() {
                return f64::NAN;
            }
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (b, o, t) = (median(&mut base), median(&mut ours), median(&mut theirs));
        println!(
            "  median traced/untraced: futex-trace {:.3}, bpftrace counter {:.3}",
            o / b,
            t / b
        );
        let counts = if have_bpftrace {
            count_check(&args, own_counts)
        } else {
            "not checked".to_string()
        };
        summary.push((name, o / b, t / b, counts));
    }
    println!(
        "\nsummary (median traced/untraced; counts: futex-trace vs the workload and bpftrace)"
    );
    for (name, o, t, counts) in summary {
        println!("  {name:<42} futex-trace {o:.3}  bpftrace {t:.3}  counts {counts}");
    }
}

/// One run traced by futex-trace and the bpftrace counter at once: their counts, and the workload's own.
fn count_check(args: &[&str], own_counts: bool) -> String {
    let mut child = held(args);
    let pid = child.id();
    let bt = Bpftrace::start(pid, true);
    let source = KernelSource::start(&LiveTarget::Pids(vec![pid]), KernelOptions::default())
        .expect("start the tracer");
    let session = Session::start(Box::new(source), SessionOptions::default(), vec![])
        .expect("start the session");
    release(&mut child);
    let f = session.wait().expect("trace");
    let own = result(child);
    let out = bt.stop();
    let t = &f.model.totals;
    let ours = [t.waits, t.mismatches, t.timeouts, t.wakes, t.woken];
    let bt = common::bpftrace::totals(&out);
    let mut verdict = if ours == bt {
        "= bpftrace"
    } else {
        "≠ bpftrace"
    }
    .to_string();
    println!(
        "  counts (waits, EAGAIN, timeouts, wakes, woken): futex-trace {ours:?}, bpftrace {bt:?}, lost {}",
        t.lost_events
    );
    if own_counts {
        let c = &own["counts"];
        let w = [
            c["waits"].as_u64().unwrap(),
            c["eagain"].as_u64().unwrap(),
            c["timeouts"].as_u64().unwrap(),
            c["wakes"].as_u64().unwrap(),
            c["wake_woken"].as_u64().unwrap(),
        ];
        println!("  the workload's own counts: {w:?}");
        // The workload counts only its own futex calls; the runtime makes a few more (thread start
        // and join): compare the workload's words.
        verdict += if ours[..] == w[..] || own_matches(&f.model, &own) {
            ", = the workload"
        } else {
            ", ≠ the workload"
        };
    }
    verdict
}

/// The model's counts on the workload's futex words (all but the runtime's own) equal its counts.
fn own_matches(m: &futex_trace::model::Model, own: &serde_json::Value) -> bool {
    let c = &own["counts"];
    let (mut waits, mut eagain, mut timeouts, mut wakes, mut woken) = (0, 0, 0, 0, 0);
    for a in m.addresses.values() {
        if a.waits + a.wakes < 100 {
            continue; // thread start/join words: a few calls each
        }
        waits += a.waits;
        eagain += a.mismatches;
        timeouts += a.timeouts;
        wakes += a.wakes;
        woken += a.wakes_woke;
    }
    [waits, eagain, timeouts, wakes, woken]
        == [
            c["waits"].as_u64().unwrap(),
            c["eagain"].as_u64().unwrap(),
            c["timeouts"].as_u64().unwrap(),
            c["wakes"].as_u64().unwrap(),
            c["wake_woken"].as_u64().unwrap(),
        ]
}
