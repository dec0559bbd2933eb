//! The `futex-trace` command line: a thin layer over the library.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use futex_trace::cli::{parse, OutputArgs, RunArgs, ShowArgs, TraceArgs, ViewArgs};
use futex_trace::export::flame::{self, Side};
use futex_trace::export::pprof;
use futex_trace::export::report::{self, SourceInfo};
use futex_trace::export::serve::{PushOptions, ServeOptions};
use futex_trace::export::Show;
use futex_trace::session::{Session, SessionOptions};
use futex_trace::sink::{Output, RecordingSink, StreamSink};
use futex_trace::source::{self, CommandOutput, Pace};
use futex_trace::trace::{Control, Finished, Sink, SinkError, Status, TraceMeta};
use futex_trace::{Error, Result};

#[derive(Parser)]
#[command(
    name = "futex-trace",
    version,
    about = "Where do threads wait on locks, for how long, and who wakes them?",
    long_about = "Traces futex waits, wakes and requeues: of any process through eBPF (kernel \
        tracepoints; root), or of the built-in workload on futex-core through its in-process observer \
        (--demo; no root). Reports where threads wait (wait sites, classed by behaviour: contention on a \
        lock or a hand-off, or idle: waiting for work, sleeping), the futex words and kernel buckets \
        beneath, latencies and requeue edges; draws flamegraphs of where threads wait and who wakes \
        them; records traces to replay later.",
    after_help = "Examples:\n  \
        sudo futex-trace record -p 1234 -d 10s -o trace.ftr     # a running process, all its threads\n  \
        sudo futex-trace record -o trace.ftr -- ./server --port 0  # a command and its children\n  \
        futex-trace report trace.ftr                             # top locks, buckets, latencies\n  \
        futex-trace flamegraph trace.ftr -o waits.svg            # where threads wait\n  \
        futex-trace flamegraph trace.ftr --wakers -o wakers.svg  # who wakes them\n  \
        futex-trace pprof trace.ftr -o waits.pb.gz               # for go tool pprof, Pyroscope\n  \
        sudo futex-trace stream -p 1234                          # JSON lines, live\n  \
        sudo futex-trace record -p 1234 --usdt -o trace.ftr      # a futex-core program: its own probes\n  \
        futex-trace report --demo -d 5s                          # the built-in workload, no root\n  \
        futex-trace completions bash; futex-trace man | man -l - # shell completions, the manual\n\n\
        Stacks are unwound from each binary's CFI (.eh_frame), as perf --call-graph dwarf does: programs\n\
        as distributions build them (no frame pointers) unwind whole. --unwind fp walks frame pointers."
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
        what was recorded is kept in every case. With -- CMD, a command that fails makes futex-trace\n\
        exit with its status (as perf record does), once the recording is written. FILE is written as FILE.partial and takes its name\n\
        once it holds data; an existing FILE is then kept as FILE.old. A start or a write that fails\n\
        before that (a full disk) leaves FILE and FILE.old untouched. A device, a FIFO or /dev/stdout\n\
        is written as a stream, never renamed or replaced. The format is\n\
        documented in futex-trace/FORMAT.md."
    )]
    Record {
        #[command(flatten)]
        trace: TraceArgs,
        #[command(flatten)]
        run: RunArgs,
        #[command(flatten)]
        out: OutputArgs,
        /// Stop once the file holds SIZE ("500M", "2G", "64k", or bytes); the recording still ends
        /// cleanly (its last stacks and end marker follow). A kernel trace records counts every
        /// 100 ms and sampled waits, so its size grows with the futex words in use, not the call rate.
        #[arg(long, value_name = "SIZE", value_parser = parse::size)]
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
        #[command(flatten)]
        view: ViewArgs,
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
        #[arg(long, value_name = "N", value_parser = parse::slots)]
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
        #[command(flatten)]
        view: ViewArgs,
        /// The wakers' stacks instead of the waiters'.
        #[arg(long)]
        wakers: bool,
        /// Folded stacks (one `frame;frame;... ns` line each) instead of SVG.
        #[arg(long)]
        folded: bool,
        #[command(flatten)]
        show: ShowArgs,
        #[command(flatten)]
        out: OutputArgs,
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
        #[command(flatten)]
        view: ViewArgs,
        /// The wakers' stacks (Go's mutex profile) instead of the waiters' (its block profile).
        #[arg(long)]
        wakers: bool,
        #[command(flatten)]
        show: ShowArgs,
        #[command(flatten)]
        out: OutputArgs,
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
        trace: TraceArgs,
        #[command(flatten)]
        show: ShowArgs,
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
              value_parser = parse::duration)]
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
        trace: TraceArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Print a shell's completion script for futex-trace.
    #[command(after_help = "Examples:\n  \
        futex-trace completions bash > /etc/bash_completion.d/futex-trace\n  \
        futex-trace completions zsh > \"${fpath[1]}/_futex-trace\"\n  \
        futex-trace completions fish > ~/.config/fish/completions/futex-trace.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print futex-trace's man page (roff), or a subcommand's.
    #[command(after_help = "Examples:\n  futex-trace man | man -l -\n  \
        futex-trace man record | man -l -\n  \
        futex-trace man > /usr/local/share/man/man1/futex-trace.1")]
    Man {
        /// A subcommand (record, report, …): its own page, futex-trace-SUBCOMMAND(1).
        subcommand: Option<String>,
    },
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
                    parse::bytes(total as f64),
                    parse::bytes(rate)
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

/// Starts what `trace` asks for (`file`: a recording, read as fast as it reads) with `sinks` (plus a
/// status line for live sources) and waits for it to end. `default`: how long a pid or the demo is
/// traced unless -d says (`None`: until stopped).
fn run(
    file: Option<&Path>,
    trace: &TraceArgs,
    duration: Option<Duration>,
    default: Option<Duration>,
    control: &Arc<Control>,
    mut sinks: Vec<Box<dyn Sink>>,
) -> Result<Finished> {
    let input = trace.input(file.map(|f| (f.to_path_buf(), Pace::AsFastAsRead)), false)?;
    let duration = match default {
        Some(d) => input.default_duration(duration, d),
        None => duration,
    };
    // Stopping early leaves a started command running, as it would run without us.
    let source = source::open(&input, trace.kernel_options(CommandOutput::Stderr, None))?;
    if let Some(what) = input.describe() {
        sinks.push(Box::new(StatusLine::new(what, duration)));
    }
    let f = Session::start(source, trace.session_options(duration, control), sinks)?.wait()?;
    if let Some(st) = f.exit_status {
        let code = command_code(st);
        if code != 0 {
            eprintln!(
                "futex-trace: the traced command ended with {st}; futex-trace exits with {code}"
            );
            COMMAND_EXIT.store(code, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if let Some(e) = &f.sink_error {
        return Err(Error::Output(e.clone()));
    }
    Ok(f)
}

/// The exit code of a traced command that failed (as `perf record -- CMD` does): futex-trace exits with
/// it once its own work is done.
static COMMAND_EXIT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// A command's status as a shell gives it: its exit code, or 128 + the signal that ended it.
fn command_code(st: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => 1,
    }
}

/// Checks, before anything starts and without touching `output`, that it can be created: its directory
/// exists and is writable. (The file itself is created only once tracing has started.)
fn check_writable(output: &Path) -> Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let cannot = |why: String| Error::Usage(format!("cannot write {}: {why}", output.display()));
    if !dir.is_dir() {
        return Err(cannot(format!("there is no directory {}", dir.display())));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| cannot("the path holds a NUL byte".into()))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } != 0 {
        return Err(cannot(format!(
            "{} is not writable ({})",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn record(
    trace: &TraceArgs,
    duration: Option<Duration>,
    output: &Path,
    max_size: Option<u64>,
    control: &Arc<Control>,
) -> Result<()> {
    let sink = match max_size {
        Some(max) => RecordingSink::new(output).max_size(max),
        None => RecordingSink::new(output),
    };
    let target = sink.output().clone();
    if let Output::File(f) = &target {
        check_writable(f)?;
    }
    let kept_old = sink.kept_old();
    let f = run(None, trace, duration, None, control, vec![Box::new(sink)])?;
    let size = match &target {
        Output::File(f) => std::fs::metadata(f).map_or(0, |m| m.len()),
        _ => 0,
    };
    print_warnings(&f);
    if kept_old.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!(
            "futex-trace: the earlier {} is kept as {}",
            output.display(),
            futex_trace::sink::old_path(output).display()
        );
    }
    eprintln!(
        "futex-trace: recorded {} events ({} lost), {} stacks, {:.1} s, to {}{}; next: \
         futex-trace report {}",
        f.model.totals.events,
        f.model.totals.lost_events,
        f.stacks.as_ref().map_or(0, |s| s.stacks.len()),
        f.duration_s(),
        output.display(),
        match target {
            Output::File(_) => format!(" ({:.1} MB)", size as f64 / 1e6),
            _ => String::new(),
        },
        output.display()
    );
    Ok(())
}

/// Which stacks `--wakers` asks for; the wakers' need a source that records stacks.
fn side(f: &Finished, wakers: bool) -> Result<Side> {
    // futex-core's observer takes the waiting thread's stack; a waker's is taken by eBPF only.
    let observer = f.meta.source.contains("observer");
    match (wakers, &f.stacks) {
        (false, _) => Ok(Side::Waiters),
        (true, Some(_)) if !observer => Ok(Side::Wakers),
        (true, _) => Err(Error::Usage(
            "--wakers needs wakers' stacks, which the demo's observer does not record (it records \
             the waiting threads' stacks): trace a process through eBPF (-p PID, -- COMMAND, --usdt)"
                .into(),
        )),
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

/// Writes `bytes` to `output` (`-`: standard output).
fn write_out(output: &Path, bytes: &[u8]) -> Result<()> {
    let written = if output == Path::new("-") {
        std::io::stdout().lock().write_all(bytes)
    } else {
        std::fs::write(output, bytes)
    };
    written.map_err(|e| Error::io("write", output, e))
}

/// Says what `show` drew when it decided by itself: a user who meant to see everything knows how.
fn say_shown(an: &futex_trace::sites::Analysis<'_>, show: Show) {
    if show == Show::Auto && show.resolve(an) == Show::Contention {
        let (c, i, u) = an.wait_split();
        eprintln!(
            "futex-trace: drew contention only ({} of {} waited; --show all draws every wait)",
            secs(c.sum),
            secs(c.sum + i.sum + u.sum)
        );
    }
}

/// What every reader of a trace says of it (a damaged or cut-short recording, lost events, stacks cut
/// short), on stderr. The text report carries the same lines itself.
fn print_warnings(f: &Finished) {
    for w in &f.warnings {
        eprintln!("futex-trace: warning: {w}");
    }
}

fn secs(ns: u64) -> String {
    format!("{:.2} s", ns as f64 / 1e9)
}

fn pprof(f: &Finished, wakers: bool, show: Show, output: &Path) -> Result<()> {
    let side = side(f, wakers)?;
    let span = pprof::Span {
        start_unix_ns: (f.meta.started_unix_s * 1e9) as i64,
        duration_ns: (f.duration_s() * 1e9) as i64,
    };
    let an = f.analysis();
    let p = pprof::build(&an, side, span, show);
    say_shown(&an, show);
    if p.sample.is_empty() {
        eprintln!(
            "futex-trace: warning: the profile is empty: no {} stacks were captured (--no-stacks, or \
             no wait slept)",
            if wakers { "waker" } else { "waiting" }
        );
    }
    write_out(output, &pprof::encode_gz(&p))?;
    print_warnings(f);
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

fn flamegraph(f: &Finished, wakers: bool, folded: bool, show: Show, output: &Path) -> Result<()> {
    if f.stacks.as_ref().is_some_and(|s| s.stacks.is_empty()) && f.model.stacks.is_empty() {
        eprintln!("futex-trace: warning: no stacks were captured (--no-stacks, or no wait slept)");
    }
    let side = side(f, wakers)?;
    let an = f.analysis();
    let (lines, what) = flame::graph(&an, side, show);
    say_shown(&an, show);
    let mut out = Vec::new();
    if folded {
        for l in &lines {
            out.extend_from_slice(l.as_bytes());
            out.push(b'\n');
        }
    } else {
        let by = match side {
            Side::Waiters => &f.model.stacks,
            Side::Wakers => &f.model.waker_stacks,
        };
        let subtitle = format!(
            "{} · pid {} · {:.1} s · {} stack samples · lost events {}",
            f.title,
            f.pid(),
            f.duration_s(),
            by.values().map(|s| s.samples).sum::<u64>(),
            f.model.totals.lost_events
        );
        flame::svg(&lines, &what, &subtitle, &mut out)
            .map_err(|e| Error::io("write", output, e))?;
    }
    write_out(output, &out)?;
    print_warnings(f);
    eprintln!(
        "futex-trace: wrote {} ({} stacks)",
        output.display(),
        lines.len()
    );
    Ok(())
}

fn report(f: &Finished, json: bool, top: usize, slots: Option<u32>) -> Result<()> {
    let src = SourceInfo::of(f);
    let out = if json {
        report::json(&f.analysis(), &src, slots)
    } else {
        // The text report carries the warnings itself (so does the JSON one).
        report::text(&f.analysis(), &src, top, slots)
    };
    // A closed stdout (`| head`) is not an error worth a word.
    let _ = writeln!(std::io::stdout().lock(), "{out}");
    Ok(())
}

/// `serve`: a live session served over HTTP until it ends.
fn serve(
    trace: &TraceArgs,
    opts: ServeOptions,
    max_words: u64,
    control: &Arc<Control>,
) -> Result<()> {
    let input = trace.input(None, false)?;
    let source = source::open(&input, trace.kernel_options(CommandOutput::Stderr, None))?;
    let session_opts = SessionOptions {
        max_words: Some(usize::try_from(max_words).unwrap_or(usize::MAX)),
        ..trace.session_options(None, control)
    };
    let traced = source.meta().pids.clone();
    let demo = matches!(input, futex_trace::source::Input::Demo(_));
    let usdt = trace.target.usdt;
    let session = Session::start(source, session_opts, vec![])?;
    let f = futex_trace::export::serve::serve(
        session,
        opts,
        |addr| {
            eprintln!(
                "futex-trace: serving http://{addr}/ (/metrics, /debug/pprof/block, \
                 /debug/pprof/mutex, /flamegraph.svg); Ctrl-C stops"
            );
            if !addr.ip().is_loopback() {
                eprintln!(
                    "futex-trace: warning: listening on {addr}, beyond this machine: anyone who can \
                     reach it reads the traced programs' stacks, symbols and lock names (--listen \
                     127.0.0.1:PORT keeps it local)"
                );
            }
            // The programs are attached and the port is bound: what is left needs no root.
            eprintln!(
                "futex-trace: {}",
                futex_trace::privileges::shed(&traced, demo, usdt)
            );
        },
        |problem| eprintln!("futex-trace: {problem}"),
    )?;
    eprintln!("futex-trace: stopped ({})", f.reason.as_str());
    Ok(())
}

/// How long report, flamegraph and pprof trace a pid or the demo unless told.
const LIVE_VIEW: Duration = Duration::from_secs(5);

/// Traces what `v` names (or reads its recording) for a view; a pid or the demo for [`LIVE_VIEW`]
/// unless -d says.
fn view(v: &ViewArgs, control: &Arc<Control>) -> Result<Finished> {
    let file = v.file.file.as_deref();
    run(
        file,
        &v.trace,
        v.run.duration,
        Some(LIVE_VIEW),
        control,
        vec![],
    )
}

fn dispatch(command: &Command, control: &Arc<Control>) -> Result<()> {
    match command {
        Command::Record {
            trace,
            run: r,
            out,
            max_size,
        } => record(trace, r.duration, &out.output, *max_size, control),
        Command::Report {
            view: v,
            json,
            top,
            slots,
        } => report(&view(v, control)?, *json, *top, *slots),
        Command::Serve {
            trace,
            show,
            listen,
            top_locks,
            push,
            push_every,
            app_name,
            push_labels,
            max_words,
        } => {
            let opts = ServeOptions {
                listen: *listen,
                top_locks: usize::from(*top_locks),
                push: push.as_ref().map(|url| PushOptions {
                    url: url.clone(),
                    name: push_name(app_name, push_labels),
                    every: *push_every,
                }),
                show: show.show,
            };
            serve(trace, opts, *max_words, control)
        }
        Command::Pprof {
            view: v,
            wakers,
            show,
            out,
        } => pprof(&view(v, control)?, *wakers, show.show, &out.output),
        Command::Flamegraph {
            view: v,
            wakers,
            folded,
            show,
            out,
        } => flamegraph(&view(v, control)?, *wakers, *folded, show.show, &out.output),
        Command::Stream { trace, run: r } => {
            let sink = StreamSink::new(std::io::stdout());
            run(None, trace, r.duration, None, control, vec![Box::new(sink)]).map(drop)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "futex-trace", &mut script);
            print_bytes(&script)
        }
        Command::Man { subcommand } => man(subcommand.as_deref()),
    }
}

/// The man page of futex-trace (its subcommands listed), or of one subcommand (`futex-trace-record`).
fn man(sub: Option<&str>) -> Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let page = match sub {
        None => cmd,
        Some(name) => {
            let Some(c) = cmd.find_subcommand(name) else {
                let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
                return Err(Error::Usage(format!(
                    "there is no subcommand {name}: give one of {}",
                    names.join(", ")
                )));
            };
            // clap names are 'static; the process prints one page and ends.
            let full: &'static str = Box::leak(format!("futex-trace-{name}").into_boxed_str());
            c.clone().name(full).bin_name(format!("futex-trace {name}"))
        }
    };
    let mut roff = Vec::new();
    (clap_mangen::Man::new(page).render(&mut roff)).map_err(|e| Error::io("write", "stdout", e))?;
    print_bytes(&roff)
}

/// Writes `bytes` to stdout; a reader that stopped early (`| head`) is not an error.
fn print_bytes(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("write", "stdout", e)),
    }
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
    match dispatch(&cli.command, &control) {
        Ok(()) => ExitCode::from(COMMAND_EXIT.load(std::sync::atomic::Ordering::Relaxed)),
        Err(e @ Error::NeedsPrivileges) => {
            eprintln!(
                "futex-trace: {e}, or use --demo to trace the built-in workload without privileges"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("futex-trace: {e}");
            ExitCode::from(2)
        }
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
