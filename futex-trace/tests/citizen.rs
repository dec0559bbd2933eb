//! A good citizen on a production host: other tools keep working while futex-trace runs, no file is
//! ever harmed, and the user is told what futex-trace did. Root-only tests skip with a reason (fail under
//! CI=true).

#[macro_use]
mod common;
use common::{bin, tracing_started};

use std::process::{Command, Stdio};

/// `perf stat -x,` of `cmd`: the count of each event, by name.
fn perf_counts(events: &[&str], cmd: &[&str]) -> Vec<(String, u64)> {
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", &events.join(",")])
        .arg("--")
        .args(cmd)
        .stdout(Stdio::null())
        .output()
        .expect("run perf (apt-get install linux-perf)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // CSV lines: value,unit,event,...
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let v = f.first()?.trim().parse::<u64>().ok()?;
            Some((f.get(2)?.to_string(), v))
        })
        .collect()
}

#[test]
fn perf_sees_every_futex_and_scheduler_event_while_futex_trace_runs() {
    require_privileges!();
    let workload = common::workload();
    let events = ["syscalls:sys_enter_futex", "sched:sched_switch"];
    let run = || perf_counts(&events, &[workload.to_str().unwrap(), "--pingpong", "1"]);
    let count = |c: &[(String, u64)], e: &str| {
        c.iter()
            .find(|(n, _)| n == e)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("perf gave no count of {e}: {c:?}"))
    };
    let alone = run();
    // futex-trace traces another process (an idle one): its programs run on every futex call and every
    // context switch of the machine, the workload's included, and must hand each on to perf.
    let mut idle = Command::new("sleep").arg("60").spawn().unwrap();
    let mut tracer = bin()
        .args(["stream", "-p", &idle.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _err = tracing_started(&mut tracer);
    let beside = run();
    let _ = tracer.kill();
    let _ = tracer.wait();
    let _ = idle.kill();
    let _ = idle.wait();
    for e in events {
        let (a, b) = (count(&alone, e), count(&beside, e));
        // The ping-pong makes some hundred thousand futex calls and as many switches a second; runs differ
        // by their rate (a busier machine switches it more), not by a factor below (a hidden event
        // counts 0).
        assert!(a > 1000, "{e}: {a} alone");
        assert!(b * 4 > a, "{e}: {a} without futex-trace, {b} while it runs");
    }
}

/// `record --demo -d 300ms -o OUT`, with stdout piped: its output.
fn record_demo(out: &std::path::Path) -> std::process::Output {
    bin()
        .args(["record", "--demo", "-d", "300ms", "-o"])
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// A scratch directory of this test's own.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("futex-trace-citizen-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// True when `bytes` are a whole recording: `report` reads it without a warning of damage.
fn is_recording(dir: &std::path::Path, bytes: &[u8]) -> bool {
    let f = dir.join("check.ftr");
    std::fs::write(&f, bytes).unwrap();
    let out = bin().args(["report", "--json"]).arg(&f).output().unwrap();
    std::fs::remove_file(&f).ok();
    out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("warning")
}

#[test]
fn a_device_a_fifo_and_dev_stdout_are_written_as_streams_never_renamed() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch(function_name!());
    // A char device: written, still a device, nothing kept beside it.
    let out = record_demo(std::path::Path::new("/dev/null"));
    common::succeeded(&out);
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!std::path::Path::new("/dev/null.old").exists());
    assert!(!std::path::Path::new("/dev/null.partial").exists());
    // A FIFO: its reader gets the whole recording; it is still a FIFO.
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = record_demo(&fifo);
    common::succeeded(&out);
    let bytes = reader.join().unwrap();
    assert!(
        is_recording(&dir, &bytes),
        "the FIFO's reader got {} bytes",
        bytes.len()
    );
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(!dir.join("fifo.old").exists());
    // /dev/stdout: the recording on our standard output (a pipe), and nothing else there.
    let out = record_demo(std::path::Path::new("/dev/stdout"));
    common::succeeded(&out);
    assert!(
        is_recording(&dir, &out.stdout),
        "{} bytes on stdout",
        out.stdout.len()
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_full_disk_three_times_in_a_row_loses_no_recording() {
    require_privileges!();
    let dir = scratch(function_name!());
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&disk)
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mount a 1 MB tmpfs on {}",
        disk.display()
    );
    let result = std::panic::catch_unwind(|| {
        // Two recordings already there: x.ftr and x.ftr.old.
        let x = disk.join("x.ftr");
        common::succeeded(&record_demo(&x));
        common::succeeded(&record_demo(&x));
        let (first, second) = (
            std::fs::read(disk.join("x.ftr.old")).unwrap(),
            std::fs::read(&x).unwrap(),
        );
        assert!(is_recording(&dir, &first) && is_recording(&dir, &second));
        // Fill the disk to its last byte.
        let mut filler = std::fs::File::create(disk.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
        while std::io::Write::write_all(&mut filler, &[0]).is_ok() {}
        drop(filler);
        for run in 1..=3 {
            let out = record_demo(&x);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "run {run} on a full disk succeeded: {err}"
            );
            let line = err.lines().find(|l| l.contains("error")).unwrap_or("");
            assert!(
                line.contains("x.ftr"),
                "run {run}: the error names the file: {err}"
            );
            assert_eq!(
                std::fs::read(&x).unwrap(),
                second,
                "run {run}: x.ftr changed"
            );
            assert_eq!(
                std::fs::read(disk.join("x.ftr.old")).unwrap(),
                first,
                "run {run}: x.ftr.old changed"
            );
        }
    });
    Command::new("umount").arg(&disk).status().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// `record ARGS -d 300ms -o scratch` (as root): its exit code and stderr.
fn record_briefly(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(["record", "-o"])
        .arg(dir.join("t.ftr"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_user_is_told_what_tracing_a_name_a_thread_or_a_parent_means() {
    require_privileges!();
    let dir = scratch(function_name!());
    // A command that fails: futex-trace exits with its status, and says so.
    let (code, err) = record_briefly(&dir, &["--", "sh", "-c", "exit 3"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("futex-trace exits with 3"), "{err}");
    // A name nothing has: said, and tracing waits for one.
    let (code, err) = record_briefly(&dir, &["--comm", "no-such-name", "-d", "300ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("no process is named no-such-name yet"),
        "{err}"
    );
    // A zombie of the name (a child of ours that exited, not reaped) does not stop --comm.
    let mut zombie = Command::new("sleep").arg("0").spawn().unwrap();
    let zpid = zombie.id();
    while !std::fs::read_to_string(format!("/proc/{zpid}/stat"))
        .unwrap()
        .contains(") Z")
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (code, err) = record_briefly(&dir, &["--comm", "sleep", "-d", "300ms"]);
    assert_eq!(
        code,
        Some(0),
        "a zombie named sleep refused --comm sleep: {err}"
    );
    zombie.wait().unwrap();
    // A thread's id: the status names its process, by pid and name.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid(2) has no arguments and cannot fail.
        tx.send(unsafe { libc::gettid() }).unwrap();
        stop_rx.recv().ok();
    });
    let tid = rx.recv().unwrap().to_string();
    let me = std::process::id();
    let (code, err) = record_briefly(&dir, &["-p", &tid, "-d", "300ms"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(&format!("tracing pid {me} (")), "{err}");
    // A parent whose children do the work: said, with what traces them.
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let (code, err) = record_briefly(&dir, &["-p", &me.to_string(), "-d", "300ms"]);
    child.kill().ok();
    child.wait().ok();
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("pid {me} has ")) && err.contains("--comm"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// The capability sets of every thread of `pid`, and its user ids, from /proc.
fn credentials(pid: u32) -> (Vec<String>, String) {
    let mut caps = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap_or_default();
        for l in status
            .lines()
            .filter(|l| l.starts_with("CapEff") || l.starts_with("CapPrm"))
        {
            caps.push(l.split_whitespace().nth(1).unwrap().to_string());
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    (caps, uid)
}

#[test]
fn serve_becomes_the_traced_processes_user_with_no_capability_and_keeps_serving() {
    require_privileges!();
    use std::io::BufRead;
    // A workload run as nobody, traced by pid.
    let mut workload = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(common::workload())
        .args(["--contend", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = workload.id().to_string();
    let (served, mut err) = common::serve::Served::start(&["-p", &pid]);
    let mut line = String::new();
    while !line.contains("serving as") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "serve ended early");
    }
    assert!(line.contains("serving as nobody (uid 65534)"), "{line}");
    let (caps, uid) = credentials(served.child.id());
    assert!(
        caps.iter().all(|c| c.chars().all(|d| d == '0')),
        "a thread kept a capability: {caps:?}"
    );
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        ["Uid:", "65534", "65534", "65534", "65534"]
    );
    // Still tracing: the counts grow, and stacks are named.
    let slept = |body: &[u8]| -> f64 {
        String::from_utf8_lossy(body)
            .lines()
            .find_map(|l| l.strip_prefix("futex_waits_slept_total "))
            .map_or(0.0, |v| v.parse().unwrap())
    };
    let before = slept(&served.get("/metrics").1);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after = slept(&served.get("/metrics").1);
    assert!(
        after > before,
        "the counts stopped at {before} once root was shed"
    );
    let (_, text) = served.get("/debug/pprof/block?debug=1");
    assert!(
        String::from_utf8_lossy(&text).contains("Mutex"),
        "stacks are no longer named"
    );
    drop(served);
    workload.kill().ok();
    workload.wait().ok();
}

#[test]
fn listening_beyond_loopback_is_warned_of() {
    use std::io::BufRead;
    let mut child = bin()
        .args(["serve", "--demo", "--listen", "0.0.0.0:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    let mut line = String::new();
    while !said.contains("serving as") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "serve ended early: {said}"
        );
        said.push_str(&line);
    }
    child.kill().ok();
    child.wait().ok();
    assert!(
        said.contains("warning: listening on 0.0.0.0:") && said.contains("anyone who can reach it"),
        "{said}"
    );
}

#[test]
fn a_binary_replaced_on_disk_is_named_from_the_copy_that_runs() {
    require_privileges!();
    let dir = scratch(function_name!());
    // As a package upgrade does: the running binary's file is replaced (a new inode under its name).
    let exe = dir.join("workload");
    std::fs::copy(common::workload(), &exe).unwrap();
    let mut running = Command::new(&exe)
        .args(["--contend", "20"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let new = dir.join("workload.new");
    std::fs::copy("/bin/true", &new).unwrap();
    std::fs::rename(&new, &exe).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", running.id())).unwrap();
    assert!(maps.contains("workload (deleted)"), "{maps}");
    let trace = dir.join("t.ftr");
    let out = bin()
        .args(["record", "-p", &running.id().to_string(), "-d", "1s", "-o"])
        .arg(&trace)
        .output()
        .unwrap();
    running.kill().ok();
    running.wait().ok();
    common::succeeded(&out);
    let r = common::report_json(&trace);
    let top = r["sites"][0]["frames"].to_string();
    assert!(
        top.contains("futex_workload::"),
        "the workload's frames: {top}"
    );
    assert!(
        r["stacks_truncated_share"].as_f64().unwrap() < 0.1,
        "stacks unwound whole through the replaced binary: {}",
        r["stacks_truncated_share"]
    );
    std::fs::remove_dir_all(dir).ok();
}
