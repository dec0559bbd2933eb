//! Live processes through eBPF: by pid, or a command started (and followed, with its children) here;
//! their kernel futexes, or futex-core's USDT probes in them.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::ebpf::{KernelTracer, StackOptions, TraceTarget};
use crate::event::{Event, EventKind};
use crate::model::BucketOrigin;
use crate::trace::{process_gone, Poll, Source, StackSource};
use crate::trace::{Control, Health, SourceEnd, StopReason, TraceMeta};
use crate::{Error, Result};

/// What to trace.
#[derive(Clone, Debug)]
pub enum LiveTarget {
    /// Running processes (all their threads).
    Pids(Vec<u32>),
    /// A command line to start, traced from its first instruction with every process it forks.
    Command(Vec<String>),
    /// Every process whose name (`/proc/PID/comm`, 15 characters) is this, now and as they start
    /// (looked for each second; their children too): a service that restarts stays traced.
    Comm(String),
}

/// The processes named `comm` now (names are cut to 15 characters by the kernel).
fn processes_named(comm: &str) -> Vec<u32> {
    let want: String = comm.chars().take(15).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end_matches('\n') == want)
        })
        // A zombie of that name (a backend that just ended) has nothing to trace: not a target.
        .filter(|pid| !crate::ebpf::is_zombie(*pid))
        .collect();
    pids.sort_unstable();
    pids
}

/// The child processes of process `pid` (of any of its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = tasks
        .filter_map(|t| {
            let t = t.ok()?.file_name();
            std::fs::read_to_string(format!("/proc/{pid}/task/{}/children", t.to_str()?)).ok()
        })
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .filter(|&c| !crate::ebpf::is_zombie(c))
        .collect();
    out.sort_unstable();
    out
}

impl LiveTarget {
    /// How messages name the target: "pid 12,13" or "`./server --port 0`".
    pub fn describe(&self) -> String {
        match self {
            // A thread's id names its process (the process is what is traced), with its name.
            LiveTarget::Pids(p) => format!(
                "pid {}",
                (p.iter())
                    .map(|&p| {
                        let tgid = crate::ebpf::resolve_pid(p).map_or(p, |(t, _)| t);
                        match std::fs::read_to_string(format!("/proc/{tgid}/comm")) {
                            Ok(comm) => format!("{tgid} ({})", comm.trim()),
                            Err(_) => tgid.to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            LiveTarget::Command(argv) => format!("`{}`", argv.join(" ")),
            LiveTarget::Comm(c) => format!("processes named {c}"),
        }
    }
}

/// Where a started command's output goes: never into ours.
#[derive(Clone, Debug, Default)]
pub enum CommandOutput {
    /// Its stdout to our stderr, its stderr and stdin ours: our stdout stays the tool's output.
    #[default]
    Stderr,
    /// Its stdout and stderr to this file, its stdin /dev/null (a dashboard owns the terminal).
    File(std::path::PathBuf),
}

/// How a live trace runs.
#[derive(Clone, Debug, Default)]
pub struct KernelOptions {
    /// Where a started command's output goes.
    pub command_output: CommandOutput,
    /// When tracing ends with the started command still running: end it (SIGTERM, then SIGKILL after
    /// this grace period). `None` leaves it running, as it would have run without us.
    pub end_command: Option<Duration>,
    /// Trace futex-core's own probes (USDT) in the traced program instead of its kernel futexes: the
    /// buckets are then futex-core's real sleep queues.
    pub usdt: bool,
    /// How user stacks are taken.
    pub stacks: StackOptions,
}

/// The futex-core table size kernel addresses are hashed into.
pub const BUCKETS: usize = 64;

/// How often lost-event counters and the traced processes are checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// How often processes are looked for by name (`--comm`).
const SCAN_EVERY: Duration = Duration::from_secs(1);

/// Processes traced through eBPF.
pub struct KernelSource {
    tracer: KernelTracer,
    target: LiveTarget,
    end_command: Option<Duration>,
    meta: TraceMeta,
    child: Option<Child>,
    exit_status: Option<ExitStatus>,
    /// The pids given, or the command's.
    traced_pids: Vec<u32>,
    started: Instant,
    last_check: Instant,
    last_scan: Instant,
    lost_reported: u64,
    events: u64,
    hinted: bool,
    notes: Vec<String>,
}

/// The target with each pid resolved to its process: a thread's id means its process (said in a note);
/// a zombie or a kernel thread is refused with the reason.
fn resolve_target(target: &LiveTarget, notes: &mut Vec<String>) -> Result<LiveTarget> {
    let LiveTarget::Pids(given) = target else {
        return Ok(target.clone());
    };
    let mut pids = Vec::new();
    for &p in given {
        let (tgid, note) = crate::ebpf::resolve_pid(p)?;
        notes.extend(note);
        if !pids.contains(&tgid) {
            pids.push(tgid);
        }
    }
    // A server's parent (PostgreSQL's postmaster, a pre-fork server): its children do the work and are
    // not traced by -p; say so, and what traces them.
    for &p in &pids {
        let children = children_of(p);
        if let Some(&first) = children.first() {
            let comm = std::fs::read_to_string(format!("/proc/{first}/comm")).unwrap_or_default();
            notes.push(format!(
                "pid {p} has {} child process(es) (pid {first}{}): -p traces pid {p} only; \
                 --comm {} traces every process of that name, also those that start later",
                children.len(),
                if children.len() > 1 { ", …" } else { "" },
                comm.trim()
            ));
        }
    }
    Ok(LiveTarget::Pids(pids))
}

/// The binary whose futex-core probes a `--usdt` trace attaches to.
fn usdt_binary(target: &LiveTarget) -> Result<PathBuf> {
    Ok(match target {
        LiveTarget::Pids(p) => PathBuf::from(format!("/proc/{}/exe", p[0])),
        LiveTarget::Command(argv) => resolve_command(&argv[0])?,
        LiveTarget::Comm(c) => match processes_named(c).first() {
            Some(p) => PathBuf::from(format!("/proc/{p}/exe")),
            None => {
                return Err(Error::Usage(format!(
                "--usdt --comm {c}: no process is named {c} yet, and its probes are found in its \
                     binary: start it first, or give -p PID"
            )))
            }
        },
    })
}

impl KernelSource {
    /// Loads and attaches the programs (everything a user can get wrong fails here, in one line), then
    /// starts the command if there is one.
    pub fn start(target: &LiveTarget, opts: KernelOptions) -> Result<KernelSource> {
        let mut notes = Vec::new();
        let target = &resolve_target(target, &mut notes)?;
        let usdt_binary = match opts.usdt {
            true => Some(usdt_binary(target)?),
            false => None,
        };
        let (pids, follow) = match target {
            LiveTarget::Pids(p) => (p.clone(), false),
            LiveTarget::Command(_) => (Vec::new(), true),
            LiveTarget::Comm(c) => {
                let found = processes_named(c);
                if found.is_empty() {
                    notes.push(format!(
                        "no process is named {c} yet: waiting for one (each process of that name \
                         is traced from its start)"
                    ));
                }
                (found, true)
            }
        };
        let mut tracer = KernelTracer::start(&TraceTarget {
            pids: pids.clone(),
            follow_forks: follow,
            usdt: usdt_binary,
            stacks: opts.stacks,
        })?;
        if !tracer.bucket_locks {
            notes.push(
                "this kernel has no lock contention tracepoints (lock:contention_begin, Linux \
                 5.19+): spins on its futex buckets' locks are not counted"
                    .into(),
            );
        }
        if !tracer.futex2 {
            notes.push(
                "this kernel has no futex2 syscalls (futex_wait/futex_wake/futex_requeue, Linux \
                 6.7+): only futex(2) is traced"
                    .into(),
            );
        }
        // Tracing starts now: every program is attached; a command runs its first instruction after.
        let (source, origin) = if opts.usdt {
            ("futex-core probes (USDT, eBPF)", BucketOrigin::FutexCore)
        } else {
            ("kernel futexes (eBPF)", BucketOrigin::FutexCoreHash)
        };
        let mut meta = TraceMeta::starting_now(
            source,
            pids.clone(),
            match target {
                LiveTarget::Command(a) => Some(a.clone()),
                LiveTarget::Pids(_) | LiveTarget::Comm(_) => None,
            },
            BUCKETS,
            origin,
        );
        let mut child = None;
        let mut traced_pids = pids;
        if let LiveTarget::Command(argv) = target {
            let c = spawn_gated(argv, &opts.command_output, &mut |pid| tracer.add_pid(pid))?;
            traced_pids.push(c.id());
            meta.pids.push(c.id());
            child = Some(c);
        }
        let now = Instant::now();
        Ok(KernelSource {
            tracer,
            target: target.clone(),
            end_command: opts.end_command,
            meta,
            child,
            exit_status: None,
            traced_pids,
            started: now,
            last_check: now,
            last_scan: now,
            lost_reported: 0,
            events: 0,
            hinted: false,
            notes,
        })
    }

    /// The started command's pid, if there is one.
    pub fn command_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn targets_gone(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => match c.try_wait() {
                Ok(Some(st)) => {
                    self.exit_status = Some(st);
                    true
                }
                Ok(None) => false,
                Err(_) => true,
            },
            // Processes found by name: new ones may come at any time (a restart), so never.
            None if matches!(self.target, LiveTarget::Comm(_)) => false,
            None => self.traced_pids.iter().all(|&p| process_gone(p)),
        }
    }

    /// Processes named as the target that started since the last look, admitted to the filter.
    fn admit_new_by_name(&mut self) -> Result<()> {
        let LiveTarget::Comm(c) = &self.target else {
            return Ok(());
        };
        let c = c.clone();
        self.traced_pids.retain(|&p| !process_gone(p));
        for pid in processes_named(&c) {
            if !self.traced_pids.contains(&pid) {
                self.tracer.add_pid(pid)?;
                self.traced_pids.push(pid);
                self.notes
                    .push(format!("tracing pid {pid} ({c}), which started"));
            }
        }
        Ok(())
    }

    /// Events the kernel side could not deliver since the last call, as one [`EventKind::Lost`].
    fn lost(&mut self, out: &mut Vec<Event>) {
        let lost = self.tracer.counters().lost();
        if lost > self.lost_reported {
            out.push(Event {
                ts_ns: 0,
                pid: 0,
                tid: 0,
                kind: EventKind::Lost {
                    count: lost - self.lost_reported,
                },
            });
            self.lost_reported = lost;
        }
    }
}

impl Source for KernelSource {
    fn meta(&self) -> TraceMeta {
        self.meta.clone()
    }

    fn stacks(&self) -> StackSource {
        StackSource::Live(self.tracer.stacks())
    }

    fn poll(&mut self, _: &Control, out: &mut Vec<Event>, wait: Duration) -> Result<Poll> {
        self.events += self.tracer.poll(out, wait)? as u64;
        let now = Instant::now();
        if now.duration_since(self.last_check) < CHECK_EVERY {
            return Ok(Poll::More);
        }
        self.last_check = now;
        self.lost(out);
        if now.duration_since(self.last_scan) >= SCAN_EVERY {
            self.last_scan = now;
            self.admit_new_by_name()?;
        }
        let by_pid = matches!(self.target, LiveTarget::Pids(_));
        if by_pid
            && !self.hinted
            && self.events == 0
            && self.started.elapsed() >= Duration::from_secs(3)
        {
            self.hinted = true;
            self.notes.push(format!(
                "no futex call from {} yet: an idle process makes none; check it is the process you \
                 mean (a shell's `$!` after `cd dir && cmd &` is the shell, not cmd; `pgrep -f cmd` \
                 finds it)",
                self.target.describe()
            ));
        }
        Ok(if self.targets_gone() {
            Poll::Ended(StopReason::TargetsExited)
        } else {
            Poll::More
        })
    }

    fn health(&self) -> Health {
        let c = self.tracer.counters();
        Health {
            stack_errors: c.stack_errors,
            untraced_calls: c.inflight_full + c.agg_full,
            missed_runs: self.tracer.missed_runs(),
            cost: Some(("BPF", self.tracer.bpf_run_time().as_nanos() as u64)),
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> SourceEnd {
        // What was already in the ring when we stopped is kept.
        let _ = self.tracer.flush(out);
        self.lost(out);
        let mut notes = Vec::new();
        if let Some(mut c) = self.child.take() {
            if self.exit_status.is_none() {
                match (c.try_wait(), self.end_command) {
                    (Ok(Some(st)), _) => self.exit_status = Some(st),
                    (_, Some(grace)) => {
                        let how = end_child(&mut c, grace);
                        self.exit_status = c.try_wait().ok().flatten();
                        notes.push(format!(
                            "ended {} (pid {}) {how}",
                            self.target.describe(),
                            c.id()
                        ));
                    }
                    // We stop tracing; the command keeps running as it would have without us.
                    (_, None) => notes.push(format!(
                        "stopped tracing; {} (pid {}) is still running",
                        self.target.describe(),
                        c.id()
                    )),
                }
            }
        }
        SourceEnd {
            pids: self.traced_pids.clone(),
            exit_status: self.exit_status,
            recorded: None,
            notes,
        }
    }
}

/// Ends a started command: SIGTERM, then SIGKILL if it has not exited after `grace`. Says how.
fn end_child(c: &mut Child, grace: Duration) -> String {
    // SAFETY: kill(2) with a pid we started and have not reaped (so it cannot have been reused).
    let sent = unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) } == 0;
    let deadline = Instant::now() + grace;
    while sent && Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return "with SIGTERM".into();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = c.kill();
    let _ = c.wait();
    format!(
        "with SIGKILL after it outlived SIGTERM by {}",
        humantime::format_duration(grace)
    )
}

/// The file a command name runs: itself if it has a `/`, else the first match on `PATH`.
fn resolve_command(name: &str) -> Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = std::path::PathBuf::from(name);
        return if runnable(&p) {
            Ok(p)
        } else {
            Err(Error::Command {
                program: name.into(),
                why: "no such executable file".into(),
            })
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| runnable(p))
        .ok_or_else(|| Error::Command {
            program: name.into(),
            why: "not found on PATH".into(),
        })
}

/// Starts `argv` held just before `exec`, so that the tracer knows its pid before it runs a single
/// instruction; returns the child once `release` has been called with the pid and let it go.
fn spawn_gated(
    argv: &[String],
    output: &CommandOutput,
    release: &mut dyn FnMut(u32) -> Result<()>,
) -> Result<Child> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Usage("no command given after --".into()))?;
    let pipe = |what| {
        std::io::pipe().map_err(|e| Error::Thread(format!("cannot create a {what} pipe: {e}")))
    };
    let (mut pid_r, pid_w) = pipe("pid")?;
    let (gate_r, mut gate_w) = pipe("gate")?;
    let (pid_fd, gate_fd) = (pid_w.as_raw_fd(), gate_r.as_raw_fd());
    let mut cmd = Command::new(program);
    cmd.args(args);
    match output {
        CommandOutput::Stderr => {
            // Our stdout is the tool's own output (a report, JSON, a stream): the command's goes to
            // our stderr, where a person still sees it.
            use std::os::fd::AsFd;
            let e = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::Output(format!("cannot give the command our stderr: {e}")))?;
            cmd.stdout(e);
        }
        CommandOutput::File(log) => {
            let f = std::fs::File::create(log).map_err(|e| Error::io("write", log, e))?;
            let f2 = f.try_clone().map_err(|e| Error::io("write", log, e))?;
            cmd.stdin(std::process::Stdio::null()).stdout(f).stderr(f2);
        }
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
        .map_err(|_| Error::Thread("the thread starting the command panicked".into()))?
        .map_err(|e| Error::Command {
            program: program.clone(),
            why: e.to_string(),
        })?;
    released?;
    Ok(child)
}
