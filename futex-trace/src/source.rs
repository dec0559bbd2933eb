//! Sources of events. Now: futex-core's in-process observer. eBPF (kernel futexes, futex-core's USDT
//! probes) and recorded trace files come with their issues, producing the same [`Event`].

use futex_core::{SubscribeError, Subscription};

use crate::event::{Event, EventKind};

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
