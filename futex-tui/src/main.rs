//! `futex-tui`: the dashboard. With no arguments it runs futex-trace's built-in demo workload in this
//! process, traced through futex-core's observer (no root needed).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use futex_trace::demo::{Demo, DemoConfig};
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::source::{Collector, ObserverSource};
use futex_tui::app::{App, Key};

#[derive(Parser)]
#[command(
    name = "futex-tui",
    version,
    about = "Live dashboard of futex contention: buckets, locks, requeues, wakeup latency",
    after_help = "Examples:\n  futex-tui                       # the built-in demo, no root\n  \
                  futex-tui --threads 8 --skew 0.3  # a hotter demo\n\n\
                  Keys: q quit, p pause, Tab panel, j/k select, Enter detail, s sort, ? help"
)]
struct Cli {
    /// Demo: threads contending on the heat-graded locks.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Demo: heat ratio between consecutive locks, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    skew: f64,
    /// Trace a running process (needs the eBPF source: not in this build yet).
    #[arg(short, long)]
    pid: Option<u32>,
}

/// Restores the terminal however the UI ends (return, `?`, panic unwinding through main).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.pid.is_some() {
        eprintln!(
            "futex-tui: tracing a process by pid needs the eBPF source, which this build does not have \
             yet; run futex-tui without -p for the built-in demo"
        );
        return ExitCode::from(2);
    }
    if !(cli.skew > 0.0 && cli.skew <= 1.0) {
        eprintln!("futex-tui: --skew {} is outside (0, 1]: try 0.5", cli.skew);
        return ExitCode::from(2);
    }
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "futex-tui: needs a terminal (standard output is not one); for a report without a terminal, \
             run `futex-trace report --demo`"
        );
        return ExitCode::from(2);
    }
    let src = match ObserverSource::new(1 << 20) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("futex-tui: cannot observe futex-core: {e}");
            return ExitCode::from(1);
        }
    };
    let model = Model::new(src.buckets(), BucketOrigin::FutexCore);
    let demo = Demo::start(&DemoConfig {
        threads: cli.threads,
        skew: cli.skew,
    });
    let labels = demo.labels().clone();
    // The collector folds events into the model off the UI thread.
    let collector = Collector::spawn(src, model, Duration::from_millis(20));

    let start = Instant::now();
    let mut app = App::new(
        "demo (futex-core observer)".into(),
        std::process::id(),
        collector.snapshot(),
        labels,
    );
    let result = match ratatui::try_init() {
        Err(e) => Err(e),
        Ok(mut terminal) => {
            let _guard = TerminalGuard;
            let frame = Duration::from_millis(100);
            let mut next_frame = Instant::now();
            let mut run = || -> std::io::Result<()> {
                loop {
                    if Instant::now() >= next_frame {
                        app.update(collector.snapshot(), start.elapsed().as_secs_f64());
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
                            // Redraw at once after a key.
                            terminal.draw(|f| futex_tui::ui::draw(f, &app))?;
                        }
                    }
                }
            };
            run()
        }
    };
    collector.stop();
    demo.stop();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("futex-tui: terminal error: {e}");
            ExitCode::from(1)
        }
    }
}
