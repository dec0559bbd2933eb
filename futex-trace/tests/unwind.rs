//! Stacks of programs as distributions build them, for real (root only; a skip is a failure under
//! CI=true): a C program on glibc's locks built with and without frame pointers, and a Rust release
//! build, unwound from CFI (`--unwind dwarf`, the default), compared with `perf record --call-graph
//! dwarf` on the same program; their waits classified (mutex, condvar, join).

#[macro_use]
mod common;
use common::{bin, report_json, succeeded};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futex-trace-unwind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// futex-workload/c/contend.c built with gcc -O2 and `flags`.
fn contend(name: &str, flags: &str) -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../futex-workload/c/contend.c");
    let out = tmp(name);
    let st = Command::new("gcc")
        .args(["-O2", flags, "-pthread", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .expect("gcc (Debian's gcc package) builds the C workload");
    assert!(st.success(), "gcc failed on {src}");
    out
}

/// Records `cmd` (default options but `extra`); returns the recording.
fn record(name: &str, extra: &[&str], cmd: &[&str]) -> PathBuf {
    let trace = tmp(&format!("{name}.ftr"));
    let out = bin()
        .args(["record", "-o"])
        .arg(&trace)
        .args(extra)
        .arg("--command-output")
        .arg(tmp(&format!("{name}.out")))
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    succeeded(&out);
    trace
}

/// The waiting stacks of a recording, every class: folded stack (outermost first, without the process
/// frame) → nanoseconds.
fn folded(trace: &Path) -> HashMap<Vec<String>, u64> {
    let out = bin()
        .args(["flamegraph", "--folded", "--show", "all", "-o", "-"])
        .arg(trace)
        .output()
        .unwrap();
    succeeded(&out);
    let mut stacks = HashMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let (stack, ns) = l.rsplit_once(' ').unwrap();
        let frames: Vec<String> = stack.split(';').skip(1).map(String::from).collect();
        *stacks.entry(frames).or_default() += ns.parse::<u64>().unwrap();
    }
    stacks
}

/// The share of the time waited in stacks through `through` that also have every one of `want`.
fn share_with(stacks: &HashMap<Vec<String>, u64>, through: &str, want: &[&str]) -> f64 {
    let (mut all, mut with) = (0u64, 0u64);
    for (frames, ns) in stacks {
        if !frames.iter().any(|f| f.contains(through)) {
            continue;
        }
        all += ns;
        if want.iter().all(|w| frames.iter().any(|f| f.contains(w))) {
            with += ns;
        }
    }
    assert!(all > 0, "no stack goes through {through}: {stacks:#?}");
    with as f64 / all as f64
}

fn word<'a>(r: &'a Value, kind: &str) -> &'a Value {
    r["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} word in {:#}", r["addresses"]))
}

#[test]
fn c_stacks_go_through_glibc_with_and_without_frame_pointers_and_condvar_and_join_waits_are_idle() {
    require_privileges!();
    for (name, flags) in [
        ("contend-fp", "-fno-omit-frame-pointer"),
        ("contend-nofp", "-fomit-frame-pointer"),
    ] {
        let exe = contend(name, flags);
        let trace = record(name, &[], &[exe.to_str().unwrap(), "1.5"]);
        let stacks = folded(&trace);
        let lock = ["pthread_mutex_lock", "take_lock", "do_work", "start_thread"];
        let share = share_with(&stacks, "lll_lock_wait", &lock);
        assert!(
            share >= 0.95,
            "{name}: {:.1}% of the mutex's waiting time has {lock:?}: {stacks:#?}",
            share * 100.0
        );
        assert!(
            share_with(
                &stacks,
                "pthread_cond_wait",
                &["wait_for_the_end", "start_thread"]
            ) >= 0.95
        );
        assert!(share_with(&stacks, "clockjoin", &["main", "__libc_start_main"]) >= 0.95);
        assert!(
            share_with(
                &stacks,
                "rwlock_wrlock",
                &["write_lock", "rw_worker", "start_thread"]
            ) >= 0.95,
            "{name}: {stacks:#?}"
        );
        assert!(share_with(&stacks, "sem_wait", &["wait_on_semaphore", "start_thread"]) >= 0.95);
        // The function that called glibc's syscall() for a raw futex wait is there too.
        assert!(
            share_with(
                &stacks,
                "wait_raw",
                &["syscall", "raw_waiter", "start_thread"]
            ) >= 0.95
        );
        // No frame outside the program's mappings is drawn.
        assert!(
            !stacks.keys().flatten().any(|f| f.starts_with("[unknown]")),
            "{name}: {stacks:#?}"
        );

        let r = report_json(&trace);
        let lock_word = word(&r, "mutex");
        assert_eq!(lock_word["label"], "lock", "{name}: {lock_word:#}");
        assert_eq!(lock_word["idle"], false);
        assert_eq!(lock_word["waited_in"], "take_lock", "{name}: {lock_word:#}");
        for kind in ["condvar", "join"] {
            let w = word(&r, kind);
            assert_eq!(w["idle"], true, "{name}: {w:#}");
        }
        assert_eq!(word(&r, "condvar")["waited_in"], "wait_for_the_end");
        assert_eq!(word(&r, "semaphore")["idle"], true);
        assert_eq!(word(&r, "semaphore")["waited_in"], "wait_on_semaphore");
        // glibc waits on the rwlock's writer futex, 12 bytes in.
        let rw = word(&r, "rw_lock");
        assert_eq!(
            (rw["idle"].clone(), rw["label"].clone()),
            (false.into(), "rwlock+0xc".into())
        );
        // A raw futex word is contention unless a rule says otherwise.
        let raw = |r: &Value| {
            r["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["label"] == "raw_word")
                .cloned()
                .unwrap_or_else(|| panic!("no raw_word in {:#}", r["addresses"]))
        };
        // A raw futex word's one wait, released by the main thread from elsewhere: waiting for an
        // event, idle by behaviour; a rule of the user's moves it to contention.
        assert_eq!(raw(&r)["idle"], true, "{name}: {:#}", raw(&r));
        let ruled = bin()
            .args(["report", "--json", "--lock-frame", "^wait_raw$"])
            .arg(&trace)
            .output()
            .unwrap();
        succeeded(&ruled);
        let ruled: Value = serde_json::from_slice(&ruled.stdout).unwrap();
        assert_eq!(raw(&ruled)["idle"], false, "{name}: {:#}", raw(&ruled));
        assert!(
            r["wait_idle"]["count"].as_u64().unwrap() >= 2,
            "{name}: {r:#}"
        );

        // The text report's contention sites hold the mutex's and none of the idle waits.
        let text = bin().arg("report").arg(&trace).output().unwrap();
        succeeded(&text);
        let text = String::from_utf8(text.stdout).unwrap();
        let top = text
            .split("Where threads wait: contention")
            .nth(1)
            .and_then(|t| t.split("\nIdle").next())
            .unwrap_or_else(|| panic!("no contention section: {text}"));
        assert!(top.contains("lock") && top.contains("take_lock"), "{text}");
        assert!(
            !top.contains("wait_for_the_end") && !top.contains("wait_on_semaphore"),
            "{text}"
        );
    }
}

/// `perf script` callchains of a `perf record --call-graph dwarf` on futex syscall entries: each
/// sample's frames, innermost first.
fn perf_chains(cmd: &[&str]) -> Vec<Vec<String>> {
    let data = tmp("perf.data");
    let st = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "syscalls:sys_enter_futex",
            "--call-graph",
            "dwarf",
            "-o",
        ])
        .arg(&data)
        .arg("--")
        .args(cmd)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("perf (Debian's linux-perf package)");
    assert!(st.success(), "perf record failed");
    let out = Command::new("perf")
        .args(["script", "-F", "ip,sym", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    succeeded(&out);
    String::from_utf8_lossy(&out.stdout)
        .split("\n\n")
        .map(|sample| {
            sample
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1).map(String::from))
                .collect()
        })
        .filter(|c: &Vec<String>| !c.is_empty())
        .collect()
}

#[test]
fn stacks_are_the_ones_perf_unwinds_from_dwarf() {
    require_privileges!();
    let exe = contend("contend-perf", "-fomit-frame-pointer");
    let exe = exe.to_str().unwrap();
    // The program's and glibc's frames each tool names the same way (glibc's internal aliases aside).
    let names = [
        "clone3",
        "start_thread",
        "worker",
        "do_work",
        "take_lock",
        "wait_for_the_end",
        "main",
    ];
    let keep = |frames: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        frames
            .filter(|f| names.contains(&f.as_str()))
            .cloned()
            .collect()
    };
    let perf: std::collections::BTreeSet<Vec<String>> = perf_chains(&[exe, "1"])
        .iter()
        .map(|c| keep(&mut c.iter()))
        .filter(|c| c.contains(&"take_lock".to_string()))
        .collect();
    let trace = record("contend-perf", &[], &[exe, "1"]);
    let ours: std::collections::BTreeSet<Vec<String>> = folded(&trace)
        .keys()
        .map(|f| keep(&mut f.iter().rev()))
        .filter(|c| c.contains(&"take_lock".to_string()))
        .collect();
    let expected = ["take_lock", "do_work", "worker", "start_thread", "clone3"];
    assert!(
        perf.contains(&expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        "perf: {perf:?}"
    );
    assert_eq!(ours, perf, "ours (innermost first) vs perf's");
}

#[test]
fn a_rust_release_build_unwinds_through_std_and_parking_lot_and_their_mutexes_are_contention() {
    require_privileges!();
    let exe = common::release_workload();
    let exe = exe.to_str().unwrap();
    let trace = record(
        "rust-release",
        &[],
        &[exe, "--contend", "1", "--threads", "4"],
    );
    let stacks = folded(&trace);
    let share = share_with(
        &stacks,
        "lock_contended",
        &["futex_wait", "futex_workload::contend", "start_thread"],
    );
    assert!(share >= 0.95, "{:.1}%: {stacks:#?}", share * 100.0);
    // With frame pointers only, the kernel's walk skips the functions that call glibc's syscall().
    let fp = folded(&record(
        "rust-release-fp",
        &["--unwind", "fp"],
        &[exe, "--contend", "1", "--threads", "4"],
    ));
    assert!(
        !fp.keys().flatten().any(|f| f.contains("lock_contended")),
        "frame pointers found lock_contended: the comparison no longer shows what --unwind dwarf adds"
    );
    contention_waited_in_the_workload(&trace);
    // parking_lot's Mutex, as programs we did not write use it: through its parking to the caller.
    let trace = record(
        "parking-lot",
        &[],
        &[exe, "--parking-lot", "1", "--threads", "4"],
    );
    let stacks = folded(&trace);
    let share = share_with(
        &stacks,
        "RawMutex::lock_slow",
        &[
            "parking_lot_core::parking_lot::park",
            "futex_workload::",
            "start_thread",
        ],
    );
    assert!(share >= 0.95, "{:.1}%: {stacks:#?}", share * 100.0);
    contention_waited_in_the_workload(&trace);
}

/// The report of `trace` classes its mutex word as contention (not idle), and names the workload's own
/// function as where the threads waited.
fn contention_waited_in_the_workload(trace: &Path) {
    let r = report_json(trace);
    let m = word(&r, "mutex");
    assert_eq!(m["idle"], false, "{m:#}");
    assert!(
        m["waited_in"]
            .as_str()
            .is_some_and(|f| f.starts_with("futex_workload::")),
        "{m:#}"
    );
}

#[test]
fn stripped_binaries_use_their_debug_file_or_show_module_offsets() {
    require_privileges!();
    let exe = contend("contend-stripped", "-g");
    let debug = exe.with_extension("debug");
    let bare = tmp("contend-bare");
    let run = |cmd: &str, args: &[&std::ffi::OsStr]| {
        let st = Command::new(cmd).args(args).status().unwrap();
        assert!(st.success(), "{cmd} {args:?}");
    };
    let keep_debug = format!("--add-gnu-debuglink={}", debug.display());
    run(
        "objcopy",
        &[
            "--only-keep-debug".as_ref(),
            exe.as_os_str(),
            debug.as_os_str(),
        ],
    );
    run("strip", &["--strip-all".as_ref(), exe.as_os_str()]);
    std::fs::copy(&exe, &bare).unwrap();
    run("objcopy", &[keep_debug.as_ref(), exe.as_os_str()]);
    // Its debug file, found through .gnu_debuglink: the functions have their names.
    let stacks = folded(&record("stripped", &[], &[exe.to_str().unwrap(), "1"]));
    let lock = ["pthread_mutex_lock", "take_lock", "do_work", "start_thread"];
    assert!(
        share_with(&stacks, "lll_lock_wait", &lock) >= 0.95,
        "{stacks:#?}"
    );
    // No debug file: the program's frames are module+offset, still between glibc's.
    let stacks = folded(&record("bare", &[], &[bare.to_str().unwrap(), "1"]));
    let lock = ["pthread_mutex_lock", "contend-bare+0x", "start_thread"];
    assert!(
        share_with(&stacks, "lll_lock_wait", &lock) >= 0.95,
        "{stacks:#?}"
    );
    let deep = stacks
        .keys()
        .filter(|f| f.iter().any(|n| n.contains("lll_lock_wait")))
        .all(|f| {
            f.iter()
                .filter(|n| n.starts_with("contend-bare+0x"))
                .count()
                >= 3
        });
    assert!(
        deep,
        "worker, do_work and take_lock as offsets: {stacks:#?}"
    );
}
