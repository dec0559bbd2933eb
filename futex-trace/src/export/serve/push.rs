//! `serve --push`: each interval's profile posted to Pyroscope, on a fixed cadence whatever a push takes.

use std::sync::Arc;
use std::time::Duration;

use super::{PushOptions, Served, PUSH_TRIES};
use crate::export::flame::Side;
use crate::model::Model;

/// Until the session ends: every `p.every`, the profile of that interval (the waiters' stacks, Go's
/// block-profile layout) posted to Pyroscope, tried [`PUSH_TRIES`] times with a doubling wait. A
/// profile given up on is counted and said, never fatal.
///
/// Two threads, so that a slow push never stretches an interval: this one cuts the intervals on a
/// fixed cadence (each one's model, taken at its end), and a sender waits for their stacks' names and
/// posts them, [`PUSH_QUEUE`] intervals at most behind. Intervals are contiguous: each begins where the
/// one before it ended.
pub(super) fn push_loop(
    s: &Arc<Served>,
    p: &PushOptions,
    control: &Arc<crate::trace::Control>,
    problem: &Arc<dyn Fn(String) + Send + Sync + 'static>,
) {
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::TrySendError;
    use std::time::Instant;
    let Some(mut before) = s.model() else {
        return;
    };
    let (queue, cut) = std::sync::mpsc::sync_channel::<Interval>(PUSH_QUEUE);
    let sender = {
        let (s, p, control, problem) = (s.clone(), p.clone(), control.clone(), problem.clone());
        std::thread::Builder::new()
            .name("futex-trace-post".into())
            .spawn(move || post_loop(&s, &p, &control, &*problem, cut))
    };
    let mut from = unix_now();
    let mut end = Instant::now();
    'cutting: loop {
        // An interval overdue (the machine stalled this thread) is cut at once, and the cadence goes on
        // from then: no burst of short ones to catch up.
        end = (end + p.every).max(Instant::now());
        // Sleep the interval in small steps, so that a stop is seen at once.
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if control.stop_requested()
                || crate::lock(&s.session)
                    .as_ref()
                    .is_none_or(|s| s.ended().is_some())
            {
                break 'cutting;
            }
            std::thread::sleep(Duration::from_millis(100).min(left));
        }
        let Some(after) = s.model() else {
            break;
        };
        let until = unix_now();
        let interval = Interval {
            delta: after.stacks_since(&before),
            from,
            until,
        };
        match queue.try_send(interval) {
            Ok(()) => {}
            Err(TrySendError::Full(i)) => {
                s.push_failed.fetch_add(1, Ordering::Relaxed);
                crate::lock(&s.push_failures).failed(
                    &p.url,
                    format!(
                        "pushes are {PUSH_QUEUE} intervals behind: the server is slow or unreachable"
                    ),
                    i.from,
                    i.until,
                    &**problem,
                );
            }
            Err(TrySendError::Disconnected(_)) => break,
        }
        before = after;
        from = until;
    }
    drop(queue);
    if let Ok(h) = sender {
        let _ = h.join();
    }
}

/// What the user is told of failed pushes: the first in full (why, and which interval, in readable
/// times), then a summary at most once a [`SUMMARY_EVERY`] while they go on, and when pushes work again.
/// Never a line per interval forever.
pub(super) struct Failures {
    /// Intervals dropped since the last line said.
    unsaid: u64,
    /// All intervals dropped in this run of failures, and the last reason.
    dropped: u64,
    last_error: String,
    last_said: Option<std::time::Instant>,
}

/// How often a run of failed pushes is summed up.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

impl Failures {
    pub(super) const fn new() -> Self {
        Failures {
            unsaid: 0,
            dropped: 0,
            last_error: String::new(),
            last_said: None,
        }
    }

    fn failed(&mut self, url: &str, why: String, from: f64, until: f64, problem: &dyn Fn(String)) {
        self.dropped += 1;
        self.unsaid += 1;
        self.last_error = why;
        match self.last_said {
            None => problem(format!(
                "push to {url} failed ({}); the profile of {} is dropped, later intervals will be \
                 tried (failures are summed up each minute from now on)",
                self.last_error,
                span(from, until)
            )),
            Some(t) if t.elapsed() >= SUMMARY_EVERY => problem(format!(
                "push to {url} still failing: {} more profiles dropped ({} in all; last: {})",
                self.unsaid, self.dropped, self.last_error
            )),
            Some(_) => return,
        }
        self.unsaid = 0;
        self.last_said = Some(std::time::Instant::now());
    }

    fn succeeded(&mut self, url: &str, problem: &dyn Fn(String)) {
        if self.dropped > 0 {
            problem(format!(
                "push to {url} works again ({} profiles were dropped)",
                self.dropped
            ));
        }
        *self = Failures::new();
    }
}

/// An interval in readable UTC times: `2026-12-03T14:03:05Z..14:03:15Z`.
fn span(from: f64, until: f64) -> String {
    let at = |t: f64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0)),
        )
        .to_string()
    };
    let (a, b) = (at(from), at(until));
    let same_day = a.get(..11) == b.get(..11);
    format!("{a}..{}", if same_day { &b[11..] } else { &b })
}

/// One interval's model, cut by [`push_loop`] for [`post_loop`].
struct Interval {
    delta: Model,
    /// Wall-clock seconds since the Unix epoch.
    from: f64,
    until: f64,
}

/// How many cut intervals may wait for their push; one more is dropped (and counted as failed).
const PUSH_QUEUE: usize = 4;

/// Posts each interval `cut` sends, with its stacks named (waited for up to [`SETTLE`]).
fn post_loop(
    s: &Served,
    p: &PushOptions,
    control: &crate::trace::Control,
    problem: &dyn Fn(String),
    cut: std::sync::mpsc::Receiver<Interval>,
) {
    use std::sync::atomic::Ordering;
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(true)
        .build()
        .new_agent();
    let url = format!("{}/ingest", p.url.trim_end_matches('/'));
    for Interval { delta, from, until } in cut {
        s.settle();
        let Some(stacks) = s.stacks() else {
            return;
        };
        let span = crate::export::pprof::Span {
            start_unix_ns: (from * 1e9) as i64,
            duration_ns: ((until - from) * 1e9) as i64,
        };
        let profile =
            crate::export::pprof::build(&s.analysis(&delta, &stacks), Side::Waiters, span, s.show);
        let bytes = crate::export::pprof::encode_gz(&profile);
        let (f, u) = (
            format!("{}", from as u64),
            format!("{}", until.ceil() as u64),
        );
        let mut wait = Duration::from_secs(1);
        let mut last_error = String::new();
        let mut sent = false;
        for _ in 0..PUSH_TRIES {
            let form = ureq::unversioned::multipart::Form::new().part(
                "profile",
                ureq::unversioned::multipart::Part::bytes(&bytes).file_name("profile.pprof"),
            );
            match agent
                .post(&url)
                .query("name", &p.name)
                .query("from", &f)
                .query("until", &u)
                .query("format", "pprof")
                .query("spyName", "futex-trace")
                .send(form)
            {
                Ok(_) => {
                    sent = true;
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
            if control.stop_requested() || wait >= p.every {
                break;
            }
            std::thread::sleep(wait);
            wait *= 2;
        }
        if sent {
            s.pushed.fetch_add(1, Ordering::Relaxed);
            crate::lock(&s.push_failures).succeeded(&url, problem);
        } else {
            s.push_failed.fetch_add(1, Ordering::Relaxed);
            crate::lock(&s.push_failures).failed(&url, last_error, from, until, problem);
        }
    }
}

/// Wall-clock seconds since the Unix epoch (what Pyroscope's from/until take).
fn unix_now() -> f64 {
    crate::clock_ns(libc::CLOCK_REALTIME) as f64 / 1e9
}
