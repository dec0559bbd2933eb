//! Tracing live processes through eBPF: by pid, or a command started (and followed, with its children)
//! here. Folds into a [`Model`], collects stacks and process maps, symbolizes at the end.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use crate::ebpf::{KernelTracer, RunOptions, Status, StopReason, TraceError, TraceTarget};
use crate::event::{Event, EventKind};
use crate::model::{BucketOrigin, Model};
use crate::stacks::StackTable;
use crate::tracefile::{TraceEnd, TraceMeta};

/// What to trace.
#[derive(Clone, Debug)]
pub enum LiveTarget {
    /// Running processes (all their threads).
    Pids(Vec<u32>),
    /// A command line to start, traced from its first instruction with every process it forks.
    Command(Vec<String>),
}

/// Everything a live trace gathered.
pub struct LiveResult {
    pub model: Model,
    pub stacks: StackTable,
    pub meta: TraceMeta,
    pub end: TraceEnd,
    /// The started command's exit status (for `LiveTarget::Command`), if it ended.
    pub exit_status: Option<ExitStatus>,
    /// Share of waiting time whose stacks have ≤ 2 frames (frame pointers missing).
    pub short_stack_share: f64,
}

/// The futex-core table size kernel addresses are hashed into.
pub const BUCKETS: usize = 64;

fn mono_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A process is gone when /proc has no entry for it or it is a zombie.
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

/// Starts `argv` held just before `exec`, so that the tracer knows its pid before it runs a single
/// instruction; returns the child once `release` has been called with the pid and let it go.
fn spawn_gated(
    argv: &[String],
    release: &mut dyn FnMut(u32) -> Result<(), TraceError>,
) -> Result<Child, TraceError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| TraceError("no command given after --".into()))?;
    let pipe =
        |what| std::io::pipe().map_err(|e| TraceError(format!("cannot create a {what} pipe: {e}")));
    let (mut pid_r, pid_w) = pipe("pid")?;
    let (gate_r, mut gate_w) = pipe("gate")?;
    let (pid_fd, gate_fd) = (pid_w.as_raw_fd(), gate_r.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec the closure only calls getpid, write and read on two pipe fds
    // that stay open in the child (their owners live in the closure, moved into `cmd`): all
    // async-signal-safe, no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            let _keep = (&pid_w, &gate_r);
            let pid = libc::getpid() as u32;
            let b = pid.to_le_bytes();
            if libc::write(pid_fd, b.as_ptr().cast(), 4) != 4 {
                return Err(std::io::Error::last_os_error());
            }
            let mut x = 0u8;
            libc::read(gate_fd, (&raw mut x).cast(), 1);
            Ok(())
        });
    }
    // `spawn` returns only after exec; the child waits for the gate, so spawn on another thread.
    let spawner = std::thread::spawn(move || cmd.spawn());
    let mut b = [0u8; 4];
    let got_pid = pid_r.read_exact(&mut b).is_ok();
    let released = if got_pid {
        let r = release(u32::from_le_bytes(b));
        let _ = gate_w.write_all(&[1]);
        r
    } else {
        Ok(())
    };
    drop(gate_w);
    let child = spawner
        .join()
        .map_err(|_| TraceError("the thread starting the command panicked".into()))?
        .map_err(|e| TraceError(format!("cannot run `{program}`: {e}")))?;
    released?;
    Ok(child)
}

/// How a live trace runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct LiveOptions {
    /// Stop after this long (default: until `stop`, or the traced processes are gone).
    pub duration: Option<Duration>,
    /// Print a start line and a status line each second on stderr.
    pub status: bool,
    /// Capture no user stacks: the cheapest tracing, no flamegraphs or top stacks.
    pub no_stacks: bool,
}

/// Traces `target` until `duration` passes, `stop` is set, or the traced processes are gone. Each
/// batch of events is folded into the model and handed to `on_batch` first (which returns false to
/// stop, e.g. when its output closed). Shows a status line on stderr each second if `status`.
pub fn trace(
    target: &LiveTarget,
    opts: LiveOptions,
    stop: &AtomicBool,
    on_batch: &mut dyn FnMut(&[Event]) -> bool,
) -> Result<LiveResult, TraceError> {
    let LiveOptions {
        duration,
        status,
        no_stacks,
    } = opts;
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let started_mono_ns = mono_now_ns();
    let (pids, follow) = match target {
        LiveTarget::Pids(p) => (p.clone(), false),
        LiveTarget::Command(_) => (Vec::new(), true),
    };
    let mut tracer = KernelTracer::start(
        &TraceTarget {
            pids: pids.clone(),
            follow_forks: follow,
            no_stacks,
        },
        BUCKETS,
    )?;
    if !tracer.futex2 && status {
        eprintln!(
            "futex-trace: this kernel has no futex2 syscalls (futex_wait/futex_wake/futex_requeue, \
             Linux 6.7+): only futex(2) is traced"
        );
    }
    let mut stacks = StackTable::default();
    let mut child = None;
    let mut traced_pids = pids.clone();
    if let LiveTarget::Command(argv) = target {
        let c = spawn_gated(argv, &mut |pid| tracer.add_pid(pid))?;
        traced_pids.push(c.id());
        child = Some(c);
    }
    // A command's maps are read at its first event (after exec and the dynamic loader), not now.
    let mut seen_pids: BTreeSet<u32> = BTreeSet::new();

    let mut model = Model::new(BUCKETS, BucketOrigin::FutexCoreHash);
    let mut stack_ids: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut exit_status = None;
    let tty = std::io::stderr().is_terminal();
    let what = match target {
        LiveTarget::Pids(p) => format!(
            "pid {}",
            p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
        ),
        LiveTarget::Command(argv) => format!("`{}`", argv.join(" ")),
    };
    if status {
        match duration {
            Some(d) => eprintln!(
                "futex-trace: tracing {what} for {} (Ctrl-C stops early)",
                humantime::format_duration(d)
            ),
            None => eprintln!("futex-trace: tracing {what} (Ctrl-C stops)"),
        }
    }
    let start = Instant::now();
    let mut last_refresh = Instant::now();
    let mut on_events = |batch: &[Event]| -> bool {
        // Libraries loaded since (dlopen) show in the maps: read them again once a second.
        if last_refresh.elapsed() >= Duration::from_secs(1) {
            last_refresh = Instant::now();
            for &p in &seen_pids {
                stacks.refresh_process(p);
            }
        }
        for e in batch {
            model.apply(e);
            if e.pid != 0 && seen_pids.insert(e.pid) {
                stacks.refresh_process(e.pid);
            }
            let (k, w) = match e.kind {
                EventKind::WaitStart { kernel, .. }
                | EventKind::Wake { kernel, .. }
                | EventKind::Requeue { kernel, .. } => (kernel, None),
                EventKind::WaitEnd { kernel, waker, .. } => (kernel, waker),
                _ => (None, None),
            };
            if let Some(id) = k.and_then(|k| k.stack) {
                stack_ids.insert((e.pid, id));
            }
            if let Some(id) = w.and_then(|w| w.stack) {
                stack_ids.insert((e.pid, id));
            }
        }
        on_batch(batch)
    };
    let mut targets_gone = || match child.as_mut() {
        Some(c) => match c.try_wait() {
            Ok(Some(st)) => {
                exit_status = Some(st);
                true
            }
            Ok(None) => false,
            Err(_) => true,
        },
        None => traced_pids.iter().all(|&p| process_gone(p)),
    };
    let mut on_status = |s: &Status| {
        if !status {
            return;
        }
        let line = format!(
            "tracing {what}: {:.0} s · {:.0} events/s · lost {} · stack errors {} · BPF {:.2} ms/s",
            s.elapsed.as_secs_f64(),
            s.events_per_sec,
            s.counters.lost_events,
            s.counters.stack_errors,
            s.bpf_ns_per_sec / 1e6
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    };
    let reason = tracer.run(
        RunOptions {
            duration,
            stop,
            targets_gone: &mut targets_gone,
            on_status: &mut on_status,
        },
        &mut on_events,
    )?;
    if status && tty {
        eprintln!();
    }
    // The maps of processes still running may have grown (dlopen) since first seen.
    for &p in &seen_pids {
        if !process_gone(p) {
            stacks.refresh_process(p);
        }
    }
    for &(pid, id) in &stack_ids {
        if let Some(ips) = tracer.stack(id) {
            stacks.stacks.insert((pid, id), ips);
        }
    }
    stacks.symbolize();
    let counters = tracer.counters();
    let short = stacks.short_stack_share(model.stacks.iter().map(|(k, s)| (k, s.wait_ns)));
    if let Some(mut c) = child {
        if exit_status.is_none() && reason != StopReason::TargetsExited {
            // We stop tracing; the command keeps running as it would have without us.
            if status {
                eprintln!(
                    "futex-trace: stopped tracing; `{}` (pid {}) is still running",
                    match target {
                        LiveTarget::Command(a) => a.join(" "),
                        LiveTarget::Pids(_) => String::new(),
                    },
                    c.id()
                );
            }
        } else if exit_status.is_none() {
            exit_status = c.wait().ok();
        }
    }
    let elapsed = start.elapsed();
    let mut all_pids: Vec<u32> = traced_pids.clone();
    all_pids.extend(seen_pids.iter().filter(|p| !traced_pids.contains(p)));
    let end = TraceEnd {
        pids: all_pids,
        duration_s: elapsed.as_secs_f64(),
        events: model.totals.events,
        lost_events: model.totals.lost_events,
        stack_errors: counters.stack_errors,
        reason: match reason {
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::TargetsExited => "traced processes exited",
            StopReason::Consumer => "output closed",
        }
        .into(),
    };
    let meta = TraceMeta {
        source: "kernel futexes (eBPF)".into(),
        pids: traced_pids,
        command: match target {
            LiveTarget::Command(a) => Some(a.clone()),
            LiveTarget::Pids(_) => None,
        },
        buckets: BUCKETS,
        bucket_origin: BucketOrigin::FutexCoreHash,
        started_unix_s,
        started_mono_ns,
    };
    Ok(LiveResult {
        model,
        stacks,
        meta,
        end,
        exit_status,
        short_stack_share: short,
    })
}
