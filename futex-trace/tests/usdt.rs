//! USDT over eBPF: futex-core's probes in a real binary, and (as root) traced through uprobes.

#[macro_use]
mod common;
use common::succeeded;

use futex_trace::ebpf::usdt::{parse_args, parse_notes, Note};

#[test]
fn notes_of_a_real_binary_with_futex_core_probes() {
    // futex-trace links futex-core (its demo runs on it), so its probes are in the binary.
    let exe = std::fs::read(env!("CARGO_BIN_EXE_futex-trace")).unwrap();
    let notes = parse_notes(&exe).unwrap();
    let core: Vec<&Note> = notes
        .iter()
        .filter(|n| n.provider == "futex_core")
        .collect();
    for name in [
        "wait_start",
        "wait_end",
        "wake",
        "requeue",
        "lock_contended",
    ] {
        assert!(
            core.iter().any(|n| n.name == name),
            "no {name} site among {}",
            core.len()
        );
    }
    for n in core {
        let args = parse_args(&n.args).unwrap();
        assert!(!args.is_empty() && args.len() <= 6, "{n:?}");
        assert_eq!(n.semaphore, 0);
        // The site is a nop (0x90) at its file offset.
        assert_eq!(exe[n.file_offset as usize], 0x90, "{n:?}");
    }
}

/// The test workload (its own crate), built if needed.
static WORKLOAD: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| common::workload().display().to_string());

#[test]
fn usdt_buckets_equal_futex_core_statistics() {
    require_privileges!();
    let dir = std::env::temp_dir().join(format!("futex-trace-usdt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("usdt.ftr");
    let account = dir.join("usdt.out");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
        .args(["record", "--usdt", "-o"])
        .arg(&file)
        .arg("--command-output")
        .arg(&account)
        .args(["--", WORKLOAD.as_str(), "--futex-core", "1"])
        .output()
        .unwrap();
    succeeded(&out);
    // The workload printed futex-core's own statistics when it finished.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&account).unwrap()).unwrap();
    let rep = std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
        .args(["report", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    succeeded(&rep);
    let r: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(
        r["totals"]["lost_events"], 0,
        "the comparison needs every event"
    );
    assert_eq!(r["bucket_origin"], "futex_core");
    assert!(
        r["totals"]["waits"].as_u64().unwrap() > 1000,
        "{}",
        r["totals"]
    );
    let buckets = r["buckets"].as_array().unwrap();
    for q in truth["queues"].as_array().unwrap() {
        let b = buckets.iter().find(|b| b["bucket"] == q["bucket"]);
        for (k, want) in q
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "bucket")
        {
            let got = b.map_or(serde_json::json!(0), |b| b[k].clone());
            assert_eq!(&got, want, "bucket {} {k}", q["bucket"]);
        }
    }
    // Stacks come with the probes: the demo's lock function is in the top stacks.
    assert!(
        r["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["top_stack"].as_array())
            .flatten()
            .any(|f| f
                .as_str()
                .is_some_and(|f| f.contains("futex_core::sync::mutex"))),
        "no futex-core Mutex frame in any top stack"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn usdt_by_pid_and_a_binary_without_probes() {
    require_privileges!();
    use std::io::Write;
    let mut w = std::process::Command::new(WORKLOAD.as_str())
        .args(["--wait-stdin", "--futex-core", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut tracer = std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
        .args([
            "report",
            "--json",
            "--usdt",
            "-p",
            &w.id().to_string(),
            "-d",
            "10s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read on to the end: futex-trace writes its status to stderr while it traces.
    let _stderr = common::tracing_started(&mut tracer);
    w.stdin.take().unwrap().write_all(b"go\n").unwrap();
    w.wait().unwrap();
    let out = tracer.wait_with_output().unwrap();
    assert!(out.status.success());
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["bucket_origin"], "futex_core");
    assert!(
        r["totals"]["waits"].as_u64().unwrap() > 100,
        "{}",
        r["totals"]
    );
    // A binary that does not link futex-core: one line that says so and what to do instead.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
        .args(["report", "--usdt", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("no futex-core probes") && e.contains("without --usdt"),
        "{e}"
    );
}

#[test]
fn notify_all_is_one_woken_and_the_rest_moved_onto_the_mutex() {
    require_privileges!();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_futex-trace"))
        .args([
            "stream",
            "--usdt",
            "--",
            WORKLOAD.as_str(),
            "--notify-all",
            "6",
        ])
        .output()
        .unwrap();
    succeeded(&out);
    // stdout is ours: every line an event. The workload's own line went to our stderr.
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().all(|l| l.get("event").is_some()),
        "not only events on stdout"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    let truth: serde_json::Value = stderr
        .lines()
        .find_map(|l| {
            serde_json::from_str(l)
                .ok()
                .filter(|v: &serde_json::Value| v.get("condvar").is_some())
        })
        .expect("the workload's line on stderr");
    let truth = &truth;
    // Addresses are printed in hex, as the report prints them.
    let hex = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let requeues: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|e| e["event"] == "requeue" && hex(&e["from"]) == truth["condvar"])
        .collect();
    assert_eq!(requeues.len(), 1, "{requeues:?}");
    let r = requeues[0];
    assert_eq!(hex(&r["to"]), truth["mutex"].as_str().unwrap());
    assert_eq!(
        (r["woken"].as_u64(), r["moved"].as_u64()),
        (Some(1), Some(5))
    );
    assert_eq!(r["from_bucket"], truth["condvar_bucket"]);
    assert_eq!(r["to_bucket"], truth["mutex_bucket"]);
    assert_eq!(r["wait"], "condvar");
}
