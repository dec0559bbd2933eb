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

mod fold;
mod resolver;
mod warnings;

use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::lock;
use crate::model::Model;
use crate::sites::Rules;
use crate::stacks::StackTable;
use crate::trace::{Control, Finished, Sink, Source, StackSource, Status, StopReason, TraceMeta};
use crate::{Error, Result};

use fold::{Fold, Seen};
use resolver::{Resolver, ResolverMsg};
pub use warnings::trace_warnings;

/// How a session runs.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Stop after this long (default: until stopped, or the source ends).
    pub duration: Option<Duration>,
    /// Shared with whoever steers the session (a Ctrl-C handler, a dashboard).
    pub control: Arc<Control>,
    /// The model keeps at most this many futex words (see [`Model::max_words`]); `None`: all.
    pub max_words: Option<usize>,
    /// The user's rules for wait classes (`--idle-frame`, `--lock-frame`; see [`crate::sites`]).
    pub rules: Rules,
}

/// What the fold thread shares with readers.
pub(super) struct Shared {
    model: Mutex<Model>,
    /// `None`: the source has no stacks.
    stacks: Mutex<Option<StackTable>>,
    status: Mutex<Status>,
    notes: Mutex<Vec<String>>,
    /// Set when the fold thread has ended: how.
    ended: Mutex<Option<std::result::Result<StopReason, String>>>,
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
    rules: Rules,
    handle: Option<JoinHandle<Result<Finished>>>,
}

/// How long one poll of the source may wait for events: the lag of a live view.
pub(super) const POLL_WAIT: Duration = Duration::from_millis(5);

impl Session {
    /// Starts folding `source` on a thread of its own; each sink sees its start, every batch, the status
    /// and the end.
    pub fn start(
        mut source: Box<dyn Source>,
        opts: SessionOptions,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<Session> {
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
                StackSource::Recorded(t) => Some(t.clone()),
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
                StackSource::Live(map) => Some(Resolver::spawn(map, shared.clone())),
                _ => None,
            },
            seen: Seen::default(),
            sink_error: None,
            rules: opts.rules.clone(),
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
            .map_err(|e| Error::Thread(format!("cannot start the session thread: {e}")))?;
        Ok(Session {
            shared,
            rules: opts.rules,
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

    /// The user's rules for wait classes.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// `Some` once the session has ended: why, or the error that ended it. Snapshots still read the
    /// final model.
    pub fn ended(&self) -> Option<std::result::Result<StopReason, String>> {
        lock(&self.shared.ended).clone()
    }

    /// Waits for the session to end (by itself, its duration, or [`Control::stop`]).
    pub fn wait(mut self) -> Result<Finished> {
        let h = self.handle.take().expect("waited once");
        h.join()
            .map_err(|_| Error::Thread("the session thread panicked".into()))?
    }

    /// Stops the session and waits for it.
    pub fn stop(self) -> Result<Finished> {
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
