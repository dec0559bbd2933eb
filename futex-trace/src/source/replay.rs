//! A recording as a source: read chunk by chunk (memory bounded by a chunk, not the file), as fast as
//! it reads or paced at its recorded pace times a speed, with pause and step ([`Control`]).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::event::Event;
use crate::recording::{Chunk, TraceReader};
use crate::stacks::StackTable;
use crate::trace::{Control, Recorded, SourceEnd, StopReason, TraceEnd, TraceMeta};
use crate::trace::{Poll, Source, StackSource};
use crate::Error;

/// How a recording is played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as it reads (reports, flamegraphs).
    AsFastAsRead,
    /// At the pace it was recorded, times [`Control::speed`]; [`Control::set_paused`] holds the
    /// position and [`Control::step`] advances it by a second (a dashboard's replay).
    Recorded,
}

/// A recording, played into a session.
pub struct RecordingSource {
    path: PathBuf,
    reader: TraceReader<BufReader<File>>,
    stacks: StackTable,
    end: Option<TraceEnd>,
    /// Cut short, or not ended cleanly: found by the first pass.
    warning: Option<String>,
    warned: bool,
    pace: Pace,
    /// Events read but not yet due.
    pending: VecDeque<Event>,
    buf: Vec<Event>,
    exhausted: bool,
    /// Pacing: the first event's time, the position, and when the position last moved.
    first_ts: Option<u64>,
    position_ns: u64,
    last_tick: Option<Instant>,
}

fn open_reader(path: &Path) -> crate::Result<TraceReader<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    TraceReader::new(BufReader::new(f)).map_err(|source| Error::Recording {
        path: path.to_path_buf(),
        source,
    })
}

impl RecordingSource {
    /// Opens a recording: its header, and (in a first pass that skips the events) its stacks, labels and
    /// end marker, so that they are known from the first event on.
    pub fn open(path: &Path, pace: Pace) -> crate::Result<RecordingSource> {
        let mut scan = open_reader(path)?;
        let mut stacks = StackTable::default();
        let mut end = None;
        let mut none = Vec::new();
        while let Some(c) = scan
            .next(&mut none, true)
            .map_err(|source| Error::Recording {
                path: path.to_path_buf(),
                source,
            })?
        {
            match c {
                Chunk::Stacks(s) => stacks.merge(s),
                Chunk::End(e) => end = Some(e),
                Chunk::Meta(_) | Chunk::Events(_) => {}
            }
        }
        let warning = scan.warning(end.as_ref());
        // A recorder killed before it named every frame (a big binary's first symbolization takes
        // seconds) left frames and maps: name them now from the files on disk, as perf does at report
        // time. A recording that ended cleanly holds every name its recorder could find.
        if end.is_none() {
            stacks.symbolize();
        }
        stacks.classify(None);
        Ok(RecordingSource {
            path: path.to_path_buf(),
            reader: open_reader(path)?,
            stacks,
            end,
            warning,
            warned: false,
            pace,
            pending: VecDeque::new(),
            buf: Vec::new(),
            exhausted: false,
            first_ts: None,
            position_ns: 0,
            last_tick: None,
        })
    }

    /// Reads the next chunk of events into `pending`; false at the end of the recording.
    fn refill(&mut self) -> crate::Result<bool> {
        while !self.exhausted {
            self.buf.clear();
            match self
                .reader
                .next(&mut self.buf, false)
                .map_err(|source| Error::Recording {
                    path: self.path.clone(),
                    source,
                })? {
                None => self.exhausted = true,
                Some(Chunk::Events(n)) if n > 0 => {
                    self.pending.extend(self.buf.drain(..));
                    return Ok(true);
                }
                Some(_) => {}
            }
        }
        Ok(false)
    }
}

impl Source for RecordingSource {
    fn meta(&self) -> TraceMeta {
        self.reader.meta().clone()
    }

    fn title(&self) -> String {
        format!(
            "{} (recorded in {})",
            self.reader.meta().source,
            self.path.display()
        )
    }

    fn labels(&self) -> HashMap<u64, String> {
        // Written in the header since version 2; in version 1 only in the end marker.
        let meta = &self.reader.meta().labels;
        let end = self.end.as_ref().map(|e| &e.labels);
        meta.iter()
            .chain(end.into_iter().flatten())
            .cloned()
            .collect()
    }

    fn stacks(&self) -> StackSource {
        StackSource::Recorded(self.stacks.clone())
    }

    fn poll(&mut self, c: &Control, out: &mut Vec<Event>, wait: Duration) -> crate::Result<Poll> {
        if self.pace == Pace::AsFastAsRead {
            if self.pending.is_empty() && !self.refill()? {
                return Ok(Poll::Ended(StopReason::EndOfRecording));
            }
            out.extend(self.pending.drain(..));
            return Ok(Poll::More);
        }
        // Paced: move the position by the time passed times the speed (or a step), then hand out
        // every event up to it.
        std::thread::sleep(wait.max(Duration::from_millis(20)));
        let now = Instant::now();
        let dt = self
            .last_tick
            .map_or(Duration::ZERO, |t| now.duration_since(t));
        self.last_tick = Some(now);
        if c.take_step() {
            self.position_ns += 1_000_000_000;
        } else if !c.paused() {
            self.position_ns += (dt.as_nanos() as f64 * c.speed()) as u64;
        }
        c.set_position(self.position_ns);
        loop {
            if self.pending.is_empty() && !self.refill()? {
                return Ok(Poll::Ended(StopReason::EndOfRecording));
            }
            while let Some(e) = self.pending.front() {
                if e.ts_ns != 0 {
                    let first = *self.first_ts.get_or_insert(e.ts_ns);
                    if e.ts_ns.saturating_sub(first) > self.position_ns {
                        return Ok(Poll::More);
                    }
                }
                out.extend(self.pending.pop_front());
            }
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        // Said once, at the start: a dashboard replaying it shows it.
        if self.warned {
            return Vec::new();
        }
        self.warned = true;
        self.warning
            .iter()
            .map(|w| format!("{}: {w}", self.path.display()))
            .collect()
    }

    fn position(&self) -> Option<Duration> {
        (self.pace == Pace::Recorded).then(|| Duration::from_nanos(self.position_ns))
    }

    fn finish(&mut self, _: &mut Vec<Event>) -> SourceEnd {
        SourceEnd {
            pids: self
                .end
                .as_ref()
                .map_or_else(|| self.reader.meta().pids.clone(), |e| e.pids.clone()),
            exit_status: None,
            recorded: Some(Recorded {
                end: self.end.clone(),
                warning: self.warning.clone(),
            }),
            notes: Vec::new(),
        }
    }
}
