//! `futex-tui`: the dashboard. With no arguments it runs futex-trace's built-in demo workload in this
//! process, traced through futex-core's observer (no root needed). `main` chooses a source, runs a
//! futex-trace session on it, draws the app from the session's snapshots, and carries out the actions
//! keys ask for.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ratatui::crossterm::event::{
    self, DisableMouseCapture, EnableMouseCapture, Event, KeyCode, KeyEvent, KeyEventKind,
    KeyModifiers, MouseButton, MouseEventKind,
};

use futex_trace::cli::{parse, TraceArgs};
use futex_trace::session::Session;
use futex_trace::source::{self, CommandOutput, Input, LiveTarget, Pace};
use futex_trace::trace::{Control, Source, Status};
use futex_trace::Error;
use futex_tui::app::{Action, App, Key};

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
                  futex-tui --replay trace.ftr --speed 4  # a recording (futex-trace record)\n  \
                  sudo futex-tui -p 1234 --slots 64  # b: its kernel futex buckets with 64 slots\n\n\
                  Keys: q quit, p pause, Tab panel, j/k select, Enter detail, s sort, f flamegraph,\n\
                  b buckets (the kernel's, the --slots what-if, futex-core's), +/- replay speed,\n\
                  n replay step, ? help"
)]
struct Cli {
    #[command(flatten)]
    trace: TraceArgs,
    /// Play a recording made by `futex-trace record`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pids", "comm", "command", "demo"])]
    replay: Option<PathBuf>,
    /// Replay speed (1 = as recorded; 0.0625 to 64).
    #[arg(long, default_value_t = 1.0, requires = "replay", value_parser = parse::speed)]
    speed: f64,
    /// eBPF: what-if for the kernel's buckets: `b` also shows the traced process's private futex words
    /// in a kernel hash of N slots (a power of two), as prctl(PR_FUTEX_HASH_SET_SLOTS, N) would give.
    #[arg(long, value_name = "N", value_parser = parse::slots)]
    slots: Option<u32>,
    /// Latencies from this long are shown yellow (worth a look; below: green).
    #[arg(long, value_name = "DURATION", default_value = "100us", value_parser = parse::duration)]
    warn: Duration,
    /// Latencies from this long are shown red (bad).
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse::duration)]
    crit: Duration,
    /// Where `f` writes flamegraphs (and a started command's output, futex-tui-command.log).
    #[arg(long, default_value = ".", value_name = "DIR")]
    out_dir: PathBuf,
    /// Leave a command started with `--` running when futex-tui quits (by default it is ended: SIGTERM,
    /// then SIGKILL after 2 s).
    #[arg(long, requires = "command")]
    leave_running: bool,
}

/// Restores the terminal however the UI ends (return, `?`, panic unwinding through main).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = ratatui::crossterm::execute!(std::io::stdout(), DisableMouseCapture);
        ratatui::restore();
    }
}

fn fail(e: Error) -> ExitCode {
    match e {
        Error::NeedsPrivileges => eprintln!(
            "futex-tui: {e}, or run futex-tui without -p or a command: its built-in demo needs no \
             privileges"
        ),
        e => eprintln!("futex-tui: {e}"),
    }
    ExitCode::from(2)
}

/// How long a command started with `--` has to exit after SIGTERM when futex-tui quits.
const END_GRACE: Duration = Duration::from_secs(2);

impl Cli {
    /// What the command line asks to trace: a recording, live processes, or the demo (the default).
    fn input(&self) -> Result<Input, Error> {
        let file = self.replay.clone().map(|f| (f, Pace::Recorded));
        self.trace.input(file, true)
    }

    /// The source the command line asks for, started.
    fn source(&self, input: &Input) -> Result<Box<dyn Source>, Error> {
        let log = CommandOutput::File(self.out_dir.join("futex-tui-command.log"));
        let end = (!self.leave_running).then_some(END_GRACE);
        source::open(input, self.trace.kernel_options(log, end))
    }
}

/// How the header names the source.
fn title(cli: &Cli, input: &Input, session: &Session) -> String {
    if let Some(path) = &cli.replay {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        return format!("replay of {name} ({})", session.meta().source);
    }
    let Input::Live(target) = input else {
        return session.title().to_string();
    };
    let what = if cli.trace.target.usdt {
        "futex-core probes (USDT)"
    } else {
        "kernel futexes (eBPF)"
    };
    match target {
        LiveTarget::Command(argv) => format!("{what} of `{}`", argv.join(" ")),
        LiveTarget::Comm(c) => format!("{what} of processes named {c}"),
        LiveTarget::Pids(_) => what.to_string(),
    }
}

/// The header's figure of the tracer's own cost, and the program runs the kernel skipped.
fn tracer_cost(status: &Status) -> Option<String> {
    let missed = match status.health.missed_runs {
        0 => String::new(),
        n => format!(" · {n} missed runs"),
    };
    status.cost_per_sec.map(|(what, ns)| match what {
        "BPF" => format!("tracer {:.1} ms/s BPF{missed}", ns / 1e6),
        other => format!("{other} {:.1} ms/s{missed}", ns / 1e6),
    })
}

/// Carries out what a key asked for, outside the app's own state.
fn act(action: Action, app: &mut App, session: &Session, out_dir: &std::path::Path) {
    let control = session.control();
    match action {
        Action::None | Action::Quit => {}
        Action::WriteFlamegraph => {
            // The stacks as the model has them now, named (the table shown is refreshed each second).
            session.settle_stacks(Duration::from_secs(2));
            app.stacks = session.stacks();
            app.message = Some(match futex_tui::export::write_flamegraph(app, out_dir) {
                Ok(p) => format!("flamegraph written: {}", p.display()),
                Err(e) => format!("could not write the flamegraph: {e}"),
            })
        }
        Action::Pause(p) => control.set_paused(p),
        Action::Speed(s) => control.set_speed(s),
        Action::Step => control.step(),
    }
}

fn key(k: KeyEvent) -> Key {
    match k.code {
        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Quit,
        KeyCode::Char('q') => Key::Quit,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Enter => Key::Enter,
        KeyCode::Char(c) => Key::Char(c),
        _ => Key::Other,
    }
}

/// Draws a frame every 100 ms from the session's latest snapshot, and handles keys, until quit.
fn run_ui(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    session: &Session,
    cli: &Cli,
) -> std::io::Result<()> {
    let start = Instant::now();
    let frame = Duration::from_millis(100);
    let mut next_frame = Instant::now();
    let mut last_stacks = Instant::now() - Duration::from_secs(10);
    let (mut notes_seen, mut announced) = (0, false);
    loop {
        if Instant::now() >= next_frame {
            if let Some(n) = session
                .notes()
                .get(notes_seen..)
                .and_then(|n| n.last().cloned())
            {
                notes_seen = session.notes().len();
                if cli.replay.is_some() {
                    // A replay's notes are about the recording itself: that stays in the header.
                    app.warning = Some(if n.contains("damaged") {
                        "DAMAGED RECORDING (parts skipped)".into()
                    } else {
                        "INCOMPLETE RECORDING".into()
                    });
                }
                app.message = Some(n);
            }
            if let Some(ended) = session.ended().filter(|_| !announced) {
                announced = true;
                app.message = Some(match ended {
                    Ok(_) if cli.replay.is_some() => "replay finished · q quits".into(),
                    Ok(reason) => format!(
                        "tracing ended ({}); showing what was gathered · q quits",
                        reason.as_str()
                    ),
                    Err(e) => format!("tracing failed: {e}"),
                });
            }
            if last_stacks.elapsed() >= Duration::from_secs(1) {
                last_stacks = Instant::now();
                app.stacks = session.stacks();
                app.tracer_cost = tracer_cost(&session.status());
            }
            let uptime = match cli.replay {
                Some(_) => session.control().position().as_secs_f64(),
                None => start.elapsed().as_secs_f64(),
            };
            let model = session.snapshot();
            if app.pid == 0 {
                // A recording that names no pid: the first that waits.
                app.pid = model.addresses.values().map(|a| a.pid).min().unwrap_or(0);
            }
            app.update(model, uptime);
            terminal.draw(|f| futex_tui::ui::draw(f, app))?;
            next_frame += frame;
            if next_frame < Instant::now() {
                next_frame = Instant::now() + frame;
            }
        }
        let wait = next_frame.saturating_duration_since(Instant::now());
        if event::poll(wait)? {
            let k = match event::read()? {
                Event::Key(k) if k.kind == KeyEventKind::Press => key(k),
                Event::Mouse(m) => match m.kind {
                    MouseEventKind::Down(MouseButton::Left) => Key::Click(m.column, m.row),
                    MouseEventKind::ScrollUp => Key::ScrollUp(m.column, m.row),
                    MouseEventKind::ScrollDown => Key::ScrollDown(m.column, m.row),
                    _ => continue,
                },
                // A resize is drawn at once, at the new size.
                Event::Resize(..) => Key::Other,
                _ => continue,
            };
            let action = app.on_key(k);
            if action == Action::Quit {
                return Ok(());
            }
            act(action, app, session, &cli.out_dir);
            // Redraw at once after a key.
            terminal.draw(|f| futex_tui::ui::draw(f, app))?;
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // What can be checked before anything starts is checked first, so a wrong pid or a missing file is
    // the message a user sees, whatever else is wrong.
    let input = match cli.input().and_then(|i| i.preflight().map(|()| i)) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    if cli.crit <= cli.warn {
        return fail(Error::Usage(format!(
            "--crit ({}) must be longer than --warn ({}): latencies from --warn are yellow, from --crit red",
            futex_tui::ui::ns(cli.crit.as_nanos() as u64),
            futex_tui::ui::ns(cli.warn.as_nanos() as u64)
        )));
    }
    if !std::io::stdout().is_terminal() {
        return fail(Error::Usage(
            "needs a terminal (standard output is not one); for a report without a terminal, \
             run `futex-trace report --demo` (or `futex-trace report -p PID`)"
                .into(),
        ));
    }
    // Everything that can fail is checked, and the source started, before the terminal is taken over.
    let control = Arc::new(Control::default());
    if cli.replay.is_some() {
        control.set_speed(cli.speed);
    }
    let session = match cli
        .source(&input)
        .and_then(|s| Session::start(s, cli.trace.session_options(None, &control), vec![]))
    {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let pid = session.meta().pids.first().copied().unwrap_or(0);
    let mut app = App::new(
        title(&cli, &input, &session),
        pid,
        session.snapshot(),
        session.labels().clone(),
    );
    app.speed = cli.replay.as_ref().map(|_| control.speed());
    app.rules = session.rules().clone();
    app.what_if_slots = cli.slots;
    app.thresholds = futex_tui::app::Thresholds {
        warn_ns: cli.warn.as_nanos() as u64,
        crit_ns: cli.crit.as_nanos() as u64,
    };
    if !cli.trace.target.command.is_empty() {
        app.message = Some(format!(
            "the command's output goes to {}",
            cli.out_dir.join("futex-tui-command.log").display()
        ));
    }
    let result = match ratatui::try_init() {
        Err(e) => Err(e),
        Ok(mut terminal) => {
            let _guard = TerminalGuard;
            // Clicks select rows and the wheel scrolls where the terminal reports them (hold Shift to
            // select text, as in other mouse-aware terminal programs).
            let _ = ratatui::crossterm::execute!(std::io::stdout(), EnableMouseCapture);
            run_ui(&mut terminal, &mut app, &session, &cli)
        }
    };
    // The terminal is restored: say what happened around the trace (a command ended, or left running).
    if let Ok(f) = session.stop() {
        for n in &f.notes {
            eprintln!("futex-tui: {n}");
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("futex-tui: terminal error: {e}");
            ExitCode::from(1)
        }
    }
}
