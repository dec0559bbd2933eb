//! Sources: where a session's events come from. Each produces the one [`Event`] type; the
//! [`crate::session::Session`] folds them.
//!
//! - [`ObserverSource`]: futex-core's in-process observer (no root); [`DemoSource`] runs the built-in
//!   demo workload under it;
//! - [`KernelSource`]: any process's kernel futexes through eBPF, or futex-core's USDT probes (root);
//! - [`RecordingSource`]: a recording, as fast as it reads or paced as recorded (pause, speed, step).

mod kernel;
mod observer;
mod recording;

use std::collections::HashMap;
use std::time::Duration;

pub use kernel::{CommandOutput, KernelOptions, KernelSource, LiveTarget, BUCKETS};
pub use observer::{DemoSource, ObserverSource};
pub use recording::{Pace, RecordingSource};

use crate::ebpf::{StackMap, TraceError};
use crate::event::Event;
use crate::session::{Control, Health, SourceEnd, StopReason, TraceMeta};
use crate::stacks::StackTable;

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Go on polling.
    More,
    /// The source has nothing more (the traced processes exited, the recording ended).
    Ended(StopReason),
}

/// Where the stacks of a source's events come from.
pub enum StackSource {
    /// Its events carry no stacks (the observer).
    None,
    /// Stack ids resolved and symbolized while the session runs: the kernel's stack map (`--unwind
    /// fp`), stacks unwound from copies (`--unwind dwarf`), or the observer's frame-pointer walks.
    Live(StackMap),
    /// A recording's table, complete.
    Recorded(StackTable),
}

/// A source of events for a [`crate::session::Session`]. Everything runs on the session's fold thread.
pub trait Source: Send {
    /// What is traced (a recording's header, for a recording).
    fn meta(&self) -> TraceMeta;
    /// How the session shows its source; by default the meta's `source`.
    fn title(&self) -> String {
        self.meta().source
    }
    /// Names of futex words the source knows (the demo's locks).
    fn labels(&self) -> HashMap<u64, String> {
        HashMap::new()
    }
    /// Where stacks come from; asked once, before the first poll.
    fn stacks(&self) -> StackSource {
        StackSource::None
    }
    /// Waits up to `wait` for events and appends them to `out` (a few thousand at most per call).
    fn poll(
        &mut self,
        control: &Control,
        out: &mut Vec<Event>,
        wait: Duration,
    ) -> Result<Poll, TraceError>;
    /// Its counters and cost so far.
    fn health(&self) -> Health {
        Health::default()
    }
    /// A paced recording's position (the session's elapsed time otherwise).
    fn position(&self) -> Option<Duration> {
        None
    }
    /// Things the user should know that arose since the last call (asked after every poll).
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Stops (ends a workload, detaches) and appends whatever events are still pending.
    fn finish(&mut self, out: &mut Vec<Event>) -> SourceEnd;
}

/// A process is gone when /proc has no entry for it or it is a zombie.
pub(crate) fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}
