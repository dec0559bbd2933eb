//! The `futex-trace` command line: a thin layer over the library.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use futex_trace::demo::{Demo, DemoConfig};
use futex_trace::event::Event;
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::report::{self, SourceInfo};
use futex_trace::source::ObserverSource;

#[derive(Parser)]
#[command(
    name = "futex-trace",
    version,
    about = "Where do threads wait on locks, for how long, and who wakes them?",
    after_help = "Examples:\n  \
        futex-trace report --demo -d 5s          # the built-in workload on futex-core, no root\n  \
        futex-trace report --demo --json         # the same as JSON (totals, addresses, buckets, edges)\n  \
        futex-trace stream --demo -d 2s          # every event as a JSON line\n\n\
        Tracing a running process by pid, a command, recorded traces and flamegraphs are not in this\n\
        build yet."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Trace, then print top locks, buckets, requeue edges and latencies.
    #[command(after_help = "Examples:\n  futex-trace report --demo -d 5s\n  \
        futex-trace report --demo --threads 8 --skew 0.3 --json > demo.json")]
    Report {
        #[command(flatten)]
        target: Target,
        /// How long to trace ("5s", "500ms", "1m").
        #[arg(short, long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// JSON instead of text (a top-level `totals` object and an `addresses` array).
        #[arg(long)]
        json: bool,
        /// Rows per table in the text report.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Print every event as a JSON line, live.
    #[command(after_help = "Examples:\n  futex-trace stream --demo -d 2s | head\n  \
        futex-trace stream --demo | jq 'select(.event == \"requeue\")'")]
    Stream {
        #[command(flatten)]
        target: Target,
        /// Stop after this long (default: until interrupted).
        #[arg(short, long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
    },
}

#[derive(Args)]
struct Target {
    /// Trace the built-in demo workload (futex-core in this process, through its observer; no root).
    #[arg(long)]
    demo: bool,
    /// Demo: threads contending on the heat-graded locks.
    #[arg(long, default_value_t = 4, requires = "demo")]
    threads: usize,
    /// Demo: heat ratio between consecutive locks, in (0, 1]; smaller makes the first lock hotter.
    #[arg(long, default_value_t = 0.5, requires = "demo", value_parser = parse_skew)]
    skew: f64,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Ctrl-C ends the run early; what was gathered is still reported.
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let i = interrupted.clone();
        if let Err(e) = ctrlc::set_handler(move || i.store(true, Ordering::Relaxed)) {
            eprintln!("futex-trace: warning: Ctrl-C will not end the run cleanly: {e}");
        }
    }
    let result = match &cli.command {
        Command::Report {
            target,
            duration,
            json,
            top,
        } => need_demo(target).and_then(|_| {
            let (model, labels, elapsed) =
                run_demo(&interrupted, target, Some(*duration), |_| Ok(()))?;
            let src = SourceInfo {
                source: "demo (futex-core observer)".into(),
                pid: std::process::id(),
                duration_s: elapsed.as_secs_f64(),
            };
            let out = if *json {
                report::json(&model, &src, &labels)
            } else {
                report::text(&model, &src, &labels, *top)
            };
            println!("{out}");
            Ok(())
        }),
        Command::Stream { target, duration } => need_demo(target).and_then(|_| {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            run_demo(&interrupted, target, *duration, |batch| {
                for e in batch {
                    serde_json::to_writer(&mut out, e).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")?;
                }
                out.flush()
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

fn need_demo(t: &Target) -> Result<(), String> {
    if t.demo {
        Ok(())
    } else {
        Err(
            "nothing to trace: this build traces only the built-in workload; add --demo \
             (tracing a process by pid or a command comes with the eBPF source)"
                .into(),
        )
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
