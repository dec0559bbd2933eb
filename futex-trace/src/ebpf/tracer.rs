//! The loader: loads `ebpf/futex.bpf.c`'s object with aya, attaches it to the futex syscall and
//! scheduler tracepoints, filters by process in the kernel (`targets` map), reads the aggregates the
//! programs count (`aggs`, `edges`, `latency`) every [`AGG_EVERY`] and sends what changed, and drains its
//! ring buffer of samples and process events. Both are decoded by [`super::decode`] into [`Event`]s.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf, StackTraceMap};
use aya::programs::TracePoint;
use aya::Ebpf;

use super::abi::{
    self, RawAgg, RawAggKey, RawEdge, RawEdgeKey, RawEvent, RawHist, RawInflight, RawPython,
    CFG_FOLLOW_FORKS, CFG_NO_STACKS, CFG_ONE_PID, CFG_STACK_PAGES, CFG_STACK_RATE, CFG_UNWIND,
    CFG_WAKER_EVERY, C_AGG_FULL, C_INFLIGHT_FULL, C_LOST_EVENTS, C_MISSED_EXITS, C_STACK_ERRORS,
    FT_USTACK_PAGES, LAT_KINDS,
};
use super::host::{check_privileges, tracefs};
use super::unwind::StackUnwinder;
use super::{decode, usdt};
use super::{StackOptions, Unwind};
use crate::event::{Event, EventKind, OpClass, ThreadName};
use crate::stacks::StackLookup;
use crate::{Error, Result};

fn err(msg: impl Into<String>) -> Error {
    Error::Ebpf(msg.into())
}

/// The object built from `ebpf/futex.bpf.c` (by build.rs, or the committed copy).
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);
static OBJECT: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/futex.bpf.o")));

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
    // The kernel's lock contention tracepoints (5.19+): spins on the futex buckets' locks.
    ("lock_contention_begin", "lock", "contention_begin", false),
    ("lock_contention_end", "lock", "contention_end", false),
];

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
    /// Stacks not stored: the stack map was full or a hash collision (`--unwind fp`), or the stack
    /// copies' ring was full (`--unwind dwarf`).
    pub stack_errors: u64,
    /// Syscalls not traced: no room for the thread's in-flight state.
    pub inflight_full: u64,
    /// Syscalls whose return was never seen (a thread entered another while one was in flight).
    pub missed_exits: u64,
    /// Calls not counted: no room in the aggregate maps for a new futex word.
    pub agg_full: u64,
}

impl Counters {
    /// Events that were never delivered: the ring was full, or the kernel skipped a syscall's exit.
    pub fn lost(&self) -> u64 {
        self.lost_events + self.missed_exits
    }
}

/// The kernel's BPF run-time statistics cost every run of every BPF program two clock reads (about 15% of
/// the throughput of a futex-bound program here), so they are on for [`StatsSampler::ON`] of every
/// [`StatsSampler::PERIOD`], and the run time measured then is scaled up: the tracer's cost is an
/// estimate from a 10% sample of the time (`None` if the kernel refused the statistics).
struct StatsSampler {
    /// The statistics are on while this is held.
    on: Option<OwnedFd>,
    since: Instant,
    /// How long they have been on, in all, up to `since` when on.
    on_total: Duration,
    started: Instant,
    refused: bool,
}

impl StatsSampler {
    const ON: Duration = Duration::from_millis(100);
    const PERIOD: Duration = Duration::from_secs(1);

    fn start() -> Self {
        let on = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        let now = Instant::now();
        StatsSampler {
            refused: on.is_none(),
            on,
            since: now,
            on_total: Duration::ZERO,
            started: now,
        }
    }

    /// Turns the statistics on or off as the time has come.
    fn tick(&mut self) {
        if self.refused {
            return;
        }
        let now = Instant::now();
        match self.on {
            Some(_) if now - self.since >= Self::ON => {
                self.on = None;
                self.on_total += now - self.since;
                self.since = now;
            }
            None if now - self.since >= Self::PERIOD - Self::ON => {
                self.on = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
                self.since = now;
            }
            _ => {}
        }
    }

    /// The run time of the whole trace estimated from `measured`, the run time while sampled.
    fn scale(&self, measured: Duration) -> Duration {
        let mut on = self.on_total;
        if self.on.is_some() {
            on += self.since.elapsed();
        }
        if on.is_zero() {
            return Duration::ZERO;
        }
        measured.mul_f64(self.started.elapsed().as_secs_f64() / on.as_secs_f64())
    }
}

/// How often the aggregates are read: the time resolution of a kernel trace's counts.
pub const AGG_EVERY: Duration = Duration::from_millis(100);

/// The last values read of the aggregate maps, to send differences.
#[derive(Default)]
struct Aggregates {
    aggs: HashMap<RawAggKey, RawAgg>,
    edges: HashMap<RawEdgeKey, RawEdge>,
    latency: [RawHist; LAT_KINDS as usize],
    /// Threads waiting now, by (pid, the word their wait began on), as last sent.
    waiting: HashMap<(u32, u64), u32>,
    /// Processes seen ending: their keys are removed once read after their end.
    ended: HashSet<u32>,
    /// The name last said of each thread, with its process: tid → (pid, comm).
    threads: HashMap<u32, (u32, [u8; 16])>,
    last_read: Option<Instant>,
}

/// The loaded, attached eBPF programs and their maps.
pub struct KernelTracer {
    bpf: Ebpf,
    targets: BpfHashMap<MapData, u32, u8>,
    stacks: Arc<dyn StackLookup>,
    /// `--unwind dwarf`: the ring of stack copies, and their unwinder.
    ustacks: Option<(RingBuf<MapData>, StackUnwinder)>,
    /// `--unwind dwarf`: the processes whose copies are larger than --stack-bytes (their stacks are).
    stack_pages: Option<BpfHashMap<MapData, u32, u32>>,
    /// `--unwind dwarf`: the CPython processes whose interpreter frames are copied with their stacks.
    pythons: Option<BpfHashMap<MapData, u32, RawPython>>,
    counters: PerCpuArray<MapData, u64>,
    aggs: BpfHashMap<MapData, RawAggKey, RawAgg>,
    inflight: BpfHashMap<MapData, u32, RawInflight>,
    edges: BpfHashMap<MapData, RawEdgeKey, RawEdge>,
    latency: PerCpuArray<MapData, RawHist>,
    ring: RingBuf<MapData>,
    /// The ring held more than one batch at the last poll: poll again without sleeping.
    backlog: bool,
    last: Aggregates,
    /// The kernel's BPF run-time statistics, sampled (see [`StatsSampler`]).
    stats: StatsSampler,
    /// Whether the futex2 syscalls are traced (the kernel has them).
    pub futex2: bool,
    /// False when the kernel lacks the lock contention tracepoints (then said in a note).
    pub bucket_locks: bool,
}

/// What to trace.
#[derive(Clone, Debug, Default)]
pub struct TraceTarget {
    /// Processes (tgids) to trace from the start.
    pub pids: Vec<u32>,
    /// Trace the children they fork, too.
    pub follow_forks: bool,
    /// Trace futex-core's own probes (USDT) in this binary instead of the kernel's futex syscalls.
    pub usdt: Option<std::path::PathBuf>,
    /// How user stacks are taken.
    pub stacks: StackOptions,
}

/// The syscall and scheduler programs that a USDT trace does not need.
fn kernel_only(prog: &str) -> bool {
    prog.starts_with("futex")
        || prog.starts_with("sched_wak")
        || prog == "sched_switch"
        || prog.starts_with("lock_")
}

/// The kernel's stack map (`--unwind fp`: the kernel walked frame pointers), read by id.
struct KernelStacks(StackTraceMap<MapData>);

impl StackLookup for KernelStacks {
    /// The kernel's walk is checked against the mappings later (see `StackTable::add_stack`).
    fn stack(&self, id: u32) -> Option<(Vec<u64>, bool)> {
        let s = self.0.get(&id, 0).ok()?;
        Some((s.frames().iter().map(|f| f.ip).collect(), false))
    }
}

/// Sets the programs' `config` map from what to trace and how stacks are taken.
fn configure(bpf: &mut Ebpf, target: &TraceTarget) -> Result<()> {
    let st = &target.stacks;
    let rate = (st.stack_rate.as_nanos() as u64).min(abi::FT_MAX_STACK_RATE);
    let dwarf = st.unwind == Unwind::Dwarf;
    // The stack pointer's own page is always copied, then whole pages.
    let pages = (st.stack_bytes.div_ceil(4096).saturating_sub(1)).min(FT_USTACK_PAGES) as u64;
    for (i, v) in [
        (CFG_FOLLOW_FORKS, u64::from(target.follow_forks)),
        (CFG_NO_STACKS, u64::from(st.no_stacks)),
        (CFG_STACK_RATE, rate),
        (CFG_WAKER_EVERY, u64::from(st.waker_every)),
        (CFG_UNWIND, u64::from(dwarf)),
        (CFG_STACK_PAGES, if dwarf { pages } else { 0 }),
    ] {
        set_config(bpf, i, v)?;
    }
    Ok(())
}

/// Loads and attaches every tracepoint program a trace needs (not the kernel ones for a USDT trace,
/// not the lock contention ones with --no-bucket-spins); returns whether the optional tracepoints the
/// kernel may lack were there: (futex2's, the lock contention ones). Those not wanted are not missing.
fn attach_tracepoints(
    bpf: &mut Ebpf,
    tracefs: &str,
    usdt: bool,
    no_locks: bool,
) -> Result<(bool, bool)> {
    let (mut futex2, mut locks) = (true, true);
    let fork = fork_program(tracefs);
    for &(prog, category, name, needed) in PROGRAMS {
        if no_locks && category == "lock" {
            continue;
        }
        if name == "sched_process_fork" && prog != fork {
            continue;
        }
        if usdt && kernel_only(prog) {
            continue;
        }
        if !needed && !Path::new(&format!("{tracefs}/events/{category}/{name}")).exists() {
            match category {
                "lock" => locks = false,
                _ => futex2 = false,
            }
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
                "the kernel refused the eBPF program {prog} ({first}); please report this with the \
                 output of `uname -r`"
            ))
        })?;
        p.attach(category, name).map_err(|e| {
            err(format!(
                "cannot attach to the tracepoint {category}:{name} ({e}); is tracefs mounted at \
                 /sys/kernel/tracing?"
            ))
        })?;
    }
    Ok((futex2, locks))
}

impl KernelTracer {
    /// Loads and attaches the programs for `target`. Fails with a one-line [`crate::Error`]. Its pids
    /// are not checked here: given ones were (`resolve_pid`), and one found by name that ended since is
    /// no error (a server's backends come and go).
    pub fn start(target: &TraceTarget) -> Result<KernelTracer> {
        check_privileges()?;
        let tracefs = tracefs()?;
        // The rings sized as asked (the object's sizes are the largest defaults); the stack copies'
        // ring is half the events' (a page when no stacks are copied).
        let st = &target.stacks;
        let copies = st.unwind == Unwind::Dwarf && !st.no_stacks;
        let mut bpf = aya::EbpfLoader::new()
            .map_max_entries("events", st.ring_size)
            .map_max_entries("ustacks", if copies { st.ring_size / 2 } else { 4096 })
            .load(&OBJECT.0)
            .map_err(|e| {
                err(format!(
                "the kernel refused futex-trace's eBPF programs ({e}): a kernel with BPF, BTF and \
                 ring buffers (Linux 5.8+) is needed"
            ))
            })?;
        let stats = StatsSampler::start();
        configure(&mut bpf, target)?;
        let (stacks, ustacks): (Arc<dyn StackLookup>, _) = match target.stacks.unwind {
            Unwind::Fp => (Arc::new(KernelStacks(take(&mut bpf, "stacks")?)), None),
            Unwind::Dwarf => {
                let u = StackUnwinder::default();
                let stacks = Arc::new(u.interner.stacks.clone());
                (stacks, Some((take(&mut bpf, "ustacks")?, u)))
            }
        };
        let (futex2, bucket_locks) = attach_tracepoints(
            &mut bpf,
            tracefs,
            target.usdt.is_some(),
            target.stacks.no_bucket_spins,
        )?;
        if let Some(bin) = &target.usdt {
            attach_usdt(&mut bpf, bin)?;
        }
        let (stack_pages, pythons) = match ustacks {
            Some(_) => (
                Some(take(&mut bpf, "stack_pages")?),
                Some(take(&mut bpf, "pythons")?),
            ),
            None => (None, None),
        };
        let mut tracer = KernelTracer {
            targets: take(&mut bpf, "targets")?,
            stack_pages,
            pythons,
            stacks,
            ustacks,
            counters: take(&mut bpf, "counters")?,
            aggs: take(&mut bpf, "aggs")?,
            inflight: take(&mut bpf, "inflight")?,
            edges: take(&mut bpf, "edges")?,
            latency: take(&mut bpf, "latency")?,
            ring: take(&mut bpf, "events")?,
            bpf,
            backlog: false,
            last: Aggregates::default(),
            stats,
            futex2,
            bucket_locks,
        };
        // Only now, with every program attached, may the filter admit the processes: a call that
        // entered while the exit program was not yet attached would never see its exit (it showed as
        // lost events, and as waiters that never end).
        for &pid in &target.pids {
            tracer.add_pid(pid)?;
        }
        if let ([pid], false) = (&target.pids[..], target.follow_forks) {
            // One process, no children: the programs compare with it instead of looking it up.
            set_config(&mut tracer.bpf, CFG_ONE_PID, u64::from(*pid))?;
        }
        Ok(tracer)
    }

    /// Adds a process to trace (e.g. a command started after the programs were attached).
    pub fn add_pid(&mut self, pid: u32) -> Result<()> {
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
            agg_full: get(C_AGG_FULL),
        }
    }

    /// Nanoseconds the programs have run so far (0 if the kernel keeps no statistics).
    pub fn bpf_run_time(&self) -> Duration {
        let measured: Duration = self
            .bpf
            .programs()
            .filter_map(|(_, p)| p.info().ok())
            .map(|i| i.run_time())
            .sum();
        self.stats.scale(measured)
    }

    /// Runs of its programs the kernel skipped because another BPF program was running on that CPU
    /// (each program's `recursion_misses`, as its fdinfo shows it), summed. Missed `sched_*` runs lose
    /// waker attributions and scheduler delays; missed syscall runs lose calls.
    pub fn missed_runs(&self) -> u64 {
        use std::os::fd::{AsFd, AsRawFd};
        self.bpf
            .programs()
            .filter_map(|(_, p)| p.fd().ok())
            .filter_map(|fd| {
                let info = std::fs::read_to_string(format!(
                    "/proc/self/fdinfo/{}",
                    fd.as_fd().as_raw_fd()
                ))
                .ok()?;
                fdinfo_field(&info, "recursion_misses")
            })
            .sum()
    }

    /// The stacks by id, for other threads to read while the tracer runs.
    pub fn stacks(&self) -> Arc<dyn StackLookup> {
        self.stacks.clone()
    }
}

/// Attaches `usdt_probe` at every site of every futex_core probe in `bin`, each with its spec.
fn attach_usdt(bpf: &mut Ebpf, bin: &Path) -> Result<usize> {
    use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
    use aya::programs::UProbe;
    let data = std::fs::read(bin).map_err(|e| Error::io("read the probes of", bin, e))?;
    let notes = usdt::parse_notes(&data)
        .map_err(|e| Error::Usdt(format!("cannot read the probes of {}: {e}", bin.display())))?;
    let sites: Vec<(usize, usdt::Note)> = notes
        .into_iter()
        .filter(|n| n.provider == futex_core::probes::PROVIDER)
        .filter_map(|n| futex_core::probes::Probe::from_name(&n.name).map(|p| (p as usize, n)))
        .collect();
    if sites.is_empty() {
        return Err(Error::Usdt(format!(
            "{} has no futex-core probes (futex_core:* in .note.stapsdt): it does not link \
             futex-core; trace its kernel futexes instead (without --usdt)",
            bin.display()
        )));
    }
    if sites.iter().any(|(_, n)| n.semaphore != 0) {
        return Err(Error::Usdt(format!(
            "{}: probes with semaphores are not supported (futex-core's have none)",
            bin.display()
        )));
    }
    let mut specs: aya::maps::Array<&mut MapData, abi::RawUsdtSpec> = aya::maps::Array::try_from(
        bpf.map_mut("usdt_specs")
            .ok_or_else(|| err("map usdt_specs missing from the eBPF object"))?,
    )
    .map_err(|e| err(format!("map usdt_specs: {e}")))?;
    for (i, (_, n)) in sites.iter().enumerate() {
        let args = usdt::parse_args(&n.args)
            .map_err(|e| Error::Usdt(format!("{}: probe {}: {e}", bin.display(), n.name)))?;
        specs
            .set(i as u32, usdt::raw_spec(&args), 0)
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

/// A `name:\tvalue` line of a /proc fdinfo file.
fn fdinfo_field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
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

/// Sets entry `i` of the programs' `config` map.
fn set_config(bpf: &mut Ebpf, i: u32, v: u64) -> Result<()> {
    let mut config: aya::maps::Array<&mut MapData, u64> =
        aya::maps::Array::try_from(bpf.map_mut("config").ok_or_else(|| err("no config map"))?)
            .map_err(|e| err(format!("config map: {e}")))?;
    config
        .set(i, v, 0)
        .map_err(|e| err(format!("cannot configure the eBPF programs: {e}")))
}

fn take<T: TryFrom<aya::maps::Map>>(bpf: &mut Ebpf, name: &str) -> Result<T>
where
    T::Error: std::fmt::Display,
{
    let map = bpf
        .take_map(name)
        .ok_or_else(|| err(format!("map {name} missing from the eBPF object")))?;
    T::try_from(map).map_err(|e| err(format!("map {name}: {e}")))
}

/// Reads every key of `map`, hands `delta` each new value with the last one read (zeros for a new key),
/// and remembers the new values. The keys of `ended` processes are then removed from the map and from
/// `last`, so that the map does not fill with the dead (their last change was handed on; a key a CPU
/// updated between the read and the removal loses that update: the process had ended).
fn read_diffs<K, V>(
    map: &mut BpfHashMap<MapData, K, V>,
    last: &mut HashMap<K, V>,
    ended: &[u32],
    pid: fn(&K) -> u32,
    what: &str,
    mut delta: impl FnMut(&K, &V, &V),
) -> Result<()>
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod + Default,
{
    let zero = V::default();
    let mut gone = Vec::new();
    for item in map.iter() {
        let (k, v) = item.map_err(|e| err(format!("cannot read {what}: {e}")))?;
        delta(&k, &v, last.get(&k).unwrap_or(&zero));
        if ended.contains(&pid(&k)) {
            gone.push(k);
        } else {
            last.insert(k, v);
        }
    }
    for k in gone {
        let _ = map.remove(&k);
        last.remove(&k);
    }
    Ok(())
}

/// Most records one [`KernelTracer::poll`] takes from the ring.
const MAX_BATCH: usize = 8192;

/// Most batches [`KernelTracer::flush`] takes at the end: the 64 MiB ring holds about 550,000 records.
const FLUSH_BATCHES: usize = 80;

impl KernelTracer {
    /// Sleeps `wait` (not when the ring had more than a batch waiting: the eBPF side never wakes its
    /// reader, see `submit` in futex.bpf.c), decodes up to `MAX_BATCH` records into `out`, and, every
    /// [`AGG_EVERY`], appends what the aggregates counted since the last read. Returns how many events
    /// it appended.
    pub fn poll(&mut self, out: &mut Vec<Event>, wait: Duration) -> Result<usize> {
        if !self.backlog && !wait.is_zero() {
            std::thread::sleep(wait);
        }
        self.stats.tick();
        let before = out.len();
        self.drain(out);
        if self.last.last_read.is_none_or(|t| t.elapsed() >= AGG_EVERY) {
            self.read_aggregates(out)?;
        }
        Ok(out.len() - before)
    }

    /// Everything still pending: the whole ring, then the aggregates (for the end of a trace).
    pub fn flush(&mut self, out: &mut Vec<Event>) -> Result<()> {
        self.drain(out);
        // What was in the ring when tracing stopped, not what a process still running adds after:
        // a bound, so that a producer as fast as this reader cannot keep the end from coming.
        for _ in 0..FLUSH_BATCHES {
            if !self.backlog {
                break;
            }
            self.drain(out);
        }
        self.read_aggregates(out)
    }

    fn drain(&mut self, out: &mut Vec<Event>) {
        self.backlog = true;
        let mut raw = Vec::new();
        for _ in 0..MAX_BATCH {
            let Some(item) = self.ring.next() else {
                self.backlog = false;
                break;
            };
            raw.extend(RawEvent::from_bytes(&item));
        }
        // The stack copies after the events: a copy is on its ring before any event naming it is on
        // the events ring, so every copy the events just read name is there now.
        if let Some((ring, unwinder)) = &mut self.ustacks {
            // The forks first: a child's stacks are unwound with its parent's maps if it is gone
            // before its own can be read.
            for r in raw.iter().filter(|r| r.kind == abi::FT_FORK) {
                unwinder.forked(r.pid, r.val);
            }
            // Bounded, as the events are: a copy is made per stack an event names (its own, its
            // waker's), so twice a batch covers the batch; a producer faster than the unwinder must not
            // keep this loop (and the session) here forever. Copies the ring could not take are counted.
            for _ in 0..2 * MAX_BATCH {
                let Some(item) = ring.next() else {
                    break;
                };
                unwinder.add_copy(&item);
            }
            // A process whose stacks go on above their copies gets the largest copy from now on.
            if let Some(pages) = &mut self.stack_pages {
                for pid in unwinder.deeper() {
                    // A full map only keeps the copies at --stack-bytes: nothing to say.
                    let _ = pages.insert(pid, FT_USTACK_PAGES as u32, 0);
                }
            }
            // A CPython process's copies carry its threads' interpreter frames from now on.
            if let Some(pythons) = &mut self.pythons {
                for (pid, py) in unwinder.pythons() {
                    let _ = pythons.insert(pid, py, 0);
                }
            }
            for r in &mut raw {
                for id in [&mut r.stack_id, &mut r.waker_stack_id] {
                    *id = unwinder.translate(*id).map_or(-1, |i| i as i32);
                }
            }
        }
        for r in raw {
            if let Some(e) = decode::decode(&r) {
                if e.kind == EventKind::Exit {
                    self.last.ended.insert(e.pid);
                    self.last.threads.retain(|_, (pid, _)| *pid != e.pid);
                    if let Some((_, u)) = &mut self.ustacks {
                        u.forget(e.pid);
                    }
                    if let Some(pages) = &mut self.stack_pages {
                        let _ = pages.remove(&e.pid);
                    }
                    if let Some(pythons) = &mut self.pythons {
                        let _ = pythons.remove(&e.pid);
                    }
                }
                if r.kind == abi::FT_SAMPLE {
                    self.name_thread(&r, out);
                }
                out.push(e);
            }
        }
    }

    /// A [`EventKind::ThreadName`] for the sample's thread, before its first sample and when its name
    /// changed: a name is read where the thread waited (it may be gone by the time anyone asks /proc).
    fn name_thread(&mut self, r: &RawEvent, out: &mut Vec<Event>) {
        if r.comm[0] == 0 || self.last.threads.get(&r.tid) == Some(&(r.pid, r.comm)) {
            return;
        }
        self.last.threads.insert(r.tid, (r.pid, r.comm));
        out.push(Event {
            ts_ns: r.ts,
            pid: r.pid,
            tid: r.tid,
            kind: EventKind::ThreadName {
                name: ThreadName(r.comm),
            },
        });
    }

    /// Reads the aggregate maps and appends what changed since the last read. Keys of processes that
    /// had ended before this read are then removed from the maps (their last counts are in `out`).
    fn read_aggregates(&mut self, out: &mut Vec<Event>) -> Result<()> {
        let ended: Vec<u32> = self.last.ended.drain().collect();
        let ts = crate::clock_ns(libc::CLOCK_MONOTONIC);
        read_diffs(
            &mut self.aggs,
            &mut self.last.aggs,
            &ended,
            |k| k.pid,
            "the aggregates",
            |k, new, old| decode::agg_delta(ts, k, new, old, out),
        )?;
        read_diffs(
            &mut self.edges,
            &mut self.last.edges,
            &ended,
            |k| k.pid,
            "the requeue edges",
            |k, new, old| decode::edge_delta(ts, k, new, old, out),
        )?;
        for lat in 0..LAT_KINDS {
            let per_cpu = self
                .latency
                .get(&lat, 0)
                .map_err(|e| err(format!("cannot read the latency histograms: {e}")))?;
            let mut sum = RawHist::default();
            for h in per_cpu.iter() {
                sum.count += h.count;
                sum.sum += h.sum;
                sum.max = sum.max.max(h.max);
                for (s, v) in sum.slot.iter_mut().zip(&h.slot) {
                    *s += v;
                }
            }
            decode::latency_delta(ts, lat, &sum, &self.last.latency[lat as usize], out);
            self.last.latency[lat as usize] = sum;
        }
        self.read_waiting(ts, out)?;
        self.last.last_read = Some(Instant::now());
        Ok(())
    }

    /// Counts the threads inside a wait in `inflight`, by (pid, word), and appends a
    /// [`EventKind::Waiting`] for each count that changed since the last read. (Counting waits as they
    /// begin would cost every wait a second map update in the kernel; this costs userspace one read per
    /// traced thread every 100 ms.)
    fn read_waiting(&mut self, ts: u64, out: &mut Vec<Event>) -> Result<()> {
        let mut now: HashMap<(u32, u64), u32> = HashMap::new();
        for item in self.inflight.iter() {
            let (_, st) = item.map_err(|e| err(format!("cannot read the threads' state: {e}")))?;
            if st.active != 0 && decode::futex_op(st.op).class() == OpClass::Wait {
                *now.entry((st.tgid, st.uaddr)).or_default() += 1;
            }
        }
        let ev = |(pid, addr): (u32, u64), n: u32| Event {
            ts_ns: ts,
            pid,
            tid: 0,
            kind: EventKind::Waiting { addr, now: n },
        };
        for (&k, &n) in &now {
            if self.last.waiting.get(&k) != Some(&n) {
                out.push(ev(k, n));
            }
        }
        for (&k, _) in self
            .last
            .waiting
            .iter()
            .filter(|(k, _)| !now.contains_key(k))
        {
            out.push(ev(k, 0));
        }
        self.last.waiting = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fdinfo_fields_are_read_by_name() {
        // As the kernel prints a BPF program's fdinfo (kernel/bpf/syscall.c, bpf_prog_show_fdinfo).
        let info = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nrun_time_ns:\t1234\nrun_cnt:\t10\n\
                    recursion_misses:\t42\nverified_insns:\t99\n";
        assert_eq!(super::fdinfo_field(info, "recursion_misses"), Some(42));
        assert_eq!(super::fdinfo_field(info, "run_cnt"), Some(10));
        assert_eq!(super::fdinfo_field(info, "run"), None);
        assert_eq!(super::fdinfo_field("", "recursion_misses"), None);
    }
}
