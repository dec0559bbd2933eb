//! Wait sites and classes on programs nobody here wrote: contention judged by behaviour (who releases
//! whom, from where), not by the primitive's name; shared futexes keyed as the kernel keys them; every
//! view's totals reconcile with the exact counts. Root-only tests skip with a reason (fail under CI=true);
//! a test whose runtime is not installed fails under CI=true too (`.ci/run` installs them).

#[macro_use]
mod common;
use common::{bin, report_json, succeeded, tracing_started};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A scratch directory of this test's own.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futex-trace-sites-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `futex-trace record -o TRACE -- CMD…`: the JSON line the command printed last (futex-trace hands
/// a command's stdout to its own stderr).
fn record(trace: &Path, cmd: &[&str]) -> Value {
    record_with(trace, &[], cmd)
}

/// `record` with options of the tracer's (`tracer`). The command runs in the recording's directory:
/// what it writes there (node's V8 logs with --perf-basic-prof) goes with the test's scratch files.
fn record_with(trace: &Path, tracer: &[&str], cmd: &[&str]) -> Value {
    let out = bin()
        .current_dir(trace.parent().unwrap())
        .args(["record", "-o"])
        .arg(trace)
        .args(tracer)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    succeeded(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(line.unwrap_or_else(|| panic!("no JSON from {cmd:?} in {err}"))).unwrap()
}

/// A runtime's program, or `None` (with the reason printed) when it is not installed here; under
/// CI=true a missing runtime fails the test, since `.ci/run` installs it.
fn runtime(test: &str, path: &str, package: &str) -> Option<String> {
    if Path::new(path).exists() {
        return Some(path.to_string());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {path} is missing in CI (.ci/run installs {package})"
    );
    eprintln!("SKIPPED {test}: {path} is not installed (apt-get install {package})");
    None
}

/// `flamegraph --folded --show SHOW`: time waited per line.
fn folded(trace: &Path, show: &str) -> Vec<(String, u64)> {
    let out = bin()
        .args(["flamegraph", "--folded", "--show", show, "-o", "-"])
        .arg(trace)
        .output()
        .unwrap();
    succeeded(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (stack, n) = l.rsplit_once(' ').unwrap();
            (stack.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Time waited in folded lines, by thread name (the second frame: `process;thread;…`).
fn by_thread(lines: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for (stack, ns) in lines {
        let thread = stack.split(';').nth(1).unwrap_or("").to_string();
        *by.entry(thread).or_default() += ns;
    }
    by
}

fn sum(lines: &[(String, u64)]) -> u64 {
    lines.iter().map(|(_, ns)| ns).sum()
}

/// The checks every recording passes: the class split of the exact wait histograms adds up to the
/// exact count of waits that slept; the sites add up to what the flamegraph of every wait draws, and
/// its contention and idle views to the sites of those classes; the exact time per word and the sites'
/// sampled estimate agree (within what sampling allows).
fn reconcile(trace: &Path) {
    let r = report_json(trace);
    let t = &r["totals"];
    let count = |k: &str| r[k]["count"].as_u64().unwrap_or(0);
    assert_eq!(
        count("wait_contention") + count("wait_idle") + count("wait_unclassified"),
        t["waits_blocked"].as_u64().unwrap(),
        "{}: the classes' waits are the waits that slept",
        trace.display()
    );
    let words: u64 = (r["addresses"].as_array().unwrap().iter())
        .map(|a| a["wait_ns_total"].as_u64().unwrap())
        .sum();
    let sites = r["sites"].as_array().unwrap();
    let site_ns = |keep: &dyn Fn(&str) -> bool| -> u64 {
        (sites.iter())
            .filter(|s| keep(s["class"].as_str().unwrap()))
            .map(|s| s["wait_ns"].as_u64().unwrap())
            .sum()
    };
    let all = site_ns(&|_| true);
    assert_eq!(
        sum(&folded(trace, "all")),
        all,
        "{}: the flamegraph of every wait draws the sites' time",
        trace.display()
    );
    assert_eq!(
        sum(&folded(trace, "contention")),
        site_ns(&|c| c == "lock" || c == "hand_off"),
        "{}: contention",
        trace.display()
    );
    assert_eq!(
        sum(&folded(trace, "idle")),
        site_ns(&|c| c == "work" || c == "sleep"),
        "{}: idle",
        trace.display()
    );
    if !sites.is_empty() {
        // Stacks of waits are sampled: the sites' time is an estimate of the words' exact time.
        let ratio = all as f64 / words as f64;
        let rows: Vec<String> = (sites.iter())
            .map(|s| {
                format!(
                    "{} {} ns {} threads",
                    s["class"], s["wait_ns"], s["threads"]
                )
            })
            .collect();
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{}: sites {all} ns vs words {words} ns; sites: {rows:?}; warnings: {}; totals: {}",
            trace.display(),
            r["warnings"],
            r["totals"]
        );
    }
}

#[test]
fn every_view_of_the_golden_recordings_reconciles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["v1-kernel", "v1-usdt"] {
        reconcile(&root.join(format!("tests/fixtures/{f}.ftr")));
    }
}

#[test]
fn a_shared_futex_between_two_processes_is_one_word_with_both_sides() {
    require_privileges!();
    let dir = scratch(function_name!());
    let trace = dir.join("shared.ftr");
    let workload = common::workload();
    // Every wait's stack (a ping-pong's waits are short and few: sampled, the sites' estimate of them
    // would be loose), with room for the burst of stack copies that makes.
    let said = record_with(
        &trace,
        &["--stack-rate", "0", "--ring-size", "64M"],
        &[workload.to_str().unwrap(), "--shared", "2000"],
    );
    let (parent, child) = (
        said["pid"].as_u64().unwrap(),
        said["child"].as_u64().unwrap(),
    );
    let r = report_json(&trace);
    let words: Vec<&Value> = (r["addresses"].as_array().unwrap().iter())
        .filter(|a| a["address"] == said["addr"])
        .collect();
    assert_eq!(words.len(), 1, "one word, not one per process: {words:?}");
    let w = words[0];
    let pids: Vec<u64> = (w["pids"].as_array().unwrap().iter())
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(pids, [parent.min(child), parent.max(child)]);
    assert_eq!(
        w["kernel_table"], "global",
        "a shared futex is in the global table"
    );
    // Each side wakes the other once a turn; a side that finds the turn already its own does not sleep.
    assert_eq!(
        w["wakes"].as_u64().unwrap(),
        2 * said["turns"].as_u64().unwrap()
    );
    let waits = w["waits_blocked"].as_u64().unwrap();
    assert!(waits > 0 && w["woken"].as_u64().unwrap() == waits, "{w}");
    let site = (r["sites"].as_array().unwrap().iter())
        .find(|s| s["words"][0]["addr"] == said["addr"])
        .expect("a site waits on the shared word");
    assert_eq!(site["pids"].as_array().unwrap().len(), 2, "{site}");
    reconcile(&trace);
    std::fs::remove_dir_all(dir).ok();
}

/// CPython 3.11 as Debian builds it: `threading.Lock` is a semaphore, `queue.Queue.get` waits on a fresh
/// lock per call. Tellers contending on two Locks are contention; auditors waiting for work are idle.
#[test]
fn python_lock_contention_is_contention_and_its_queue_waits_are_idle() {
    require_privileges!();
    let test = function_name!();
    let Some(python) = runtime(test, "/usr/bin/python3.11", "python3") else {
        return;
    };
    let dir = scratch(test);
    let trace = dir.join("bank.ftr");
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/bank.py");
    let said = record(&trace, &[&python, program.to_str().unwrap(), "5"]);
    let share = |show: &str, thread: &str| -> f64 {
        let all = by_thread(&folded(&trace, "all"));
        let part = by_thread(&folded(&trace, show));
        part.get(thread).copied().unwrap_or(0) as f64 / all[thread] as f64
    };
    let tellers = share("contention", "teller-N");
    assert!(
        tellers >= 0.9,
        "tellers' waits classed contention: {tellers:.2}"
    );
    let auditors = share("idle", "auditor-N");
    assert!(
        auditors >= 0.9,
        "auditors' waits classed idle: {auditors:.2}"
    );
    // The program's own account of its lock waits, against the time the contention view gives its
    // tellers (sampled stacks; the program's figure also holds the GIL's re-take after each acquire).
    let contention = by_thread(&folded(&trace, "contention"));
    let measured = contention["teller-N"] as f64 / 1e9;
    let own = said["lock_wait_s"].as_f64().unwrap();
    assert!(
        (0.7..=1.3).contains(&(measured / own)),
        "tellers waited {own:.1} s by their own clock, {measured:.1} s in the contention view"
    );
    // The waits reach the Python function that waits, with its file and line: the interpreter's own
    // frames, read from its thread states by the eBPF side (Debian's python3.11, no flags).
    let every = folded(&trace, "all");
    let tellers = reaching(&every, "teller-N", "py::bank.transfer_funds (bank.py:")
        + reaching(&every, "teller-N", "py::bank.append_ledger (bank.py:");
    assert!(
        tellers >= 0.8,
        "{tellers:.2} of the tellers' waiting time reaches their Python functions"
    );
    let auditors = reaching(&every, "auditor-N", "py::bank.auditor (bank.py:");
    assert!(
        auditors >= 0.8,
        "{auditors:.2} of the auditors' waiting time reaches their Python function"
    );
    // Each Lock is one site (all the tellers' threads), not a row per thread, at its Python function.
    let r = report_json(&trace);
    let top = &r["sites"][0];
    assert!(
        top["frames"][0]
            .as_str()
            .is_some_and(|f| f.starts_with("py::bank.transfer_funds")
                || f.starts_with("py::bank.append_ledger")),
        "{top}"
    );
    assert!(
        top["class"] == "hand_off" || top["class"] == "lock",
        "{top}"
    );
    assert_eq!(top["threads"], 8, "{top}");
    // Its hottest word is its Lock, waited on by all 8 tellers (the GIL, re-taken after the Lock, may
    // be another word of the same place).
    let word = &top["words"][0];
    assert_eq!(word["threads"], 8, "{top}");
    assert!(
        word["wait_ns"].as_f64().unwrap() >= 0.9 * top["wait_ns"].as_f64().unwrap(),
        "{top}"
    );
    reconcile(&trace);
    std::fs::remove_dir_all(dir).ok();
}

/// The share of the threads `tids`' time at the sites (`sites[].by_thread`) that are at sites `at` says.
fn share_at(r: &Value, tids: &[u64], at: impl Fn(&Value) -> bool) -> f64 {
    let (mut some, mut all) = (0u64, 0u64);
    for s in r["sites"].as_array().unwrap() {
        let here = at(s);
        for th in s["by_thread"].as_array().unwrap() {
            if tids.contains(&th["tid"].as_u64().unwrap()) {
                let ns = th["wait_ns"].as_u64().unwrap();
                all += ns;
                some += if here { ns } else { 0 };
            }
        }
    }
    some as f64 / all.max(1) as f64
}

/// The contention and idle share of a thread's time of the sites, by `sites[].by_thread` (tid).
fn shares_of(r: &Value, tids: &[u64]) -> (f64, f64) {
    (
        share_at(r, tids, |s| {
            s["class"] == "lock" || s["class"] == "hand_off"
        }),
        share_at(r, tids, |s| s["class"] == "work" || s["class"] == "sleep"),
    )
}

/// The top sites in a line each (for a failure's message): class, time, threads, label, evidence.
fn summary(r: &Value) -> Vec<String> {
    (r["sites"].as_array().unwrap().iter().take(8))
        .map(|s| {
            format!(
                "{} {:.2} s {} threads {} {} [{}]: {}",
                s["class"],
                s["wait_ns"].as_f64().unwrap() / 1e9,
                s["threads"],
                s["process"],
                s["frames"],
                s["group"],
                s["evidence"]
            )
        })
        .collect()
}

/// The tids of a program's threads whose names start with `role` (the program's JSON: `threads`).
fn tids_of(said: &Value, role: &str) -> Vec<u64> {
    (said["threads"].as_object().unwrap().iter())
        .filter(|(name, _)| name.starts_with(role))
        .map(|(_, t)| t["tid"].as_u64().unwrap())
        .collect()
}

/// The share of a thread group's time waited (folded lines: `process;thread;…`) in stacks that pass
/// through a frame containing `frame`.
fn reaching(lines: &[(String, u64)], threads: &str, frame: &str) -> f64 {
    let of_group = lines
        .iter()
        .filter(|(stack, _)| stack.split(';').nth(1) == Some(threads));
    let all: u64 = of_group.clone().map(|(_, ns)| ns).sum();
    let reach: u64 = of_group
        .filter(|(stack, _)| stack.split(';').any(|f| f.contains(frame)))
        .map(|(_, ns)| ns)
        .sum();
    reach as f64 / all.max(1) as f64
}

/// Removes the perf maps (`/tmp/perf-PID.map`) the runtimes of a report's processes wrote.
fn remove_perf_maps(r: &Value) {
    for s in r["sites"].as_array().unwrap() {
        for pid in s["pids"].as_array().unwrap() {
            std::fs::remove_file(format!("/tmp/perf-{pid}.map")).ok();
        }
    }
}

/// Java 17: `synchronized` (the monitor's waiters park on per-thread events) and `ReentrantLock`
/// (`LockSupport.park`, a per-thread condvar) are contention; a pool's workers waiting in
/// `LinkedBlockingQueue.take` (the same `Unsafe_Park`) are idle; each lock is one site of its 4 threads.
#[test]
fn java_monitor_and_reentrantlock_contention_is_contention_and_its_pool_waits_are_idle() {
    require_privileges!();
    let test = function_name!();
    let (Some(java), Some(javac)) = (
        runtime(test, "/usr/bin/java", "openjdk-17-jdk-headless"),
        runtime(test, "/usr/bin/javac", "openjdk-17-jdk-headless"),
    ) else {
        return;
    };
    let dir = scratch(test);
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/Bank.java");
    let out = std::process::Command::new(javac)
        .arg("-d")
        .arg(&dir)
        .arg(&program)
        .output()
        .unwrap();
    succeeded(&out);
    let trace = dir.join("bank.ftr");
    let classes = dir.to_str().unwrap();
    let said = record(
        &trace,
        &[
            &java,
            "-XX:+PreserveFramePointer",
            "-XX:+UnlockDiagnosticVMOptions",
            "-XX:+DumpPerfMapAtExit",
            "-cp",
            classes,
            "Bank",
            "5",
        ],
    );
    let all = by_thread(&folded(&trace, "all"));
    let contention = by_thread(&folded(&trace, "contention"));
    let idle = by_thread(&folded(&trace, "idle"));
    let share = |part: &BTreeMap<String, u64>, thread: &str| {
        part.get(thread).copied().unwrap_or(0) as f64 / all[thread] as f64
    };
    let r = report_json(&trace);
    remove_perf_maps(&r);
    let sites = summary(&r);
    // Stacks go on through the JIT code by frame pointers and are named from the JVM's perf map:
    // the lock waits reach the method that takes the lock.
    let every = folded(&trace, "all");
    for (threads, method) in [
        ("teller-N", "Bank.transferFunds"),
        ("clerk-N", "Bank.appendLedger"),
    ] {
        let s = reaching(&every, threads, method);
        assert!(
            s >= 0.8,
            "{threads}: {s:.2} of the waiting time has a stack reaching {method}; the sites: \
             {sites:#?}"
        );
        let site = (r["sites"].as_array().unwrap().iter())
            .find(|s| s["frames"].to_string().contains(method));
        assert!(site.is_some(), "no site at {method}: {sites:#?}");
    }
    for (threads, lock) in [("teller-N", "transferFunds"), ("clerk-N", "appendLedger")] {
        let s = share(&contention, threads);
        assert!(
            s >= 0.9,
            "{threads} ({lock}) classed contention: {s:.2}; the sites: {sites:#?}"
        );
        // The program's own clock of its lock waits (sampled stacks: an estimate).
        let own = said["locks"][lock]["wait_ms"].as_f64().unwrap() / 1e3;
        let measured = contention[threads] as f64 / 1e9;
        assert!(
            (0.7..=1.3).contains(&(measured / own)),
            "{threads} waited {own:.1} s for {lock} by their own clock, {measured:.1} s in the \
             contention view"
        );
    }
    let s = share(&idle, "auditor-N");
    assert!(
        s >= 0.9,
        "auditors' waits for work classed idle: {s:.2}; the sites: {sites:#?}"
    );
    // Each lock is one site of its 4 threads (a word per thread: the JVM parks each on its own); another
    // thread may have met the lock once (the main thread, a class's initialisation).
    let top: Vec<&Value> = (r["sites"].as_array().unwrap().iter())
        .filter(|s| s["class"] == "lock" || s["class"] == "hand_off")
        .take(2)
        .collect();
    for s in &top {
        let four: u64 = (s["by_thread"].as_array().unwrap().iter().take(4))
            .map(|t| t["wait_ns"].as_u64().unwrap())
            .sum();
        assert!(
            four as f64 >= 0.95 * s["wait_ns"].as_f64().unwrap(),
            "4 threads hold the site: {s}"
        );
    }
    // The report names each lock's threads, as the flamegraph groups them.
    let text = bin().arg("report").arg(&trace).output().unwrap();
    succeeded(&text);
    let text = String::from_utf8_lossy(&text.stdout);
    for threads in ["threads: teller-N ×4", "threads: clerk-N ×4"] {
        assert!(
            text.contains(threads),
            "no '{threads}' in the report:\n{text}"
        );
    }
    let top_ns: u64 = top.iter().map(|s| s["wait_ns"].as_u64().unwrap()).sum();
    let locks_ns = contention["teller-N"] + contention["clerk-N"];
    assert!(
        top_ns as f64 >= 0.95 * locks_ns as f64,
        "the two top contention sites hold {top_ns} ns of the locks' {locks_ns} ns"
    );
    reconcile(&trace);
    std::fs::remove_dir_all(dir).ok();
}

/// Node 20: a futex-style lock on a SharedArrayBuffer word (`Atomics.wait`/`notify`; V8 waits on a
/// condvar per thread) is contention; workers waiting on their mailbox for a job (the same
/// `Atomics.wait`) are idle; the lock is one site of its 4 threads.
#[test]
fn node_atomics_wait_lock_is_contention_and_its_mailbox_waits_are_idle() {
    require_privileges!();
    let test = function_name!();
    let Some(node) = runtime(test, "/usr/bin/node", "nodejs") else {
        return;
    };
    let dir = scratch(test);
    let trace = dir.join("atomics.ftr");
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/atomics_lock.js");
    // V8's perf map, with a copy of the interpreter per function so that interpreted functions are
    // named too (what the report tells a user to run).
    let said = record(
        &trace,
        &[
            &node,
            "--perf-basic-prof",
            "--interpreted-frames-native-stack",
            program.to_str().unwrap(),
            "5",
        ],
    );
    let (tellers, consumers) = (tids_of(&said, "teller"), tids_of(&said, "consumer"));
    assert_eq!((tellers.len(), consumers.len()), (4, 2), "{said}");
    let r = report_json(&trace);
    remove_perf_maps(&r);
    // The waits reach the JavaScript function that waits: the lock's, and the mailbox's. Where
    // TurboFan inlined the lock's function into its caller the code is its caller's, and named so, as
    // perf names it (perf maps carry no inlining): from a quarter to nearly half of the lock's time
    // here, as the optimizer's timing falls. So: >= 80% at the function or the caller it was inlined
    // into, and >= 40% at the function itself.
    let lock = "js::acquireAccountLock (atomics_lock.js:";
    let inlined_into = "js::transferFunds (atomics_lock.js:";
    let mailbox = "js::waitForJob (atomics_lock.js:";
    for (tids, functions, least) in [
        (&tellers, &[lock, inlined_into][..], 0.8),
        (&tellers, &[lock][..], 0.4),
        (&consumers, &[mailbox][..], 0.8),
    ] {
        let share = share_at(&r, tids, |s| {
            let frames = s["frames"].to_string();
            functions.iter().any(|f| frames.contains(f))
        });
        assert!(
            share >= least,
            "{share:.2} of the waiting time of threads {tids:?} is at {functions:?}: {:#?}",
            summary(&r)
        );
    }
    let (contention, _) = shares_of(&r, &tellers);
    assert!(
        contention >= 0.9,
        "tellers' waits classed contention: {contention:.2}"
    );
    let (_, idle) = shares_of(&r, &consumers);
    assert!(idle >= 0.9, "consumers' waits classed idle: {idle:.2}");
    // The lock's site holds its 4 threads; its sites' time (the function's, and the caller's it was
    // inlined into) is the program's own clock of Atomics.wait.
    let at = |s: &Value, f: &str| s["frames"].to_string().contains(f);
    let lock_sites: Vec<&Value> = (r["sites"].as_array().unwrap().iter())
        .filter(|s| at(s, lock) || at(s, inlined_into))
        .collect();
    let site = (lock_sites.iter())
        .find(|s| at(s, lock))
        .expect("a site at the lock's function");
    let tids: Vec<u64> = (site["by_thread"].as_array().unwrap().iter())
        .map(|t| t["tid"].as_u64().unwrap())
        .collect();
    assert!(
        tellers.iter().all(|t| tids.contains(t)) && tids.len() == 4,
        "{site}"
    );
    let own = said["locks"]["acquireAccountLock"]["atomics_wait_ms"]
        .as_f64()
        .unwrap()
        / 1e3;
    let measured = (lock_sites.iter())
        .map(|s| s["wait_ns"].as_u64().unwrap())
        .sum::<u64>() as f64
        / 1e9;
    assert!(
        (0.7..=1.3).contains(&(measured / own)),
        "tellers waited {own:.1} s in Atomics.wait by their own clock, {measured:.1} s at their sites"
    );
    reconcile(&trace);
    std::fs::remove_dir_all(dir).ok();
}

/// A throw-away PostgreSQL cluster in `dir`, run as the `postgres` user on a port and socket of its own;
/// stopped and removed when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    dir: PathBuf,
    port: String,
}

impl Postgres {
    fn as_postgres(&self, program: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap()
    }

    fn start(bin: PathBuf, dir: &Path) -> Postgres {
        let pg = Postgres {
            bin,
            data: dir.join("data"),
            dir: dir.to_path_buf(),
            port: (5400 + std::process::id() % 500).to_string(),
        };
        std::fs::create_dir_all(dir).unwrap();
        let chown = std::process::Command::new("chown")
            .args(["postgres:", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(chown.success());
        let data = pg.data.to_str().unwrap();
        succeeded(&pg.as_postgres(
            "initdb",
            &["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        ));
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c synchronous_commit=on",
            pg.port,
            dir.display()
        );
        let log = dir.join("server.log");
        let out = pg.as_postgres(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &opts,
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        pg
    }

    /// `pgbench ARGS bench` against this cluster.
    fn pgbench(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "-h",
            self.dir.to_str().unwrap(),
            "-p",
            &self.port,
            "-U",
            "postgres",
        ];
        all.extend_from_slice(args);
        all.push("bench");
        self.as_postgres("pgbench", &all)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_string();
        self.as_postgres("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// PostgreSQL 15 under `pgbench`: its LWLocks sleep on each backend's semaphore (a futex in shared
/// memory), yet they are contention, and the WAL flush lock under `XLogFlush` is the top site, one site
/// of all the backends (one process name, not a row per backend).
#[test]
fn postgres_lwlock_waits_are_contention_and_the_wal_flush_lock_is_the_top_site() {
    require_privileges!();
    let test = function_name!();
    let Some(pg_ctl) = runtime(test, "/usr/lib/postgresql/15/bin/pg_ctl", "postgresql") else {
        return;
    };
    let dir = scratch(test);
    // A short path: the server's socket lives there (a socket's path is at most 107 bytes).
    let cluster = std::env::temp_dir().join(format!("ft-pg-{}", std::process::id()));
    let pg = Postgres::start(Path::new(&pg_ctl).parent().unwrap().to_path_buf(), &cluster);
    succeeded(&pg.as_postgres(
        "createdb",
        &[
            "-h",
            pg.dir.to_str().unwrap(),
            "-p",
            &pg.port,
            "-U",
            "postgres",
            "bench",
        ],
    ));
    succeeded(&pg.pgbench(&["-i", "-q", "-s", "5"]));
    let trace = dir.join("pg.ftr");
    let mut tracer = bin()
        .args(["record", "--comm", "postgres", "-d", "60s", "-o"])
        .arg(&trace)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _err = tracing_started(&mut tracer);
    let load = pg.pgbench(&["-c", "8", "-j", "2", "-T", "5"]);
    // SAFETY: kill(2) on our own child's pid; SIGINT ends a recording cleanly.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    assert!(tracer.wait().unwrap().success());
    succeeded(&load);
    drop(pg);

    let r = report_json(&trace);
    let top = (r["sites"].as_array().unwrap().iter())
        .find(|s| s["class"] == "lock" || s["class"] == "hand_off")
        .expect("a contention site");
    assert!(
        top["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "XLogFlush"),
        "the top contention site is the WAL flush lock's: {top}"
    );
    assert!(
        top["threads"].as_u64().unwrap() >= 4 && top["pids"].as_array().unwrap().len() >= 4,
        "one site of the backends: {top}"
    );
    // Waits in an LWLock's acquire, in every view: contention.
    let lwlock = |show: &str| -> u64 {
        (folded(&trace, show).iter())
            .filter(|(stack, _)| stack.contains(";LWLockAcquire"))
            .map(|(_, ns)| ns)
            .sum()
    };
    let (contention, all) = (lwlock("contention"), lwlock("all"));
    assert!(all > 0, "no LWLock wait was seen");
    assert!(
        contention as f64 >= 0.9 * all as f64,
        "LWLock waits classed contention: {contention} of {all} ns"
    );
    reconcile(&trace);
    std::fs::remove_dir_all(dir).ok();
}

/// MariaDB 10.11 with its binary log on, under `sysbench oltp_read_write`: commits wait for their group
/// commit (binlog and InnoDB redo) and for durability; those waits are contention and rank at the top.
#[test]
fn mariadb_commit_waits_are_the_top_contention_sites() {
    require_privileges!();
    let test = function_name!();
    let (Some(mariadbd), Some(sysbench)) = (
        runtime(test, "/usr/sbin/mariadbd", "mariadb-server"),
        runtime(test, "/usr/bin/sysbench", "sysbench"),
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("ft-maria-{}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let run = |cmd: &mut std::process::Command| succeeded(&cmd.output().unwrap());
    run(std::process::Command::new("chown")
        .args(["-R", "mysql:"])
        .arg(&dir));
    run(std::process::Command::new("mariadb-install-db")
        .args(["--no-defaults", "--user=mysql", "--skip-test-db"])
        .arg(format!("--datadir={}", data.display())));
    let sock = dir.join("mysqld.sock");
    let mut server = std::process::Command::new(mariadbd)
        .args(["--no-defaults", "--user=mysql", "--skip-networking"])
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--socket={}", sock.display()))
        .arg(format!("--pid-file={}", dir.join("pid").display()))
        .arg(format!("--log-error={}", dir.join("err.log").display()))
        .arg(format!("--log-bin={}", data.join("binlog").display()))
        .args([
            "--server-id=1",
            "--sync-binlog=1",
            "--innodb-flush-log-at-trx-commit=1",
        ])
        .args(["--innodb-buffer-pool-size=128M"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut std::process::Child, PathBuf);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            // SAFETY: kill(2) on our own child's pid; SIGTERM shuts the server down.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            self.0.wait().ok();
            std::fs::remove_dir_all(&self.1).ok();
        }
    }
    let pid = server.id();
    let stop = Stop(&mut server, dir.clone());
    let client = |sql: &str| {
        std::process::Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-e", sql])
            .arg(format!("--socket={}", sock.display()))
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client("select 1").status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "mariadbd did not start: {}",
            std::fs::read_to_string(dir.join("err.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    succeeded(&client("create database sbtest"));
    let sysbench = |args: &[&str]| {
        std::process::Command::new(&sysbench)
            .args(["oltp_read_write", "--db-driver=mysql", "--mysql-user=root"])
            .args(["--mysql-db=sbtest", "--tables=4", "--table-size=10000"])
            .arg(format!("--mysql-socket={}", sock.display()))
            .args(args)
            .output()
            .unwrap()
    };
    succeeded(&sysbench(&["--threads=4", "prepare"]));
    let trace = scratch(test).join("maria.ftr");
    let mut tracer = bin()
        .args(["record", "-p", &pid.to_string(), "-d", "60s", "-o"])
        .arg(&trace)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _err = tracing_started(&mut tracer);
    let load = sysbench(&["--threads=8", "--time=5", "run"]);
    // SAFETY: kill(2) on our own child's pid; SIGINT ends a recording cleanly.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    assert!(tracer.wait().unwrap().success());
    succeeded(&load);
    drop(stop);

    let r = report_json(&trace);
    let contention: Vec<&Value> = (r["sites"].as_array().unwrap().iter())
        .filter(|s| s["class"] == "lock" || s["class"] == "hand_off")
        .collect();
    let commit = |s: &Value| {
        let text = s["frames"].to_string();
        [
            "wait_for_wakeup_ready",
            "write_transaction_to_binlog",
            "group_commit",
            "ha_commit_trans",
        ]
        .iter()
        .any(|f| text.contains(f))
    };
    let top: Vec<String> = (contention.iter().take(3))
        .map(|s| format!("{} {}", s["class"], s["frames"]))
        .collect();
    eprintln!("top contention sites: {top:#?}");
    assert!(
        contention.iter().take(2).any(|s| commit(s)),
        "a commit wait ranks first or second among contention sites: {top:?}"
    );
    reconcile(&trace);
    std::fs::remove_dir_all(trace.parent().unwrap()).ok();
}
