//! The fold thread: the only loop that folds a source's events into a model.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{trace_warnings, Resolver, Shared, POLL_WAIT};
use crate::event::Event;
use crate::lock;
use crate::trace::{
    Control, Finished, Poll, Sink, SinkError, Source, SourceEnd, Status, StopReason, TraceEnd,
    TraceMeta,
};
use crate::{Error, Result};

/// What the fold has seen, to send the resolver what is new.
#[derive(Default)]
pub(super) struct Seen {
    pub(super) pids: BTreeSet<u32>,
    pub(super) stacks: BTreeSet<(u32, u32)>,
    pub(super) addrs: BTreeSet<(u32, u64)>,
}

/// The fold thread's state.
pub(super) struct Fold {
    pub(super) shared: Arc<Shared>,
    pub(super) control: Arc<Control>,
    pub(super) duration: Option<Duration>,
    pub(super) meta: TraceMeta,
    pub(super) title: String,
    pub(super) labels: HashMap<u64, String>,
    pub(super) sinks: Vec<Box<dyn Sink>>,
    pub(super) resolver: Option<Resolver>,
    pub(super) seen: Seen,
    /// A sink that failed, and why (the first).
    pub(super) sink_error: Option<String>,
    pub(super) rules: crate::sites::Rules,
}

/// The status of the last second, kept to compute the next one's rates.
struct Ticker {
    at: Instant,
    events: u64,
    cost_ns: Option<u64>,
    written: u64,
}

impl Fold {
    /// Starts the sinks, polls the source until the session ends, then drains it and gathers what it
    /// finished with.
    pub(super) fn run(mut self, source: &mut dyn Source) -> Result<Finished> {
        if let Err(e) = self.start_sinks() {
            let _ = source.finish(&mut Vec::new());
            return Err(e);
        }
        let start = Instant::now();
        let mut batch: Vec<Event> = Vec::with_capacity(8192);
        let mut tick = Ticker {
            at: start,
            events: 0,
            cost_ns: source.health().cost.map(|c| c.1),
            written: 0,
        };
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
            let consumer = self.fold(&batch);
            for n in source.take_notes() {
                self.note(n);
            }
            if let Some(reason) = consumer.or(match poll {
                Poll::Ended(reason) => Some(reason),
                Poll::More => None,
            }) {
                break reason;
            }
            if tick.at.elapsed() >= Duration::from_secs(1) {
                self.status(source, start, events, &mut tick);
            }
        };
        // Tracing stops now; what follows (draining, symbolizing) is not part of its duration.
        let traced_for = start.elapsed();
        // What the source still holds (the ring's rest, a demo's last events) is kept.
        batch.clear();
        let health = source.health();
        let end = source.finish(&mut batch);
        self.fold(&batch);
        for n in end.notes.iter().cloned().chain(source.take_notes()) {
            self.note(n);
        }
        if let Some(r) = self.resolver.take() {
            r.finish();
        }
        Ok(self.finished(end, reason, traced_for, health))
    }

    /// Opens every sink's output; the first that cannot start ends the session before it traces.
    fn start_sinks(&mut self) -> Result<()> {
        for s in &mut self.sinks {
            if let Err(e) = s.start(&self.meta) {
                return Err(Error::Output(match e {
                    SinkError::Closed => "the output closed before tracing started".into(),
                    SinkError::Failed(m) | SinkError::Full(m) => m,
                }));
            }
        }
        Ok(())
    }

    /// Once a second: the status (rates over the last second) to the readers and sinks, and the
    /// stacks resolved so far to the sinks.
    fn status(&mut self, source: &dyn Source, start: Instant, events: u64, last: &mut Ticker) {
        let now = Instant::now();
        let dt = now.duration_since(last.at).as_secs_f64();
        let health = source.health();
        let written = self.written();
        let status = Status {
            elapsed: source.position().unwrap_or(now.duration_since(start)),
            events,
            events_per_sec: (events - last.events) as f64 / dt,
            lost_events: lock(&self.shared.model).totals.lost_events,
            health,
            cost_per_sec: health.cost.map(|(what, ns)| {
                let before = last.cost_ns.unwrap_or(ns);
                (what, ns.saturating_sub(before) as f64 / dt)
            }),
            written: written.map(|w| (w, w.saturating_sub(last.written) as f64 / dt)),
        };
        *lock(&self.shared.status) = status;
        for s in &mut self.sinks {
            s.status(&status);
        }
        if let Some(t) = lock(&self.shared.stacks).as_ref() {
            for s in &mut self.sinks {
                if let Err(SinkError::Failed(m)) = s.stacks(t) {
                    self.sink_error.get_or_insert(m);
                }
            }
        }
        *last = Ticker {
            at: now,
            events,
            cost_ns: health.cost.map(|c| c.1),
            written: written.unwrap_or(last.written),
        };
    }

    /// What the session gathered, handed to every sink's `finish`.
    fn finished(
        mut self,
        end: SourceEnd,
        reason: StopReason,
        traced_for: Duration,
        health: crate::trace::Health,
    ) -> Finished {
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
            sink_error: self.sink_error.take(),
            rules: self.rules.clone(),
            fold_cpu: Duration::from_nanos(crate::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)),
        };
        for s in &mut self.sinks {
            if let Err(SinkError::Failed(m)) = s.finish(&finished) {
                finished.sink_error.get_or_insert(m);
            }
        }
        finished
    }

    /// Bytes the sinks have written, if any writes a file.
    fn written(&self) -> Option<u64> {
        self.sinks
            .iter()
            .filter_map(|s| s.written())
            .reduce(|a, b| a + b)
    }

    /// Folds a batch into the model, tells the resolver what is new, hands the batch to every sink;
    /// `Some` when a sink asks to stop.
    fn fold(&mut self, batch: &[Event]) -> Option<StopReason> {
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
                    self.sink_error.get_or_insert(m);
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
