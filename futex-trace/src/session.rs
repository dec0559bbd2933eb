//! The session: one [`Source`] folded into one [`Model`], on a thread of its own.
//!
//! ```text
//! source (observer, demo, eBPF kernel futexes, eBPF USDT, recording)
//!    │ batches of Events                           ┌─ snapshots, stacks, status, notes ─▶ dashboard
//!    ▼                                             │
//! Session: fold thread ── Model ── stack resolver ─┤
//!    │ every batch, status, notes, the end         │
//!    ▼                                             └─ Finished (when it ends) ─▶ report, flamegraph
//! sinks (stream, recording writer, status line)
//! ```
//!
//! This is the only place events are folded into a model. A caller chooses a source, attaches sinks
//! (which see every batch on the fold thread, in order), reads snapshots while it runs, steers it
//! through [`Control`] (stop, and pause/speed/step of a paced recording), and takes [`Finished`] at the
//! end. Nothing here writes to a terminal: a status line is a [`Sink`].

use std::collections::{BTreeSet, HashMap};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ebpf::{StackMap, TraceError};
use crate::event::{Event, EventKind};
use crate::kernel::OpClass;
use crate::lock;
use crate::model::{BucketOrigin, Model};
use crate::source::{Poll, Source, StackSource};
use crate::stacks::{new_symbolizer, StackTable, SHORT_STACKS_HELP};

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

    /// Seconds traced: as the end marker says, else the span of the events.
    pub fn duration_s(&self) -> f64 {
        self.end
            .as_ref()
            .map_or_else(|| self.model.span_secs(), |e| e.duration_s)
    }
}

/// How a session runs.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Stop after this long (default: until stopped, or the source ends).
    pub duration: Option<Duration>,
    /// Shared with whoever steers the session (a Ctrl-C handler, a dashboard).
    pub control: Arc<Control>,
    /// The model keeps at most this many futex words (see [`Model::max_words`]); `None`: all.
    pub max_words: Option<usize>,
    /// `--idle-frame`: a wait whose stack has a frame matching this is idle (see [`crate::classify`]).
    pub idle_frame: Option<regex::Regex>,
}

/// What the fold thread shares with readers.
struct Shared {
    model: Mutex<Model>,
    /// `None`: the source has no stacks.
    stacks: Mutex<Option<StackTable>>,
    status: Mutex<Status>,
    notes: Mutex<Vec<String>>,
    /// Set when the fold thread has ended: how.
    ended: Mutex<Option<Result<StopReason, String>>>,
    /// The stack resolver's inbox while it runs (see [`Session::settle_stacks`]).
    resolver: Mutex<Option<mpsc::Sender<ResolverMsg>>>,
}

/// A running session.
pub struct Session {
    shared: Arc<Shared>,
    control: Arc<Control>,
    meta: TraceMeta,
    title: String,
    labels: HashMap<u64, String>,
    handle: Option<JoinHandle<Result<Finished, TraceError>>>,
}

/// How long one poll of the source may wait for events: the lag of a live view.
const POLL_WAIT: Duration = Duration::from_millis(5);

impl Session {
    /// Starts folding `source` on a thread of its own; each sink sees its start, every batch, the status
    /// and the end.
    pub fn start(
        mut source: Box<dyn Source>,
        opts: SessionOptions,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Session, TraceError> {
        let labels = source.labels();
        let mut meta = source.meta();
        if meta.labels.is_empty() {
            meta.labels = labels.iter().map(|(a, l)| (*a, l.clone())).collect();
            meta.labels.sort();
        }
        let title = source.title();
        let stack_source = source.stacks();
        let shared = Arc::new(Shared {
            model: Mutex::new(Model {
                max_words: opts.max_words,
                ..Model::new(meta.buckets.clamp(1, 1 << 16), meta.bucket_origin)
            }),
            stacks: Mutex::new(match &stack_source {
                StackSource::None => None,
                StackSource::Live(_) => Some(StackTable::default()),
                StackSource::Recorded(t) => {
                    let mut t = t.clone();
                    if opts.idle_frame.is_some() {
                        t.reclassify(opts.idle_frame.as_ref());
                    }
                    Some(t)
                }
            }),
            status: Mutex::default(),
            notes: Mutex::default(),
            ended: Mutex::default(),
            resolver: Mutex::default(),
        });
        let fold = Fold {
            shared: shared.clone(),
            control: opts.control.clone(),
            duration: opts.duration,
            meta: meta.clone(),
            title: title.clone(),
            labels: labels.clone(),
            sinks,
            resolver: match stack_source {
                StackSource::Live(map) => Some(Resolver::spawn(
                    map,
                    shared.clone(),
                    opts.idle_frame.clone(),
                )),
                _ => None,
            },
            seen: Seen::default(),
        };
        let handle = std::thread::Builder::new()
            .name("futex-session".into())
            .spawn(move || {
                let shared = fold.shared.clone();
                let r = fold.run(&mut *source);
                *lock(&shared.ended) = Some(match &r {
                    Ok(f) => Ok(f.reason),
                    Err(e) => Err(e.to_string()),
                });
                r
            })
            .map_err(|e| TraceError(format!("cannot start the session thread: {e}")))?;
        Ok(Session {
            shared,
            control: opts.control,
            meta,
            title,
            labels,
            handle: Some(handle),
        })
    }

    /// A copy of the model as it is now.
    pub fn snapshot(&self) -> Model {
        lock(&self.shared.model).clone()
    }

    /// The stacks resolved and symbolized so far (`None`: the source has none).
    pub fn stacks(&self) -> Option<StackTable> {
        lock(&self.shared.stacks).clone()
    }

    /// Waits (up to `timeout`) until every stack seen so far is resolved and symbolized: a profile
    /// built right after has names, not addresses (the first symbolization of a large binary takes
    /// seconds). Returns at once for a source without stacks or a session that ended.
    pub fn settle_stacks(&self, timeout: Duration) {
        if let Some(wait) = self.settler() {
            wait(timeout);
        }
    }

    /// [`Session::settle_stacks`] as a function to call later, without the session at hand (a server
    /// need not hold its session's lock while it waits).
    pub fn settler(&self) -> Option<impl FnOnce(Duration) + Send + 'static> {
        let tx = lock(&self.shared.resolver).clone()?;
        Some(move |timeout: Duration| {
            let (done, answered) = mpsc::channel();
            if tx.send(ResolverMsg::Flush(done)).is_ok() {
                let _ = answered.recv_timeout(timeout);
            }
        })
    }

    /// The status of the last second.
    pub fn status(&self) -> Status {
        *lock(&self.shared.status)
    }

    /// Everything the session has noted so far, oldest first.
    pub fn notes(&self) -> Vec<String> {
        lock(&self.shared.notes).clone()
    }

    pub fn control(&self) -> &Arc<Control> {
        &self.control
    }

    pub fn meta(&self) -> &TraceMeta {
        &self.meta
    }

    pub fn title(&self) -> &str {
        &self.title
    }

    pub fn labels(&self) -> &HashMap<u64, String> {
        &self.labels
    }

    /// `Some` once the session has ended: why, or the error that ended it. Snapshots still read the
    /// final model.
    pub fn ended(&self) -> Option<Result<StopReason, String>> {
        lock(&self.shared.ended).clone()
    }

    /// Waits for the session to end (by itself, its duration, or [`Control::stop`]).
    pub fn wait(mut self) -> Result<Finished, TraceError> {
        let h = self.handle.take().expect("waited once");
        h.join()
            .map_err(|_| TraceError("the session thread panicked".into()))?
    }

    /// Stops the session and waits for it.
    pub fn stop(self) -> Result<Finished, TraceError> {
        self.control.stop();
        self.wait()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            self.control.stop();
            let _ = h.join();
        }
    }
}

/// What the fold has seen, to send the resolver what is new.
#[derive(Default)]
struct Seen {
    pids: BTreeSet<u32>,
    stacks: BTreeSet<(u32, u32)>,
    addrs: BTreeSet<(u32, u64)>,
}

/// The fold thread's state.
struct Fold {
    shared: Arc<Shared>,
    control: Arc<Control>,
    duration: Option<Duration>,
    meta: TraceMeta,
    title: String,
    labels: HashMap<u64, String>,
    sinks: Vec<Box<dyn Sink>>,
    resolver: Option<Resolver>,
    seen: Seen,
}

impl Fold {
    fn run(mut self, source: &mut dyn Source) -> Result<Finished, TraceError> {
        for s in &mut self.sinks {
            if let Err(e) = s.start(&self.meta) {
                let _ = source.finish(&mut Vec::new());
                return Err(TraceError(match e {
                    SinkError::Closed => "the output closed before tracing started".into(),
                    SinkError::Failed(m) | SinkError::Full(m) => m,
                }));
            }
        }
        let start = Instant::now();
        let mut batch: Vec<Event> = Vec::with_capacity(8192);
        let mut sink_error = None;
        let mut last_status = (start, 0u64, source.health().cost.map(|c| c.1));
        let mut last_written = 0u64;
        let mut events = 0u64;
        let reason = loop {
            if self.control.stop_requested() {
                break StopReason::Interrupted;
            }
            if self.duration.is_some_and(|d| start.elapsed() >= d) {
                break StopReason::Duration;
            }
            batch.clear();
            let poll = match source.poll(&self.control, &mut batch, POLL_WAIT) {
                Ok(p) => p,
                Err(e) => {
                    // Stop what the source started (a demo's threads, a command's fate) all the same.
                    let _ = source.finish(&mut Vec::new());
                    return Err(e);
                }
            };
            events += batch.len() as u64;
            let consumer = self.fold(&batch, &mut sink_error);
            for n in source.take_notes() {
                self.note(n);
            }
            if let Some(reason) = consumer {
                break reason;
            }
            if let Poll::Ended(reason) = poll {
                break reason;
            }
            let now = Instant::now();
            if now.duration_since(last_status.0) >= Duration::from_secs(1) {
                let dt = now.duration_since(last_status.0).as_secs_f64();
                let health = source.health();
                let cost_ns = health.cost.map(|c| c.1);
                let status = Status {
                    elapsed: source.position().unwrap_or(now.duration_since(start)),
                    events,
                    events_per_sec: (events - last_status.1) as f64 / dt,
                    lost_events: lock(&self.shared.model).totals.lost_events,
                    health,
                    cost_per_sec: health.cost.map(|(what, ns)| {
                        let before = last_status.2.unwrap_or(ns);
                        (what, ns.saturating_sub(before) as f64 / dt)
                    }),
                    written: self.written().map(|w| {
                        let rate = w.saturating_sub(last_written) as f64 / dt;
                        last_written = w;
                        (w, rate)
                    }),
                };
                *lock(&self.shared.status) = status;
                for s in &mut self.sinks {
                    s.status(&status);
                }
                if let Some(t) = lock(&self.shared.stacks).as_ref() {
                    for s in &mut self.sinks {
                        if let Err(SinkError::Failed(m)) = s.stacks(t) {
                            sink_error.get_or_insert(m);
                        }
                    }
                }
                last_status = (now, events, cost_ns);
            }
        };
        // Tracing stops now; what follows (draining, symbolizing) is not part of its duration.
        let traced_for = start.elapsed();
        // What the source still holds (the ring's rest, a demo's last events) is kept.
        batch.clear();
        let health = source.health();
        let end = source.finish(&mut batch);
        self.fold(&batch, &mut sink_error);
        for n in end.notes.iter().cloned().chain(source.take_notes()) {
            self.note(n);
        }
        if let Some(r) = self.resolver.take() {
            r.finish();
        }
        let model = lock(&self.shared.model).clone();
        let stacks = lock(&self.shared.stacks).clone();
        let (trace_end, recorded_warning) = match end.recorded {
            Some(rec) => (rec.end, rec.warning),
            None => {
                let mut pids = end.pids.clone();
                pids.extend(self.seen.pids.iter().filter(|p| !end.pids.contains(p)));
                let mut labels: Vec<(u64, String)> =
                    self.labels.iter().map(|(a, l)| (*a, l.clone())).collect();
                labels.sort();
                let end = TraceEnd {
                    pids,
                    duration_s: traced_for.as_secs_f64(),
                    events: model.totals.events,
                    lost_events: model.totals.lost_events,
                    stack_errors: health.stack_errors,
                    untraced_calls: health.untraced_calls,
                    missed_runs: health.missed_runs,
                    reason: reason.as_str().into(),
                    labels,
                };
                (Some(end), None)
            }
        };
        let mut warnings: Vec<String> = recorded_warning.into_iter().collect();
        warnings.extend(trace_warnings(&model, stacks.as_ref(), trace_end.as_ref()));
        let mut finished = Finished {
            title: self.title.clone(),
            meta: self.meta.clone(),
            end: trace_end,
            reason,
            model,
            stacks,
            labels: self.labels.clone(),
            warnings,
            notes: lock(&self.shared.notes).clone(),
            exit_status: end.exit_status,
            sink_error,
            fold_cpu: Duration::from_nanos(crate::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)),
        };
        for s in &mut self.sinks {
            if let Err(SinkError::Failed(m)) = s.finish(&finished) {
                finished.sink_error.get_or_insert(m);
            }
        }
        Ok(finished)
    }

    /// Folds a batch into the model, tells the resolver what is new, hands the batch to every sink.
    /// True when a sink asked to stop.
    /// Bytes the sinks have written, if any writes a file.
    fn written(&self) -> Option<u64> {
        self.sinks
            .iter()
            .filter_map(|s| s.written())
            .reduce(|a, b| a + b)
    }

    /// Folds a batch into the model and hands it to the sinks; `Some` when a sink asks to stop.
    fn fold(&mut self, batch: &[Event], sink_error: &mut Option<String>) -> Option<StopReason> {
        if batch.is_empty() {
            return None;
        }
        lock(&self.shared.model).extend(batch);
        if let Some(r) = &self.resolver {
            r.saw(batch, &mut self.seen);
        } else {
            // Runs of one pid are the rule (the observer has only its own): look only at changes.
            let mut last = 0;
            for e in batch {
                if e.pid != last && e.pid != 0 {
                    self.seen.pids.insert(e.pid);
                    last = e.pid;
                }
            }
        }
        let mut stop = None;
        let mut full = None;
        for s in &mut self.sinks {
            match s.events(batch) {
                Ok(()) => {}
                Err(SinkError::Closed) => {
                    stop.get_or_insert(StopReason::Consumer);
                }
                Err(SinkError::Failed(m)) => {
                    sink_error.get_or_insert(m);
                    stop.get_or_insert(StopReason::Consumer);
                }
                Err(SinkError::Full(m)) => {
                    full = Some(m);
                    stop.get_or_insert(StopReason::SizeLimit);
                }
            }
        }
        if let Some(m) = full {
            self.note(m);
        }
        stop
    }

    fn note(&mut self, n: String) {
        for s in &mut self.sinks {
            s.note(&n);
        }
        lock(&self.shared.notes).push(n);
    }
}

/// What a reader of a trace must know: losses, and stacks cut short.
pub fn trace_warnings(
    model: &Model,
    stacks: Option<&StackTable>,
    end: Option<&TraceEnd>,
) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(end) = end {
        if end.lost_events > 0 {
            w.push(format!(
                "{} events were lost (the ring buffer was full, or a call's return was not seen): \
                 counts are lower bounds",
                end.lost_events
            ));
        }
        if end.untraced_calls > 0 {
            w.push(format!(
                "{} futex calls were not counted (no room in the kernel's maps for their thread or \
                 their futex word: more than 65,536 of either)",
                end.untraced_calls
            ));
        }
        if end.missed_runs > 0 {
            w.push(format!(
                "the kernel skipped {} runs of futex-trace's eBPF programs (they would have started \
                 while another BPF program ran on that CPU, e.g. an interrupt that woke a task during \
                 one): a traced waiter's wakeup among them lost its waker, wake-to-return time and \
                 scheduler delay (the counts are whole)",
                end.missed_runs
            ));
        }
        if end.stack_errors > 0 {
            w.push(format!(
                "{} stacks could not be stored (stack map full or hash collision)",
                end.stack_errors
            ));
        }
    }
    if let Some(stacks) = stacks {
        let weights = || model.stacks.iter().map(|(k, s)| (k, s.wait_ns));
        let short = stacks.short_stack_share(weights());
        let cut = stacks.truncated_share(weights());
        if short > 0.5 {
            w.push(SHORT_STACKS_HELP.to_string());
        } else if cut > 0.1 {
            w.push(format!(
                "{:.0}% of the sampled waiting time is in stacks cut short (truncated): a frame-pointer \
                 walk (--unwind fp) that met code without frame pointers (the default, --unwind dwarf, \
                 unwinds it), or a stack deeper than --stack-bytes (raise it, up to 24576)",
                cut * 100.0
            ));
        }
    }
    w
}

enum ResolverMsg {
    /// A process seen for the first time: read its maps now (it may not live long).
    Pid(u32),
    /// Stack ids seen in events.
    Ids(Vec<(u32, u32)>),
    /// Futex words seen waited on (named if they are statics).
    Addrs(Vec<(u32, u64)>),
    /// Resolve everything pending now, then answer.
    Flush(mpsc::Sender<()>),
    /// End (after a flush).
    Stop,
}

/// Reads process maps, fetches stack frames from the kernel's map and symbolizes them, off the fold
/// thread (symbolizing a large binary the first time takes a while), publishing into the session's
/// stacks.
struct Resolver {
    tx: mpsc::Sender<ResolverMsg>,
    handle: JoinHandle<()>,
}

impl Resolver {
    fn spawn(map: StackMap, shared: Arc<Shared>, idle: Option<regex::Regex>) -> Resolver {
        let (tx, rx) = mpsc::channel::<ResolverMsg>();
        *lock(&shared.resolver) = Some(tx.clone());
        let handle = std::thread::Builder::new()
            .name("futex-stacks".into())
            .spawn(move || {
                let symbolizer = new_symbolizer();
                let mut table = StackTable::default();
                let mut pending: BTreeSet<(u32, u32)> = BTreeSet::new();
                let mut pending_addrs: Vec<(u32, u64)> = Vec::new();
                let mut pids: BTreeSet<u32> = BTreeSet::new();
                // The first stacks are resolved as soon as they come (a profile of the first seconds
                // has names); then once a second.
                let mut last = Instant::now()
                    .checked_sub(Duration::from_secs(1))
                    .unwrap_or_else(Instant::now);
                loop {
                    let mut flush = None;
                    match rx.recv_timeout(Duration::from_millis(250)) {
                        Ok(ResolverMsg::Pid(p)) => {
                            table.refresh_process(p);
                            pids.insert(p);
                        }
                        Ok(ResolverMsg::Ids(ids)) => pending.extend(ids),
                        Ok(ResolverMsg::Addrs(a)) => pending_addrs.extend(a),
                        Ok(ResolverMsg::Flush(done)) => flush = Some(done),
                        Ok(ResolverMsg::Stop) => return,
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if flush.is_none() && last.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    last = Instant::now();
                    // Libraries loaded since (dlopen) show in the maps: read them again.
                    for &p in &pids {
                        if !crate::source::process_gone(p) {
                            table.refresh_process(p);
                        }
                    }
                    let mut new = false;
                    for key in std::mem::take(&mut pending) {
                        if table.stacks.contains_key(&key) {
                            continue;
                        }
                        if let Some((ips, truncated)) = map.get(key.1) {
                            table.add_stack(key, ips, truncated);
                            new = true;
                        }
                    }
                    if new {
                        // Frames and maps first (a recording writes them at once; a recorder killed
                        // before the symbols are ready still has them), then their names.
                        *lock(&shared.stacks) = Some(table.clone());
                        table.symbolize_with(&symbolizer);
                        table.classify(idle.as_ref());
                    }
                    if !pending_addrs.is_empty() {
                        table.symbolize_addresses(&std::mem::take(&mut pending_addrs), &symbolizer);
                    }
                    *lock(&shared.stacks) = Some(table.clone());
                    if let Some(done) = flush {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawn the stack resolver");
        Resolver { tx, handle }
    }

    /// Tells the resolver what `batch` holds that it has not seen: processes, stacks, futex words.
    fn saw(&self, batch: &[Event], seen: &mut Seen) {
        let mut ids = Vec::new();
        let mut addrs = Vec::new();
        for e in batch {
            if e.pid != 0 && seen.pids.insert(e.pid) {
                let _ = self.tx.send(ResolverMsg::Pid(e.pid));
            }
            let waited_on = match e.kind {
                EventKind::WaitStart { addr, .. } => Some(addr),
                EventKind::Counts { addr, op, .. } if op.class() == OpClass::Wait => Some(addr),
                _ => None,
            };
            if let Some(addr) = waited_on {
                if seen.addrs.insert((e.pid, addr)) {
                    addrs.push((e.pid, addr));
                }
            }
            let (k, w) = match e.kind {
                EventKind::WaitStart { kernel, .. }
                | EventKind::Wake { kernel, .. }
                | EventKind::Requeue { kernel, .. } => (kernel.and_then(|k| k.stack), None),
                EventKind::WaitEnd { kernel, waker, .. } => {
                    (kernel.and_then(|k| k.stack), waker.and_then(|w| w.stack))
                }
                EventKind::WaitSample { stack, waker, .. } => (stack, waker.and_then(|w| w.stack)),
                _ => (None, None),
            };
            for id in [k, w].into_iter().flatten() {
                if seen.stacks.insert((e.pid, id)) {
                    ids.push((e.pid, id));
                }
            }
        }
        if !ids.is_empty() {
            let _ = self.tx.send(ResolverMsg::Ids(ids));
        }
        if !addrs.is_empty() {
            let _ = self.tx.send(ResolverMsg::Addrs(addrs));
        }
    }

    /// Resolves what is pending and stops.
    fn finish(self) {
        let (done_tx, done_rx) = mpsc::channel();
        let _ = self.tx.send(ResolverMsg::Flush(done_tx));
        let _ = done_rx.recv();
        let _ = self.tx.send(ResolverMsg::Stop);
        drop(self.tx);
        let _ = self.handle.join();
    }
}
