//! `futex-tui`: the dashboard. With no arguments it runs futex-trace's built-in demo workload in this
//! process, traced through futex-core's observer (no root needed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use futex_trace::demo::{Demo, DemoConfig};
use futex_trace::ebpf::{self, TraceError};
use futex_trace::live::{self, LiveOptions, LiveResult, LiveTarget, Shared};
use futex_trace::lock;
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::source::{Collector, ObserverSource};
use futex_trace::stacks::StackTable;
use futex_trace::tracefile;
use futex_tui::app::{App, Key};

#[derive(Parser)]
#[command(
    name = "futex-tui",
    version,
    about = "Live dashboard of futex contention: buckets, locks, requeues, wakeup latency",
    after_help = "Examples:\n  futex-tui                          # the built-in demo, no root\n  \
                  futex-tui --threads 8 --skew 0.3   # a hotter demo\n  \
                  sudo futex-tui -p 1234             # a running process, through eBPF\n  \
                  sudo futex-tui -- ./server --port 0  # a command and its children\n  \
                  sudo futex-tui -p 1234 --usdt      # a futex-core program: its own buckets\n  \
                  futex-tui --replay trace.ftr --speed 4  # a recording (futex-trace record)\n\n\
                  Keys: q quit, p pause, Tab panel, j/k select, Enter detail, s sort, f flamegraph,\n\
                  +/- replay speed, n replay step, ? help"
)]
struct Cli {
    /// Demo: threads contending on the heat-graded locks.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Demo: heat ratio between consecutive locks, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    skew: f64,
    /// Trace a running process through eBPF (needs root).
    #[arg(short, long, value_name = "PID", conflicts_with = "replay")]
    pid: Option<u32>,
    /// Play a recording made by `futex-trace record`.
    #[arg(long, value_name = "FILE")]
    replay: Option<PathBuf>,
    /// Replay speed (1 = as recorded).
    #[arg(long, default_value_t = 1.0, requires = "replay")]
    speed: f64,
    /// eBPF: capture no stacks (cheapest; no stack column or stack flamegraphs).
    #[arg(long)]
    no_stacks: bool,
    /// eBPF: trace futex-core's own probes (USDT) of a program that links futex-core: its real buckets.
    #[arg(long)]
    usdt: bool,
    /// Where `f` writes flamegraphs.
    #[arg(long, default_value = ".", value_name = "DIR")]
    out_dir: PathBuf,
    /// Start this command and trace it and its children through eBPF (after `--`; needs root). Its
    /// output goes to futex-tui-command.log in --out-dir.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["pid", "replay"])]
    command: Vec<String>,
}

/// Where the dashboard's model comes from.
enum Feed {
    Demo {
        collector: Collector,
        demo: Demo,
    },
    Live {
        shared: Shared,
        stop: Arc<AtomicBool>,
        handle: Option<JoinHandle<Result<LiveResult, TraceError>>>,
        ended: Option<String>,
    },
    Replay(Replay),
}

impl Feed {
    fn snapshot(&self) -> Model {
        match self {
            Feed::Demo { collector, .. } => collector.snapshot(),
            Feed::Live { shared, .. } => lock(&shared.model).clone(),
            Feed::Replay(r) => lock(&r.model).clone(),
        }
    }

    fn stacks(&self) -> Option<StackTable> {
        match self {
            Feed::Demo { .. } => None,
            Feed::Live { shared, .. } => Some(lock(&shared.stacks).clone()),
            Feed::Replay(r) => Some(r.stacks.clone()),
        }
    }

    /// A message when the source has ended (the process exited, the replay reached its end).
    fn ended(&mut self) -> Option<String> {
        match self {
            Feed::Demo { .. } => None,
            Feed::Live { handle, ended, .. } => {
                if handle.as_ref().is_some_and(|h| h.is_finished()) {
                    let h = handle.take().expect("checked");
                    *ended = Some(match h.join() {
                        Ok(Ok(r)) => format!(
                            "tracing ended ({}); showing what was gathered · q quits",
                            r.end.reason
                        ),
                        Ok(Err(e)) => format!("tracing failed: {e}"),
                        Err(_) => "the tracer thread panicked".into(),
                    });
                    return ended.clone();
                }
                None
            }
            Feed::Replay(r) => (r.done.load(Ordering::Relaxed)
                && !r.announced.swap(true, Ordering::Relaxed))
            .then(|| "replay finished · q quits".to_string()),
        }
    }

    fn stop(self) {
        match self {
            Feed::Demo { collector, demo } => {
                collector.stop();
                demo.stop();
            }
            Feed::Live { stop, handle, .. } => {
                stop.store(true, Ordering::Relaxed);
                if let Some(h) = handle {
                    let _ = h.join();
                }
            }
            Feed::Replay(r) => r.stop(),
        }
    }
}

/// Plays a recording into a model at its recorded pace times a speed, with pause and step.
struct Replay {
    model: Arc<Mutex<Model>>,
    stacks: StackTable,
    /// Playback position, nanoseconds since the first event.
    position_ns: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    /// Speed × 1000.
    speed_milli: Arc<AtomicU64>,
    step: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    announced: AtomicBool,
    quit: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Replay {
    /// Opens a recording: the player, the source's name, its pid, and the names of its addresses.
    #[allow(clippy::type_complexity)]
    fn open(
        path: &std::path::Path,
        speed: f64,
    ) -> Result<(Replay, String, u32, std::collections::HashMap<u64, String>), String> {
        let f = std::fs::File::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut events = Vec::new();
        let trace = tracefile::read(std::io::BufReader::new(f), |e| events.push(*e))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let model = Arc::new(Mutex::new(Model::new(
            trace.meta.buckets.clamp(1, 1 << 16),
            trace.meta.bucket_origin,
        )));
        let first = events
            .iter()
            .map(|e| e.ts_ns)
            .filter(|&t| t != 0)
            .min()
            .unwrap_or(0);
        let r = Replay {
            model: model.clone(),
            stacks: trace.stacks.clone(),
            position_ns: Arc::default(),
            paused: Arc::default(),
            speed_milli: Arc::new(AtomicU64::new(
                (speed.clamp(1.0 / 16.0, 64.0) * 1000.0) as u64,
            )),
            step: Arc::default(),
            done: Arc::default(),
            announced: AtomicBool::new(false),
            quit: Arc::default(),
            handle: None,
        };
        let (pos, paused, speed, step, done, quit) = (
            r.position_ns.clone(),
            r.paused.clone(),
            r.speed_milli.clone(),
            r.step.clone(),
            r.done.clone(),
            r.quit.clone(),
        );
        let handle = std::thread::Builder::new()
            .name("futex-replay".into())
            .spawn(move || {
                let tick = Duration::from_millis(20);
                let mut next = 0usize;
                let mut position = 0u64;
                while !quit.load(Ordering::Relaxed) && next < events.len() {
                    std::thread::sleep(tick);
                    if step.swap(false, Ordering::Relaxed) {
                        position += 1_000_000_000;
                    } else if !paused.load(Ordering::Relaxed) {
                        position += tick.as_nanos() as u64 * speed.load(Ordering::Relaxed) / 1000;
                    }
                    let end = next
                        + events[next..]
                            .iter()
                            .take_while(|e| {
                                e.ts_ns == 0 || e.ts_ns.saturating_sub(first) <= position
                            })
                            .count();
                    lock(&model).extend(&events[next..end]);
                    next = end;
                    pos.store(position, Ordering::Relaxed);
                }
                done.store(true, Ordering::Relaxed);
            })
            .map_err(|e| format!("cannot start the replay: {e}"))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let source = format!("replay of {name} ({})", trace.meta.source);
        let labels = trace
            .end
            .as_ref()
            .map(|e| e.labels.iter().cloned().collect())
            .unwrap_or_default();
        let pid = trace
            .end
            .as_ref()
            .and_then(|e| e.pids.first().copied())
            .or(trace.meta.pids.first().copied())
            .unwrap_or(0);
        Ok((
            Replay {
                handle: Some(handle),
                ..r
            },
            source,
            pid,
            labels,
        ))
    }

    fn stop(mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Restores the terminal however the UI ends (return, `?`, panic unwinding through main).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("futex-tui: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !(cli.skew > 0.0 && cli.skew <= 1.0) {
        return fail(format!("--skew {} is outside (0, 1]: try 0.5", cli.skew));
    }
    // What can be checked before anything starts is checked first, so a wrong pid or a missing file is
    // the message a user sees, whatever else is wrong.
    if cli.pid.is_some() || !cli.command.is_empty() {
        let checks = ebpf::check_can_trace().and_then(|_| cli.pid.map_or(Ok(()), ebpf::check_pid));
        if let Err(e) = checks {
            return fail(e);
        }
    }
    if let Some(path) = &cli.replay {
        if let Err(e) = std::fs::File::open(path) {
            return fail(format!("cannot open {}: {e}", path.display()));
        }
    }
    if !std::io::stdout().is_terminal() {
        return fail(
            "needs a terminal (standard output is not one); for a report without a terminal, \
             run `futex-trace report --demo` (or `futex-trace report -p PID`)",
        );
    }
    // Everything that can fail is checked before the terminal is taken over.
    let live_target = if !cli.command.is_empty() {
        Some(LiveTarget::Command(cli.command.clone()))
    } else {
        cli.pid.map(|p| LiveTarget::Pids(vec![p]))
    };
    let mut labels = std::collections::HashMap::new();
    let (feed, source, pid, speed) = if let Some(target) = live_target {
        let shared = Shared::with_origin(if cli.usdt {
            BucketOrigin::FutexCore
        } else {
            BucketOrigin::FutexCoreHash
        });
        let stop = Arc::new(AtomicBool::new(false));
        let opts = LiveOptions {
            duration: None,
            status: false,
            no_stacks: cli.no_stacks,
            command_log: Some(cli.out_dir.join("futex-tui-command.log")),
            usdt: cli.usdt,
        };
        let handle = {
            let (shared, stop, target) = (shared.clone(), stop.clone(), target.clone());
            std::thread::Builder::new()
                .name("futex-tracer".into())
                .spawn(move || live::trace_into(&target, opts, &stop, &shared, &mut |_| true))
                .expect("spawn the tracer thread")
        };
        let what = if cli.usdt {
            "futex-core probes (USDT)"
        } else {
            "kernel futexes (eBPF)"
        };
        let (source, pid) = match &target {
            LiveTarget::Pids(p) => (what.to_string(), p[0]),
            LiveTarget::Command(c) => (format!("{what} of `{}`", c.join(" ")), 0),
        };
        let feed = Feed::Live {
            shared,
            stop,
            handle: Some(handle),
            ended: None,
        };
        (feed, source, pid, None)
    } else if let Some(path) = &cli.replay {
        match Replay::open(path, cli.speed) {
            Ok((r, source, pid, l)) => {
                labels = l;
                (Feed::Replay(r), source, pid, Some(cli.speed))
            }
            Err(e) => return fail(e),
        }
    } else {
        let src = match ObserverSource::new(1 << 20) {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot observe futex-core: {e}")),
        };
        let model = Model::new(src.buckets(), BucketOrigin::FutexCore);
        let demo = Demo::start(&DemoConfig {
            threads: cli.threads,
            skew: cli.skew,
        });
        labels = demo.labels().clone();
        // The collector folds events into the model off the UI thread.
        let collector = Collector::spawn(src, model, Duration::from_millis(20));
        (
            Feed::Demo { collector, demo },
            "demo (futex-core observer)".to_string(),
            std::process::id(),
            None,
        )
    };
    let mut feed = feed;

    let start = Instant::now();
    let mut app = App::new(source, pid, feed.snapshot(), labels);
    app.speed = speed;
    app.out_dir = cli.out_dir.clone();
    if !cli.command.is_empty() {
        app.message = Some(format!(
            "the command's output goes to {}",
            cli.out_dir.join("futex-tui-command.log").display()
        ));
    }
    let result = match ratatui::try_init() {
        Err(e) => Err(e),
        Ok(mut terminal) => {
            let _guard = TerminalGuard;
            let frame = Duration::from_millis(100);
            let mut next_frame = Instant::now();
            let mut last_stacks = Instant::now() - Duration::from_secs(10);
            let mut last_cost = (0u64, Instant::now());
            let mut run = || -> std::io::Result<()> {
                loop {
                    if Instant::now() >= next_frame {
                        if let Some(m) = feed.ended() {
                            app.message = Some(m);
                        }
                        if last_stacks.elapsed() >= Duration::from_secs(1) {
                            last_stacks = Instant::now();
                            app.stacks = feed.stacks();
                            match &feed {
                                Feed::Live { shared, .. } => {
                                    app.tracer_cost = Some(format!(
                                        "tracer {:.1} ms/s BPF",
                                        lock(&shared.status).bpf_ns_per_sec / 1e6
                                    ));
                                }
                                Feed::Demo { collector, .. } => {
                                    // The observer's share: its collector thread's CPU per second.
                                    let now = collector.cpu_ns();
                                    let dt = last_cost.1.elapsed().as_secs_f64().max(1e-3);
                                    let ms = now.saturating_sub(last_cost.0) as f64 / 1e6 / dt;
                                    last_cost = (now, Instant::now());
                                    app.tracer_cost = Some(format!("observer {ms:.1} ms/s"));
                                }
                                Feed::Replay(_) => {}
                            }
                        }
                        let uptime = match &feed {
                            Feed::Replay(r) => r.position_ns.load(Ordering::Relaxed) as f64 / 1e9,
                            _ => start.elapsed().as_secs_f64(),
                        };
                        let model = feed.snapshot();
                        if app.pid == 0 {
                            // A started command: its pid is the first that waits.
                            app.pid = model.addresses.values().map(|a| a.pid).min().unwrap_or(0);
                        }
                        app.update(model, uptime);
                        terminal.draw(|f| futex_tui::ui::draw(f, &app))?;
                        next_frame += frame;
                        if next_frame < Instant::now() {
                            next_frame = Instant::now() + frame;
                        }
                    }
                    let wait = next_frame.saturating_duration_since(Instant::now());
                    if event::poll(wait)? {
                        if let Event::Key(k) = event::read()? {
                            if k.kind != KeyEventKind::Press {
                                continue;
                            }
                            let key = match k.code {
                                KeyCode::Char('c')
                                    if k.modifiers.contains(KeyModifiers::CONTROL) =>
                                {
                                    Key::Quit
                                }
                                KeyCode::Char('q') => Key::Quit,
                                KeyCode::Esc => Key::Esc,
                                KeyCode::Tab => Key::Tab,
                                KeyCode::Up => Key::Up,
                                KeyCode::Down => Key::Down,
                                KeyCode::Enter => Key::Enter,
                                KeyCode::Char(c) => Key::Char(c),
                                _ => Key::Other,
                            };
                            if !app.on_key(key) {
                                return Ok(());
                            }
                            if let Feed::Replay(r) = &feed {
                                r.paused.store(app.paused, Ordering::Relaxed);
                                r.speed_milli.store(
                                    (app.speed.unwrap_or(1.0) * 1000.0) as u64,
                                    Ordering::Relaxed,
                                );
                                if std::mem::take(&mut app.step) {
                                    r.step.store(true, Ordering::Relaxed);
                                }
                            }
                            // Redraw at once after a key.
                            terminal.draw(|f| futex_tui::ui::draw(f, &app))?;
                        }
                    }
                }
            };
            run()
        }
    };
    feed.stop();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("futex-tui: terminal error: {e}");
            ExitCode::from(1)
        }
    }
}
