//! The command line both binaries share: clap `Args` groups that `futex-trace`'s subcommands and
//! `futex-tui` flatten (what to trace, the demo, how stacks are taken, how waits are classed, how long,
//! where to write), the one function that turns them into a source ([`TraceArgs::input`]), and the
//! value parsers ([`parse`]) that refuse an impossible value in one line.

pub mod parse;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::demo::DemoConfig;
use crate::ebpf::StackOptions;
use crate::session::SessionOptions;
use crate::sites::Rules;
use crate::source::{CommandOutput, Input, KernelOptions, LiveTarget, Pace};
use crate::trace::Control;
use crate::{Error, Result};

/// What to trace, and how: live processes or the demo, how stacks are taken, how waits are classed.
#[derive(Args, Clone, Debug, Default)]
pub struct TraceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub demo: DemoArgs,
    #[command(flatten)]
    pub stacks: StackOptions,
    #[command(flatten)]
    pub classes: ClassArgs,
}

/// Live processes to trace through eBPF (root).
#[derive(Args, Clone, Debug, Default)]
pub struct TargetArgs {
    /// Trace a running process by pid (all its threads; repeat for several). Needs root.
    #[arg(short, long = "pid", value_name = "PID", conflicts_with = "demo")]
    pub pids: Vec<u32>,
    /// Trace every process named NAME (/proc/PID/comm), now and as they start (each second), with
    /// their children: a service that restarts stays traced. Needs root.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["pids", "demo", "command"])]
    pub comm: Option<String>,
    /// Trace futex-core's own probes (USDT) in a program that links futex-core, instead of its kernel
    /// futexes: the buckets are then futex-core's real sleep queues.
    #[arg(long, conflicts_with = "demo")]
    pub usdt: bool,
    /// Start this command and trace it and every process it forks (after `--`). Needs root. Its
    /// stdout goes to our stderr (our stdout is the report, JSON or stream), unless --command-output.
    #[arg(last = true, value_name = "COMMAND", conflicts_with_all = ["demo", "pids"])]
    pub command: Vec<String>,
    /// A started command's stdout and stderr go to FILE (its stdin is then /dev/null).
    #[arg(long, value_name = "FILE", requires = "command")]
    pub command_output: Option<PathBuf>,
}

/// The built-in demo workload: futex-core in this process, traced through its observer (no root).
#[derive(Args, Clone, Debug, Default)]
pub struct DemoArgs {
    /// Trace the built-in demo workload (futex-core in this process, through its observer; no root).
    #[arg(long)]
    pub demo: bool,
    /// Demo: threads contending on the heat-graded locks, 1 to 256 [default: 4].
    #[arg(long, value_name = "N", value_parser = parse::threads)]
    pub threads: Option<usize>,
    /// Demo: heat ratio between consecutive locks, in (0, 1]; smaller makes the first lock hotter
    /// [default: 0.5].
    #[arg(long, value_name = "RATIO", value_parser = parse::skew)]
    pub skew: Option<f64>,
}

impl DemoArgs {
    /// The demo these arguments ask for.
    pub fn config(&self) -> DemoConfig {
        let d = DemoConfig::default();
        DemoConfig {
            threads: self.threads.unwrap_or(d.threads),
            skew: self.skew.unwrap_or(d.skew),
        }
    }
}

/// How waits are classed. A wait site's class comes from behaviour — what released its waiters, and
/// from where — not from the primitive it sleeps on; these rules override it.
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Wait classes")]
pub struct ClassArgs {
    /// A wait site with a frame matching REGEX is idle (waiting for work), whatever its behaviour
    /// says: e.g. --idle-frame '^worker_pool::park$'.
    #[arg(long, value_name = "REGEX", value_parser = parse::regex)]
    pub idle_frame: Option<regex::Regex>,
    /// A wait site with a frame matching REGEX is a lock (contention), whatever its behaviour says:
    /// e.g. --lock-frame '^MyQueue::push$'.
    #[arg(long, value_name = "REGEX", value_parser = parse::regex)]
    pub lock_frame: Option<regex::Regex>,
}

impl ClassArgs {
    /// The rules these arguments give.
    pub fn rules(&self) -> Rules {
        Rules {
            idle: self.idle_frame.clone(),
            lock: self.lock_frame.clone(),
        }
    }
}

/// How long to trace.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct RunArgs {
    /// How long to trace ("10s", "500ms", "2m"). Default: a command until it exits, a recording to
    /// its end; a pid, --comm or the demo for 5 s with report, flamegraph and pprof, and until Ctrl-C
    /// with record and stream.
    #[arg(short, long, value_parser = parse::trace_duration)]
    pub duration: Option<Duration>,
}

/// A recording to read instead of tracing live.
#[derive(Args, Clone, Debug, Default)]
pub struct RecordingArg {
    /// A recording made by `futex-trace record`.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// What a view (a report, a flamegraph, a profile) is drawn from: a recording, or a live trace of
/// what `trace` names for `run`'s duration.
#[derive(Args, Clone, Debug, Default)]
pub struct ViewArgs {
    #[command(flatten)]
    pub file: RecordingArg,
    #[command(flatten)]
    pub trace: TraceArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Which waits a flamegraph or a profile draws.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct ShowArgs {
    /// Which waits to draw, by the class of their wait site: `contention` (a lock, a hand-off), `idle`
    /// (waiting for work, sleeps), `all`; `auto` draws contention when the trace has any (a server's
    /// idle pools would dwarf its locks), else everything, and says which it drew.
    #[arg(long, value_enum, default_value = "auto")]
    pub show: crate::export::Show,
}

/// Where to write.
#[derive(Args, Clone, Debug)]
pub struct OutputArgs {
    /// The file to write (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

impl TraceArgs {
    /// What these arguments ask to trace: the recording `file` (read at `pace`), live processes, or the
    /// demo. `demo_by_default`: nothing named means the demo (futex-tui); else it is an error.
    pub fn input(&self, file: Option<(PathBuf, Pace)>, demo_by_default: bool) -> Result<Input> {
        let t = &self.target;
        let live = if !t.command.is_empty() {
            Some(LiveTarget::Command(t.command.clone()))
        } else if let Some(c) = &t.comm {
            Some(LiveTarget::Comm(c.clone()))
        } else if !t.pids.is_empty() {
            Some(LiveTarget::Pids(t.pids.clone()))
        } else {
            None
        };
        let d = &self.demo;
        if (d.threads.is_some() || d.skew.is_some())
            && !(d.demo || demo_by_default && live.is_none())
        {
            return Err(Error::Usage(
                "--threads and --skew set the demo: give them with --demo".into(),
            ));
        }
        let demo = d.demo || (demo_by_default && live.is_none() && file.is_none());
        match (file, live, demo) {
            (Some((f, pace)), None, false) => Ok(Input::File(f, pace)),
            (None, Some(l), false) => Ok(Input::Live(l)),
            (None, None, true) => Ok(Input::Demo(d.config())),
            (None, None, false) => Err(Error::Usage(
                "nothing to trace: give a recording (FILE), -p PID, --comm NAME, -- COMMAND, or --demo \
                 (see --help)"
                    .into(),
            )),
            _ => Err(Error::Usage(
                "give one of: a recording (FILE), -p PID, --comm NAME, -- COMMAND, or --demo".into(),
            )),
        }
    }

    /// How a live trace of these arguments runs: a started command's output goes to
    /// `--command-output`, else to `command_output`; `end_command` as [`KernelOptions::end_command`].
    pub fn kernel_options(
        &self,
        command_output: CommandOutput,
        end_command: Option<Duration>,
    ) -> KernelOptions {
        KernelOptions {
            command_output: match &self.target.command_output {
                Some(f) => CommandOutput::File(f.clone()),
                None => command_output,
            },
            end_command,
            usdt: self.target.usdt,
            stacks: self.stacks.clone(),
        }
    }

    /// How a session of these arguments runs.
    pub fn session_options(
        &self,
        duration: Option<Duration>,
        control: &Arc<Control>,
    ) -> SessionOptions {
        SessionOptions {
            duration,
            control: control.clone(),
            rules: self.classes.rules(),
            ..SessionOptions::default()
        }
    }
}
