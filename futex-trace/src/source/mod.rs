//! Sources: where a session's events come from. Each produces the one [`crate::event::Event`] type and
//! implements [`crate::trace::Source`]; the [`crate::session::Session`] folds them.
//!
//! - [`ObserverSource`]: futex-core's in-process observer (no root); [`DemoSource`] runs the built-in
//!   [`crate::demo`] workload under it;
//! - [`KernelSource`]: live processes through eBPF — by pid, by name, or a command started here — their
//!   kernel futexes, or futex-core's USDT probes in them (root);
//! - [`RecordingSource`]: a recording, as fast as it reads or paced as recorded (pause, speed, step).
//!
//! [`open`] is the one place a source is chosen from what the user asked for ([`Input`]).

mod live;
mod observer;
mod replay;

use std::path::PathBuf;
use std::time::Duration;

pub use live::{CommandOutput, KernelOptions, KernelSource, LiveTarget, BUCKETS};
pub use observer::{DemoSource, ObserverSource};
pub use replay::{Pace, RecordingSource};

use crate::trace::Source;
use crate::Result;

/// What to trace: the demo, live processes, or a recording.
#[derive(Clone, Debug)]
pub enum Input {
    /// The built-in demo workload, in this process.
    Demo(crate::demo::DemoConfig),
    /// Live processes through eBPF.
    Live(LiveTarget),
    /// A recording, read at this pace.
    File(PathBuf, Pace),
}

impl Input {
    /// How messages name what is traced: "the demo", "pid 12", "`./server`"; `None` for a recording
    /// (it names itself).
    pub fn describe(&self) -> Option<String> {
        match self {
            Input::Demo(_) => Some("the demo".into()),
            Input::Live(t) => Some(t.describe()),
            Input::File(..) => None,
        }
    }

    /// How long a live report of this input lasts unless told: a command runs to its end, a recording
    /// is read to its end, a pid or the demo is traced for `default`.
    pub fn default_duration(&self, asked: Option<Duration>, default: Duration) -> Option<Duration> {
        match self {
            Input::Live(LiveTarget::Command(_)) => asked,
            Input::File(..) => None,
            _ => asked.or(Some(default)),
        }
    }
}

impl Input {
    /// Checks what can be checked before anything starts, so that a wrong pid or a missing file is the
    /// message a user sees whatever else is wrong: privileges, tracefs and the pids of a live trace;
    /// that a recording can be opened.
    pub fn preflight(&self) -> Result<()> {
        match self {
            Input::Demo(_) => Ok(()),
            Input::Live(target) => {
                crate::ebpf::check_can_trace()?;
                if let LiveTarget::Pids(pids) = target {
                    for &p in pids {
                        crate::ebpf::check_pid(p)?;
                    }
                }
                Ok(())
            }
            Input::File(path, _) => std::fs::File::open(path)
                .map(drop)
                .map_err(|e| crate::Error::io("open", path, e)),
        }
    }
}

/// Starts the source `input` names: the demo's threads, the eBPF programs (then the command), or the
/// recording's first pass. Everything a user can get wrong fails here, in one line.
pub fn open(input: &Input, live: KernelOptions) -> Result<Box<dyn Source>> {
    Ok(match input {
        Input::Demo(cfg) => Box::new(DemoSource::start(cfg)?),
        Input::Live(target) => Box::new(KernelSource::start(target, live)?),
        Input::File(path, pace) => Box::new(RecordingSource::open(path, *pace)?),
    })
}
