//! bpftrace as an independent counter of a process's futex calls: the tracer bench compares futex-trace's
//! cost with it, and a test compares futex-trace's counts with its counts on the same run.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// A bpftrace one-liner that counts each futex call of the process `$1` at entry and at return per (pid,
/// address), remembering the address per thread in between (as futex-trace's own in-flight map does).
/// With `ret`, also per operation: the calls, and what they returned (`@calls`, `@eagain`, `@timeouts`,
/// `@returned`: the sum of positive returns).
pub(crate) fn script(ret: bool) -> String {
    let extra = if ret {
        "$o = @op[tid] - 1; @calls[$o] = count(); \
         if (args->ret == -11) { @eagain[$o] = count(); } \
         if (args->ret == -110) { @timeouts[$o] = count(); } \
         if (args->ret > 0) { @returned[$o] = sum(args->ret); } delete(@op[tid]);"
    } else {
        ""
    };
    format!(
        "tracepoint:syscalls:sys_enter_futex /pid == $1/ {{ @enter[pid, args->uaddr] = count(); \
         @addr[tid] = (uint64)args->uaddr; @op[tid] = (args->op & 127) + 1; }} \
         tracepoint:syscalls:sys_exit_futex /pid == $1 && @addr[tid] != 0/ {{ \
         @exit[pid, @addr[tid]] = count(); delete(@addr[tid]); {extra} }}"
    )
}

/// Whether bpftrace is installed; if not, test `name` is skipped with a printed reason, and fails
/// instead under CI=true (`.ci/run` installs it).
pub(crate) fn installed(name: &str) -> bool {
    if Command::new("bpftrace").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{name}: CI must have bpftrace (.ci/run installs it)"
    );
    eprintln!("SKIPPED {name}: bpftrace is not installed (apt install bpftrace)");
    false
}

/// bpftrace, attached to a process.
pub(crate) struct Bpftrace {
    child: std::process::Child,
    /// Its standard output, read to the end in the background (the maps, printed when it stops).
    out: std::sync::mpsc::Receiver<String>,
}

impl Bpftrace {
    /// Starts bpftrace with [`script`] on `pid` and returns once its probes are attached.
    pub(crate) fn start(pid: u32, ret: bool) -> Bpftrace {
        Bpftrace::start_script(pid, &script(ret))
    }

    /// Starts bpftrace with `script` (`$1`: `pid`) and returns once its probes are attached.
    pub(crate) fn start_script(pid: u32, script: &str) -> Bpftrace {
        use std::io::BufRead;
        let mut child = Command::new("bpftrace")
            .arg("-e")
            .arg(script)
            .arg(pid.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bpftrace (apt install bpftrace)");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("Attaching") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "bpftrace ended early"
            );
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut rest);
            let _ = tx.send(rest);
        });
        Bpftrace { child, out: rx }
    }

    /// Stops it (SIGINT: it prints its maps) and returns what it printed. bpftrace prints "Attaching"
    /// before it attaches, and a SIGINT that arrives while it attaches is lost (it then waits forever,
    /// seen in a CI-like run): so SIGINT is sent again every half second until it ends, and after 20 s
    /// it is killed (its counts are then missing, which the caller's comparison reports).
    pub(crate) fn stop(mut self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
            let sent = std::time::Instant::now();
            while sent.elapsed() < std::time::Duration::from_millis(500) {
                if self.child.try_wait().unwrap().is_some() {
                    return self.out.recv().unwrap_or_default();
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return self.out.recv().unwrap_or_default();
            }
        }
    }
}

/// `@name[key]: value` lines of bpftrace's output, summed by key.
pub(crate) fn map(out: &str, name: &str) -> BTreeMap<i64, u64> {
    let mut m = BTreeMap::new();
    for l in out.lines() {
        let Some(rest) = l.strip_prefix(&format!("@{name}[")) else {
            continue;
        };
        if let Some((k, v)) = rest.split_once("]: ") {
            if let (Ok(k), Ok(v)) = (k.trim().parse::<i64>(), v.trim().parse::<u64>()) {
                *m.entry(k).or_default() += v;
            }
        }
    }
    m
}

/// From the output of a `ret` script: waits (FUTEX_WAIT, FUTEX_WAIT_BITSET), those that returned EAGAIN,
/// those that timed out, wakes (FUTEX_WAKE, FUTEX_WAKE_BITSET) and the waiters they woke: what
/// futex-trace's `totals` count as `waits`, `mismatches`, `timeouts`, `wakes`, `woken` on a process that
/// makes no other futex calls.
pub(crate) fn totals(out: &str) -> [u64; 5] {
    let sum = |m: &BTreeMap<i64, u64>, ops: &[i32]| -> u64 {
        ops.iter()
            .map(|o| m.get(&i64::from(*o)).copied().unwrap_or(0))
            .sum()
    };
    let waits = [libc::FUTEX_WAIT, libc::FUTEX_WAIT_BITSET];
    let wakes = [libc::FUTEX_WAKE, libc::FUTEX_WAKE_BITSET];
    [
        sum(&map(out, "calls"), &waits),
        sum(&map(out, "eagain"), &waits),
        sum(&map(out, "timeouts"), &waits),
        sum(&map(out, "calls"), &wakes),
        sum(&map(out, "returned"), &wakes),
    ]
}
