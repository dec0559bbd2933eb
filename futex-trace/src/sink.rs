//! Sinks that take a session's events as they happen: a JSON-lines stream and a recording. (Reports
//! and flamegraphs are functions of what a session finished with: [`crate::report`], [`crate::flame`].)

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::event::{Event, EventKind};
use crate::session::{Finished, Sink, SinkError, TraceMeta};
use crate::stacks::StackTable;
use crate::tracefile::TraceWriter;

/// Every event as one JSON object per line (`futex-trace stream`). A write error is taken as the
/// reader having gone away (`| head`): the session stops quietly.
pub struct StreamSink<W: Write + Send> {
    out: BufWriter<W>,
}

impl<W: Write + Send> StreamSink<W> {
    pub fn new(out: W) -> Self {
        StreamSink {
            out: BufWriter::new(out),
        }
    }
}

impl<W: Write + Send> Sink for StreamSink<W> {
    fn start(&mut self, _: &TraceMeta) -> Result<(), SinkError> {
        Ok(())
    }

    fn events(&mut self, batch: &[Event]) -> Result<(), SinkError> {
        let mut write = || -> std::io::Result<()> {
            for e in batch {
                serde_json::to_writer(&mut self.out, e).map_err(std::io::Error::other)?;
                self.out.write_all(b"\n")?;
            }
            self.out.flush()
        };
        write().map_err(|_| SinkError::Closed)
    }
}

/// Where an existing recording is kept when a new one takes its name: `FILE.old`.
pub fn old_path(path: &std::path::Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".old");
    PathBuf::from(p)
}

/// Writes a recording (`.ftr`, `FORMAT.md`) to a file, or to standard output for the path `-`. The file
/// is created only once tracing has started; an existing file of that name is kept as `FILE.old` then.
pub struct RecordingSink {
    /// `-`: standard output.
    path: PathBuf,
    writer: Option<TraceWriter<Box<dyn Write + Send>>>,
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
        RecordingSink {
            path: path.into(),
            writer: None,
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

    fn failed(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::Failed(format!(
            "writing {} failed ({e}); the events before the failure are in the file",
            self.path.display()
        ))
    }
}

impl Sink for RecordingSink {
    fn start(&mut self, meta: &TraceMeta) -> Result<(), SinkError> {
        let cannot = |e: std::io::Error| {
            SinkError::Failed(format!("cannot write {}: {e}", self.path.display()))
        };
        if self.path == std::path::Path::new("-") {
            let out: Box<dyn Write + Send> = Box::new(std::io::stdout());
            self.writer = Some(TraceWriter::new(out, meta).map_err(cannot)?);
            return Ok(());
        }
        // An earlier recording of the same name is kept as FILE.old (perf's habit with perf.data).
        if self.path.exists() {
            let old = old_path(&self.path);
            std::fs::rename(&self.path, &old).map_err(|e| {
                SinkError::Failed(format!(
                    "cannot keep the existing {} as {}: {e}",
                    self.path.display(),
                    old.display()
                ))
            })?;
        }
        let file: Box<dyn Write + Send> = Box::new(File::create_new(&self.path).map_err(cannot)?);
        self.writer = Some(TraceWriter::new(file, meta).map_err(cannot)?);
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
            return w.events(&counts).map_err(|e| self.failed(e));
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
                Ok(())
            }
            _ => Ok(()),
        }
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
            .map(drop)
            .map_err(|e| self.failed(e))
    }
}
