//! The `futex-trace` command line: a thin layer over the library.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

use futex_trace::demo::{Demo, DemoConfig};
use futex_trace::event::Event;
use futex_trace::flame::{self, Side};
use futex_trace::live::{self, LiveTarget};
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::report::{self, SourceInfo};
use futex_trace::source::ObserverSource;
use futex_trace::stacks::{StackTable, SHORT_STACKS_HELP};
use futex_trace::tracefile::{self, TraceEnd, TraceMeta, TraceWriter};

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
        Recording stops after -d, on Ctrl-C, or when the traced processes exit; what was recorded is\n\
        kept in every case. The format is documented in futex-trace/FORMAT.md."
    )]
    Record {
        #[command(flatten)]
        target: Target,
        /// Stop after this long ("10s", "500ms", "2m"; default: until Ctrl-C or the process exits).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Print top locks, buckets, requeue edges and latencies, from a recording or a live trace.
    #[command(after_help = "Examples:\n  futex-trace report trace.ftr\n  \
        futex-trace report trace.ftr --json | jq '.addresses[0]'\n  \
        sudo futex-trace report -p 1234 -d 10s\n  \
        futex-trace report --demo --threads 8 --skew 0.3 --json > demo.json")]
    Report {
        /// A recording made by `futex-trace record`.
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// How long to trace live ("5s", "500ms", "1m"; default 5s, or until a command exits).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// JSON instead of text (a top-level `totals` object and an `addresses` array).
        #[arg(long)]
        json: bool,
        /// Rows per table in the text report.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Draw a flamegraph (SVG, or folded stacks) of where threads wait, or of who wakes them.
    #[command(
        after_help = "Examples:\n  futex-trace flamegraph trace.ftr -o waits.svg\n  \
        futex-trace flamegraph trace.ftr --wakers -o wakers.svg\n  \
        sudo futex-trace flamegraph -p 1234 -d 10s -o waits.svg\n  \
        futex-trace flamegraph trace.ftr --folded -o waits.folded\n  \
        futex-trace flamegraph --demo -d 5s -o demo.svg           # by lock: the observer has no stacks\n\n\
        Width is nanoseconds waited (for --wakers: waited by the threads each stack woke)."
    )]
    Flamegraph {
        /// A recording made by `futex-trace record`.
        file: Option<PathBuf>,
        #[command(flatten)]
        target: Target,
        /// How long to trace live (default 5s, or until a command exits).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// The wakers' stacks instead of the waiters'.
        #[arg(long)]
        wakers: bool,
        /// Folded stacks (one `frame;frame;... ns` line each) instead of SVG.
        #[arg(long)]
        folded: bool,
        /// The file to write.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Print every event as a JSON line, live.
    #[command(after_help = "Examples:\n  sudo futex-trace stream -p 1234\n  \
        futex-trace stream --demo -d 2s | head\n  \
        futex-trace stream --demo | jq 'select(.event == \"requeue\")'")]
    Stream {
        #[command(flatten)]
        target: Target,
        /// Stop after this long (default: until interrupted, or the process exits).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
}

#[derive(Args)]
struct Target {
    /// Trace a running process by pid (all its threads; repeat for several). Needs root.
    #[arg(short, long = "pid", value_name = "PID", conflicts_with = "demo")]
    pids: Vec<u32>,
    /// Trace the built-in demo workload (futex-core in this process, through its observer; no root).
    #[arg(long)]
    demo: bool,
    /// Demo: threads contending on the heat-graded locks.
    #[arg(long, default_value_t = 4, requires = "demo")]
    threads: usize,
    /// Demo: heat ratio between consecutive locks, in (0, 1]; smaller makes the first lock hotter.
    #[arg(long, default_value_t = 0.5, requires = "demo", value_parser = parse_skew)]
    skew: f64,
    /// eBPF: capture no user stacks (the cheapest tracing; no flamegraphs or top stacks).
    #[arg(long, conflicts_with = "demo")]
    no_stacks: bool,
    /// eBPF: trace futex-core's own probes (USDT) in a program that links futex-core, instead of its
    /// kernel futexes: the buckets are then futex-core's real sleep queues.
    #[arg(long, conflicts_with = "demo")]
    usdt: bool,
    /// Start this command and trace it and every process it forks (after `--`). Needs root.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["demo", "pids"])]
    command: Vec<String>,
}

fn parse_skew(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is outside (0, 1]: try 0.5"))
    }
}

/// Runs the demo for `duration` (or forever), folding events into a model and handing each batch to
/// `on_batch`. Shows a status line on stderr once a second.
fn run_demo(
    interrupted: &AtomicBool,
    target: &Target,
    duration: Option<Duration>,
    mut on_batch: impl FnMut(&[Event]) -> std::io::Result<()>,
) -> Result<(Model, HashMap<u64, String>, Duration), String> {
    let mut src =
        ObserverSource::new(1 << 20).map_err(|e| format!("cannot observe futex-core: {e}"))?;
    let mut model = Model::new(src.buckets(), BucketOrigin::FutexCore);
    let demo = Demo::start(&DemoConfig {
        threads: target.threads,
        skew: target.skew,
    });
    let start = Instant::now();
    let mut last_status = start;
    let mut batch = Vec::new();
    let tty = std::io::stderr().is_terminal();
    let mut events_at_last = 0u64;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        batch.clear();
        src.poll(&mut batch);
        for e in &batch {
            model.apply(e);
        }
        if on_batch(&batch).is_err() {
            break; // stdout closed (e.g. piped into head): stop quietly
        }
        let now = Instant::now();
        if now.duration_since(last_status) >= Duration::from_secs(1) {
            let rate = (model.totals.events - events_at_last) as f64
                / now.duration_since(last_status).as_secs_f64();
            let line = format!(
                "demo: {:.0} s, {:.0} events/s, {} lost",
                now.duration_since(start).as_secs_f64(),
                rate,
                model.totals.lost_events
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            events_at_last = model.totals.events;
            last_status = now;
        }
        if duration.is_some_and(|d| now.duration_since(start) >= d)
            || interrupted.load(Ordering::Relaxed)
        {
            break;
        }
    }
    let elapsed = start.elapsed();
    if tty {
        eprintln!();
    }
    // Stop the workload, then collect what its threads did while stopping.
    let labels = demo.labels().clone();
    demo.stop();
    batch.clear();
    src.poll(&mut batch);
    for e in &batch {
        model.apply(e);
    }
    let _ = on_batch(&batch);
    Ok((model, labels, elapsed))
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

/// What a run gathered, whatever the source.
struct Gathered {
    /// Every process traced.
    pids: Vec<u32>,
    /// How a live trace or a recording ended (none for the demo).
    end: Option<TraceEnd>,
    model: Model,
    stacks: Option<StackTable>,
    labels: HashMap<u64, String>,
    src: SourceInfo,
}

/// What a reader of a live trace or a recording must know: losses, and stacks cut short.
fn trace_warnings(model: &Model, stacks: &StackTable, end: Option<&TraceEnd>) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(end) = end {
        if end.lost_events > 0 {
            w.push(format!(
                "{} events were lost (ring buffer full, or syscall returns the kernel did not \
                 report): counts are lower bounds",
                end.lost_events
            ));
        }
        if end.untraced_calls > 0 {
            w.push(format!(
                "{} futex calls were not traced (no room for per-thread state in the kernel)",
                end.untraced_calls
            ));
        }
        if end.stack_errors > 0 {
            w.push(format!(
                "{} stacks could not be stored (stack map full or hash collision)",
                end.stack_errors
            ));
        }
    }
    let short = stacks.short_stack_share(model.stacks.iter().map(|(k, s)| (k, s.wait_ns)));
    if short > 0.5 {
        w.push(SHORT_STACKS_HELP.to_string());
    }
    w
}

/// Traces `input`, handing each batch of events to `on_batch` (false: stop).
fn gather(
    input: &Input,
    duration: Option<Duration>,
    interrupted: &AtomicBool,
    demo_target: &Target,
    on_batch: &mut dyn FnMut(&[Event]) -> bool,
) -> Result<Gathered, String> {
    match input {
        Input::Demo => {
            let (model, labels, elapsed) = run_demo(interrupted, demo_target, duration, |b| {
                if on_batch(b) {
                    Ok(())
                } else {
                    Err(std::io::Error::other("output closed"))
                }
            })?;
            Ok(Gathered {
                pids: vec![std::process::id()],
                end: None,
                model,
                stacks: None,
                labels,
                src: SourceInfo {
                    source: "demo (futex-core observer)".into(),
                    pid: std::process::id(),
                    duration_s: elapsed.as_secs_f64(),
                    warnings: Vec::new(),
                },
            })
        }
        Input::Live(target) => {
            let opts = live::LiveOptions {
                duration,
                status: true,
                no_stacks: demo_target.no_stacks,
                command_log: None,
                usdt: demo_target.usdt,
            };
            let r = live::trace(target, opts, interrupted, on_batch).map_err(|e| e.to_string())?;
            if let Some(st) = r.exit_status {
                if !st.success() {
                    eprintln!("futex-trace: the traced command ended with {st}");
                }
            }
            let warnings = trace_warnings(&r.model, &r.stacks, Some(&r.end));
            Ok(Gathered {
                pids: r.end.pids.clone(),
                end: Some(r.end.clone()),
                src: SourceInfo {
                    source: r.meta.source.clone(),
                    pid: r.end.pids.first().copied().unwrap_or(0),
                    duration_s: r.end.duration_s,
                    warnings,
                },
                model: r.model,
                stacks: Some(r.stacks),
                labels: HashMap::new(),
            })
        }
        Input::File(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let mut model: Option<Model> = None;
            let mut pending = Vec::new();
            let trace = tracefile::read(std::io::BufReader::new(f), |e| match &mut model {
                Some(m) => m.apply(e),
                None => pending.push(*e),
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
            let mut model = model.unwrap_or_else(|| {
                Model::new(
                    trace.meta.buckets.clamp(1, 1 << 16),
                    trace.meta.bucket_origin,
                )
            });
            for e in &pending {
                model.apply(e);
            }
            on_batch(&pending);
            let mut warnings: Vec<String> = trace.warning.iter().cloned().collect();
            warnings.extend(trace_warnings(&model, &trace.stacks, trace.end.as_ref()));
            let pids = trace
                .end
                .as_ref()
                .map_or_else(|| trace.meta.pids.clone(), |e| e.pids.clone());
            Ok(Gathered {
                end: trace.end.clone(),
                src: SourceInfo {
                    source: format!("{} (recorded in {})", trace.meta.source, path.display()),
                    pid: pids.first().copied().unwrap_or(0),
                    duration_s: trace
                        .end
                        .as_ref()
                        .map_or_else(|| model.span_secs(), |e| e.duration_s),
                    warnings,
                },
                pids,
                model,
                labels: trace
                    .end
                    .as_ref()
                    .map(|e| e.labels.iter().cloned().collect())
                    .unwrap_or_default(),
                stacks: Some(trace.stacks),
            })
        }
    }
}

fn record(
    target: &Target,
    duration: Option<Duration>,
    output: &PathBuf,
    interrupted: &AtomicBool,
) -> Result<(), String> {
    let input = input(None, target)?;
    let file = std::fs::File::create(output)
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let (source, pids, command) = match &input {
        Input::Demo => ("demo (futex-core observer)", vec![std::process::id()], None),
        Input::Live(LiveTarget::Pids(p)) => ("kernel futexes (eBPF)", p.clone(), None),
        Input::Live(LiveTarget::Command(c)) => ("kernel futexes (eBPF)", vec![], Some(c.clone())),
        Input::File(_) => unreachable!("record takes no file"),
    };
    let (buckets, origin) = match input {
        Input::Demo => (futex_core::default_table().len(), BucketOrigin::FutexCore),
        _ if target.usdt => (live::BUCKETS, BucketOrigin::FutexCore),
        _ => (live::BUCKETS, BucketOrigin::FutexCoreHash),
    };
    let source = if target.usdt {
        "futex-core probes (USDT, eBPF)"
    } else {
        source
    };
    let meta = TraceMeta {
        source: source.into(),
        pids,
        command,
        buckets,
        bucket_origin: origin,
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
        started_mono_ns: 0,
    };
    let mut w = TraceWriter::new(file, &meta)
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let mut write_error = None;
    let g = gather(
        &input,
        duration,
        interrupted,
        target,
        &mut |batch| match w.events(batch) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(format!(
            "writing {} failed ({e}); the events before the failure are in the file",
            output.display()
        ));
    }
    // A live trace knows how it ended (stack errors, calls it could not trace, why it stopped).
    let end = TraceEnd {
        pids: g.pids.clone(),
        duration_s: g.src.duration_s,
        events: g.model.totals.events,
        lost_events: g.model.totals.lost_events,
        labels: g.labels.iter().map(|(a, l)| (*a, l.clone())).collect(),
        ..g.end.clone().unwrap_or_else(|| TraceEnd {
            reason: if interrupted.load(Ordering::Relaxed) {
                "interrupted".into()
            } else {
                "ended".into()
            },
            ..TraceEnd::default()
        })
    };
    let stacks = g.stacks.unwrap_or_default();
    w.finish(&stacks, &end)
        .map_err(|e| format!("writing {} failed: {e}", output.display()))?;
    let size = std::fs::metadata(output).map_or(0, |m| m.len());
    for warning in &g.src.warnings {
        eprintln!("futex-trace: warning: {warning}");
    }
    eprintln!(
        "futex-trace: recorded {} events ({} lost), {} stacks, {:.1} s, to {} ({:.1} MB); next: \
         futex-trace report {}",
        g.model.totals.events,
        g.model.totals.lost_events,
        stacks.stacks.len(),
        g.src.duration_s,
        output.display(),
        size as f64 / 1e6,
        output.display()
    );
    Ok(())
}

fn flamegraph(g: &Gathered, wakers: bool, folded: bool, output: &PathBuf) -> Result<(), String> {
    if g.stacks.as_ref().is_some_and(|s| s.stacks.is_empty()) && g.model.stacks.is_empty() {
        eprintln!("futex-trace: warning: no stacks were captured (--no-stacks, or no wait slept)");
    }
    let side = if wakers { Side::Wakers } else { Side::Waiters };
    // The observer records no stacks: its flamegraph is by lock (process → kind → lock).
    let by_lock = g.stacks.is_none();
    if by_lock && wakers {
        return Err(
            "--wakers needs stacks, which the demo's observer does not record: trace a process \
             through eBPF (-p PID, -- COMMAND, --usdt)"
                .into(),
        );
    }
    let (lines, what) = flame::graph(&g.model, g.stacks.as_ref(), &g.labels, side);
    let file = std::fs::File::create(output)
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    let mut out = std::io::BufWriter::new(file);
    if folded {
        for l in &lines {
            writeln!(out, "{l}").map_err(|e| format!("writing {}: {e}", output.display()))?;
        }
    } else {
        let subtitle = format!(
            "{} · pid {} · {:.1} s · {} waits with stacks · lost events {}",
            g.src.source,
            g.src.pid,
            g.src.duration_s,
            if wakers {
                g.model.waker_stacks.values().map(|s| s.waits).sum::<u64>()
            } else {
                g.model.stacks.values().map(|s| s.waits).sum::<u64>()
            },
            g.model.totals.lost_events
        );
        flame::svg(&lines, what, &subtitle, &mut out)
            .map_err(|e| format!("writing {}: {e}", output.display()))?;
    }
    out.flush()
        .map_err(|e| format!("writing {}: {e}", output.display()))?;
    for w in &g.src.warnings {
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
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        if let Err(e) = ctrlc::set_handler(move || i.store(true, Ordering::Relaxed)) {
            eprintln!("futex-trace: warning: Ctrl-C will not end the run cleanly: {e}");
        }
    }
    let result = match &cli.command {
        Command::Record {
            target,
            duration,
            output,
        } => record(target, *duration, output, &interrupted),
        Command::Report {
            file,
            target,
            duration,
            json,
            top,
        } => input(file.as_ref(), target).and_then(|inp| {
            let d = default_duration(&inp, *duration);
            let g = gather(&inp, d, &interrupted, target, &mut |_| true)?;
            let out = if *json {
                report::json(&g.model, &g.src, &g.labels, g.stacks.as_ref())
            } else {
                // The text report carries the warnings itself (so does the JSON one).
                report::text(&g.model, &g.src, &g.labels, g.stacks.as_ref(), *top)
            };
            // A closed stdout (`| head`) is not an error worth a word.
            let _ = writeln!(std::io::stdout().lock(), "{out}");
            Ok(())
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
            let g = gather(&inp, d, &interrupted, target, &mut |_| true)?;
            flamegraph(&g, *wakers, *folded, output)
        }),
        Command::Stream { target, duration } => input(None, target).and_then(|inp| {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            gather(&inp, *duration, &interrupted, target, &mut |batch| {
                let mut write = || -> std::io::Result<()> {
                    for e in batch {
                        serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
                        out.write_all(b"\n")?;
                    }
                    out.flush()
                };
                // stdout closed (e.g. piped into head): stop quietly
                write().is_ok()
            })
            .map(|_| ())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("futex-trace: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Live reports and flamegraphs of a pid or the demo last 5 s unless told; a command runs to its end.
fn default_duration(inp: &Input, d: Option<Duration>) -> Option<Duration> {
    match inp {
        Input::Live(LiveTarget::Command(_)) => d,
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
