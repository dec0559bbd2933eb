//! The vocabulary of a trace, below everything that runs one: what was traced ([`TraceMeta`]) and how it
//! ended ([`TraceEnd`], [`StopReason`]), how it is steered ([`Control`]) and how it is doing ([`Health`],
//! [`Status`]); the two contracts a session joins, [`Source`] (where events come from) and [`Sink`]
//! (what takes them as they happen); and [`Finished`], what a session gathered.
//!
//! ```text
//! Source ──poll──▶ Session (crate::session) ──events, status, notes──▶ Sink
//!                          └── Finished ──▶ exports (crate::export)
//! ```
//! Sources, sinks and the session import from here; nothing here imports them.

use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::model::{BucketOrigin, Model};
use crate::sites::{Analysis, Rules};
use crate::stacks::{Names, StackLookup, StackTable};
use crate::Error;

/// What was traced: the header of a recording, and what reports say of their source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// e.g. "kernel futexes (eBPF)".
    pub source: String,
    pub pids: Vec<u32>,
    /// The command line, when futex-trace started the traced command.
    pub command: Option<Vec<String>>,
    pub buckets: usize,
    pub bucket_origin: BucketOrigin,
    /// Wall clock when tracing started, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// `CLOCK_MONOTONIC` when tracing started (the events' clock), nanoseconds.
    pub started_mono_ns: u64,
    /// Names of addresses the source knows from the start (the demo's locks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(u64, String)>,
}

impl TraceMeta {
    /// A header for a source that starts now.
    pub fn starting_now(
        source: impl Into<String>,
        pids: Vec<u32>,
        command: Option<Vec<String>>,
        buckets: usize,
        bucket_origin: BucketOrigin,
    ) -> TraceMeta {
        TraceMeta {
            source: source.into(),
            pids,
            command,
            buckets,
            bucket_origin,
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            started_mono_ns: crate::clock_ns(libc::CLOCK_MONOTONIC),
            labels: Vec::new(),
        }
    }
}

/// How a trace ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceEnd {
    /// Every process traced (those given, the command started, and the children followed).
    #[serde(default)]
    pub pids: Vec<u32>,
    pub duration_s: f64,
    pub events: u64,
    pub lost_events: u64,
    pub stack_errors: u64,
    /// Futex calls not traced: no room for the thread's in-flight state in the kernel.
    #[serde(default)]
    pub untraced_calls: u64,
    /// Runs of the eBPF programs the kernel skipped (another BPF program was running on that CPU).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missed_runs: u64,
    pub reason: String,
    /// Names of addresses, where the source knows them (the demo's locks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(u64, String)>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The requested duration passed.
    Duration,
    /// [`Control::stop`] (Ctrl-C, a dashboard quitting).
    Interrupted,
    /// Every traced process ended.
    TargetsExited,
    /// A recording was read to its end.
    EndOfRecording,
    /// A sink asked to stop (its output closed or failed).
    Consumer,
    /// A recording reached its size limit (`--max-size`).
    SizeLimit,
}

impl StopReason {
    /// As a recording's end marker and messages say it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::TargetsExited => "traced processes exited",
            StopReason::EndOfRecording => "end of recording",
            StopReason::Consumer => "output closed",
            StopReason::SizeLimit => "size limit reached",
        }
    }
}

/// Steers a running session from any thread.
#[derive(Debug)]
pub struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
    /// Playback speed × 1000.
    speed_milli: AtomicU64,
    step: AtomicBool,
    /// A paced recording's position, nanoseconds since its first event.
    position_ns: AtomicU64,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            speed_milli: AtomicU64::new(1000),
            step: AtomicBool::new(false),
            position_ns: AtomicU64::new(0),
        }
    }
}

/// Replay speeds a paced recording accepts.
pub const SPEEDS: std::ops::RangeInclusive<f64> = (1.0 / 16.0)..=64.0;

impl Control {
    /// Ends the session (what is pending is still folded, sinks still finish).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Pauses (or resumes) a paced recording.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
    /// Sets a paced recording's speed (1 = as recorded), clamped to [`SPEEDS`].
    pub fn set_speed(&self, speed: f64) {
        let s = speed.clamp(*SPEEDS.start(), *SPEEDS.end());
        self.speed_milli
            .store((s * 1000.0) as u64, Ordering::Relaxed);
    }
    pub fn speed(&self) -> f64 {
        self.speed_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
    /// Advances a paced recording by one second (paused or not).
    pub fn step(&self) {
        self.step.store(true, Ordering::Relaxed);
    }
    /// Takes a pending step (for the source).
    pub fn take_step(&self) -> bool {
        self.step.swap(false, Ordering::Relaxed)
    }
    /// A paced recording's position (for the source to publish, and readers to show).
    pub fn set_position(&self, ns: u64) {
        self.position_ns.store(ns, Ordering::Relaxed);
    }
    pub fn position(&self) -> Duration {
        Duration::from_nanos(self.position_ns.load(Ordering::Relaxed))
    }
}

/// What a source reports of its own health, cumulative.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Health {
    /// Stacks not stored (the kernel's stack map full, or a collision).
    pub stack_errors: u64,
    /// Futex calls not counted (no room in the kernel's maps for their thread or futex word).
    pub untraced_calls: u64,
    /// Runs of the tracer's programs the kernel skipped (another BPF program was running on that CPU).
    pub missed_runs: u64,
    /// The tracer's own cost so far: what it is ("BPF", "observer") and nanoseconds of CPU.
    pub cost: Option<(&'static str, u64)>,
}

/// A session's state once a second: for a status line, a dashboard's header.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Status {
    /// Since the start (for a paced recording: the playback position).
    pub elapsed: Duration,
    pub events: u64,
    pub events_per_sec: f64,
    pub lost_events: u64,
    pub health: Health,
    /// The tracer's cost over the last second: what it is, and nanoseconds of CPU per second.
    pub cost_per_sec: Option<(&'static str, f64)>,
    /// Bytes the sinks have written (a recording), and per second over the last second.
    pub written: Option<(u64, f64)>,
}

/// Why a sink cannot go on.
#[derive(Debug)]
pub enum SinkError {
    /// Its reader went away (a closed pipe): the session stops quietly.
    Closed,
    /// It failed: the session stops and says this.
    Failed(String),
    /// It reached its size limit: the session stops (its end is still written) and says this.
    Full(String),
}

/// Something that takes a session's output as it happens, on the fold thread: a JSON stream, a
/// recording, a status line. Every method but `start` is optional.
pub trait Sink: Send {
    /// Tracing has started (the programs are attached, the command runs): open outputs now.
    fn start(&mut self, meta: &TraceMeta) -> Result<(), SinkError>;
    /// A batch of events, in the order the source delivered them.
    fn events(&mut self, _batch: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
    /// Once a second.
    fn status(&mut self, _status: &Status) {}
    /// Once a second, the stacks resolved so far (sources with stacks only).
    fn stacks(&mut self, _stacks: &StackTable) -> Result<(), SinkError> {
        Ok(())
    }
    /// Something the user should know, as it happens.
    fn note(&mut self, _note: &str) {}
    /// Bytes written so far, for a sink that writes a file.
    fn written(&self) -> Option<u64> {
        None
    }
    /// The session ended; `finished` is what it gathered.
    fn finish(&mut self, _finished: &Finished) -> Result<(), SinkError> {
        Ok(())
    }
}

/// What a source says when it stops.
#[derive(Debug, Default)]
pub struct SourceEnd {
    /// Every process it traced (given, started, followed). The session adds those seen in events.
    pub pids: Vec<u32>,
    /// A started command's exit status, if it ended.
    pub exit_status: Option<ExitStatus>,
    /// A recording's own end marker, warning and stacks (a recording reports as it was recorded).
    pub recorded: Option<Recorded>,
    /// Things the user should know (a command left running).
    pub notes: Vec<String>,
}

/// What a recording says of itself.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub end: Option<TraceEnd>,
    /// Cut short, or not ended cleanly.
    pub warning: Option<String>,
}

/// Everything a session gathered.
#[derive(Clone, Debug)]
pub struct Finished {
    /// What the session showed as its source ("kernel futexes (eBPF) (recorded in t.ftr)").
    pub title: String,
    pub meta: TraceMeta,
    /// How it ended (`None`: a recording without its end marker).
    pub end: Option<TraceEnd>,
    pub reason: StopReason,
    pub model: Model,
    /// The stacks and symbols (`None`: the source has no stacks).
    pub stacks: Option<StackTable>,
    /// Names of addresses the source knows (the demo's locks, a recording's labels).
    pub labels: HashMap<u64, String>,
    /// What a reader of a report must know: losses, stacks cut short, a damaged recording.
    pub warnings: Vec<String>,
    /// What happened around the trace (a command left running), said once.
    pub notes: Vec<String>,
    /// A started command's exit status.
    pub exit_status: Option<ExitStatus>,
    /// A sink that failed, and why (its output is incomplete).
    pub sink_error: Option<String>,
    /// CPU time the session's fold thread used (reading the source, folding, the sinks).
    pub fold_cpu: Duration,
    /// The user's rules for wait classes.
    pub rules: Rules,
}

impl Finished {
    /// The traced process (the first, when several).
    pub fn pid(&self) -> u32 {
        self.end
            .as_ref()
            .and_then(|e| e.pids.first())
            .or(self.meta.pids.first())
            .copied()
            .unwrap_or(0)
    }

    /// How its words and stacks are named: its labels and its stack table.
    pub fn names(&self) -> Names<'_> {
        Names::new(&self.labels, self.stacks.as_ref())
    }

    /// Its wait sites and classes, with its model and names: what every view draws from.
    pub fn analysis(&self) -> Analysis<'_> {
        Analysis::new(&self.model, self.names(), &self.rules)
    }

    /// Seconds traced: as the end marker says, else the span of the events.
    pub fn duration_s(&self) -> f64 {
        self.end
            .as_ref()
            .map_or_else(|| self.model.span_secs(), |e| e.duration_s)
    }
}

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
    Live(Arc<dyn StackLookup>),
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
    ) -> Result<Poll, Error>;
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
