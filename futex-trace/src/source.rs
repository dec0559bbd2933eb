//! Sources of events. Now: futex-core's in-process observer. eBPF (kernel futexes, futex-core's USDT
//! probes) and recorded trace files come with their issues, producing the same [`Event`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futex_core::{SubscribeError, Subscription};

use crate::event::{Event, EventKind};
use crate::model::Model;

/// futex-core's observer on the process-wide default table of this process.
pub struct ObserverSource {
    sub: Subscription<'static>,
    pid: u32,
    dropped_reported: u64,
    buf: Vec<futex_core::Event>,
}

impl ObserverSource {
    /// Subscribes to the default table, buffering up to `capacity` events between polls.
    pub fn new(capacity: usize) -> Result<Self, SubscribeError> {
        Ok(ObserverSource {
            sub: futex_core::default_table().subscribe(capacity)?,
            pid: std::process::id(),
            dropped_reported: 0,
            buf: Vec::with_capacity(capacity.min(1 << 16)),
        })
    }

    /// Appends every event delivered since the last poll to `out`, then a [`EventKind::Lost`] event if the
    /// observer dropped any since. Returns how many events were appended.
    pub fn poll(&mut self, out: &mut Vec<Event>) -> usize {
        let before = out.len();
        self.buf.clear();
        self.sub.drain_into(&mut self.buf);
        out.extend(self.buf.iter().map(|e| Event::from_core(self.pid, e)));
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

/// Folds a source's events into a shared model on a thread of its own, so that a UI never folds
/// events on its draw path: it takes [`Collector::snapshot`]s instead.
pub struct Collector {
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    /// CPU time of the collector thread, nanoseconds: the observer's cost outside the traced threads.
    cpu_ns: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts polling `src` every `period`, folding into `model`.
    pub fn spawn(mut src: ObserverSource, model: Model, period: Duration) -> Collector {
        let model = Arc::new(Mutex::new(model));
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(AtomicU64::new(0));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let handle = {
            let (model, stop, events, cpu) =
                (model.clone(), stop.clone(), events.clone(), cpu_ns.clone());
            std::thread::Builder::new()
                .name("futex-collector".into())
                .spawn(move || {
                    let mut batch = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        batch.clear();
                        src.poll(&mut batch);
                        events.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        let mut m = crate::lock(&model);
                        for e in &batch {
                            m.apply(e);
                        }
                        drop(m);
                        cpu.store(
                            crate::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID),
                            Ordering::Relaxed,
                        );
                    }
                })
                .expect("spawn the collector thread")
        };
        Collector {
            model,
            stop,
            events,
            cpu_ns,
            handle: Some(handle),
        }
    }

    /// The shared model the collector folds into.
    pub fn model(&self) -> &Arc<Mutex<Model>> {
        &self.model
    }

    /// A copy of the model as it is now.
    pub fn snapshot(&self) -> Model {
        crate::lock(&self.model).clone()
    }

    /// Events folded so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// CPU time the collector thread has used so far, in nanoseconds.
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_ns.load(Ordering::Relaxed)
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
