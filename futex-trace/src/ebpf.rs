//! The eBPF source: loads `ebpf/futex.bpf.c`'s object with aya, attaches it to the futex syscall and
//! scheduler tracepoints, filters by process in the kernel (`targets` map), and reads its ring buffer
//! through tokio's `AsyncFd`. Records are decoded by [`crate::kernel`] into [`Event`]s.
//!
//! Every error a user meets (not root, tracefs not mounted, no such pid, no futex2 syscalls) becomes one
//! line that says what to do ([`TraceError`]).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::TracePoint;
use aya::Ebpf;
use tokio::io::unix::AsyncFd;

use crate::abi::{
    RawEvent, CFG_FOLLOW_FORKS, CFG_NO_STACKS, C_INFLIGHT_FULL, C_LOST_EVENTS, C_MISSED_EXITS,
    C_STACK_ERRORS,
};
use crate::event::{Event, EventKind};
use crate::kernel::Decoder;

/// The object built from `ebpf/futex.bpf.c` (by build.rs, or the committed copy).
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/futex.bpf.o")));

/// A failure the user can act on: one line, saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError(pub String);

impl std::fmt::Display for TraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

fn err(msg: impl Into<String>) -> TraceError {
    TraceError(msg.into())
}

/// Tracepoints: (program, category, name, needed). futex2's are optional (Linux 5.16+ for waitv,
/// 6.7+ for wait/wake/requeue).
const PROGRAMS: &[(&str, &str, &str, bool)] = &[
    ("futex_enter", "syscalls", "sys_enter_futex", true),
    ("futex_exit", "syscalls", "sys_exit_futex", true),
    (
        "futex2_wait_enter",
        "syscalls",
        "sys_enter_futex_wait",
        false,
    ),
    ("futex2_wait_exit", "syscalls", "sys_exit_futex_wait", false),
    (
        "futex2_wake_enter",
        "syscalls",
        "sys_enter_futex_wake",
        false,
    ),
    ("futex2_wake_exit", "syscalls", "sys_exit_futex_wake", false),
    (
        "futex2_requeue_enter",
        "syscalls",
        "sys_enter_futex_requeue",
        false,
    ),
    (
        "futex2_requeue_exit",
        "syscalls",
        "sys_exit_futex_requeue",
        false,
    ),
    (
        "futex2_waitv_enter",
        "syscalls",
        "sys_enter_futex_waitv",
        false,
    ),
    (
        "futex2_waitv_exit",
        "syscalls",
        "sys_exit_futex_waitv",
        false,
    ),
    ("sched_waking", "sched", "sched_waking", true),
    ("sched_wakeup", "sched", "sched_wakeup", true),
    ("sched_switch", "sched", "sched_switch", true),
    // One of these two, by the kernel's record layout (see fork_program).
    ("sched_fork", "sched", "sched_process_fork", true),
    ("sched_fork_old", "sched", "sched_process_fork", true),
    ("sched_exit", "sched", "sched_process_exit", true),
];

const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Where tracefs is mounted, or what to do about it.
pub fn tracefs() -> Result<&'static str, TraceError> {
    TRACEFS
        .into_iter()
        .find(|d| Path::new(d).join("events/syscalls").is_dir())
        .ok_or_else(|| {
            err(
                "tracefs is not mounted, so the futex tracepoints cannot be found: mount it with \
                 `sudo mount -t tracefs nodev /sys/kernel/tracing` and try again",
            )
        })
}

/// Checks that this process may load BPF programs: root, or CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn check_privileges() -> Result<(), TraceError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    if has(21) || (has(39) && has(38)) {
        return Ok(());
    }
    Err(err(
        "tracing kernel futexes needs root (or CAP_BPF and CAP_PERFMON): run it with sudo, \
         or use --demo to trace the built-in workload without privileges",
    ))
}

/// Checks everything tracing needs before it starts: privileges, then tracefs.
pub fn check_can_trace() -> Result<(), TraceError> {
    check_privileges()?;
    tracefs().map(|_| ())
}

/// Checks that `pid` names a running process.
pub fn check_pid(pid: u32) -> Result<(), TraceError> {
    if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(err(format!(
            "no process with pid {pid}: check the pid (e.g. with `pgrep NAME`)"
        )));
    }
    Ok(())
}

/// The program matching this kernel's `sched_process_fork` record: `__data_loc` comms (6.x) or
/// `char[16]` comms (older).
fn fork_program(tracefs: &str) -> &'static str {
    let f = format!("{tracefs}/events/sched/sched_process_fork/format");
    match std::fs::read_to_string(f) {
        Ok(s) if s.contains("char parent_comm[16]") => "sched_fork_old",
        _ => "sched_fork",
    }
}

/// Counters the eBPF side keeps of what it could not do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events not sent: the ring buffer was full.
    pub lost_events: u64,
    /// Stacks not stored: the stack map was full, or a hash collision.
    pub stack_errors: u64,
    /// Syscalls not traced: no room for the thread's in-flight state.
    pub inflight_full: u64,
    /// Syscalls whose return the kernel never reported (their event is lost).
    pub missed_exits: u64,
}

impl Counters {
    /// Events that were never delivered: the ring was full, or the kernel skipped a syscall's exit.
    pub fn lost(&self) -> u64 {
        self.lost_events + self.missed_exits
    }
}

/// The loaded, attached eBPF programs and their maps.
pub struct KernelTracer {
    bpf: Ebpf,
    targets: BpfHashMap<MapData, u32, u8>,
    stacks: StackMap,
    counters: PerCpuArray<MapData, u64>,
    ring: Option<RingBuf<MapData>>,
    /// Keeps the kernel's BPF run-time statistics on while we trace (`None` if refused).
    _stats: Option<OwnedFd>,
    /// Whether the futex2 syscalls are traced (the kernel has them).
    pub futex2: bool,
    /// The bucket count kernel addresses are hashed into (futex-core's table size).
    pub decoder: Decoder,
}

/// What to trace.
#[derive(Clone, Debug, Default)]
pub struct TraceTarget {
    /// Processes (tgids) to trace from the start.
    pub pids: Vec<u32>,
    /// Trace the children they fork, too.
    pub follow_forks: bool,
    /// Capture no user stacks (the cheapest tracing; no flamegraphs).
    pub no_stacks: bool,
    /// Trace futex-core's own probes (USDT) in this binary instead of the kernel's futex syscalls.
    pub usdt: Option<std::path::PathBuf>,
}

/// The syscall and scheduler programs that a USDT trace does not need.
fn kernel_only(prog: &str) -> bool {
    prog.starts_with("futex") || prog.starts_with("sched_wak") || prog == "sched_switch"
}

impl KernelTracer {
    /// Loads and attaches the programs for `target`. Fails with a one-line [`TraceError`].
    pub fn start(target: &TraceTarget, buckets: usize) -> Result<KernelTracer, TraceError> {
        check_privileges()?;
        let tracefs = tracefs()?;
        for &pid in &target.pids {
            check_pid(pid)?;
        }
        let mut bpf = Ebpf::load(&OBJECT.0).map_err(|e| {
            err(format!(
                "the kernel refused futex-trace's eBPF programs ({e}): a kernel with BPF, BTF and \
                 ring buffers (Linux 5.8+) is needed"
            ))
        })?;
        let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();

        {
            let mut config: aya::maps::Array<&mut MapData, u64> = aya::maps::Array::try_from(
                bpf.map_mut("config").ok_or_else(|| err("no config map"))?,
            )
            .map_err(|e| err(format!("config map: {e}")))?;
            config
                .set(CFG_FOLLOW_FORKS, u64::from(target.follow_forks), 0)
                .and_then(|_| config.set(CFG_NO_STACKS, u64::from(target.no_stacks), 0))
                .map_err(|e| err(format!("cannot configure the eBPF programs: {e}")))?;
        }
        let mut targets: BpfHashMap<MapData, u32, u8> = take(&mut bpf, "targets")?;
        for &pid in &target.pids {
            targets
                .insert(pid, 1, 0)
                .map_err(|e| err(format!("cannot add pid {pid} to the filter: {e}")))?;
        }
        let stacks = StackMap(Arc::new(take(&mut bpf, "stacks")?));
        let counters: PerCpuArray<MapData, u64> = take(&mut bpf, "counters")?;
        let ring: RingBuf<MapData> = take(&mut bpf, "events")?;

        let mut futex2 = true;
        let fork = fork_program(tracefs);
        for &(prog, category, name, needed) in PROGRAMS {
            if name == "sched_process_fork" && prog != fork {
                continue;
            }
            if target.usdt.is_some() && kernel_only(prog) {
                continue;
            }
            if !needed && !Path::new(&format!("{tracefs}/events/{category}/{name}")).exists() {
                futex2 = false;
                continue;
            }
            let p: &mut TracePoint = bpf
                .program_mut(prog)
                .ok_or_else(|| err(format!("program {prog} missing from the eBPF object")))?
                .try_into()
                .map_err(|e| err(format!("program {prog}: {e}")))?;
            p.load().map_err(|e| {
                let first = first_line(&e);
                err(format!(
                    "the kernel refused the eBPF program {prog} ({first}); please report this \
                     with the output of `uname -r`"
                ))
            })?;
            p.attach(category, name).map_err(|e| {
                err(format!(
                    "cannot attach to the tracepoint {category}:{name} ({e}); is tracefs mounted \
                     at /sys/kernel/tracing?"
                ))
            })?;
        }
        if let Some(bin) = &target.usdt {
            attach_usdt(&mut bpf, bin)?;
        }
        Ok(KernelTracer {
            bpf,
            targets,
            stacks,
            counters,
            ring: Some(ring),
            _stats: stats,
            futex2,
            decoder: Decoder { buckets },
        })
    }

    /// Adds a process to trace (e.g. a command started after the programs were attached).
    pub fn add_pid(&mut self, pid: u32) -> Result<(), TraceError> {
        self.targets
            .insert(pid, 1, 0)
            .map_err(|e| err(format!("cannot add pid {pid} to the filter: {e}")))
    }

    /// What the eBPF side could not do, summed over CPUs.
    pub fn counters(&self) -> Counters {
        let get = |i: u32| {
            self.counters
                .get(&i, 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0)
        };
        Counters {
            lost_events: get(C_LOST_EVENTS),
            stack_errors: get(C_STACK_ERRORS),
            inflight_full: get(C_INFLIGHT_FULL),
            missed_exits: get(C_MISSED_EXITS),
        }
    }

    /// Nanoseconds the programs have run so far (0 if the kernel keeps no statistics).
    pub fn bpf_run_time(&self) -> Duration {
        self.bpf
            .programs()
            .filter_map(|(_, p)| p.info().ok())
            .map(|i| i.run_time())
            .sum()
    }

    /// The user stack `id` (innermost frame first), if the stack map holds it.
    pub fn stack(&self, id: u32) -> Option<Vec<u64>> {
        self.stacks.get(id)
    }

    /// A handle on the stack map that other threads can read while the tracer runs.
    pub fn stack_map(&self) -> StackMap {
        self.stacks.clone()
    }
}

/// The kernel's map of user stacks, shareable between threads (lookups only).
#[derive(Clone)]
pub struct StackMap(Arc<StackTraceMap<MapData>>);

impl StackMap {
    /// The user stack `id` (innermost frame first), if the map holds it.
    pub fn get(&self, id: u32) -> Option<Vec<u64>> {
        self.0
            .get(&id, 0)
            .ok()
            .map(|s| s.frames().iter().map(|f| f.ip).collect())
    }
}

/// Attaches `usdt_probe` at every site of every futex_core probe in `bin`, each with its spec.
fn attach_usdt(bpf: &mut Ebpf, bin: &Path) -> Result<usize, TraceError> {
    use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
    use aya::programs::UProbe;
    let data = std::fs::read(bin)
        .map_err(|e| err(format!("cannot read {} for its probes: {e}", bin.display())))?;
    let notes = crate::usdt::parse_notes(&data)
        .map_err(|e| err(format!("cannot read the probes of {}: {e}", bin.display())))?;
    let sites: Vec<(usize, crate::usdt::Note)> = notes
        .into_iter()
        .filter(|n| n.provider == futex_core::probes::PROVIDER)
        .filter_map(|n| futex_core::probes::Probe::from_name(&n.name).map(|p| (p as usize, n)))
        .collect();
    if sites.is_empty() {
        return Err(err(format!(
            "{} has no futex-core probes (futex_core:* in .note.stapsdt): it does not link \
             futex-core; trace its kernel futexes instead (without --usdt)",
            bin.display()
        )));
    }
    if sites.iter().any(|(_, n)| n.semaphore != 0) {
        return Err(err(format!(
            "{}: probes with semaphores are not supported (futex-core's have none)",
            bin.display()
        )));
    }
    let mut specs: aya::maps::Array<&mut MapData, crate::abi::RawUsdtSpec> =
        aya::maps::Array::try_from(
            bpf.map_mut("usdt_specs")
                .ok_or_else(|| err("map usdt_specs missing from the eBPF object"))?,
        )
        .map_err(|e| err(format!("map usdt_specs: {e}")))?;
    for (i, (_, n)) in sites.iter().enumerate() {
        let args = crate::usdt::parse_args(&n.args)
            .map_err(|e| err(format!("{}: probe {}: {e}", bin.display(), n.name)))?;
        specs
            .set(i as u32, crate::usdt::raw_spec(&args), 0)
            .map_err(|e| err(format!("cannot store a probe's argument spec: {e}")))?;
    }
    let p: &mut UProbe = bpf
        .program_mut("usdt_probe")
        .ok_or_else(|| err("program usdt_probe missing from the eBPF object"))?
        .try_into()
        .map_err(|e| err(format!("program usdt_probe: {e}")))?;
    p.load().map_err(|e| {
        err(format!(
            "the kernel refused the USDT program ({})",
            first_line(&e)
        ))
    })?;
    for (i, (probe, n)) in sites.iter().enumerate() {
        let point = UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(n.file_offset),
            cookie: Some((*probe as u64) << 32 | i as u64),
        };
        p.attach(point, bin, UProbeScope::AllProcesses)
            .map_err(|e| {
                err(format!(
                    "cannot attach to futex_core:{} in {} ({e})",
                    n.name,
                    bin.display()
                ))
            })?;
    }
    Ok(sites.len())
}

/// The first line of an error (the verifier's log follows it; set FUTEX_TRACE_VERIFIER_LOG=1 to get
/// it all, for a bug report).
fn first_line(e: &dyn std::fmt::Display) -> String {
    let full = e.to_string();
    if std::env::var_os("FUTEX_TRACE_VERIFIER_LOG").is_some() {
        return full;
    }
    full.lines()
        .next()
        .unwrap_or("")
        .trim_end_matches(':')
        .to_string()
}

fn take<T: TryFrom<aya::maps::Map>>(bpf: &mut Ebpf, name: &str) -> Result<T, TraceError>
where
    T::Error: std::fmt::Display,
{
    let map = bpf
        .take_map(name)
        .ok_or_else(|| err(format!("map {name} missing from the eBPF object")))?;
    T::try_from(map).map_err(|e| err(format!("map {name}: {e}")))
}

/// Reads every record in the ring, decoding into `batch` and handing it to `on_batch` in pieces of up
/// to 8192 events (and what is left at the end). True when the consumer asked to stop.
fn drain(
    ring: &mut RingBuf<MapData>,
    decoder: Decoder,
    batch: &mut Vec<Event>,
    events: &mut u64,
    on_batch: &mut dyn FnMut(&[Event]) -> bool,
) -> bool {
    loop {
        let mut more = false;
        while let Some(item) = ring.next() {
            if let Some(e) = RawEvent::from_bytes(&item).and_then(|r| decoder.decode(&r)) {
                batch.push(e);
            }
            if batch.len() >= 8192 {
                more = true;
                break;
            }
        }
        if !batch.is_empty() {
            *events += batch.len() as u64;
            let go_on = on_batch(batch);
            batch.clear();
            if !go_on {
                return true;
            }
        }
        if !more {
            return false;
        }
    }
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The requested duration passed.
    Duration,
    /// Ctrl-C (or the caller's stop flag).
    Interrupted,
    /// Every traced process ended.
    TargetsExited,
    /// The consumer asked to stop (e.g. stdout closed).
    Consumer,
}

/// A snapshot of a run, for the status line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Status {
    pub elapsed: Duration,
    pub events: u64,
    pub events_per_sec: f64,
    pub counters: Counters,
    /// BPF run time per second of the last interval (nanoseconds per second).
    pub bpf_ns_per_sec: f64,
}

/// How a run ends and reports.
pub struct RunOptions<'a> {
    pub duration: Option<Duration>,
    pub stop: &'a AtomicBool,
    /// Called every 100 ms: true when the traced processes are gone.
    pub targets_gone: &'a mut dyn FnMut() -> bool,
    /// Called once a second.
    pub on_status: &'a mut dyn FnMut(&Status),
}

impl KernelTracer {
    /// Reads events until `opts` says stop, handing batches to `on_batch` (which returns false to
    /// stop). Lost events are delivered as [`EventKind::Lost`]. Runs a current-thread tokio runtime.
    pub fn run(
        &mut self,
        opts: RunOptions<'_>,
        on_batch: &mut dyn FnMut(&[Event]) -> bool,
    ) -> Result<StopReason, TraceError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| err(format!("cannot start the event loop: {e}")))?;
        let ring = self
            .ring
            .take()
            .ok_or_else(|| err("the tracer already ran"))?;
        let (reason, ring) = rt.block_on(self.run_async(ring, opts, on_batch))?;
        self.ring = Some(ring);
        Ok(reason)
    }

    async fn run_async(
        &mut self,
        ring: RingBuf<MapData>,
        opts: RunOptions<'_>,
        on_batch: &mut dyn FnMut(&[Event]) -> bool,
    ) -> Result<(StopReason, RingBuf<MapData>), TraceError> {
        // SAFETY: the ring buffer's fd is owned by `ring`, which the AsyncFd owns until `into_inner`;
        // aya's `RingBuf::as_raw_fd` always returns that same fd.
        let mut fd = unsafe { AsyncFd::register(ring) }
            .map_err(|e| err(format!("cannot poll the ring buffer: {e}")))?;
        let start = Instant::now();
        let mut batch: Vec<Event> = Vec::with_capacity(8192);
        let mut lost_reported = 0u64;
        let mut events = 0u64;
        let mut last_status = (start, 0u64, self.bpf_run_time());
        // The eBPF side wakes us only once 256 KiB are waiting; between wake-ups, drain every 5 ms so
        // that a live view lags by no more than that. Stop conditions and counters: every 100 ms.
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = start;
        let decoder = self.decoder;
        let reason = loop {
            let consumer_stop = tokio::select! {
                guard = fd.readable_mut() => {
                    let mut guard = guard.map_err(|e| err(format!("ring buffer: {e}")))?;
                    let stop = drain(guard.get_inner_mut(), decoder, &mut batch, &mut events, on_batch);
                    guard.clear_ready();
                    stop
                }
                _ = tick.tick() => drain(fd.get_mut(), decoder, &mut batch, &mut events, on_batch),
            };
            if consumer_stop {
                return Ok((StopReason::Consumer, fd.into_inner()));
            }
            let now = Instant::now();
            if now.duration_since(last_check) < Duration::from_millis(100) {
                continue;
            }
            last_check = now;
            let c = self.counters();
            if c.lost() > lost_reported {
                let lost = [Event {
                    ts_ns: 0,
                    pid: 0,
                    tid: 0,
                    kind: EventKind::Lost {
                        count: c.lost() - lost_reported,
                    },
                }];
                lost_reported = c.lost();
                if !on_batch(&lost) {
                    return Ok((StopReason::Consumer, fd.into_inner()));
                }
            }
            if now.duration_since(last_status.0) >= Duration::from_secs(1) {
                let dt = now.duration_since(last_status.0).as_secs_f64();
                let run = self.bpf_run_time();
                (opts.on_status)(&Status {
                    elapsed: now.duration_since(start),
                    events,
                    events_per_sec: (events - last_status.1) as f64 / dt,
                    counters: c,
                    bpf_ns_per_sec: run.saturating_sub(last_status.2).as_nanos() as f64 / dt,
                });
                last_status = (now, events, run);
            }
            if opts.stop.load(Ordering::Relaxed) {
                break StopReason::Interrupted;
            }
            if opts.duration.is_some_and(|d| start.elapsed() >= d) {
                break StopReason::Duration;
            }
            if (opts.targets_gone)() {
                break StopReason::TargetsExited;
            }
        };
        // What was already in the ring when we stopped is kept.
        let mut ring = fd.into_inner();
        while let Some(item) = ring.next() {
            if let Some(e) = RawEvent::from_bytes(&item).and_then(|r| self.decoder.decode(&r)) {
                batch.push(e);
            }
        }
        let c = self.counters();
        if c.lost() > lost_reported {
            batch.push(Event {
                ts_ns: 0,
                pid: 0,
                tid: 0,
                kind: EventKind::Lost {
                    count: c.lost() - lost_reported,
                },
            });
        }
        if !batch.is_empty() {
            on_batch(&batch);
        }
        Ok((reason, ring))
    }
}
