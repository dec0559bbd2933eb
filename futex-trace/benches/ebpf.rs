//! Benchmark of kernel futex tracing (root only; prints why it skips otherwise). In one run:
//!
//! 1. decode + model: synthetic ring-buffer records through `Decoder` and `Model::apply` (the userspace
//!    ceiling, events/s on one core);
//! 2. ring buffer → model: `futex-workload --spam` (FUTEX_WAKE as fast as one thread can) traced by pid;
//!    events delivered, lost, and events per second of the consumer thread's own CPU time;
//! 3. the traced workload's futex throughput without and with the tracer attached (ping-pong through a
//!    futex, and a contended std Mutex), alternating runs; the ratio is the tracer's cost.
//!
//! `cargo bench -p futex-trace --bench ebpf` (BENCH_SECS=3 per run by default). Figures: BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, reason = "the bench uses only the workload helper")]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futex_trace::abi::{RawEvent, FT_FUTEX, FT_WAIT_BEGIN};
use futex_trace::kernel::Decoder;
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::session::{Session, SessionOptions};
use futex_trace::source::{KernelOptions, KernelSource, LiveTarget};

/// The test workload (its own crate), built if needed.
static WORKLOAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| common::workload().display().to_string());

fn decode_and_model() -> f64 {
    let d = Decoder { buckets: 64 };
    let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
    let raws: Vec<RawEvent> = (0..4096u64)
        .map(|i| RawEvent {
            kind: if i % 3 == 0 { FT_WAIT_BEGIN } else { FT_FUTEX },
            op: [0u8, 1, 9, 4][(i % 4) as usize],
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
        if let Some(e) = d.decode(&raws[i % raws.len()]) {
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
    consumer_cpu: Duration,
    wall: Duration,
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
            no_stacks,
            usdt,
            ..KernelOptions::default()
        },
    )
    .expect("start the tracer");
    // The session product code runs: its fold thread reads the ring, folds, resolves stacks.
    let session = Session::start(Box::new(source), SessionOptions::default(), vec![])
        .expect("start the session");
    release(&mut child);
    let f = session.wait().expect("trace");
    // From tracing's start to the workload's exit (not the final symbolization).
    let wall = Duration::from_secs_f64(f.end.as_ref().expect("a live end").duration_s);
    let model = &f.model;
    Traced {
        workload: result(child),
        events: model.totals.events - model.totals.lost_events.min(1),
        lost: model.totals.lost_events,
        consumer_cpu: f.fold_cpu,
        wall,
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
    let rounds = if smoke { 1 } else { 3 };
    let s = secs.to_string();

    println!("decode + model (userspace ceiling, one core)");
    println!("  {:.2} M events/s", decode_and_model() / 1e6);

    if let Err(e) = futex_trace::ebpf::check_can_trace() {
        println!("\nSKIPPED the eBPF parts: {e}");
        return;
    }

    println!("\nring buffer → model (futex-workload --spam {s}: FUTEX_WAKE, nobody waiting, traced by pid)");
    let t = traced(&["--spam", &s], false);
    let calls = t.workload["calls"].as_u64().unwrap();
    println!(
        "  workload made {calls} calls ({:.2} M/s traced); delivered {} events, lost {}",
        t.workload["per_sec"].as_f64().unwrap() / 1e6,
        t.events,
        t.lost
    );
    println!(
        "  consumer: {:.2} M events/s of wall time, {:.2} M events per second of its own CPU \
         ({:.0}% of a core)",
        t.events as f64 / t.wall.as_secs_f64() / 1e6,
        t.events as f64 / t.consumer_cpu.as_secs_f64() / 1e6,
        100.0 * t.consumer_cpu.as_secs_f64() / t.wall.as_secs_f64()
    );
    let plain = untraced(&["--spam", &s]);
    let (traced_rate, plain_rate) = (
        t.workload["per_sec"].as_f64().unwrap(),
        plain["per_sec"].as_f64().unwrap(),
    );
    println!(
        "  the same workload untraced: {:.2} M calls/s (traced/untraced {:.2}): the tracer adds \
         {:.0} ns to each futex call",
        plain_rate / 1e6,
        traced_rate / plain_rate,
        (1.0 / traced_rate - 1.0 / plain_rate) * 1e9
    );

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

    for (name, args) in [
        (
            "ping-pong through a futex (2 threads)",
            vec!["--pingpong", &s],
        ),
        (
            "contended std::sync::Mutex (2 threads)",
            vec!["--contend", &s, "--threads", "2"],
        ),
    ] {
        println!(
            "\n{name}: ops/s without the tracer, with it, and with it but no stacks (--no-stacks); \
             alternating runs"
        );
        let (mut base, mut with, mut bare) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            base.push(untraced(&args)["ops_per_sec"].as_f64().unwrap());
            let t = traced(&args, false);
            with.push(t.workload["ops_per_sec"].as_f64().unwrap());
            let n = traced(&args, true);
            bare.push(n.workload["ops_per_sec"].as_f64().unwrap());
            println!(
                "  untraced {:>12.0}   traced {:>12.0}   no stacks {:>12.0}   ({} events, {} lost)",
                base.last().unwrap(),
                with.last().unwrap(),
                bare.last().unwrap(),
                t.events,
                t.lost + n.lost
            );
        }
        // Medians: a 2-core machine's scheduling noise swings single runs by tens of percent.
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (b, w, n) = (median(&mut base), median(&mut with), median(&mut bare));
        println!(
            "  median traced/untraced {:.3} ({:+.1}% throughput); without stacks {:.3} ({:+.1}%)",
            w / b,
            (w / b - 1.0) * 100.0,
            n / b,
            (n / b - 1.0) * 100.0
        );
    }
}
