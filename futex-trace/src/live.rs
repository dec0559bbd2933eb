//! Tracing live processes through eBPF: by pid, or a command started (and followed, with its children)
//! here. Folds into a [`Model`], collects stacks and process maps, symbolizes at the end.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Read, Write};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::ebpf::{
    KernelTracer, RunOptions, StackMap, Status, StopReason, TraceError, TraceTarget,
};
use crate::event::{Event, EventKind};
use crate::lock;
use crate::model::{BucketOrigin, Model};
use crate::stacks::{new_symbolizer, StackTable};
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
}

/// What a live trace shares with its readers (a dashboard) while it runs: the model, folded on the
/// tracer's thread, and the stacks, resolved and symbolized on a thread of their own.
#[derive(Clone)]
pub struct Shared {
    pub model: Arc<Mutex<Model>>,
    pub stacks: Arc<Mutex<StackTable>>,
    /// The tracer's status, updated once a second.
    pub status: Arc<Mutex<Status>>,
}

impl Shared {
    pub fn new() -> Self {
        Self::with_origin(BucketOrigin::FutexCoreHash)
    }

    /// For a USDT trace, `BucketOrigin::FutexCore`: the buckets are futex-core's own queues.
    pub fn with_origin(origin: BucketOrigin) -> Self {
        Shared {
            model: Arc::new(Mutex::new(Model::new(BUCKETS, origin))),
            stacks: Arc::default(),
            status: Arc::default(),
        }
    }
}

impl Default for Shared {
    fn default() -> Self {
        Self::new()
    }
}

enum ResolverMsg {
    /// A process seen for the first time: read its maps now (it may not live long).
    Pid(u32),
    /// Stack ids seen in events.
    Ids(Vec<(u32, u32)>),
    /// Futex words seen waited on (named if they are statics).
    Addrs(Vec<(u32, u64)>),
    /// Resolve everything pending now, then answer.
    Flush(mpsc::Sender<()>),
}

/// Reads process maps, fetches stack frames from the kernel's map and symbolizes them, off the tracer's
/// thread (symbolizing a large binary the first time takes a while), publishing into `Shared::stacks`.
struct Resolver {
    tx: mpsc::Sender<ResolverMsg>,
    handle: std::thread::JoinHandle<()>,
}

impl Resolver {
    fn spawn(map: StackMap, out: Arc<Mutex<StackTable>>) -> Resolver {
        let (tx, rx) = mpsc::channel::<ResolverMsg>();
        let handle = std::thread::Builder::new()
            .name("futex-stacks".into())
            .spawn(move || {
                let symbolizer = new_symbolizer();
                let mut table = StackTable::default();
                let mut pending: BTreeSet<(u32, u32)> = BTreeSet::new();
                let mut pending_addrs: Vec<(u32, u64)> = Vec::new();
                let mut pids: BTreeSet<u32> = BTreeSet::new();
                let mut last = Instant::now();
                loop {
                    let mut flush = None;
                    match rx.recv_timeout(Duration::from_millis(250)) {
                        Ok(ResolverMsg::Pid(p)) => {
                            table.refresh_process(p);
                            pids.insert(p);
                        }
                        Ok(ResolverMsg::Ids(ids)) => pending.extend(ids),
                        Ok(ResolverMsg::Addrs(a)) => pending_addrs.extend(a),
                        Ok(ResolverMsg::Flush(done)) => flush = Some(done),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if flush.is_none() && last.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    last = Instant::now();
                    // Libraries loaded since (dlopen) show in the maps: read them again.
                    for &p in &pids {
                        if !process_gone(p) {
                            table.refresh_process(p);
                        }
                    }
                    let mut new = false;
                    for key in std::mem::take(&mut pending) {
                        if table.stacks.contains_key(&key) {
                            continue;
                        }
                        if let Some(ips) = map.get(key.1) {
                            table.stacks.insert(key, ips);
                            new = true;
                        }
                    }
                    if new {
                        table.symbolize_with(&symbolizer);
                    }
                    if !pending_addrs.is_empty() {
                        table.symbolize_addresses(&std::mem::take(&mut pending_addrs), &symbolizer);
                    }
                    *lock(&out) = table.clone();
                    if let Some(done) = flush {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn the stack resolver");
        Resolver { tx, handle }
    }

    fn send(&self, m: ResolverMsg) {
        let _ = self.tx.send(m);
    }

    /// Resolves what is pending and stops.
    fn finish(self) {
        let (done_tx, done_rx) = mpsc::channel();
        self.send(ResolverMsg::Flush(done_tx));
        let _ = done_rx.recv();
        drop(self.tx);
        let _ = self.handle.join();
    }
}

/// The futex-core table size kernel addresses are hashed into.
pub const BUCKETS: usize = 64;

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

/// The file a command name runs: itself if it has a `/`, else the first match on `PATH`.
fn resolve_command(name: &str) -> Result<std::path::PathBuf, TraceError> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = std::path::PathBuf::from(name);
        return if runnable(&p) {
            Ok(p)
        } else {
            Err(TraceError(format!(
                "cannot run `{name}`: no such executable file"
            )))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
        .ok_or_else(|| TraceError(format!("cannot run `{name}`: not found on PATH")))
}

/// Starts `argv` held just before `exec`, so that the tracer knows its pid before it runs a single
/// instruction; returns the child once `release` has been called with the pid and let it go.
fn spawn_gated(
    argv: &[String],
    log: Option<&std::path::Path>,
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
    if let Some(log) = log {
        let f = std::fs::File::create(log)
            .map_err(|e| TraceError(format!("cannot write {}: {e}", log.display())))?;
        let f2 = f
            .try_clone()
            .map_err(|e| TraceError(format!("cannot write {}: {e}", log.display())))?;
        cmd.stdin(std::process::Stdio::null()).stdout(f).stderr(f2);
    }
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
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    /// A started command's stdout and stderr go to this file instead of ours (a dashboard owns the
    /// terminal); its stdin is then /dev/null.
    pub command_log: Option<std::path::PathBuf>,
    /// Stop after this long (default: until `stop`, or the traced processes are gone).
    pub duration: Option<Duration>,
    /// Print a start line and a status line each second on stderr.
    pub status: bool,
    /// Capture no user stacks: the cheapest tracing, no flamegraphs or top stacks.
    pub no_stacks: bool,
    /// Trace futex-core's own probes (USDT) in the traced program instead of its kernel futexes: the
    /// buckets are then futex-core's real sleep queues.
    pub usdt: bool,
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
    let origin = if opts.usdt {
        BucketOrigin::FutexCore
    } else {
        BucketOrigin::FutexCoreHash
    };
    trace_into(target, opts, stop, &Shared::with_origin(origin), on_batch)
}

/// As [`trace`], folding into `shared` (which a dashboard reads while the trace runs). The result holds
/// copies of the final model and stacks.
pub fn trace_into(
    target: &LiveTarget,
    opts: LiveOptions,
    stop: &AtomicBool,
    shared: &Shared,
    on_batch: &mut dyn FnMut(&[Event]) -> bool,
) -> Result<LiveResult, TraceError> {
    let LiveOptions {
        duration,
        status,
        no_stacks,
        command_log,
        usdt,
    } = opts;
    let usdt_binary = if usdt {
        Some(match target {
            LiveTarget::Pids(p) => std::path::PathBuf::from(format!("/proc/{}/exe", p[0])),
            LiveTarget::Command(argv) => resolve_command(&argv[0])?,
        })
    } else {
        None
    };
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let started_mono_ns = crate::clock_ns(libc::CLOCK_MONOTONIC);
    let (pids, follow) = match target {
        LiveTarget::Pids(p) => (p.clone(), false),
        LiveTarget::Command(_) => (Vec::new(), true),
    };
    let mut tracer = KernelTracer::start(
        &TraceTarget {
            pids: pids.clone(),
            follow_forks: follow,
            no_stacks,
            usdt: usdt_binary,
        },
        BUCKETS,
    )?;
    if !tracer.futex2 && status {
        eprintln!(
            "futex-trace: this kernel has no futex2 syscalls (futex_wait/futex_wake/futex_requeue, \
             Linux 6.7+): only futex(2) is traced"
        );
    }
    let resolver = Resolver::spawn(tracer.stack_map(), shared.stacks.clone());
    let mut child = None;
    let mut traced_pids = pids.clone();
    if let LiveTarget::Command(argv) = target {
        let c = spawn_gated(argv, command_log.as_deref(), &mut |pid| tracer.add_pid(pid))?;
        traced_pids.push(c.id());
        child = Some(c);
    }
    // A command's maps are read at its first event (after exec and the dynamic loader), not now.
    let mut seen_pids: BTreeSet<u32> = BTreeSet::new();

    let mut stack_ids: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut new_ids: Vec<(u32, u32)> = Vec::new();
    let mut addrs_seen: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut new_addrs: Vec<(u32, u64)> = Vec::new();
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
    let mut on_events = |batch: &[Event]| -> bool {
        lock(&shared.model).extend(batch);
        for e in batch {
            if e.pid != 0 && seen_pids.insert(e.pid) {
                resolver.send(ResolverMsg::Pid(e.pid));
            }
            if let EventKind::WaitStart { addr, .. } = e.kind {
                if addrs_seen.insert((e.pid, addr)) {
                    new_addrs.push((e.pid, addr));
                }
            }
            let (k, w) = match e.kind {
                EventKind::WaitStart { kernel, .. }
                | EventKind::Wake { kernel, .. }
                | EventKind::Requeue { kernel, .. } => (kernel, None),
                EventKind::WaitEnd { kernel, waker, .. } => (kernel, waker),
                _ => (None, None),
            };
            for id in [k.and_then(|k| k.stack), w.and_then(|w| w.stack)]
                .into_iter()
                .flatten()
            {
                if stack_ids.insert((e.pid, id)) {
                    new_ids.push((e.pid, id));
                }
            }
        }
        if !new_ids.is_empty() {
            resolver.send(ResolverMsg::Ids(std::mem::take(&mut new_ids)));
        }
        if !new_addrs.is_empty() {
            resolver.send(ResolverMsg::Addrs(std::mem::take(&mut new_addrs)));
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
    let mut hinted = false;
    let by_pid = matches!(target, LiveTarget::Pids(_));
    let mut on_status = |s: &Status| {
        *lock(&shared.status) = *s;
        if !status {
            return;
        }
        if by_pid && !hinted && s.events == 0 && s.elapsed >= Duration::from_secs(3) {
            hinted = true;
            eprintln!(
                "\nfutex-trace: no futex call from {what} yet: an idle process makes none; check it \
                 is the process you mean (a shell's `$!` after `cd dir && cmd &` is the shell, not \
                 cmd; `pgrep -f cmd` finds it)"
            );
        }
        let line = format!(
            "tracing {what}: {:.0} s · {:.0} events/s · lost {} · stack errors {}{} · BPF {:.2} ms/s",
            s.elapsed.as_secs_f64(),
            s.events_per_sec,
            s.counters.lost(),
            s.counters.stack_errors,
            match s.counters.inflight_full {
                0 => String::new(),
                n => format!(" · untraced calls {n}"),
            },
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
    resolver.finish();
    let stacks = lock(&shared.stacks).clone();
    let model = lock(&shared.model).clone();
    let counters = tracer.counters();
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
        untraced_calls: counters.inflight_full,
        reason: match reason {
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::TargetsExited => "traced processes exited",
            StopReason::Consumer => "output closed",
        }
        .into(),
        labels: Vec::new(),
    };
    let meta = TraceMeta {
        source: if usdt {
            "futex-core probes (USDT, eBPF)".into()
        } else {
            "kernel futexes (eBPF)".into()
        },
        pids: traced_pids,
        command: match target {
            LiveTarget::Command(a) => Some(a.clone()),
            LiveTarget::Pids(_) => None,
        },
        buckets: BUCKETS,
        bucket_origin: lock(&shared.model).origin,
        started_unix_s,
        started_mono_ns,
    };
    Ok(LiveResult {
        model,
        stacks,
        meta,
        end,
        exit_status,
    })
}
