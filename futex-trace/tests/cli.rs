//! `futex-trace report|stream --demo` end to end, as a user runs it.

#[macro_use]
mod common;
use common::{bin, succeeded};

use std::process::Command;

#[test]
fn report_json_shows_contention_collisions_and_requeue_edges() {
    // 3 s: on a loaded machine the broadcast's waiters may find a new generation before they sleep for
    // a while (a requeue then moves nobody); over 1500 broadcasts some find them asleep.
    let out = bin()
        .args(["report", "--demo", "-d", "3s", "--json"])
        .output()
        .unwrap();
    succeeded(&out);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &r["totals"];
    for k in [
        "waits",
        "waits_blocked",
        "wakes",
        "woken",
        "requeues",
        "moved",
        "timeouts",
        "lost_events",
    ] {
        assert!(t[k].is_u64(), "totals.{k} missing: {t}");
    }
    assert!(t["waits_blocked"].as_u64().unwrap() > 0);
    assert_eq!(t["lost_events"], 0);
    assert_eq!(r["bucket_origin"], "futex_core");
    // The time series: one row per second traced, adding up to the totals.
    let series = r["series"].as_array().unwrap();
    assert!(!series.is_empty());
    let slept: u64 = series
        .iter()
        .map(|s| s["waits_blocked"].as_u64().unwrap())
        .sum();
    assert_eq!(slept, t["waits_blocked"].as_u64().unwrap());
    let addrs = r["addresses"].as_array().unwrap();
    let by_label = |l: &str| {
        addrs
            .iter()
            .find(|a| a["label"] == l)
            .unwrap_or_else(|| panic!("no address labelled {l}: {addrs:?}"))
    };
    for a in addrs {
        for k in [
            "address",
            "waits",
            "wait_ns_total",
            "woken",
            "p50_wait_ns",
            "p99_wait_ns",
        ] {
            assert!(!a[k].is_null(), "addresses[].{k} missing: {a}");
        }
    }
    // Heat: lock 0 is waited on more than lock 5 (which, being the coldest, may not appear at all).
    let total = |l: &str| {
        addrs
            .iter()
            .find(|a| a["label"] == l)
            .map_or(0, |a| a["wait_ns_total"].as_u64().unwrap())
    };
    assert!(total("demo: heat lock 0") > total("demo: heat lock 5"));
    // The condvar is idle, not contention.
    assert_eq!(by_label("demo: broadcast condvar")["idle"], true);
    assert_eq!(by_label("demo: heat lock 0")["idle"], false);
    // notify_all moved waiters from the broadcast condvar to its mutex.
    let cv = by_label("demo: broadcast condvar")["address"].clone();
    let mx = r["requeue_edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["from"] == cv)
        .expect("an edge from the broadcast condvar");
    assert!(mx["moved"].as_u64().unwrap() > 0);
    assert_ne!(mx["from_bucket"], mx["to_bucket"]);
    // The two colliding locks share a bucket, and that bucket counted collisions.
    let buckets = r["buckets"].as_array().unwrap();
    let a = by_label("demo: colliding lock A")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let b = by_label("demo: colliding lock B")["address"]
        .as_str()
        .unwrap()
        .to_string();
    let qa = futex_trace::bucket_of(u64::from_str_radix(&a[2..], 16).unwrap(), 64);
    let qb = futex_trace::bucket_of(u64::from_str_radix(&b[2..], 16).unwrap(), 64);
    assert_eq!(qa, qb);
    let shared = buckets.iter().find(|x| x["bucket"] == qa).unwrap();
    assert!(shared["collisions"].as_u64().unwrap() > 0, "{shared}");
}

#[test]
fn stream_prints_json_lines() {
    let out = bin()
        // Long enough for the demo's broadcast (every 2 ms) to requeue sleeping waiters on a busy
        // machine too: there its waiters, which spin before sleeping, sleep after 100 µs of yields.
        .args(["stream", "--demo", "-d", "1s"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut kinds = std::collections::HashSet::new();
    // Each stack's frames come once, before the first event that names it.
    let mut stacks = std::collections::HashSet::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        kinds.insert(v["event"].as_str().unwrap().to_string());
        let key = |id: &serde_json::Value| (v["pid"].as_u64().unwrap(), id.as_u64().unwrap());
        if v["event"] == "stack" {
            assert!(stacks.insert(key(&v["stack"])), "a stack twice: {v}");
            assert!(!v["frames"].as_array().unwrap().is_empty(), "{v}");
            continue;
        }
        assert!(v["ts_ns"].as_u64().unwrap() > 0);
        for id in [&v["kernel"]["stack"], &v["stack"]] {
            if !id.is_null() {
                assert!(
                    stacks.contains(&key(id)),
                    "a stack named before its frames: {v}"
                );
            }
        }
        // Addresses in hex, as the report prints them.
        for k in ["addr", "final_addr", "from", "to"] {
            if !v[k].is_null() {
                assert!(v[k].as_str().is_some_and(|a| a.starts_with("0x")), "{v}");
            }
        }
    }
    assert!(!stacks.is_empty(), "no stack line");
    for k in ["wait_start", "wait_end", "wake", "requeue"] {
        assert!(kinds.contains(k), "no {k} event in {kinds:?}");
    }
}

#[test]
fn bad_input_gets_one_clear_line() {
    let out = bin().args(["report"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--demo") && err.lines().count() == 1, "{err}");
    let out = bin()
        .args(["report", "--demo", "--skew", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("outside (0, 1]") && !err.contains("panicked"),
        "{err}"
    );
    let out = bin()
        .args(["report", "--demo", "-d", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8(out.stderr).unwrap().contains("panicked"));
}

/// The demo needs no privileges: run it as `nobody`. Needs root to switch users; skips otherwise.
#[test]
fn demo_runs_unprivileged() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        eprintln!("SKIPPED demo_runs_unprivileged: needs root to switch to user nobody");
        return;
    }
    // Copy the binary where `nobody` can read and run it.
    let dir = std::env::temp_dir().join(format!("futex-trace-unpriv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("futex-trace");
    std::fs::copy(env!("CARGO_BIN_EXE_futex-trace"), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args(["report", "--demo", "-d", "500ms", "--json"])
        .output()
        .expect("setpriv (util-linux) runs");
    std::fs::remove_dir_all(&dir).ok();
    succeeded(&out);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["totals"]["waits"].as_u64().unwrap() > 0);
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn ctrl_c_ends_the_run_and_still_reports() {
    let child = bin()
        .args(["report", "--demo", "-d", "60s", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let t0 = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(10),
        "did not stop on SIGINT"
    );
    succeeded(&out);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["totals"]["waits"].as_u64().unwrap() > 0);
    assert!(r["duration_s"].as_f64().unwrap() < 30.0);
}

#[test]
fn demo_flamegraph_is_by_the_waiting_threads_stacks() {
    let svg = std::env::temp_dir().join(format!("futex-trace-demo-{}.svg", std::process::id()));
    let out = bin()
        .args(["flamegraph", "--demo", "-d", "500ms", "-o"])
        .arg(&svg)
        .output()
        .unwrap();
    succeeded(&out);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("Where threads wait on futexes"));
    assert!(
        !text.contains("by lock"),
        "a stack flamegraph, not one by lock"
    );
    // The observer's frame-pointer walk: the demo's threads in futex-core's Mutex and Condvar, from
    // the thread's entry (no root: this test runs as whoever runs the tests).
    let out = bin()
        .args(["flamegraph", "--demo", "-d", "500ms", "--folded", "-o", "-"])
        .output()
        .unwrap();
    succeeded(&out);
    let folded = String::from_utf8(out.stdout).unwrap();
    let (mut all, mut whole) = (0u64, 0u64);
    for l in folded.lines() {
        let (stack, ns) = l.rsplit_once(' ').unwrap();
        let ns: u64 = ns.parse().unwrap();
        all += ns;
        if stack.contains("futex_trace::demo::")
            && stack.contains("futex_core::sync::")
            && stack.contains("thread_start")
        {
            whole += ns;
        }
    }
    assert!(
        all > 0 && whole as f64 >= 0.95 * all as f64,
        "{whole} of {all} ns in whole demo stacks:\n{folded}"
    );
    let _ = std::fs::remove_file(&svg);
    // --wakers needs wakers' stacks: one line that says so.
    let out = bin()
        .args(["flamegraph", "--demo", "--wakers", "-d", "100ms", "-o"])
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--wakers needs wakers' stacks"));
}

#[test]
fn demo_recording_reports_and_a_bad_output_directory_is_refused_first() {
    let dir = std::env::temp_dir().join(format!("futex-trace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("demo.ftr");
    let out = bin()
        .args(["record", "--demo", "-d", "300ms", "-o"])
        .arg(&rec)
        .output()
        .unwrap();
    succeeded(&out);
    let t = futex_trace::recording::read(std::fs::File::open(&rec).unwrap(), |_| {}).unwrap();
    assert!(
        t.meta.started_mono_ns > 0,
        "the real start time is recorded"
    );
    assert_eq!(t.meta.pids.len(), 1);
    let end = t.end.expect("ended cleanly");
    assert!(end.labels.iter().any(|(_, l)| l == "demo: heat lock 0"));
    let rep = bin().args(["report", "--json"]).arg(&rec).output().unwrap();
    assert!(rep.status.success());
    let r: serde_json::Value = serde_json::from_slice(&rep.stdout).unwrap();
    assert_eq!(r["totals"]["events"].as_u64(), Some(end.events));
    assert!(end.events > 100, "{end:?}");

    // A directory that does not exist: refused before anything starts, in one line.
    let out = bin()
        .args([
            "record",
            "--demo",
            "-d",
            "5s",
            "-o",
            "/nonexistent-dir/x.ftr",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("there is no directory /nonexistent-dir"),
        "{err}"
    );
}

#[test]
fn a_duration_under_a_millisecond_is_refused_by_the_parser() {
    for d in ["0s", "1ns"] {
        let out = bin().args(["report", "--demo", "-d", d]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(&format!("'{d}' is too short to trace: give at least 1ms")),
            "{err}"
        );
    }
}

#[test]
fn an_existing_recording_survives_every_failed_start_and_is_kept_as_old() {
    let dir = std::env::temp_dir().join(format!("futex-trace-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rec = dir.join("yesterday.ftr");
    let old = dir.join("yesterday.ftr.old");
    let yesterday = b"FUTEXTRC yesterday's recording, precious".to_vec();
    std::fs::write(&rec, &yesterday).unwrap();
    // Failed starts: no such pid (or not root), a bad argument, an impossible duration.
    for args in [
        vec!["record", "-p", "999999999"],
        vec!["record", "--demo", "--skew", "7"],
        vec!["record", "--demo", "-d", "0s"],
    ] {
        let out = bin().args(&args).arg("-o").arg(&rec).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            std::fs::read(&rec).unwrap(),
            yesterday,
            "{args:?} touched it"
        );
        assert!(!old.exists(), "{args:?} moved it");
    }
    // Not root (as nobody; needs root to switch user, as CI runs).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_futex-trace"))
            .args(["record", "-p", "1", "-o"])
            .arg(&rec)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            std::fs::read(&rec).unwrap(),
            yesterday,
            "a non-root start touched it"
        );
        assert!(!old.exists());
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the non-root case must run in CI (as root, through setpriv)"
        );
        eprintln!("SKIPPED the non-root case: not root, cannot become nobody");
    }
    // A recording that starts keeps the earlier file as FILE.old, and says so.
    let out = bin()
        .args(["record", "--demo", "-d", "200ms", "-o"])
        .arg(&rec)
        .output()
        .unwrap();
    succeeded(&out);
    assert_eq!(std::fs::read(&old).unwrap(), yesterday);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is kept as"));
    futex_trace::recording::read(std::fs::File::open(&rec).unwrap(), |_| {}).unwrap();
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definition_as_help() {
    // bash: the script parses and registers futex-trace's completion.
    let out = bin().args(["completions", "bash"]).output().unwrap();
    succeeded(&out);
    let script = String::from_utf8(out.stdout).unwrap();
    let check = Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p futex-trace"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("futex-trace"),
        "bash did not register the completion"
    );
    for shell in ["zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        succeeded(&out);
        assert!(String::from_utf8_lossy(&out.stdout).contains("record"));
    }
    // The man page lists every subcommand; a subcommand's page has its options.
    let out = bin().arg("man").output().unwrap();
    succeeded(&out);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH futex-trace 1"), "{page}");
    for sub in ["record", "report", "flamegraph", "pprof", "serve", "stream"] {
        assert!(
            page.contains(&format!("futex\\-trace\\-{sub}(1)")),
            "{sub} missing"
        );
    }
    let out = bin().args(["man", "record"]).output().unwrap();
    succeeded(&out);
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains("\\-\\-max\\-size"), "{page}");
    // A subcommand that is not: one line that says which are.
    let out = bin().args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("give one of record, report"), "{err}");
}
