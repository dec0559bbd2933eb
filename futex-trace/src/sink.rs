//! Sinks that take a session's events as they happen: a JSON-lines stream and a recording. (Reports
//! and flamegraphs are functions of what a session finished with: [`crate::export::report`], [`crate::export::flame`].)

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::event::{Event, EventKind};
use crate::recording::TraceWriter;
use crate::stacks::StackTable;
use crate::trace::{Finished, Sink, SinkError, TraceMeta};

/// Every event as one JSON object per line (`futex-trace stream`), addresses in hex as the report
/// prints them. Each user stack comes once, as a `{"event": "stack", "pid", "stack", "frames"}` line
/// (frames outermost first) before the first event that names it: events wait for their stacks to be
/// resolved, at most [`STREAM_HOLD`]. A write error is taken as the reader having gone away (`| head`):
/// the session stops quietly.
pub struct StreamSink<W: Write + Send> {
    out: BufWriter<W>,
    /// Frames of the stacks resolved so far, by (pid, stack id); `None` once written.
    frames: HashMap<(u32, u32), Option<StackLine>>,
    /// Events waiting for their stacks (in order), since when.
    held: Vec<Event>,
    held_since: Option<Instant>,
}

/// A stack's frames (outermost first) and whether it was cut short.
type StackLine = (Vec<String>, bool);

/// The longest an event waits for its stacks' frames before it is written without them.
pub const STREAM_HOLD: Duration = Duration::from_secs(3);

impl<W: Write + Send> StreamSink<W> {
    pub fn new(out: W) -> Self {
        StreamSink {
            out: BufWriter::new(out),
            frames: HashMap::new(),
            held: Vec::new(),
            held_since: None,
        }
    }

    /// Writes `e` (with its stacks first) if its stacks are resolved, or `force`; false if it waits.
    fn write(&mut self, e: &Event, force: bool) -> std::io::Result<bool> {
        let keys = e.stack_keys();
        let ready = keys.iter().flatten().all(|k| self.frames.contains_key(k));
        if !ready && !force {
            return Ok(false);
        }
        for k in keys.into_iter().flatten() {
            if let Some(slot) = self.frames.get_mut(&k) {
                if let Some((frames, truncated)) = slot.take() {
                    let line = serde_json::json!({
                        "event": "stack", "pid": k.0, "stack": k.1, "frames": frames,
                        "truncated": truncated,
                    });
                    serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::other)?;
                    self.out.write_all(b"\n")?;
                }
            }
        }
        serde_json::to_writer(&mut self.out, &hexed(e)).map_err(std::io::Error::other)?;
        self.out.write_all(b"\n")?;
        Ok(true)
    }

    /// Writes the held events whose stacks are resolved, in order; all of them when `force` or when
    /// they waited [`STREAM_HOLD`].
    fn release(&mut self, force: bool) -> std::io::Result<()> {
        let force = force || self.held_since.is_some_and(|t| t.elapsed() >= STREAM_HOLD);
        let held = std::mem::take(&mut self.held);
        let mut rest = held.into_iter();
        for e in rest.by_ref() {
            if !self.write(&e, force)? {
                self.held.push(e);
                break;
            }
        }
        self.held.extend(rest);
        if self.held.is_empty() {
            self.held_since = None;
        }
        Ok(())
    }

    fn learn(&mut self, stacks: &StackTable) {
        for &k in stacks.stacks.keys() {
            self.frames
                .entry(k)
                .or_insert_with(|| Some((stacks.frame_names(k), stacks.truncated.contains(&k))));
        }
    }
}

/// An event as JSON, its addresses (`addr`, `final_addr`, a requeue's `from` and `to`) in hex.
fn hexed(e: &Event) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    let hex = |v: &mut serde_json::Value, key: &str| {
        if let Some(n) = v.get(key).and_then(serde_json::Value::as_u64) {
            v[key] = format!("{n:#x}").into();
        }
    };
    for key in ["addr", "final_addr", "from", "to"] {
        hex(&mut v, key);
    }
    if let Some(of) = v.get_mut("of") {
        hex(of, "addr");
    }
    v
}

impl<W: Write + Send> Sink for StreamSink<W> {
    fn start(&mut self, _: &TraceMeta) -> Result<(), SinkError> {
        Ok(())
    }

    fn events(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let mut write = || -> std::io::Result<()> {
            self.release(false)?;
            for e in batch {
                if !self.held.is_empty() || !self.write(e, false)? {
                    self.held.push(*e);
                    self.held_since.get_or_insert_with(Instant::now);
                }
            }
            self.out.flush()
        };
        write().map_err(|_| SinkError::Closed)
    }

    fn stacks(&mut self, stacks: &StackTable) -> Result<(), SinkError> {
        self.learn(stacks);
        (self.release(false).and_then(|()| self.out.flush())).map_err(|_| SinkError::Closed)
    }

    fn finish(&mut self, f: &Finished) -> Result<(), SinkError> {
        if let Some(t) = &f.stacks {
            self.learn(t);
        }
        (self.release(true).and_then(|()| self.out.flush())).map_err(|_| SinkError::Closed)
    }
}

/// Where an existing recording is kept when a new one takes its name: `FILE.old`.
pub fn old_path(path: &Path) -> PathBuf {
    suffixed(path, ".old")
}

/// Where a recording is written until it holds data: `FILE.partial`, beside `FILE`.
pub fn partial_path(path: &Path) -> PathBuf {
    suffixed(path, ".partial")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// What an output path names: standard output (`-`), a stream (a device, a FIFO, a socket,
/// `/dev/stdout`: written as it is, never renamed or replaced), or a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stream(PathBuf),
    /// A regular file (or one to create); a symbolic link to one is followed to it.
    File(PathBuf),
}

impl Output {
    pub fn of(path: &Path) -> Output {
        if path == Path::new("-") {
            return Output::Stdout;
        }
        // /dev/stdout, /dev/fd/N, /proc/self/fd/N: whatever the descriptor is, it is written, not replaced.
        let through_fd = ["/dev/std", "/dev/fd/", "/proc/"]
            .iter()
            .any(|p| path.to_string_lossy().starts_with(p));
        match std::fs::metadata(path) {
            Err(_) if !through_fd => Output::File(path.to_path_buf()),
            Ok(m) if m.is_file() && !through_fd => {
                Output::File(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()))
            }
            _ => Output::Stream(path.to_path_buf()),
        }
    }
}

/// Writes a recording (`.ftr`, `FORMAT.md`) to a file, a stream, or standard output. A file is written
/// beside its name (`FILE.partial`) and moved into place once it holds data (its first events, or a
/// second of tracing); only then is an existing `FILE` kept as `FILE.old`. A start or write that
/// fails before that leaves `FILE` and `FILE.old` as they were.
pub struct RecordingSink {
    output: Output,
    /// The path the user gave (for messages).
    path: PathBuf,
    writer: Option<TraceWriter<Box<dyn Write + Send>>>,
    /// A file's recording is in place under its name (not `FILE.partial` any more).
    placed: bool,
    /// An earlier file was kept as `FILE.old` when this one took its place.
    kept_old: Arc<AtomicBool>,
    /// The stacks written so far (each second's chunk holds only what is new).
    written: StackTable,
    /// Stop once the file holds this many bytes (`--max-size`).
    max_size: Option<u64>,
    /// The limit was reached: only counts are written from then on (no sampled waits).
    full: bool,
}

/// Events written between two checks of `--max-size` (about 80 kB).
const MAX_SIZE_SLICE: usize = 1024;

impl RecordingSink {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        RecordingSink {
            output: Output::of(&path),
            path,
            writer: None,
            placed: false,
            kept_old: Arc::default(),
            written: StackTable::default(),
            max_size: None,
            full: false,
        }
    }

    /// Stops the session once the recording holds `bytes` (its last stacks and end marker follow).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// What the path names: standard output, a stream, or a file (its target, links followed).
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Set once an existing file was kept as `FILE.old` (read it after the session).
    pub fn kept_old(&self) -> Arc<AtomicBool> {
        self.kept_old.clone()
    }

    fn failed(&self, e: impl std::fmt::Display) -> SinkError {
        let kept = match &self.output {
            Output::File(f) if !self.placed => format!(
                "; {} is as it was, what was recorded is in {}",
                f.display(),
                partial_path(f).display()
            ),
            _ => "; the events before the failure are in the file".into(),
        };
        SinkError::Failed(format!(
            "writing {} failed ({e}){kept}",
            self.path.display()
        ))
    }

    /// Moves a file's recording into place under its name, keeping an earlier file as `FILE.old`.
    fn place(&mut self) -> Result<(), SinkError> {
        let Output::File(f) = &self.output else {
            return Ok(());
        };
        if self.placed {
            return Ok(());
        }
        if f.exists() {
            let old = old_path(f);
            std::fs::rename(f, &old).map_err(|e| {
                SinkError::Failed(format!(
                    "cannot keep the existing {} as {}: {e}; this recording is in {}",
                    f.display(),
                    old.display(),
                    partial_path(f).display()
                ))
            })?;
            self.kept_old.store(true, Ordering::Relaxed);
        }
        std::fs::rename(partial_path(f), f).map_err(|e| {
            SinkError::Failed(format!(
                "cannot move {} to {}: {e}",
                partial_path(f).display(),
                f.display()
            ))
        })?;
        self.placed = true;
        Ok(())
    }
}

impl Sink for RecordingSink {
    fn start(&mut self, meta: &TraceMeta) -> Result<(), SinkError> {
        let cannot = |e: std::io::Error| {
            SinkError::Failed(format!("cannot write {}: {e}", self.path.display()))
        };
        let out: Box<dyn Write + Send> = match &self.output {
            Output::Stdout => Box::new(std::io::stdout()),
            Output::Stream(p) => Box::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(p)
                    .map_err(cannot)?,
            ),
            Output::File(f) => {
                let partial = partial_path(f);
                // A FILE.partial left by a recorder that was killed before its data was in place.
                std::fs::remove_file(&partial).ok();
                Box::new(File::create_new(&partial).map_err(cannot)?)
            }
        };
        match TraceWriter::new(out, meta) {
            Ok(w) => self.writer = Some(w),
            Err(e) => {
                if let Output::File(f) = &self.output {
                    std::fs::remove_file(partial_path(f)).ok();
                }
                return Err(cannot(e));
            }
        }
        Ok(())
    }

    fn events(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        // Past the limit only the sampled waits stop: the counts that come after (the kernel's
        // aggregates read as tracing ends) are small and keep the recording's totals exact.
        if self.full {
            let counts: Vec<Event> = (batch.iter())
                .filter(|e| !matches!(e.kind, EventKind::WaitSample { .. }))
                .cloned()
                .collect();
            let Some(w) = self.writer.as_mut() else {
                return Ok(());
            };
            w.events(&counts).map_err(|e| self.failed(e))?;
            return self.place();
        }
        // With a size limit, a large batch (a reader that fell behind) is written a slice at a time,
        // so that the recording stops near the limit rather than a whole batch past it.
        let slice = if self.max_size.is_some() {
            MAX_SIZE_SLICE
        } else {
            batch.len().max(1)
        };
        for (i, part) in batch.chunks(slice).enumerate() {
            let Some(w) = self.writer.as_mut() else {
                return Ok(());
            };
            let (wrote, bytes) = (w.events(part), w.bytes());
            wrote.map_err(|e| self.failed(e))?;
            self.place()?;
            if self.max_size.is_some_and(|m| bytes >= m) {
                self.full = true;
                self.events(&batch[((i + 1) * slice).min(batch.len())..])?;
                return Err(SinkError::Full(format!(
                    "{} reached --max-size ({bytes} bytes): tracing stopped; the recording ends cleanly",
                    self.path.display(),
                )));
            }
        }
        Ok(())
    }

    fn written(&self) -> Option<u64> {
        self.writer.as_ref().map(|w| w.bytes())
    }

    /// Each second, what the stack table holds that was not written yet: a recording cut short
    /// (SIGKILL, a full disk, power loss) keeps the stacks, maps and symbols of its last second.
    fn stacks(&mut self, stacks: &StackTable) -> Result<(), SinkError> {
        let new = stacks.since(&self.written);
        match self.writer.as_mut() {
            Some(w) if !new.is_empty() => {
                w.stacks(&new).map_err(|e| self.failed(e))?;
                self.written.merge(new);
            }
            _ => {}
        }
        // A second of tracing with its header written: in place, even if nothing happened yet.
        if self.writer.is_some() {
            self.place()?;
        }
        Ok(())
    }

    fn finish(&mut self, f: &Finished) -> Result<(), SinkError> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        let last = f
            .stacks
            .as_ref()
            .map(|s| s.since(&self.written))
            .unwrap_or_default();
        w.finish(&last, &f.end.clone().unwrap_or_default())
            .map_err(|e| self.failed(e))?;
        self.place()
    }
}
