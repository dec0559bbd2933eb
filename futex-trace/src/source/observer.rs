//! futex-core's in-process observer as a source, and the built-in demo workload under it.

use std::collections::HashMap;
use std::time::Duration;

use futex_core::{SubscribeError, Subscription};

use crate::demo::{Demo, DemoConfig};
use crate::event::{Event, EventKind};
use crate::model::BucketOrigin;
use crate::stacks::{StackInterner, Unwound};
use crate::trace::{Control, Health, SourceEnd, TraceMeta};
use crate::trace::{Poll, Source, StackSource};
use crate::Error;

/// futex-core's observer on the process-wide default table of this process.
pub struct ObserverSource {
    sub: Subscription<'static>,
    pid: u32,
    dropped_reported: u64,
    buf: Vec<futex_core::QueueEvent>,
    stacks: Vec<futex_core::frames::Stack>,
    /// The observer's stack ids (per subscription) → interned ids.
    stack_ids: HashMap<u32, u32>,
    interner: StackInterner,
    meta: TraceMeta,
}

/// How often the observer's queue is drained.
const PERIOD: Duration = Duration::from_millis(20);

impl ObserverSource {
    /// Subscribes to the default table, buffering up to `capacity` events between polls.
    pub fn new(capacity: usize) -> Result<Self, SubscribeError> {
        let sub = futex_core::default_table().subscribe(capacity)?;
        let pid = std::process::id();
        let meta = TraceMeta::starting_now(
            "futex-core observer",
            vec![pid],
            None,
            sub.table().len(),
            BucketOrigin::FutexCore,
        );
        Ok(ObserverSource {
            sub,
            pid,
            dropped_reported: 0,
            buf: Vec::with_capacity(capacity.min(1 << 16)),
            stacks: Vec::new(),
            stack_ids: HashMap::new(),
            interner: StackInterner::default(),
            meta,
        })
    }

    /// Appends every event delivered since the last drain to `out`, then a [`EventKind::Lost`] event if
    /// the observer dropped any since. Returns how many events were appended.
    pub fn drain(&mut self, out: &mut Vec<Event>) -> usize {
        let before = out.len();
        self.buf.clear();
        self.sub.drain_into(&mut self.buf);
        // The stacks after the events: each is buffered before the event naming it.
        self.stacks.clear();
        self.sub.drain_stacks_into(&mut self.stacks);
        // A stack drained now may belong to an event of the next drain (pushed between the two
        // drains here); one drain later it is gone (its event was dropped with a full buffer).
        let earlier = std::mem::take(&mut self.stack_ids);
        for s in &self.stacks {
            let frames = s.frames();
            let stack = Unwound {
                ips: frames.iter().map(|&a| a as u64).collect(),
                truncated: frames.len() == futex_core::frames::MAX_FRAMES,
            };
            let id = self.interner.intern(self.pid, stack);
            self.stack_ids.insert(s.id, id);
        }
        for e in &self.buf {
            let stack =
                (self.stack_ids.remove(&e.stack)).or_else(|| earlier.get(&e.stack).copied());
            out.push(Event::from_core(self.pid, e).with_stack(stack));
        }
        let dropped = self.sub.dropped();
        if dropped > self.dropped_reported {
            out.push(Event {
                ts_ns: self.buf.last().map_or(0, |e| e.ts_ns),
                pid: self.pid,
                tid: 0,
                kind: EventKind::Lost {
                    count: dropped - self.dropped_reported,
                },
            });
            self.dropped_reported = dropped;
        }
        out.len() - before
    }

    /// Number of sleep queues of the traced table (the model's bucket count).
    pub fn buckets(&self) -> usize {
        self.sub.table().len()
    }
}

impl Source for ObserverSource {
    fn meta(&self) -> TraceMeta {
        self.meta.clone()
    }

    /// The waiting threads' stacks (frame-pointer walks in futex-core), interned here.
    fn stacks(&self) -> StackSource {
        StackSource::Live(std::sync::Arc::new(self.interner.stacks.clone()))
    }

    fn poll(&mut self, _: &Control, out: &mut Vec<Event>, _: Duration) -> crate::Result<Poll> {
        // The observer cannot wake us: drain it at its own period.
        std::thread::sleep(PERIOD);
        self.drain(out);
        Ok(Poll::More)
    }

    fn health(&self) -> Health {
        // The observer's cost outside the traced threads: this (the session's) thread's CPU.
        Health {
            cost: Some(("observer", crate::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID))),
            ..Health::default()
        }
    }

    fn finish(&mut self, out: &mut Vec<Event>) -> SourceEnd {
        self.drain(out);
        SourceEnd {
            pids: vec![self.pid],
            ..SourceEnd::default()
        }
    }
}

/// The built-in demo workload, in this process, traced through the observer (no root needed).
pub struct DemoSource {
    observer: ObserverSource,
    demo: Option<Demo>,
    labels: HashMap<u64, String>,
}

impl DemoSource {
    /// Subscribes to the observer, then starts the demo's threads.
    pub fn start(cfg: &DemoConfig) -> crate::Result<DemoSource> {
        let mut observer = ObserverSource::new(1 << 20)
            .map_err(|e| Error::Thread(format!("cannot observe futex-core: {e}")))?;
        observer.meta.source = "demo (futex-core observer)".into();
        let demo = Demo::start(cfg);
        Ok(DemoSource {
            observer,
            labels: demo.labels().clone(),
            demo: Some(demo),
        })
    }
}

impl Source for DemoSource {
    fn meta(&self) -> TraceMeta {
        self.observer.meta()
    }

    fn labels(&self) -> HashMap<u64, String> {
        self.labels.clone()
    }

    fn stacks(&self) -> StackSource {
        self.observer.stacks()
    }

    fn poll(&mut self, c: &Control, out: &mut Vec<Event>, w: Duration) -> crate::Result<Poll> {
        self.observer.poll(c, out, w)
    }

    fn health(&self) -> Health {
        self.observer.health()
    }

    /// Stops the workload, then collects what its threads did while stopping.
    fn finish(&mut self, out: &mut Vec<Event>) -> SourceEnd {
        if let Some(d) = self.demo.take() {
            d.stop();
        }
        self.observer.finish(out)
    }
}
