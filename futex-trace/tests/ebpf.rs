//! Kernel futex tracing through eBPF, for real: root only. Without privileges each test prints why it
//! skips; under CI=true a skip is a failure (CI runs as root).
//!
//! The workload (`futex-workload`) makes raw futex calls and prints what it did; the traces must agree
//! with it exactly, per address.

#[macro_use]
mod common;
use common::{bin, privileged, report_json, succeeded, tracing_started};

use std::io::{BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The test workload (its own crate), built if needed.
static WORKLOAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| common::workload().display().to_string());

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("futex-trace-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Records `futex-workload` through `record -- CMD`; returns (workload's own account, report JSON).
fn record_workload(name: &str) -> (Value, Value, std::path::PathBuf) {
    record_workload_with(name, &[])
}

/// As [`record_workload`], the workload run with `args`.
fn record_workload_with(name: &str, args: &[&str]) -> (Value, Value, std::path::PathBuf) {
    record_workload_traced(name, &[], args)
}

/// As [`record_workload_with`], with `tracer` options for `record`.
fn record_workload_traced(
    name: &str,
    tracer: &[&str],
    args: &[&str],
) -> (Value, Value, std::path::PathBuf) {
    let trace = tmp(&format!("{name}.ftr"));
    let account = tmp(&format!("{name}.out"));
    let out = bin()
        .args(["record", "-o"])
        .arg(&trace)
        .args(tracer)
        .arg("--command-output")
        .arg(&account)
        .arg("--")
        .arg(WORKLOAD.as_str())
        .args(args)
        .output()
        .unwrap();
    succeeded(&out);
    let truth: Value =
        serde_json::from_slice(&std::fs::read(&account).unwrap()).expect("the workload's JSON");
    (truth, report_json(&trace), trace)
}

/// Starts `record -o trace -- WORKLOAD args` (the workload's output to a file beside it) and returns it
/// once it says it is tracing, with its stderr to read on.
fn recording(
    trace: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStderr>) {
    let mut rec = bin()
        .args(["record", "-o"])
        .arg(trace)
        .arg("--command-output")
        .arg(trace.with_extension("out"))
        .arg("--")
        .arg(WORKLOAD.as_str())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = tracing_started(&mut rec);
    (rec, err)
}

/// Starts the workload with `args`, running (not held), its output discarded.
fn running_workload(args: &[&str]) -> std::process::Child {
    Command::new(WORKLOAD.as_str())
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn address<'a>(report: &'a Value, addr: &Value) -> &'a Value {
    report["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == *addr)
        .unwrap_or_else(|| panic!("address {addr} not in the report"))
}

#[test]
fn counts_per_address_equal_what_the_workload_did() {
    require_privileges!();
    let (truth, r, _) = record_workload("counts");
    assert_eq!(r["totals"]["lost_events"], 0, "{}", r["totals"]);
    assert_eq!(r["bucket_origin"], "futex_core_hash");
    let addrs = &truth["addresses"];
    let pid = truth["pid"].as_u64().unwrap();
    for (name, want) in truth["waits"].as_object().unwrap() {
        let a = address(&r, &addrs[name]);
        assert_eq!(a["waits"], *want, "waits on {name}: {a}");
        assert_eq!(a["pid"].as_u64(), Some(pid));
    }
    for (name, want) in truth["woken"].as_object().unwrap() {
        assert_eq!(address(&r, &addrs[name])["woken"], *want, "woken on {name}");
    }
    for (name, want) in truth["wakes"].as_object().unwrap() {
        assert_eq!(
            address(&r, &addrs[name])["wakes"],
            *want,
            "wake calls on {name}"
        );
    }
    for (name, want) in truth["wake_woken"].as_object().unwrap() {
        assert_eq!(
            address(&r, &addrs[name])["wakes_woke"],
            *want,
            "woken by wakes on {name}"
        );
    }
    let d = address(&r, &addrs["d"]);
    assert_eq!(d["timeouts"], 1);
    let e = address(&r, &addrs["e"]);
    assert_eq!(
        (e["mismatches"].as_u64(), e["waits_blocked"].as_u64()),
        (Some(1), Some(0))
    );

    // The 100 ms timed wait: the trace's time waited is within 3% of what the workload measured.
    let measured = truth["timed_wait_ns"].as_f64().unwrap();
    let traced = d["wait_ns_total"].as_f64().unwrap();
    assert!(
        (traced - measured).abs() / measured < 0.03,
        "traced {traced} ns vs measured {measured} ns"
    );

    // The requeue b → c is one edge with the right counts.
    let rq = &truth["requeue"];
    let edge = r["requeue_edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == rq["from"] && e["to"] == rq["to"])
        .unwrap_or_else(|| panic!("no edge b → c in {}", r["requeue_edges"]));
    assert_eq!(edge["requeues"], 1);
    assert_eq!(edge["moved"], rq["moved"]);
    assert_eq!(edge["woken"], rq["woken"]);
    // Wakers were seen for the woken waiters: wake-to-return and scheduler delay were measured.
    assert!(r["wake_to_return"]["count"].as_u64().unwrap() >= 9);
    assert!(r["sched_delay"]["count"].as_u64().unwrap() >= 9);
}

#[test]
fn flamegraphs_name_the_workload_functions_and_parse() {
    require_privileges!();
    // Every stack taken (the defaults sample them; a handful of waits and wakes may miss the wakers).
    let (_, r, trace) =
        record_workload_traced("flame", &["--stack-rate", "0", "--waker-every", "1"], &[]);
    // The top stack of the `a` waiters is named, demangled.
    let top = r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["top_stack"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .any(|f| f == "futex_workload::workload_waiter_on_a");
    assert!(top, "no top_stack names workload_waiter_on_a");
    for (args, needle) in [
        (vec![], "futex_workload::workload_waiter_on_b"),
        (vec!["--wakers"], "futex_workload::workload_waker"),
    ] {
        let svg = tmp(&format!("flame{}.svg", args.len()));
        let out = bin()
            .arg("flamegraph")
            .arg(&trace)
            .args(&args)
            .arg("-o")
            .arg(&svg)
            .output()
            .unwrap();
        succeeded(&out);
        let text = std::fs::read_to_string(&svg).unwrap();
        let opt = roxmltree::ParsingOptions {
            allow_dtd: true, // inferno writes the SVG DOCTYPE
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&text, opt)
            .expect("the SVG is well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            titles.iter().any(|t| t.starts_with(needle)),
            "{needle} not among the SVG's frames"
        );
        assert!(
            text.contains("futex-workload ("),
            "the root frame names the process"
        );
        assert!(!text.contains("_ZN"), "names are demangled");
    }
}

#[test]
fn tracing_a_pid_sees_nothing_of_other_processes_and_stops_when_it_exits() {
    require_privileges!();
    let spawn = || {
        Command::new(WORKLOAD.as_str())
            .arg("--wait-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut traced, mut other) = (spawn(), spawn());
    let pid = traced.id();
    let mut stream = bin()
        .args(["stream", "-p", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Start both workloads once the tracer says it is tracing.
    // Kept open to the end: futex-trace writes its status to stderr while it traces.
    let _stderr = tracing_started(&mut stream);
    for w in [&mut traced, &mut other] {
        w.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    let truth: Value = serde_json::from_slice(&traced.wait_with_output().unwrap().stdout).unwrap();
    other.wait().unwrap();
    // The tracer stops by itself once the traced process has exited.
    let out = stream.wait_with_output().unwrap();
    assert!(out.status.success());
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for e in &events {
        assert!(
            e["pid"] == pid || e["event"] == "lost" || e["event"] == "hist",
            "an event of another process: {e}"
        );
    }
    // Its calls on word a are counted once (the other process makes the same ones)...
    // Addresses are printed in hex, as the report prints them.
    let a = truth["addresses"]["a"].as_str().unwrap();
    let on_a = |op: &str| -> u64 {
        events
            .iter()
            .filter(|e| e["event"] == "counts" && e["addr"] == a && e["op"] == op)
            .map(|e| e["counts"]["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(on_a("wait"), 4, "{events:?}");
    assert_eq!(on_a("wake"), truth["wakes"]["a"].as_u64().unwrap());
    // ...and its requeue is there, exactly once.
    let requeues: Vec<&Value> = events.iter().filter(|e| e["event"] == "moved").collect();
    assert_eq!(requeues.len(), 1, "{requeues:?}");
    assert_eq!(requeues[0]["requeues"], 1);
    assert_eq!(requeues[0]["from"], truth["requeue"]["from"]);
}

#[test]
fn a_recording_replays_to_the_same_model_as_the_live_trace() {
    require_privileges!();
    use futex_trace::export::report::{self, SourceInfo};
    use futex_trace::session::{Session, SessionOptions};
    use futex_trace::sink::RecordingSink;
    use futex_trace::source::{
        CommandOutput, KernelOptions, KernelSource, LiveTarget, Pace, RecordingSource,
    };
    let path = tmp("replay.ftr");
    let source = KernelSource::start(
        &LiveTarget::Command(vec![WORKLOAD.as_str().into()]),
        KernelOptions {
            command_output: CommandOutput::File(tmp("replay.out")),
            ..KernelOptions::default()
        },
    )
    .unwrap();
    let sink = RecordingSink::new(&path);
    let live = Session::start(
        Box::new(source),
        SessionOptions::default(),
        vec![Box::new(sink)],
    )
    .unwrap()
    .wait()
    .unwrap();
    assert_eq!(live.sink_error, None);
    let replay = RecordingSource::open(&path, Pace::AsFastAsRead).unwrap();
    let replayed = Session::start(Box::new(replay), SessionOptions::default(), vec![])
        .unwrap()
        .wait()
        .unwrap();
    let src = SourceInfo {
        source: "x".into(),
        pid: 0,
        duration_s: 0.0,
        warnings: vec![],
    };
    let none = Default::default();
    let names = |f: &futex_trace::trace::Finished| -> String {
        let names = futex_trace::stacks::Names::new(&none, f.stacks.as_ref());
        let an = futex_trace::sites::Analysis::new(&f.model, names, &f.rules);
        report::json(&an, &src, None)
    };
    let (live_json, replay_json) = (names(&live), names(&replayed));
    assert!(live.model.totals.events > 30);
    assert_eq!(live_json, replay_json);
    assert_eq!(
        replayed.end, live.end,
        "the end marker is the live trace's end"
    );
}

#[test]
fn record_stores_the_real_start_time() {
    require_privileges!();
    let trace = tmp("start-time.ftr");
    let before_mono = futex_trace::clock_ns(libc::CLOCK_MONOTONIC);
    let before_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = bin()
        .args(["record", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(WORKLOAD.as_str())
        .output()
        .unwrap();
    succeeded(&out);
    let after_mono = futex_trace::clock_ns(libc::CLOCK_MONOTONIC);
    let mut first_event = u64::MAX;
    let t = futex_trace::recording::read(std::fs::File::open(&trace).unwrap(), |e| {
        if e.ts_ns != 0 {
            first_event = first_event.min(e.ts_ns);
        }
    })
    .unwrap();
    let m = &t.meta;
    assert!(
        (before_mono..=after_mono).contains(&m.started_mono_ns),
        "started_mono_ns {} outside [{before_mono}, {after_mono}]",
        m.started_mono_ns
    );
    assert!(
        m.started_mono_ns <= first_event,
        "tracing started ({}) before the first event ({first_event})",
        m.started_mono_ns
    );
    assert!(
        m.started_unix_s >= before_unix.floor(),
        "{}",
        m.started_unix_s
    );
    // The header names the command and the pid it ran as.
    assert_eq!(m.command.as_deref(), Some(&[WORKLOAD.to_string()][..]));
    assert_eq!(m.pids.len(), 1, "{:?}", m.pids);
}

#[test]
fn errors_are_one_clear_line() {
    // No such pid (privileged or not, the pid check or the privilege check answers in one line).
    let out = bin()
        .args(["report", "-p", "999999999", "-d", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("no process with pid 999999999") || err.contains("needs root"),
        "{err}"
    );
    // A command that does not exist.
    if privileged("errors_are_one_clear_line (command not found)") {
        let out = bin()
            .args(["report", "--", "/nonexistent/command"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("cannot run `/nonexistent/command`"), "{err}");
        // Not root: as nobody, through setpriv.
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_futex-trace"))
            .args(["report", "-p", "1"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("needs root") && err.contains("--demo"),
            "{err}"
        );
    }
}

#[test]
fn ctrl_c_sigterm_and_sighup_end_a_recording_and_keep_it() {
    require_privileges!();
    // Ctrl-C, `timeout`/`kill`, a closed ssh session.
    for sig in ["INT", "TERM", "HUP"] {
        let trace = tmp(&format!("signal-{sig}.ftr"));
        let (mut rec, mut err) = recording(&trace, &["--contend", "3"]);
        // Signalled once it has recorded a second (its first status line), not after a fixed sleep:
        // a loaded machine had recorded only 99 events 0.7 s in.
        let mut line = String::new();
        while !line.starts_with("tracing ") {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0,
                "the recording ended before its first status line"
            );
        }
        let kill = Command::new("kill")
            .args([&format!("-{sig}"), &rec.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = rec.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        assert!(status.success(), "{rest}");
        assert!(rest.contains("recorded"), "{rest}");
        let r = report_json(&trace);
        assert!(
            r["totals"]["events"].as_u64().unwrap() > 100,
            "{}",
            r["totals"]
        );
        // It ended cleanly: no warning that the recording was cut short.
        let cut = |w: &Value| {
            let w = w.as_str().unwrap_or("");
            w.contains("cut short") || w.contains("did not end cleanly")
        };
        assert!(
            !r["warnings"].as_array().into_iter().flatten().any(cut),
            "{}",
            r["warnings"]
        );
        // The stacks and symbols survive the signal.
        assert!(
            r["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["top_stack"].is_array()),
            "SIG{sig}: no stacks in the recording"
        );
    }
}

#[test]
fn attaching_to_a_running_ping_pong_loses_nothing_and_leaves_no_phantom_waiters() {
    require_privileges!();
    // Already hot when the tracer attaches: every attach-order gap shows.
    let mut w = running_workload(&["--pingpong", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    let out = bin()
        .args(["report", "--json", "-p", &w.id().to_string(), "-d", "60s"])
        .output()
        .unwrap();
    w.wait().unwrap();
    succeeded(&out);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["totals"]["waits"].as_u64().unwrap() > 1000,
        "{}",
        r["totals"]
    );
    assert_eq!(r["totals"]["lost_events"], 0, "{}", r["totals"]);
    for b in r["buckets"].as_array().unwrap() {
        // Two threads: never more than two waiters, and none left once it has exited.
        assert_eq!(b["depth"], 0, "bucket {b}");
        assert!(b["max_depth"].as_i64().unwrap() <= 2, "bucket {b}");
    }
}

#[test]
fn a_timed_out_wait_has_no_waker_even_when_a_traced_waker_runs_on_its_cpu() {
    require_privileges!();
    use futex_trace::event::{EventKind, Outcome};
    // Every wait that slept is sampled (--stack-rate 0), so that each is checked.
    let (truth, r, trace) =
        record_workload_traced("timeouts", &["--stack-rate", "0"], &["--timeouts", "400"]);
    assert_eq!(truth["timed_out"], 400);
    assert_eq!(r["totals"]["timeouts"], 400, "{}", r["totals"]);
    let word = u64::from_str_radix(
        truth["waiter_word"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    let (mut ends, mut attributed) = (0, Vec::new());
    futex_trace::recording::read(std::fs::File::open(&trace).unwrap(), |e| {
        if let EventKind::WaitSample {
            addr,
            final_addr,
            outcome,
            waker,
            wake_to_return_ns,
            ..
        } = e.kind
        {
            if addr == word {
                ends += 1;
                assert_eq!(outcome, Outcome::TimedOut);
                if waker.is_some() || final_addr != addr || wake_to_return_ns.is_some() {
                    attributed.push((final_addr, waker));
                }
            }
        }
    })
    .unwrap();
    assert_eq!(ends, 400);
    // The timer's wakeup runs in interrupt context, on whatever thread is on that CPU (here, one
    // inside a FUTEX_WAKE on another word): none of that may show as a waker or a requeue.
    assert!(
        attributed.is_empty(),
        "{} timed-out waits were given a waker or another word: {:?}",
        attributed.len(),
        &attributed[..attributed.len().min(3)]
    );
    for b in r["buckets"].as_array().unwrap() {
        assert_eq!(b["depth"], 0, "bucket {b}");
    }
}

#[test]
fn a_pi_lock_taken_at_once_did_not_sleep() {
    require_privileges!();
    let (truth, r, _) = record_workload_with("lock-pi", &["--lock-pi", "30"]);
    let a = address(&r, &truth["word"]);
    // FUTEX_LOCK_PI returns 0 whether it slept or not: only the one taken while held slept.
    assert_eq!(a["waits"], truth["locks"], "{a}");
    assert_eq!(a["waits_blocked"], truth["slept"], "{a}");
}

#[test]
fn cmp_requeue_pi_whose_top_waiter_cannot_take_the_lock_moves_them_all() {
    require_privileges!();
    let (truth, r, _) = record_workload_with("requeue-pi", &["--requeue-pi", "6"]);
    let edges = r["requeue_edges"].as_array().unwrap();
    let edge = edges
        .iter()
        .find(|e| e["from"] == truth["from"] && e["to"] == truth["to"])
        .unwrap_or_else(|| panic!("no edge {} → {} in {edges:?}", truth["from"], truth["to"]));
    assert_eq!(
        (&edge["requeues"], &edge["woken"], &edge["moved"]),
        (&Value::from(1), &truth["woken"], &truth["moved"]),
        "{edge}"
    );
    assert_eq!(r["totals"]["moved"], truth["moved"]);
}

#[test]
fn missed_program_runs_are_counted_as_bpftool_counts_them() {
    require_privileges!();
    // FUTEX_WAKE as fast as one thread can: the ring's wakeups of the reader run inside BPF programs,
    // where the kernel skips the sched_* programs (their recursion_misses).
    let mut w = running_workload(&["--spam", "3"]);
    let rep = bin()
        .args(["report", "--json", "-p", &w.id().to_string(), "-d", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    // An independent count, mid-trace: bpftool's recursion_misses of this tracer's programs (other
    // tests trace at the same time: this one's are those its process holds, by program id).
    let ids: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fdinfo", rep.id()))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    assert!(ids.len() >= 5, "the tracer holds {} programs", ids.len());
    let show = Command::new("bpftool")
        .args(["prog", "show", "--json"])
        .output()
        .expect("bpftool (CI installs it)");
    let progs: Value = serde_json::from_slice(&show.stdout).unwrap();
    let bpftool_misses: u64 = progs
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"].as_u64().is_some_and(|id| ids.contains(&id)))
        .filter_map(|p| p["recursion_misses"].as_u64())
        .sum();
    let out = rep.wait_with_output().unwrap();
    w.wait().unwrap();
    assert!(out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reported: u64 = r["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            w.as_str()?
                .strip_prefix("the kernel skipped ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .next()
        .unwrap_or(0);
    // The counter only grows: the final figure is at least what bpftool saw in the middle.
    assert!(
        reported >= bpftool_misses,
        "reported {reported} missed runs; bpftool saw {bpftool_misses} mid-trace"
    );
}

#[test]
fn a_thread_id_traces_its_process_and_zombies_and_kernel_threads_are_refused() {
    require_privileges!();
    // Long enough to outlast the tracer's start on a loaded machine.
    let mut w = running_workload(&["--pingpong", "4"]);
    let pid = w.id();
    // One of its threads (not the main one).
    let deadline = Instant::now() + Duration::from_secs(10);
    let tid = loop {
        let tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&t| t != pid)
            .collect();
        if let Some(&t) = tids.first() {
            break t;
        }
        assert!(Instant::now() < deadline, "the workload started no thread");
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = bin()
        .args(["report", "--json", "-p", &tid.to_string(), "-d", "30s"])
        .output()
        .unwrap();
    w.wait().unwrap();
    succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("pid {tid} is a thread of process {pid}")),
        "{err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["pid"], pid);
    assert!(
        r["totals"]["waits"].as_u64().unwrap() > 100,
        "{}",
        r["totals"]
    );

    // A kernel thread (kthreadd), and a zombie (a child not yet waited for).
    let mut zombie = Command::new("true").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    for (p, want) in [(2, "is a kernel thread"), (zombie.id(), "is a zombie")] {
        let out = bin()
            .args(["report", "-p", &p.to_string(), "-d", "1s"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    zombie.wait().unwrap();
}

#[test]
fn our_stdout_is_ours_and_dash_means_stdout() {
    require_privileges!();
    // The workload prints its own JSON on its stdout: ours must still be one JSON report.
    let out = bin()
        .args(["report", "--json", "--", WORKLOAD.as_str()])
        .output()
        .unwrap();
    succeeded(&out);
    let r: Value = serde_json::from_slice(&out.stdout).expect("stdout is the report alone");
    assert!(r["totals"]["waits"].as_u64().unwrap() > 10);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"wake_woken\""),
        "the workload's output goes to our stderr: {err}"
    );

    // -o - : the recording on stdout, readable whole.
    let out = bin()
        .args(["record", "-o", "-", "--", WORKLOAD.as_str()])
        .output()
        .unwrap();
    succeeded(&out);
    let mut events = 0u64;
    let t = futex_trace::recording::read(&out.stdout[..], |_| events += 1).unwrap();
    assert_eq!(t.end.expect("ended cleanly").events, events);
    let path = tmp("from-stdout.ftr");
    std::fs::write(&path, &out.stdout).unwrap();
    let svg = bin()
        .args(["flamegraph", "-o", "-"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(svg.status.success());
    assert!(String::from_utf8_lossy(&svg.stdout).contains("<svg"));
}

#[test]
fn a_recording_cut_by_sigkill_reports_symbolized_stacks() {
    require_privileges!();
    let trace = tmp("sigkill.ftr");
    let (mut rec, _err) = recording(&trace, &["--contend", "30"]);
    std::thread::sleep(Duration::from_secs(3));
    rec.kill().unwrap(); // SIGKILL: nothing at the end is written
    rec.wait().unwrap();
    // The command it started outlives it: end it (its pid is in the header).
    let t = futex_trace::recording::read(std::fs::File::open(&trace).unwrap(), |_| {}).unwrap();
    for &p in &t.meta.pids {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
    assert!(t.end.is_none(), "no end marker after SIGKILL");
    let r = report_json(&trace);
    assert!(
        r["totals"]["waits_blocked"].as_u64().unwrap() > 0,
        "{}",
        r["totals"]
    );
    // Symbolized stacks of the contended waits survived: the workload's own function is named.
    let named = r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["top_stack"].as_array())
        .flatten()
        .filter_map(Value::as_str)
        .any(|f| f.starts_with("futex_workload::"));
    assert!(named, "no symbolized stack in {}", r["addresses"]);
    assert!(
        r["warnings"].to_string().contains("did not end cleanly"),
        "{}",
        r["warnings"]
    );
}

#[test]
fn max_size_stops_a_recording_that_still_ends_cleanly_and_the_status_shows_bytes_written() {
    require_privileges!();
    let trace = tmp("max-size.ftr");
    // Every wait sampled: a ping-pong then writes a few MB/s.
    let out = bin()
        .args(["record", "--max-size", "64k", "--stack-rate", "0", "-o"])
        .arg(&trace)
        .arg("--command-output")
        .arg(trace.with_extension("out"))
        .arg("--")
        .arg(WORKLOAD.as_str())
        .args(["--pingpong", "4"])
        .output()
        .unwrap();
    succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reached --max-size"), "{err}");
    let size = std::fs::metadata(&trace).unwrap().len();
    assert!(
        (64 << 10..4 << 20).contains(&size),
        "{size} bytes for --max-size 64k"
    );
    let r = report_json(&trace);
    assert!(r["totals"]["waits"].as_u64().unwrap() > 0);
    let t = futex_trace::recording::read(std::fs::File::open(&trace).unwrap(), |_| {}).unwrap();
    assert_eq!(t.end.expect("an end marker").reason, "size limit reached");
    assert_eq!(t.warning, None);
}

#[test]
fn sampled_stacks_estimate_the_time_waited_without_bias() {
    require_privileges!();
    // Ping-pong waits last tens of µs: at the default 1 ms rate a few percent get a stack, each
    // weighted by its inverse probability.
    let (_, r, trace) = record_workload_with("sampled", &["--pingpong", "2"]);
    let exact: u64 = r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["wait_ns_total"].as_u64().unwrap())
        .sum();
    let folded = bin()
        .args(["flamegraph", "--folded", "-o", "-"])
        .arg(&trace)
        .output()
        .unwrap();
    succeeded(&folded);
    let text = String::from_utf8(folded.stdout).unwrap();
    let lines = text.lines().count();
    let estimated: u64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    let samples = r["samples"].as_u64().unwrap_or(0);
    assert!(lines > 0, "no stacks");
    let ratio = estimated as f64 / exact as f64;
    assert!(
        (0.75..1.33).contains(&ratio),
        "stacks estimate {estimated} ns of waiting, the kernel counted {exact} ns ({ratio:.2}; \
         {samples} samples)"
    );
}

/// The workload run with `args`, held at its start (`--wait-stdin`) until bpftrace (started on its
/// pid by `bpftrace`) and `futex-trace report --json -p` both watch it: the report, and what bpftrace
/// printed of the same run.
fn beside_bpftrace(
    args: &[&str],
    bpftrace: impl FnOnce(u32) -> common::bpftrace::Bpftrace,
) -> (Value, String) {
    let mut w = Command::new(WORKLOAD.as_str())
        .arg("--wait-stdin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = w.id();
    let bt = bpftrace(pid);
    let mut ft = bin()
        .args(["report", "--json", "-p", &pid.to_string(), "-d", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _stderr = tracing_started(&mut ft);
    w.stdin.take().unwrap().write_all(b"go\n").unwrap();
    w.wait().unwrap();
    // futex-trace stops by itself once the process has exited.
    let out = ft.wait_with_output().unwrap();
    assert!(out.status.success());
    (serde_json::from_slice(&out.stdout).unwrap(), bt.stop())
}

#[test]
fn counts_equal_bpftraces_on_std_condvar_code_we_did_not_write() {
    require_privileges!();
    if !common::bpftrace::installed(function_name!()) {
        return;
    }
    // std's Mutex and Condvar make the futex calls here, not us: only an independent counter on the
    // same run knows how many. bpftrace counts them per operation and return value.
    let (r, bt) = beside_bpftrace(&["--condvar", "1"], |pid| {
        common::bpftrace::Bpftrace::start(pid, true)
    });
    let theirs = common::bpftrace::totals(&bt);
    let t = &r["totals"];
    let ours =
        ["waits", "mismatches", "timeouts", "wakes", "woken"].map(|k| t[k].as_u64().unwrap());
    assert!(theirs[3] > 1000, "the queue made few wakes: {theirs:?}");
    assert_eq!(
        ours, theirs,
        "futex-trace vs bpftrace (waits, EAGAIN, timeouts, wakes, woken)"
    );
    assert_eq!(t["lost_events"], 0);
}

/// Spins on the futex buckets' locks: an EAGAIN storm of two threads on one word (one bucket: its lock
/// taken by both, on both CPUs) spins on that bucket, as many times as bpftrace counts contended spins on
/// the process's hottest lock on the same run; the same storm on a word per thread spins on no bucket
/// that holds one word.
#[test]
fn spins_on_a_shared_bucket_lock_are_counted_as_bpftrace_counts_them() {
    require_privileges!();
    if !common::bpftrace::installed(function_name!()) {
        return;
    }
    let storm = |own_words: bool| -> (Value, String) {
        let mut args = vec!["--eagain", "2", "--threads", "2"];
        if own_words {
            args.push("--own-words");
        }
        beside_bpftrace(&args, |pid| {
            common::bpftrace::Bpftrace::start_script(
                pid,
                "tracepoint:lock:contention_begin /pid == $1 && (args->flags & 1)/ \
                 { @spins[args->lock_addr] = count(); }",
            )
        })
    };
    let spins = |b: &Value| -> u64 {
        ["wait", "wake", "requeue"]
            .iter()
            .map(|k| b["spins"][k].as_u64().unwrap())
            .sum()
    };
    let (r, bt) = storm(false);
    let buckets = r["kernel_buckets"].as_array().unwrap();
    let hot = (buckets.iter())
        .find(|b| b["addresses"].as_array().unwrap().len() == 1 && b["waits"].as_u64() > Some(1000))
        .unwrap_or_else(|| panic!("no bucket of the storm's word: {buckets:?}"));
    let ours = spins(hot);
    assert!(
        ours > 100,
        "two threads on one bucket spun {ours} times: {hot}"
    );
    assert!(hot["spins"]["spin_ns"].as_u64().unwrap() > 0, "{hot}");
    // bpftrace: `@spins[0xffff...]: N` per lock; the bucket's is the hottest.
    let theirs = (bt.lines())
        .filter(|l| l.starts_with("@spins["))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        ours as f64 >= 0.8 * theirs as f64 && ours <= theirs,
        "spins on the bucket: futex-trace {ours}, bpftrace's hottest lock {theirs}"
    );
    // A word per thread: a bucket that holds one word is taken by one thread, and never spun on.
    let (r, _) = storm(true);
    let buckets = r["kernel_buckets"].as_array().unwrap();
    let alone: Vec<&Value> = (buckets.iter())
        .filter(|b| {
            b["addresses"].as_array().unwrap().len() == 1 && b["waits"].as_u64() > Some(1000)
        })
        .collect();
    for b in &alone {
        assert_eq!(spins(b), 0, "a bucket of one thread's word spun: {b}");
    }
    // Two words the hash put in one bucket collide: their bucket spins (the price of sharing it).
    for b in buckets
        .iter()
        .filter(|b| b["addresses"].as_array().unwrap().len() > 1)
    {
        assert!(
            spins(b) > 0,
            "two threads' words share a bucket without spinning: {b}"
        );
    }
}

/// The `--slots` what-if of bucket lock spins, confirmed by the kernel: three threads, each on a word of
/// its own, in a private hash of 2 slots (two words share a bucket, at least) spin on a shared bucket;
/// the what-if of 64 slots predicts no spins for the words it puts apart; the same storm with 64 slots set
/// by prctl(PR_FUTEX_HASH) spins on no bucket of one word.
#[test]
fn the_slots_what_if_predicts_the_spins_prctl_then_removes() {
    require_privileges!();
    let storm = |slots: &str| {
        let args = [
            "--eagain",
            "2",
            "--threads",
            "3",
            "--own-words",
            "--slots",
            slots,
        ];
        record_workload_with(&format!("spins-{slots}"), &args)
    };
    let spins = |b: &Value| -> u64 {
        ["wait", "wake", "requeue"]
            .iter()
            .map(|k| b["spins"][k].as_u64().unwrap())
            .sum()
    };
    let words = |b: &Value| b["addresses"].as_array().unwrap().len();
    let (truth, r, trace) = storm("2");
    assert_eq!(truth["slots"], 2, "{truth}");
    let buckets = r["kernel_buckets"].as_array().unwrap();
    let shared: Vec<&Value> = buckets
        .iter()
        .filter(|b| b["slots"] == 2 && words(b) > 1)
        .collect();
    assert!(
        !shared.is_empty(),
        "three words in two buckets: {buckets:?}"
    );
    let now: u64 = shared.iter().map(|b| spins(b)).sum();
    assert!(
        now > 100,
        "two threads' words in one bucket spun {now} times: {shared:?}"
    );
    // The what-if of 64 slots: a word alone in its bucket would not spin (one thread calls it).
    let out = bin()
        .args(["report", "--json", "--slots", "64"])
        .arg(&trace)
        .output()
        .unwrap();
    succeeded(&out);
    let w: Value = serde_json::from_slice(&out.stdout).unwrap();
    let what_if = w["kernel_buckets_what_if"]["buckets"].as_array().unwrap();
    for b in what_if.iter().filter(|b| words(b) == 1) {
        assert_eq!(spins(b), 0, "the what-if keeps spins on a word alone: {b}");
    }
    let predicted: u64 = what_if.iter().map(spins).sum();
    assert!(
        predicted < now,
        "the what-if predicts no drop: {predicted} of {now}"
    );
    let text = bin()
        .args(["report", "--slots", "64"])
        .arg(&trace)
        .output()
        .unwrap();
    succeeded(&text);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "spins on the buckets' locks: {now} now, about {predicted} with 64"
        )),
        "{text}"
    );
    // The kernel, with 64 slots set: the words it put apart do not spin.
    let (truth, r, _) = storm("64");
    assert_eq!(truth["slots"], 64, "{truth}");
    let buckets = r["kernel_buckets"].as_array().unwrap();
    let alone: Vec<&Value> = buckets
        .iter()
        .filter(|b| b["slots"] == 64 && words(b) == 1)
        .collect();
    assert!(!alone.is_empty(), "{buckets:?}");
    for b in alone {
        assert_eq!(spins(b), 0, "a word alone in its bucket spun: {b}");
    }
}

/// The words of `phase` (of `futex-workload --kernel-hash`), grouped as the kernel showed they share a
/// bucket (by timing it) and as futex-trace's `kernel_buckets` of that phase's slot count put them.
fn bucket_partitions(r: &Value, phase: &Value) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let slots = &phase["slots"];
    let mut by_kernel: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    let mut by_trace: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for w in phase["words"].as_array().unwrap() {
        let addr = w["addr"].as_str().unwrap().to_string();
        by_kernel
            .entry(w["group"].as_u64().unwrap())
            .or_default()
            .push(addr.clone());
        let bucket = r["kernel_buckets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| {
                b["slots"] == *slots && b["addresses"].as_array().unwrap().contains(&w["addr"])
            })
            .unwrap_or_else(|| panic!("{addr} has no kernel bucket of {slots} slots"));
        by_trace
            .entry(bucket["bucket"].as_u64().unwrap())
            .or_default()
            .push(addr);
    }
    let sorted = |m: std::collections::BTreeMap<u64, Vec<String>>| {
        let mut v: Vec<Vec<String>> = m.into_values().collect();
        v.sort();
        v
    };
    (sorted(by_kernel), sorted(by_trace))
}

#[test]
fn kernel_buckets_are_the_ones_the_kernel_uses_through_a_resize_and_shared_futexes_are_global() {
    require_privileges!();
    // 4 slots then 64; the default slot count then 32. 24 words over 4 pages.
    for (name, args) in [
        (
            "khash-4-64",
            &["--kernel-hash", "24", "--slots", "4", "--resize-to", "64"][..],
        ),
        (
            "khash-default-32",
            &["--kernel-hash", "24", "--resize-to", "32"][..],
        ),
    ] {
        let (truth, r, trace) = record_workload_with(name, args);
        let phases = truth["phases"].as_array().unwrap();
        for (i, phase) in phases.iter().enumerate() {
            if let Some(set) = phase["set_slots"].as_u64() {
                assert_eq!(
                    phase["slots"], set,
                    "{name}: GET_SLOTS after SET_SLOTS {set}"
                );
            }
            let (kernel, traced) = bucket_partitions(&r, phase);
            assert_eq!(
                traced, kernel,
                "{name} phase {i} ({} slots): futex-trace's buckets group the words otherwise than the \
                 kernel's timing does",
                phase["slots"]
            );
            assert!(
                kernel.len() < phase["words"].as_array().unwrap().len() || phase["slots"] == 64,
                "{name}: no two words shared a bucket: the test proves little"
            );
        }
        // Each word's latest table is the last phase's, and the report says which table that is.
        let last = phases.last().unwrap();
        for w in last["words"].as_array().unwrap() {
            let a = address(&r, &w["addr"]);
            assert_eq!(a["kernel_table"], "private", "{a}");
            assert_eq!(a["kernel_slots"], last["slots"], "{a}");
            assert!(a["kernel_bucket"].as_u64().unwrap() < last["slots"].as_u64().unwrap());
        }
        // A MAP_SHARED word used without FUTEX_PRIVATE_FLAG is in the global table: no bucket claimed.
        let shared = address(&r, &truth["shared"]);
        assert_eq!(
            (
                &shared["kernel_table"],
                &shared["kernel_bucket"],
                &shared["kernel_slots"]
            ),
            (&Value::from("global"), &Value::Null, &Value::Null),
            "{shared}"
        );
        assert!(shared["waits"].as_u64().unwrap() > 0, "{shared}");
        assert!(r["kernel_buckets_label"]
            .as_str()
            .unwrap()
            .contains("private"));
        // What-if: the first phase's slot count, computed over the words as they are at the end,
        // groups them as the kernel did in that phase.
        let first = &phases[0];
        let what_if = bin()
            .args(["report", "--json", "--slots"])
            .arg(first["slots"].to_string())
            .arg(&trace)
            .output()
            .unwrap();
        succeeded(&what_if);
        let w: Value = serde_json::from_slice(&what_if.stdout).unwrap();
        assert_eq!(w["kernel_buckets_what_if"]["slots"], first["slots"]);
        let mut groups: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
        for word in first["words"].as_array().unwrap() {
            let b = address(&w, &word["addr"])["what_if_kernel_bucket"]
                .as_u64()
                .expect("a private word has a what-if bucket");
            groups
                .entry(b)
                .or_default()
                .push(word["addr"].as_str().unwrap().to_string());
        }
        let mut what_if_groups: Vec<Vec<String>> = groups.into_values().collect();
        what_if_groups.sort();
        assert_eq!(
            what_if_groups,
            bucket_partitions(&r, first).0,
            "{name}: the what-if of {} slots",
            first["slots"]
        );
        // The text report names the words that share a bucket, and says what the what-if would change.
        let text = bin()
            .args(["report", "--slots", "2"])
            .arg(&trace)
            .output()
            .unwrap();
        succeeded(&text);
        let text = String::from_utf8(text.stdout).unwrap();
        for want in [
            "Kernel futex buckets",
            "shared: ",
            "What-if",
            "with 2 slots",
        ] {
            assert!(text.contains(want), "{name}: no {want:?} in\n{text}");
        }
    }
}

/// `go tool pprof`'s `-top` output for `profile` by `index`: its total (ms, or count) and its text.
fn go_pprof_top(profile: &std::path::Path, index: &str) -> (f64, String) {
    // An empty index: the profile's own default, as `go tool pprof -top URL` shows it.
    let sample_index = format!("-sample_index={index}");
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=500", "-nodefraction=0"])
        .args((!index.is_empty()).then_some(&sample_index))
        .arg(profile)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "go is missing in CI: .ci/run must install golang-go"
            );
            panic!("go tool pprof cannot run ({e}): apt-get install golang-go");
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Showing nodes accounting for 3.11s, 100% of 3.11s total" (or "... of 48647 total").
    let total = text
        .lines()
        .find_map(|l| {
            l.split(" of ")
                .nth(1)?
                .strip_suffix(" total")
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no total in\n{text}"));
    let (num, unit) = total.split_at(
        total
            .find(|c: char| c.is_alphabetic())
            .unwrap_or(total.len()),
    );
    let v: f64 = num.parse().unwrap();
    let scale = match unit {
        "" => 1.0,
        "ns" => 1e-6,
        "us" | "µs" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "mins" => 6e4,
        "hrs" => 3.6e6,
        other => panic!("unit {other:?} in {total}"),
    };
    (v * scale, text)
}

#[test]
fn go_tool_pprof_reads_the_profile_with_the_workloads_functions_and_totals() {
    require_privileges!();
    // Every wait that slept gets its stack (rate 0), so the profile's totals are the report's.
    let (_, r, trace) =
        record_workload_traced("pprof", &["--stack-rate", "0", "--waker-every", "1"], &[]);
    let profile = tmp("pprof.pb.gz");
    // Every wait, whatever its class: the totals are the report's.
    let out = bin()
        .args(["pprof", "--show", "all", "-o"])
        .arg(&profile)
        .arg(&trace)
        .output()
        .unwrap();
    succeeded(&out);
    // Delay is what go tool pprof shows unless told (Go's block profiles do the same).
    let (delay_ms, text) = go_pprof_top(&profile, "");
    let waited: u64 = r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["wait_ns_total"].as_u64().unwrap())
        .sum();
    let waited_ms = waited as f64 / 1e6;
    assert!(
        (delay_ms - waited_ms).abs() <= 0.01 * waited_ms,
        "pprof's delay total {delay_ms} ms, the report's time waited {waited_ms} ms:\n{text}"
    );
    assert!(
        text.contains("Type: delay") && text.contains("futex_workload::spawn_waiters"),
        "{text}"
    );
    let (contentions, text) = go_pprof_top(&profile, "contentions");
    let slept = r["totals"]["waits_blocked"].as_f64().unwrap();
    assert!(
        (contentions - slept).abs() <= 0.01 * slept,
        "pprof's contentions {contentions}, the report's waits that slept {slept}:\n{text}"
    );
    // The wakers' profile: the main thread's wakes.
    let wakers = tmp("pprof-wakers.pb.gz");
    let out = bin()
        .args(["pprof", "--wakers", "-o"])
        .arg(&wakers)
        .arg(&trace)
        .output()
        .unwrap();
    succeeded(&out);
    let (_, text) = go_pprof_top(&wakers, "delay");
    assert!(text.contains("futex_workload::exact"), "{text}");
}

#[test]
fn serve_by_name_follows_a_service_that_restarts() {
    require_privileges!();
    let mut served = common::serve::Served::quiet(&["--comm", "futex-workload"]);
    let addr = served.addr.clone();
    let metrics = || String::from_utf8(common::serve::get(&addr, "/metrics", "*/*").1).unwrap();
    // The "service" runs, ends, and is started again (a new pid): both runs are traced.
    let _ = WORKLOAD.as_str(); // built before serve looks for it
    for run in 0..2 {
        let w = Command::new(WORKLOAD.as_str())
            .args(["--pingpong", "1.5"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = w.id();
        // Its lock's series (named, or by address when the process ended before its maps were read).
        let want = format!(",pid=\"{pid}\"}}");
        let mut w = w;
        w.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut m = metrics();
        while !m.contains(&want) {
            assert!(
                Instant::now() < deadline,
                "run {run} (pid {pid}) never showed:\n{m}"
            );
            std::thread::sleep(Duration::from_millis(300));
            m = metrics();
        }
        assert!(
            served.child.try_wait().unwrap().is_none(),
            "serve ended with the traced process"
        );
    }
}
