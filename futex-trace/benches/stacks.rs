//! What a stack costs (root only; prints why it skips otherwise). In one run, alternated, medians:
//!
//! 1. userspace: unwinding one copied stack from CFI (`StackUnwinder::unwind`, this thread's own stack)
//!    against copying its bytes once (the baseline: what the kernel side does for each stack);
//! 2. the futex ping-pong untraced, and traced: without stacks, `--unwind fp` and `--unwind dwarf` at the
//!    default stack rate, and both with a stack of every wait and every waker (`--stack-rate 0
//!    --waker-every 1`), whose difference from "without stacks" in time per hand-off, divided by the
//!    stacks per hand-off, is the cost of one stack.
//!
//! `cargo bench -p futex-trace --bench stacks` (BENCH_SECS=3 per run, BENCH_ROUNDS=3). Figures:
//! BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
#[allow(dead_code, reason = "the bench uses the workload helper")]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futex_trace::ebpf::unwind::{snapshot_this_thread, StackUnwinder};
use futex_trace::ebpf::{StackOptions, Unwind};
use futex_trace::session::{Session, SessionOptions};
use futex_trace::source::{KernelOptions, KernelSource, LiveTarget};

static WORKLOAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| common::workload().display().to_string());

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn userspace() {
    let (ip, sp, bp, data) = snapshot_this_thread();
    let pid = std::process::id();
    let mut u = StackUnwinder::default();
    let frames = u.unwind(pid, ip, sp, bp, &data).ips.len();
    let n = 100_000;
    let mut unwind = Vec::new();
    let mut copy = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(u.unwind(pid, ip, sp, bp, std::hint::black_box(&data)));
        }
        unwind.push(t.elapsed().as_nanos() as f64 / n as f64);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(std::hint::black_box(&data).to_vec());
        }
        copy.push(t.elapsed().as_nanos() as f64 / n as f64);
    }
    let (un, co) = (median(unwind), median(copy));
    println!(
        "userspace: unwinding a copied stack of {frames} frames ({} bytes): {un:.0} ns; copying its bytes: {co:.0} ns ({:.1}×)",
        data.len(),
        un / co
    );
}

struct Run {
    ops: f64,
    stacks: u64,
}

fn run(secs: &str, opts: Option<KernelOptions>) -> Run {
    let mut child = Command::new(WORKLOAD.as_str())
        .args(["--wait-stdin", "--pingpong", secs])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start futex-workload");
    let session = opts.map(|o| {
        let source = KernelSource::start(&LiveTarget::Pids(vec![child.id()]), o).expect("tracer");
        Session::start(Box::new(source), SessionOptions::default(), vec![]).expect("session")
    });
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let stacks = session.map_or(0, |s| {
        let f = s.wait().expect("trace");
        f.model.stacks.values().map(|s| s.samples).sum::<u64>()
            + f.model
                .waker_stacks
                .values()
                .map(|s| s.samples)
                .sum::<u64>()
    });
    let out: serde_json::Value =
        serde_json::from_slice(&child.wait_with_output().unwrap().stdout).unwrap();
    Run {
        ops: out["ops_per_sec"].as_f64().unwrap(),
        stacks,
    }
}

fn main() {
    userspace();
    if let Err(why) = futex_trace::ebpf::check_can_trace() {
        println!("SKIPPED the traced runs: {why}");
        return;
    }
    let secs = std::env::var("BENCH_SECS").unwrap_or_else(|_| "3".into());
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let with = |stacks: StackOptions| KernelOptions {
        stacks,
        ..KernelOptions::default()
    };
    let every = |unwind| {
        with(StackOptions {
            unwind,
            stack_rate: Duration::ZERO,
            waker_every: 1,
            ..StackOptions::default()
        })
    };
    let configs: Vec<(&str, Option<KernelOptions>)> = vec![
        ("untraced", None),
        (
            "traced, no stacks",
            Some(with(StackOptions {
                no_stacks: true,
                ..StackOptions::default()
            })),
        ),
        (
            "traced, --unwind fp (default rate)",
            Some(with(StackOptions {
                unwind: Unwind::Fp,
                ..StackOptions::default()
            })),
        ),
        (
            "traced, --unwind dwarf (default)",
            Some(KernelOptions::default()),
        ),
        ("traced, fp, every stack", Some(every(Unwind::Fp))),
        ("traced, dwarf, every stack", Some(every(Unwind::default()))),
    ];
    let mut results: Vec<Vec<Run>> = configs.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (i, (name, o)) in configs.iter().enumerate() {
            let r = run(&secs, o.clone());
            println!(
                "round {round}: {name:<36} {:>10.0} hand-offs/s  {:>8} stacks",
                r.ops, r.stacks
            );
            results[i].push(r);
        }
    }
    println!(
        "\nping-pong, median of {rounds} (ratio to untraced; cost per stack from the BPF run time)"
    );
    let med = |i: usize| median(results[i].iter().map(|r| r.ops).collect());
    let base = med(0);
    for (i, (name, _)) in configs.iter().enumerate() {
        let stacks = median(results[i].iter().map(|r| r.stacks as f64).collect());
        println!(
            "  {name:<36} {:>10.0} hand-offs/s  {:.3}×  {:>8.0} stacks",
            med(i),
            med(i) / base,
            stacks
        );
    }
    for (i, what) in [(4, "fp"), (5, "dwarf")] {
        let stacks_per_op = median(
            results[i]
                .iter()
                .map(|r| r.stacks as f64 / (r.ops * secs.parse::<f64>().unwrap()))
                .collect(),
        );
        let wall = (1.0 / med(i) - 1.0 / med(1)) * 1e9 / stacks_per_op;
        println!(
            "  one stack, --unwind {what}: {wall:.0} ns of the hand-off's time per stack ({stacks_per_op:.2} stacks per hand-off)"
        );
    }
}
