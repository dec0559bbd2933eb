//! The `futex-trace` command line: a thin layer over the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use futex_trace::demo::DemoConfig;
use futex_trace::flame::{self, Side};
use futex_trace::report::{self, SourceInfo};
use futex_trace::session::{
    Control, Finished, Session, SessionOptions, Sink, SinkError, Status, TraceMeta,
};
use futex_trace::sink::{RecordingSink, StreamSink};
use futex_trace::source::{
    CommandOutput, DemoSource, KernelOptions, KernelSource, LiveTarget, Pace, RecordingSource,
    Source,
};

#[derive(Parser)]
#[command(
    name = "futex-trace",
    version,
    about = "Where do threads wait on locks, for how long, and who wakes them?",
    long_about = "Traces futex waits, wakes and requeues: of any process through eBPF (kernel \
        tracepoints; root), or of the built-in workload on futex-core through its in-process observer \
        (--demo; no root). Reports top locks, buckets, latencies and requeue edges; draws flamegraphs \
        of where threads wait and who wakes them; records traces to replay later.",
    after_help = "Examples:\n  \
        sudo futex-trace record -p 1234 -d 10s -o trace.ftr     # a running process, all its threads\n  \
        sudo futex-trace record -o trace.ftr -- ./server --port 0  # a command and its children\n  \
        futex-trace report trace.ftr                             # top locks, buckets, latencies\n  \
        futex-trace flamegraph trace.ftr -o waits.svg            # where threads wait\n  \
        futex-trace flamegraph trace.ftr --wakers -o wakers.svg  # who wakes them\n  \
        futex-trace pprof trace.ftr -o waits.pb.gz               # for go tool pprof, Pyroscope\n  \
        sudo futex-trace stream -p 1234                          # JSON lines, live\n  \
        sudo futex-trace record -p 1234 --usdt -o trace.ftr      # a futex-core program: its own probes\n  \
        futex-trace report --demo -d 5s                          # the built-in workload, no root\n\n\
        Stacks are walked by frame pointers: build what you trace with\n\
        RUSTFLAGS=\"-C force-frame-pointers=yes\" (C/C++: -fno-omit-frame-pointer)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record a trace of a process or command to a file, to report or draw later.
    #[command(
        after_help = "Examples:\n  sudo futex-trace record -p 1234 -d 10s -o trace.ftr\n  \
        sudo futex-trace record -o trace.ftr -- ./server --port 0\n  \
        futex-trace record --demo -d 3s -o demo.ftr\n\n\
        Recording stops after -d, on Ctrl-C (or SIGTERM, SIGHUP), or when the traced processes exit;\n\
        what was recorded is kept in every case. FILE is created once tracing has started; an existing\n\
        FILE is then kept as FILE.old, and a start that fails leaves it untouched. The format is\n\
        documented in futex-trace/FORMAT.md."
    )]
    Record {
        #[command(flatten)]
        target: Target,
        /// Stop after this long ("10s", "500ms", "2m"; default: until Ctrl-C or the process exits).
        #[arg(short, long, value_parser = futex_trace::args::duration)]
        duration: Option<Duration>,
        /// The file to write (`-`: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Stop once the file holds SIZE ("500M", "2G", "64k", or bytes); the recording still ends
        /// cleanly (its last stacks and end marker follow). A kernel trace records counts every
        /// 100 ms and sampled waits, so its size grows with the futex words in use, not the call rate.
        #[arg(long, value_name = "SIZE", value_parser = futex_trace::args::size)]
        max_size: Option<u64>,
    },
    /// Print top locks, buckets, requeue edges and latencies, from a recording or a live trace.
    #[command(after_help = "Examples:\n  futex-trace report trace.ftr\n  \
        futex-trace report trace.ftr --json | jq '.addresses[0]'\n  \
        sudo futex-trace report -p 1234 -d 10s\n  \
        futex-trace report --demo --threads 8 --skew 0.3 --json > demo.json\n  \
        futex-trace report trace.ftr --slots 64       # what-if: kernel futex buckets with 64 slots\n\n\
        Kernel traces show each process's own futex hash buckets (Linux 6.17+: its private table, as the\n\
        kernel had it at each call), which hot locks share one, and with --slots what another slot count\n\
        would change. Other buckets are futex-core's queues (--usdt, --demo) or futex-core's hash of the\n\
        addresses (a what-if, labelled so).")]
    Report {
        /// A recording made by `futex-trace record`.
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// How long to trace live ("5s", "500ms", "1m"; default 5s, or until a command exits).
        #[arg(short, long, value_parser = futex_trace::args::duration)]
        duration: Option<Duration>,
        /// JSON instead of text (a top-level `totals` object and an `addresses` array).
        #[arg(long)]
        json: bool,
        /// Rows per table in the text report.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// What-if for kernel traces: the kernel buckets of the private futexes had each process N
        /// slots in its private futex hash, as `prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, N)` would
        /// set (a power of two). Shows which hot locks that share a bucket now would be split, and
        /// which would come to share one; labelled as a what-if.
        #[arg(long, value_name = "N", value_parser = futex_trace::args::slots)]
        slots: Option<u32>,
    },
    /// Draw a flamegraph (SVG, or folded stacks) of where threads wait, or of who wakes them.
    #[command(
        after_help = "Examples:\n  futex-trace flamegraph trace.ftr -o waits.svg\n  \
        futex-trace flamegraph trace.ftr --wakers -o wakers.svg\n  \
        sudo futex-trace flamegraph -p 1234 -d 10s -o waits.svg\n  \
        futex-trace flamegraph trace.ftr --folded -o waits.folded\n  \
        futex-trace flamegraph --demo -d 5s -o demo.svg           # no root: the waiting threads' stacks\n\n\
        Width is nanoseconds waited (for --wakers: waited by the threads each stack woke)."
    )]
    Flamegraph {
        /// A recording made by `futex-trace record`.
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// How long to trace live (default 5s, or until a command exits).
        #[arg(short, long, value_parser = futex_trace::args::duration)]
        duration: Option<Duration>,
        /// The wakers' stacks instead of the waiters'.
        #[arg(long)]
        wakers: bool,
        /// Folded stacks (one `frame;frame;... ns` line each) instead of SVG.
        #[arg(long)]
        folded: bool,
        /// The file to write (`-`: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Write a contention profile (pprof, gzipped) in Go's block/mutex layout, for go tool pprof,
    /// Pyroscope and Parca.
    #[command(
        after_help = "Examples:\n  futex-trace pprof trace.ftr -o waits.pb.gz\n  \
        sudo futex-trace pprof -p 1234 -d 30s -o waits.pb.gz\n  \
        futex-trace pprof trace.ftr --wakers -o wakers.pb.gz\n  \
        go tool pprof -top -sample_index=delay waits.pb.gz\n  \
        go tool pprof -http=:8080 waits.pb.gz\n\n\
        The waiters' stacks are the block profile (delay: time waited), the wakers' (--wakers) the mutex\n\
        profile (delay: time waited by the threads each stack woke); sample types contentions/count and\n\
        delay/nanoseconds, as Go's runtime writes them. Sampled stacks carry their weights. Labels: pid,\n\
        thread, lock (name or address), wait (its kind). Locations keep their address, file, file offset and\n\
        build id, so a backend can symbolize them again. A trace without stacks gives one location per lock."
    )]
    Pprof {
        /// A recording made by `futex-trace record`.
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// How long to trace live (default 5s, or until a command exits).
        #[arg(short, long, value_parser = futex_trace::args::duration)]
        duration: Option<Duration>,
        /// The wakers' stacks (Go's mutex profile) instead of the waiters' (its block profile).
        #[arg(long)]
        wakers: bool,
        /// The file to write (`-`: standard output).
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Serve a live trace over HTTP until stopped: Prometheus /metrics, Go-style /debug/pprof/block
    /// and /debug/pprof/mutex, and /flamegraph.svg.
    #[command(
        after_help = "Examples:\n  sudo futex-trace serve -p 1234                      # http://127.0.0.1:9464/\n  \
        sudo futex-trace serve --listen 0.0.0.0:9464 -- ./server\n  \
        futex-trace serve --demo\n  \
        curl -s http://127.0.0.1:9464/metrics\n  \
        go tool pprof -top http://127.0.0.1:9464/debug/pprof/block?seconds=10\n  \
        open http://127.0.0.1:9464/flamegraph.svg?seconds=10\n\n\
        /metrics: totals, the top locks by time waited (--top-locks; the rest under lock=\"other\"),\n\
        per-bucket series, wait and wake-latency histograms in seconds, lost events, the tracer's CPU.\n\
        /debug/pprof/block (where threads wait) and /debug/pprof/mutex (who wakes them) answer as Go's\n\
        net/http/pprof does: everything since the start, or ?seconds=N for the next N seconds.\n\
        Runs until Ctrl-C (SIGTERM, SIGHUP), or until the traced processes exit."
    )]
    Serve {
        #[command(flatten)]
        target: Target,
        /// The address to serve on (port 0: any free port; the one bound is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        /// Locks with a series of their own on /metrics (the rest summed under lock="other").
        #[arg(long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u16).range(1..=1000))]
        top_locks: u16,
        /// Also push each interval's profile (the waiters', Go's block layout) to the Pyroscope server
        /// at URL (its /ingest). Failures are retried with backoff, counted on /metrics and said;
        /// never fatal.
        #[arg(long, value_name = "URL", value_parser = http_url)]
        push: Option<String>,
        /// How much each pushed profile covers. Intervals are cut on this cadence whatever a push
        /// takes; up to 4 wait for a slow server, past that one is dropped (counted, said).
        #[arg(long, value_name = "DURATION", default_value = "15s", requires = "push",
              value_parser = futex_trace::args::duration)]
        push_every: Duration,
        /// The application name pushed profiles are filed under.
        #[arg(
            long,
            value_name = "NAME",
            default_value = "futex-trace",
            requires = "push"
        )]
        app_name: String,
        /// A label of pushed profiles (repeat for several).
        #[arg(long = "push-label", value_name = "KEY=VALUE", requires = "push",
              value_parser = push_label)]
        push_labels: Vec<(String, String)>,
        /// Keep at most N futex words (memory stays bounded over days): past it, the least recently
        /// seen are dropped (counted: futex_trace_evicted_words_total); totals stay whole.
        #[arg(long, value_name = "N", default_value_t = 100_000,
              value_parser = clap::value_parser!(u64).range(100..=100_000_000))]
        max_words: u64,
    },
    /// Print every event as a JSON line, live.
    #[command(after_help = "Examples:\n  sudo futex-trace stream -p 1234\n  \
        futex-trace stream --demo -d 2s | head\n  \
        futex-trace stream --demo | jq 'select(.event == \"requeue\")'")]
    Stream {
        #[command(flatten)]
        target: Target,
        /// Stop after this long (default: until interrupted, or the process exits).
        #[arg(short, long, value_parser = futex_trace::args::duration)]
        duration: Option<Duration>,
    },
}

#[derive(Args)]
struct Target {
    /// Trace a running process by pid (all its threads; repeat for several). Needs root.
    #[arg(short, long = "pid", value_name = "PID", conflicts_with = "demo")]
    pids: Vec<u32>,
    /// Trace every process named NAME (/proc/PID/comm), now and as they start (each second), with
    /// their children: a service that restarts stays traced. Needs root.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pids", "demo", "command"])]
    comm: Option<String>,
    /// Trace the built-in demo workload (futex-core in this process, through its observer; no root).
    #[arg(long)]
    demo: bool,
    /// Demo: threads contending on the heat-graded locks.
    #[arg(long, default_value_t = 4, requires = "demo", value_parser = futex_trace::args::threads)]
    threads: usize,
    /// Demo: heat ratio between consecutive locks, in (0, 1]; smaller makes the first lock hotter.
    #[arg(long, default_value_t = 0.5, requires = "demo", value_parser = futex_trace::args::skew)]
    skew: f64,
    /// eBPF: capture no user stacks (the cheapest tracing; no flamegraphs or top stacks).
    #[arg(long, conflicts_with = "demo")]
    no_stacks: bool,
    /// eBPF: sample stacks as Go's block profile does. A wait that slept for d gets its stack with
    /// probability min(1, d / RATE) and counts for 1/p waits in flamegraphs and top stacks, so their
    /// widths stay unbiased while short waits cost no stack walk. 0 takes a stack of every wait that
    /// slept. Counts and times are exact either way (counted in the kernel).
    #[arg(long, value_name = "RATE", default_value = "1ms", conflicts_with = "demo",
          value_parser = futex_trace::args::stack_rate)]
    stack_rate: Duration,
    /// eBPF: one wake call in N that wakes a waiter gets its stack (the waker flamegraph); each counts
    /// for N. 1 takes every one.
    #[arg(long, value_name = "N", default_value_t = futex_trace::ebpf::DEFAULT_WAKER_EVERY,
          conflicts_with = "demo", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    waker_every: u32,
    /// eBPF: how user stacks are taken. `dwarf` copies the top of each sampled stack (--stack-bytes)
    /// with the registers and unwinds it here from each library's CFI (.eh_frame), as `perf record
    /// --call-graph dwarf` does: whole stacks through glibc and through programs built without frame
    /// pointers (most distribution packages, Rust's release profile). `fp` lets the kernel walk frame
    /// pointers: cheaper per stack, but a stack stops at the first function built without them.
    #[arg(long, value_enum, default_value = "dwarf", conflicts_with = "demo")]
    unwind: futex_trace::args::UnwindArg,
    /// eBPF, --unwind dwarf: bytes of stack copied per stack, from the stack pointer up (4096 to
    /// 24576, in pages: the rest of the stack pointer's page, then whole pages, at most BYTES rounded
    /// up to a page in all). A stack deeper than the copy is cut there (reported as truncated).
    #[arg(long, value_name = "BYTES", default_value_t = futex_trace::ebpf::DEFAULT_STACK_BYTES,
          conflicts_with = "demo", value_parser = futex_trace::args::stack_bytes)]
    stack_bytes: usize,
    /// A wait whose stack has a frame matching REGEX is idle (waiting for work), not contention: for
    /// a program's own wait functions. Built in: condvar, join and semaphore/barrier waits (glibc's,
    /// Rust std's, parking_lot's, futex-core's) are idle; mutex and rwlock waits are contention. E.g.
    /// --idle-frame '^worker_pool::park$'.
    #[arg(long, value_name = "REGEX", value_parser = futex_trace::args::regex)]
    idle_frame: Option<regex::Regex>,
    /// eBPF: trace futex-core's own probes (USDT) in a program that links futex-core, instead of its
    /// kernel futexes: the buckets are then futex-core's real sleep queues.
    #[arg(long, conflicts_with = "demo")]
    usdt: bool,
    /// Start this command and trace it and every process it forks (after `--`). Needs root. Its
    /// stdout goes to our stderr (our stdout is the report, JSON or stream), unless --command-output.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["demo", "pids"])]
    command: Vec<String>,
    /// A started command's stdout and stderr go to FILE (its stdin is then /dev/null).
    #[arg(long, value_name = "FILE", requires = "command")]
    command_output: Option<PathBuf>,
}

/// Where events come from.
enum Input {
    Demo,
    Live(LiveTarget),
    File(PathBuf),
}

fn input(file: Option<&PathBuf>, t: &Target) -> Result<Input, String> {
    let live = if !t.command.is_empty() {
        Some(LiveTarget::Command(t.command.clone()))
    } else if let Some(c) = &t.comm {
        Some(LiveTarget::Comm(c.clone()))
    } else if !t.pids.is_empty() {
        Some(LiveTarget::Pids(t.pids.clone()))
    } else {
        None
    };
    match (file, live, t.demo) {
        (Some(f), None, false) => Ok(Input::File(f.clone())),
        (None, Some(l), false) => Ok(Input::Live(l)),
        (None, None, true) => Ok(Input::Demo),
        (None, None, false) => Err(
            "nothing to trace: give a recording (FILE), -p PID, -- COMMAND, \
             or --demo (see --help)"
                .into(),
        ),
        _ => Err("give one of: a recording (FILE), -p PID, -- COMMAND, or --demo".into()),
    }
}

/// The status line on stderr: a start line, then a line each second (rewritten in place on a
/// terminal), and notes as they come.
struct StatusLine {
    /// "pid 1234", "`./server`", "the demo".
    what: String,
    duration: Option<Duration>,
    tty: bool,
    /// A line is on screen without its newline yet.
    open: bool,
}

impl StatusLine {
    fn new(what: String, duration: Option<Duration>) -> Self {
        StatusLine {
            what,
            duration,
            tty: std::io::stderr().is_terminal(),
            open: false,
        }
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.open) {
            eprintln!();
        }
    }
}

impl Sink for StatusLine {
    fn start(&mut self, _: &TraceMeta) -> Result<(), SinkError> {
        match self.duration {
            Some(d) => eprintln!(
                "futex-trace: tracing {} for {} (Ctrl-C stops early)",
                self.what,
                humantime::format_duration(d)
            ),
            None => eprintln!("futex-trace: tracing {} (Ctrl-C stops)", self.what),
        }
        Ok(())
    }

    fn status(&mut self, s: &Status) {
        let line = format!(
            "tracing {}: {:.0} s · {:.0} events/s · lost {}{} · stack errors {}{}{}{}",
            self.what,
            s.elapsed.as_secs_f64(),
            s.events_per_sec,
            s.lost_events,
            match s.health.missed_runs {
                0 => String::new(),
                n => format!(" · missed runs {n}"),
            },
            s.health.stack_errors,
            match s.health.untraced_calls {
                0 => String::new(),
                n => format!(" · untraced calls {n}"),
            },
            match s.cost_per_sec {
                Some((what, ns)) => format!(" · {what} {:.2} ms/s", ns / 1e6),
                None => String::new(),
            },
            match s.written {
                Some((total, rate)) => format!(
                    " · wrote {} ({}/s)",
                    futex_trace::args::bytes(total as f64),
                    futex_trace::args::bytes(rate)
                ),
                None => String::new(),
            }
        );
        if self.tty {
            eprint!("\r{line}\x1b[K");
            self.open = true;
        } else {
            eprintln!("{line}");
        }
    }

    fn note(&mut self, note: &str) {
        self.close();
        eprintln!("futex-trace: {note}");
    }

    fn finish(&mut self, _: &Finished) -> Result<(), SinkError> {
        self.close();
        Ok(())
    }
}

/// The source `input` names, started.
fn start_source(input: &Input, target: &Target) -> Result<Box<dyn Source>, String> {
    Ok(match input {
        Input::Demo => Box::new(DemoSource::start(&DemoConfig {
            threads: target.threads,
            skew: target.skew,
        })?),
        Input::Live(t) => Box::new(KernelSource::start(
            t,
            KernelOptions {
                command_output: match &target.command_output {
                    Some(f) => CommandOutput::File(f.clone()),
                    None => CommandOutput::Stderr,
                },
                // Stopping early leaves the command running, as it would run without us.
                end_command: None,
                no_stacks: target.no_stacks,
                stack_rate: target.stack_rate,
                waker_every: target.waker_every,
                usdt: target.usdt,
                unwind: target.unwind.with_bytes(target.stack_bytes),
            },
        )?),
        Input::File(path) => Box::new(RecordingSource::open(path, Pace::AsFastAsRead)?),
    })
}

/// Starts `input` with `sinks` (plus a status line for live sources) and waits for it to end.
fn run(
    input: &Input,
    target: &Target,
    duration: Option<Duration>,
    control: &Arc<Control>,
    mut sinks: Vec<Box<dyn Sink>>,
) -> Result<Finished, String> {
    let source = start_source(input, target)?;
    let what = match input {
        Input::Demo => Some("the demo".to_string()),
        Input::Live(t) => Some(t.describe()),
        Input::File(_) => None,
    };
    if let Some(what) = what {
        sinks.push(Box::new(StatusLine::new(what, duration)));
    }
    let opts = SessionOptions {
        duration,
        control: control.clone(),
        idle_frame: target.idle_frame.clone(),
        ..SessionOptions::default()
    };
    let f = Session::start(source, opts, sinks)?.wait()?;
    if let Some(st) = f.exit_status {
        if !st.success() {
            eprintln!("futex-trace: the traced command ended with {st}");
        }
    }
    if let Some(e) = &f.sink_error {
        return Err(e.clone());
    }
    Ok(f)
}

/// Checks, before anything starts and without touching `output`, that it can be created: its directory
/// exists and is writable. (The file itself is created only once tracing has started.)
fn check_writable(output: &Path) -> Result<(), String> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: there is no directory {}",
            output.display(),
            dir.display()
        ));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        format!(
            "cannot write {}: the path holds a NUL byte",
            output.display()
        )
    })?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(format!(
            "cannot write {}: {} is not writable ({})",
            output.display(),
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn record(
    target: &Target,
    duration: Option<Duration>,
    output: &Path,
    max_size: Option<u64>,
    control: &Arc<Control>,
) -> Result<(), String> {
    let input = input(None, target)?;
    let to_stdout = output == Path::new("-");
    if !to_stdout {
        check_writable(output)?;
    }
    let existed = !to_stdout && output.exists();
    let f = run(
        &input,
        target,
        duration,
        control,
        vec![Box::new(match max_size {
            Some(max) => RecordingSink::new(output).max_size(max),
            None => RecordingSink::new(output),
        })],
    )?;
    let size = if to_stdout {
        0
    } else {
        std::fs::metadata(output).map_or(0, |m| m.len())
    };
    for warning in &f.warnings {
        eprintln!("futex-trace: warning: {warning}");
    }
    if existed {
        eprintln!(
            "futex-trace: the earlier {} is kept as {}",
            output.display(),
            futex_trace::sink::old_path(output).display()
        );
    }
    eprintln!(
        "futex-trace: recorded {} events ({} lost), {} stacks, {:.1} s, to {} ({:.1} MB); next: \
         futex-trace report {}",
        f.model.totals.events,
        f.model.totals.lost_events,
        f.stacks.as_ref().map_or(0, |s| s.stacks.len()),
        f.duration_s(),
        output.display(),
        size as f64 / 1e6,
        output.display()
    );
    Ok(())
}

/// Which stacks `--wakers` asks for; the wakers' need a source that records stacks.
fn side(f: &Finished, wakers: bool) -> Result<Side, String> {
    // futex-core's observer takes the waiting thread's stack; a waker's is taken by eBPF only.
    let observer = f.meta.source.contains("observer");
    match (wakers, &f.stacks) {
        (false, _) => Ok(Side::Waiters),
        (true, Some(_)) if !observer => Ok(Side::Wakers),
        (true, _) => Err(
            "--wakers needs wakers' stacks, which the demo's observer does not record (it records \
             the waiting threads' stacks): trace a process through eBPF (-p PID, -- COMMAND, --usdt)"
                .into(),
        ),
    }
}

/// An http:// or https:// URL (`--push`).
fn http_url(s: &str) -> Result<String, String> {
    if (s.starts_with("http://") || s.starts_with("https://")) && s.len() > "https://".len() {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not an http(s) URL: give the Pyroscope server's base URL, e.g. http://localhost:4040"
        ))
    }
}

/// A `KEY=VALUE` label (`--push-label`): a Prometheus-style name, a value without `,{}=`.
fn push_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE: e.g. --push-label env=prod"))?;
    let key_ok = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with(|c: char| c.is_ascii_digit());
    if !key_ok || v.is_empty() || v.contains([',', '{', '}', '=']) {
        return Err(format!(
            "'{s}': a label is a name of letters, digits and _ (not first a digit) = a value without \
             , {{ }} or ="
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Pyroscope's series name: `app{k=v,...}`.
fn push_name(app: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return app.to_string();
    }
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{app}{{{}}}", l.join(","))
}

fn pprof(f: &Finished, wakers: bool, output: &Path) -> Result<(), String> {
    let side = side(f, wakers)?;
    let span = futex_trace::pprof::Span {
        start_unix_ns: (f.meta.started_unix_s * 1e9) as i64,
        duration_ns: (f.duration_s() * 1e9) as i64,
    };
    let p = futex_trace::pprof::build(&f.model, f.stacks.as_ref(), &f.labels, side, span);
    if p.sample.is_empty() {
        eprintln!(
            "futex-trace: warning: the profile is empty: no {} stacks were captured (--no-stacks, or \
             no wait slept)",
            if wakers { "waker" } else { "waiting" }
        );
    }
    let bytes = futex_trace::pprof::encode_gz(&p);
    let written = if output == Path::new("-") {
        std::io::stdout().lock().write_all(&bytes)
    } else {
        std::fs::write(output, &bytes)
    };
    written.map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    if output != Path::new("-") {
        eprintln!(
            "futex-trace: wrote {} ({} samples; go tool pprof -top -sample_index=delay {})",
            output.display(),
            p.sample.len(),
            output.display()
        );
    }
    Ok(())
}

fn flamegraph(f: &Finished, wakers: bool, folded: bool, output: &Path) -> Result<(), String> {
    if f.stacks.as_ref().is_some_and(|s| s.stacks.is_empty()) && f.model.stacks.is_empty() {
        eprintln!("futex-trace: warning: no stacks were captured (--no-stacks, or no wait slept)");
    }
    let side = side(f, wakers)?;
    let (lines, what) = flame::graph(&f.model, f.stacks.as_ref(), &f.labels, side);
    let file: Box<dyn Write> = if output == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(output)
                .map_err(|e| format!("cannot write {}: {e}", output.display()))?,
        )
    };
    let mut out = std::io::BufWriter::new(file);
    if folded {
        for l in &lines {
            writeln!(out, "{l}").map_err(|e| format!("writing {}: {e}", output.display()))?;
        }
    } else {
        let subtitle = format!(
            "{} · pid {} · {:.1} s · {} stack samples · lost events {}",
            f.title,
            f.pid(),
            f.duration_s(),
            if wakers {
                f.model
                    .waker_stacks
                    .values()
                    .map(|s| s.samples)
                    .sum::<u64>()
            } else {
                f.model.stacks.values().map(|s| s.samples).sum::<u64>()
            },
            f.model.totals.lost_events
        );
        flame::svg(&lines, what, &subtitle, &mut out)
            .map_err(|e| format!("writing {}: {e}", output.display()))?;
    }
    out.flush()
        .map_err(|e| format!("writing {}: {e}", output.display()))?;
    for w in &f.warnings {
        eprintln!("futex-trace: warning: {w}");
    }
    eprintln!(
        "futex-trace: wrote {} ({} stacks)",
        output.display(),
        lines.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C ends the run early; what was gathered is still reported (or recorded).
    let control = Arc::new(Control::default());
    {
        let c = control.clone();
        if let Err(e) = ctrlc::set_handler(move || c.stop()) {
            eprintln!("futex-trace: warning: Ctrl-C will not end the run cleanly: {e}");
        }
    }
    let result = match &cli.command {
        Command::Record {
            target,
            duration,
            output,
            max_size,
        } => record(target, *duration, output, *max_size, &control),
        Command::Report {
            file,
            target,
            duration,
            json,
            top,
            slots,
        } => input(file.as_ref(), target).and_then(|inp| {
            let d = default_duration(&inp, *duration);
            let f = run(&inp, target, d, &control, vec![])?;
            let src = SourceInfo::of(&f);
            let out = if *json {
                report::json(&f.model, &src, &f.labels, f.stacks.as_ref(), *slots)
            } else {
                // The text report carries the warnings itself (so does the JSON one).
                report::text(&f.model, &src, &f.labels, f.stacks.as_ref(), *top, *slots)
            };
            // A closed stdout (`| head`) is not an error worth a word.
            let _ = writeln!(std::io::stdout().lock(), "{out}");
            Ok(())
        }),
        Command::Serve {
            target,
            listen,
            top_locks,
            push,
            push_every,
            app_name,
            push_labels,
            max_words,
        } => input(None, target).and_then(|inp| {
            let source = start_source(&inp, target)?;
            let opts = SessionOptions {
                duration: None,
                control: control.clone(),
                max_words: Some(usize::try_from(*max_words).unwrap_or(usize::MAX)),
                idle_frame: target.idle_frame.clone(),
            };
            let session = Session::start(source, opts, vec![]).map_err(String::from)?;
            let opts = futex_trace::serve::ServeOptions {
                listen: *listen,
                top_locks: usize::from(*top_locks),
                push: push.as_ref().map(|url| futex_trace::serve::PushOptions {
                    url: url.clone(),
                    name: push_name(app_name, push_labels),
                    every: *push_every,
                }),
            };
            let f = futex_trace::serve::serve(
                session,
                opts,
                |addr| {
                    eprintln!(
                        "futex-trace: serving http://{addr}/ (/metrics, /debug/pprof/block, \
                         /debug/pprof/mutex, /flamegraph.svg); Ctrl-C stops"
                    )
                },
                |problem| eprintln!("futex-trace: {problem}"),
            )
            .map_err(String::from)?;
            eprintln!("futex-trace: stopped ({})", f.reason.as_str());
            Ok(())
        }),
        Command::Pprof {
            file,
            target,
            duration,
            wakers,
            output,
        } => input(file.as_ref(), target).and_then(|inp| {
            let d = default_duration(&inp, *duration);
            let f = run(&inp, target, d, &control, vec![])?;
            pprof(&f, *wakers, output)
        }),
        Command::Flamegraph {
            file,
            target,
            duration,
            wakers,
            folded,
            output,
        } => input(file.as_ref(), target).and_then(|inp| {
            let d = default_duration(&inp, *duration);
            let f = run(&inp, target, d, &control, vec![])?;
            flamegraph(&f, *wakers, *folded, output)
        }),
        Command::Stream { target, duration } => input(None, target).and_then(|inp| {
            let sink = StreamSink::new(std::io::stdout());
            run(&inp, target, *duration, &control, vec![Box::new(sink)]).map(drop)
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) if msg == futex_trace::ebpf::NEEDS_PRIVILEGES => {
            eprintln!(
                "futex-trace: {msg}, or use --demo to trace the built-in workload without privileges"
            );
            ExitCode::from(2)
        }
        Err(msg) => {
            eprintln!("futex-trace: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Live reports and flamegraphs of a pid or the demo last 5 s unless told; a command runs to its end;
/// a recording is read to its end.
fn default_duration(inp: &Input, d: Option<Duration>) -> Option<Duration> {
    match inp {
        Input::Live(LiveTarget::Command(_)) => d,
        Input::File(_) => None,
        _ => d.or(Some(Duration::from_secs(5))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
