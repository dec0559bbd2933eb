//! `futex-trace serve`: a session, served over HTTP for the tools a fleet already runs.
//!
//! - `/metrics`: Prometheus/OpenMetrics text (the official `prometheus-client` crate): totals, the top
//!   locks by time waited (labelled by name, the rest summed under `lock="other"`, so the label set stays
//!   bounded), per-bucket series of the kernel's private futex hashes (or futex-core's queues), wait-time
//!   and wake-latency histograms in seconds, lost events and the tracer's own CPU time.
//! - `/debug/pprof/block` and `/debug/pprof/mutex`, as Go's `net/http/pprof` answers them: without
//!   `seconds`, everything since the start; with `?seconds=N`, what the next N seconds gather (the
//!   request waits for them). So `go tool pprof http://HOST:PORT/debug/pprof/block?seconds=10` and a
//!   Parca or Pyroscope scrape job pull from it unchanged.
//! - `/flamegraph.svg[?seconds=N][&wakers=1]`: a flamegraph of the same, for a browser.
//!
//! No library code prints: the caller is told the bound address and says it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::ebpf::TraceError;
use crate::flame::Side;
use crate::khash::KernelHash;
use crate::model::{Log2Hist, Model};
use crate::session::{Finished, Session};
use crate::stacks::StackTable;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Locks with a series of their own on /metrics (the rest are summed under `lock="other"`).
    pub top_locks: usize,
    /// Push each interval's profile to a Pyroscope server too.
    pub push: Option<PushOptions>,
}

/// Pushing to Pyroscope (`POST {url}/ingest?name=…&from=…&until=…&format=pprof`, the profile as the
/// form field `profile`, as Pyroscope's own agents send it).
#[derive(Clone, Debug)]
pub struct PushOptions {
    /// The server's base URL (`http://pyroscope:4040`).
    pub url: String,
    /// The application name with its labels, as Pyroscope names series: `app{env=prod,host=a}`.
    pub name: String,
    /// How much each profile covers (and how often one is sent).
    pub every: Duration,
}

/// Tries per profile, each after a doubled wait (1 s, 2 s, 4 s; never past the next interval).
const PUSH_TRIES: u32 = 4;

/// How long a profile waits for the stacks seen so far to be symbolized.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The longest window a profile request may ask for.
pub const MAX_SECONDS: u64 = 3600;

struct Served {
    session: Mutex<Option<Session>>,
    labels: HashMap<u64, String>,
    title: String,
    top_locks: usize,
    /// Profiles pushed, and those given up on after [`PUSH_TRIES`] (shown on /metrics).
    pushed: std::sync::atomic::AtomicU64,
    push_failed: std::sync::atomic::AtomicU64,
}

impl Served {
    /// The stack table now (`None`: the session has ended). Stacks are only ever added to it, so a
    /// table taken after a model names every stack the model holds.
    fn stacks(&self) -> Option<Option<StackTable>> {
        crate::lock(&self.session).as_ref().map(Session::stacks)
    }

    /// Waits (up to [`SETTLE`]) until the stacks seen so far have names, so that a profile built
    /// next has them; the session lock is not held meanwhile. Blocks: for the push thread.
    fn settle(&self) {
        let settler = crate::lock(&self.session)
            .as_ref()
            .and_then(Session::settler);
        if let Some(wait) = settler {
            wait(SETTLE);
        }
    }

    /// [`Served::settle`] for a request handler: on tokio's blocking pool, not its one thread.
    async fn settled(&self) {
        let settler = crate::lock(&self.session)
            .as_ref()
            .and_then(Session::settler);
        if let Some(wait) = settler {
            let _ = tokio::task::spawn_blocking(move || wait(SETTLE)).await;
        }
    }

    /// The model alone, for the start of a window (its stack table is taken at the end).
    fn model(&self) -> Option<Model> {
        crate::lock(&self.session).as_ref().map(Session::snapshot)
    }
}

/// Serves `session` at `opts.listen` until it ends (the traced processes exit, or its control is
/// stopped: Ctrl-C). `ready` is told the address bound (port 0 picks one); `problem` each problem that
/// does not stop it, in one line (a push that failed). Returns what the session finished with.
pub fn serve(
    session: Session,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
    problem: impl Fn(String) + Send + Sync + 'static,
) -> Result<Finished, TraceError> {
    let problem: Arc<dyn Fn(String) + Send + Sync> = Arc::new(problem);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TraceError(format!("cannot start the HTTP server: {e}")))?;
    let control = session.control().clone();
    let served = Arc::new(Served {
        labels: session.labels().clone(),
        title: session.title().to_string(),
        session: Mutex::new(Some(session)),
        top_locks: opts.top_locks,
        pushed: Default::default(),
        push_failed: Default::default(),
    });
    let pusher = opts.push.clone().map(|p| {
        let s = served.clone();
        let control = control.clone();
        let problem = problem.clone();
        std::thread::Builder::new()
            .name("futex-trace-push".into())
            .spawn(move || push_loop(&s, &p, &control, &problem))
    });
    let app = axum::Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/debug/pprof/block", get(block))
        .route("/debug/pprof/mutex", get(mutex))
        .route("/flamegraph.svg", get(flamegraph))
        .with_state(served.clone());
    let listen = opts.listen;
    let watched = served.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| TraceError(format!("cannot listen on {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| TraceError(format!("cannot listen on {listen}: {e}")))?;
        ready(bound);
        let s = watched;
        let ended = async move {
            // What the session notes (a process that started and is now traced, a stack problem) is
            // said as it comes, one line each.
            let mut said = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let (over, notes) = match crate::lock(&s.session).as_ref() {
                    Some(session) => (session.ended().is_some(), session.notes()),
                    None => (true, Vec::new()),
                };
                for n in notes.iter().skip(said) {
                    problem(n.clone());
                }
                said = said.max(notes.len());
                if over || control.stop_requested() {
                    break;
                }
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(ended)
            .await
            .map_err(|e| TraceError(format!("the HTTP server failed: {e}")))
    })?;
    let session = crate::lock(&served.session)
        .take()
        .ok_or_else(|| TraceError("the session was taken".into()))?;
    let f = session.stop();
    if let Some(Ok(h)) = pusher {
        let _ = h.join();
    }
    f
}

/// Until the session ends: every `p.every`, the profile of that interval (the waiters' stacks, Go's
/// block-profile layout) posted to Pyroscope, tried [`PUSH_TRIES`] times with a doubling wait. A
/// profile given up on is counted and said, never fatal.
///
/// Two threads, so that a slow push never stretches an interval: this one cuts the intervals on a
/// fixed cadence (each one's model, taken at its end), and a sender waits for their stacks' names and
/// posts them, [`PUSH_QUEUE`] intervals at most behind. Intervals are contiguous: each begins where the
/// one before it ended.
fn push_loop(
    s: &Arc<Served>,
    p: &PushOptions,
    control: &Arc<crate::session::Control>,
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
                problem(format!(
                    "pushes are {PUSH_QUEUE} intervals behind (the server is slow or unreachable); \
                     the profile of {}..{} is dropped",
                    i.from as u64,
                    i.until.ceil() as u64
                ));
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
    control: &crate::session::Control,
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
        let span = crate::pprof::Span {
            start_unix_ns: (from * 1e9) as i64,
            duration_ns: ((until - from) * 1e9) as i64,
        };
        let profile = crate::pprof::build(&delta, stacks.as_ref(), &s.labels, Side::Waiters, span);
        let bytes = crate::pprof::encode_gz(&profile);
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
        } else {
            s.push_failed.fetch_add(1, Ordering::Relaxed);
            problem(format!(
                "push to {url} failed ({last_error}); the profile of {f}..{u} is dropped, the next \
                 interval's will be tried"
            ));
        }
    }
}

/// Wall-clock seconds since the Unix epoch (what Pyroscope's from/until take).
fn unix_now() -> f64 {
    crate::clock_ns(libc::CLOCK_REALTIME) as f64 / 1e9
}

async fn index(State(s): State<Arc<Served>>) -> Html<String> {
    Html(format!(
        "<html><head><title>futex-trace</title></head><body><h1>futex-trace: {}</h1><ul>\
         <li><a href=\"/metrics\">/metrics</a> (Prometheus)</li>\
         <li><a href=\"/debug/pprof/block?seconds=10\">/debug/pprof/block?seconds=10</a> (where threads \
         wait; go tool pprof)</li>\
         <li><a href=\"/debug/pprof/mutex?seconds=10\">/debug/pprof/mutex?seconds=10</a> (who wakes \
         them)</li>\
         <li><a href=\"/flamegraph.svg?seconds=10\">/flamegraph.svg?seconds=10</a> \
         (<a href=\"/flamegraph.svg?seconds=10&amp;wakers=1\">wakers</a>)</li></ul></body></html>",
        s.title
    ))
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, msg + "\n").into_response()
}

fn gone() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "the trace has ended\n").into_response()
}

/// `seconds` of a query: none (since the start), or 1 to [`MAX_SECONDS`]; else what is wrong with it.
fn seconds(q: &HashMap<String, String>) -> Result<Option<u64>, String> {
    match q.get("seconds") {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(n @ 1..=MAX_SECONDS) => Ok(Some(n)),
            _ => Err(format!(
                "seconds={v}: give a whole number of seconds from 1 to {MAX_SECONDS}"
            )),
        },
    }
}

/// The model to profile: since the start, or what `seconds` more gather (waited for).
async fn window(s: &Served, secs: Option<u64>) -> Option<(Model, Option<StackTable>)> {
    let before = match secs {
        Some(n) => {
            let before = s.model()?;
            tokio::time::sleep(Duration::from_secs(n)).await;
            Some(before)
        }
        None => None,
    };
    // The window ends before the wait for names, so that wait does not lengthen it.
    let after = s.model()?;
    s.settled().await;
    let stacks = s.stacks()?;
    let model = match before {
        Some(b) => after.stacks_since(&b),
        None => after,
    };
    Some((model, stacks))
}

async fn profile(s: Arc<Served>, q: HashMap<String, String>, side: Side) -> Response {
    let secs = match seconds(&q) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let Some((model, stacks)) = window(&s, secs).await else {
        return gone();
    };
    let span = crate::pprof::Span {
        start_unix_ns: crate::clock_ns(libc::CLOCK_REALTIME) as i64
            - secs.unwrap_or(0) as i64 * 1_000_000_000,
        duration_ns: (secs.map_or(model.span_secs(), |n| n as f64) * 1e9) as i64,
    };
    let p = crate::pprof::build(&model, stacks.as_ref(), &s.labels, side, span);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile\"",
            ),
        ],
        crate::pprof::encode_gz(&p),
    )
        .into_response()
}

async fn block(State(s): State<Arc<Served>>, Query(q): Query<HashMap<String, String>>) -> Response {
    profile(s, q, Side::Waiters).await
}

async fn mutex(State(s): State<Arc<Served>>, Query(q): Query<HashMap<String, String>>) -> Response {
    profile(s, q, Side::Wakers).await
}

async fn flamegraph(
    State(s): State<Arc<Served>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let secs = match seconds(&q) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let wakers = q.get("wakers").is_some_and(|v| v == "1" || v == "true");
    let Some((model, stacks)) = window(&s, secs).await else {
        return gone();
    };
    if wakers && stacks.is_none() {
        return bad("wakers=1 needs stacks, which this source does not record".into());
    }
    let side = if wakers { Side::Wakers } else { Side::Waiters };
    let (lines, what) = crate::flame::graph(&model, stacks.as_ref(), &s.labels, side);
    let subtitle = match secs {
        Some(n) => format!("{} · the last {n} s", s.title),
        None => format!("{} · since the start", s.title),
    };
    let mut svg = Vec::new();
    if let Err(e) = crate::flame::svg(&lines, what, &subtitle, &mut svg) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
    }
    ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
}

async fn metrics(State(s): State<Arc<Served>>, headers: axum::http::HeaderMap) -> Response {
    // OpenMetrics for clients that ask for it (Prometheus does), the classic text format otherwise
    // (curl, promtool).
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (model, stacks, status) = {
        let guard = crate::lock(&s.session);
        let Some(session) = guard.as_ref() else {
            return gone();
        };
        (session.snapshot(), session.stacks(), session.status())
    };
    use std::sync::atomic::Ordering;
    let (ok, failed) = (
        s.pushed.load(Ordering::Relaxed),
        s.push_failed.load(Ordering::Relaxed),
    );
    let text = metrics_text(
        model,
        stacks,
        &s.labels,
        Extra {
            lost_events: status.lost_events,
            top_locks: s.top_locks,
            pushes: (ok + failed > 0).then_some((ok, failed)),
        },
        openmetrics,
    );
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// What /metrics shows besides the model.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra {
    /// Lost events the source counted (the model's total may lag it).
    pub lost_events: u64,
    /// Locks with series of their own.
    pub top_locks: usize,
    /// Profiles pushed to Pyroscope: (ok, given up on); `None` when not pushing.
    pub pushes: Option<(u64, u64)>,
}

/// The model as OpenMetrics text (`openmetrics`), or as Prometheus' classic text format.
pub fn metrics_text(
    model: Model,
    stacks: Option<StackTable>,
    labels: &HashMap<u64, String>,
    extra: Extra,
    openmetrics: bool,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        model,
        stacks,
        labels: labels.clone(),
        extra,
    }));
    let mut out = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    }
    .expect("encoding to a String cannot fail");
    out
}

/// A snapshot of the model, encoded on each scrape.
#[derive(Debug)]
struct Snapshot {
    model: Model,
    stacks: Option<StackTable>,
    labels: HashMap<u64, String>,
    extra: Extra,
}

type Labels = Vec<(&'static str, String)>;

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: &[(Labels, f64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in series {
        let mut f = m.encode_family(labels)?;
        f.encode_counter::<prometheus_client::encoding::NoLabelSet, f64, f64>(v, None)?;
    }
    Ok(())
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

/// A log2 histogram of nanoseconds as a Prometheus histogram in seconds: buckets at 2^i ns from 1 µs to
/// about 34 s, then +Inf.
fn histogram(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Log2Hist,
) -> Result<(), std::fmt::Error> {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    // Slot i holds values in [2^i, 2^(i+1)) ns: below the bound 2^(i+1) ns.
    let below: u64 = h.buckets[..10].iter().sum();
    buckets.push(((1u64 << 10) as f64 / 1e9, below));
    for i in 10..35 {
        buckets.push(((1u64 << (i + 1)) as f64 / 1e9, h.buckets[i]));
    }
    let rest: u64 = h.buckets[35..].iter().sum();
    buckets.push((f64::INFINITY, rest));
    let mut m = e.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
        h.sum as f64 / 1e9,
        h.count,
        &buckets,
        None,
    )
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.model;
        let t = &m.totals;
        for (name, help, v) in [
            (
                "futex_waits",
                "Futex waits returned (all outcomes).",
                t.waits,
            ),
            (
                "futex_waits_slept",
                "Futex waits that slept (woken, timed out or interrupted).",
                t.waits_blocked,
            ),
            (
                "futex_waits_value_changed",
                "Futex waits that returned at once: the value had changed (EAGAIN).",
                t.mismatches,
            ),
            (
                "futex_waits_timed_out",
                "Futex waits that timed out.",
                t.timeouts,
            ),
            ("futex_wakes", "Futex wake calls.", t.wakes),
            (
                "futex_woken",
                "Waiters woken by wake and requeue calls.",
                t.woken,
            ),
            ("futex_requeues", "Futex requeue calls.", t.requeues),
            (
                "futex_requeue_moved",
                "Waiters moved from one futex word to another by requeues.",
                t.moved,
            ),
            (
                "futex_trace_lost_events",
                "Events futex-trace could not deliver (its counts are then lower bounds).",
                t.lost_events.max(self.extra.lost_events),
            ),
            (
                "futex_trace_evicted_words",
                "Futex words dropped from futex-trace's table when it was full (--max-words; the least recently seen first).",
                t.evicted_words,
            ),
        ] {
            counter(&mut e, name, help, None, &[(vec![], v as f64)])?;
        }
        // The locks that waited longest, by name; the rest summed, so the label set stays bounded.
        let mut locks: Vec<_> = m
            .addresses
            .iter()
            .filter(|(_, a)| a.waits > 0 && !a.kind_in(self.stacks.as_ref()).is_idle())
            .collect();
        locks.sort_by(|a, b| b.1.wait_ns_total.cmp(&a.1.wait_ns_total).then(a.0.cmp(b.0)));
        let mut slept = Vec::new();
        let mut waited = Vec::new();
        let (mut other_slept, mut other_ns) = (0u64, 0u64);
        for (i, (&(pid, addr), a)) in locks.iter().enumerate() {
            if i < self.extra.top_locks {
                let name = crate::report::word_name(pid, addr, &self.labels, self.stacks.as_ref());
                let l: Labels = vec![("lock", name), ("pid", pid.to_string())];
                slept.push((l.clone(), a.waits_blocked as f64));
                waited.push((l, a.wait_ns_total as f64 / 1e9));
            } else {
                other_slept += a.waits_blocked;
                other_ns += a.wait_ns_total;
            }
        }
        if locks.len() > self.extra.top_locks {
            let l: Labels = vec![("lock", "other".into()), ("pid", String::new())];
            slept.push((l.clone(), other_slept as f64));
            waited.push((l, other_ns as f64 / 1e9));
        }
        counter(
            &mut e,
            "futex_lock_waits_slept",
            "Waits that slept, per lock (the top locks by time waited; lock=\"other\": the rest).",
            None,
            &slept,
        )?;
        counter(
            &mut e,
            "futex_lock_wait",
            "Time waited by waits that slept, per lock (as futex_lock_waits_slept).",
            Some(&Unit::Seconds),
            &waited,
        )?;
        // Buckets: the kernel's private futex hashes as the processes have them now, else futex-core's.
        let mut bucket_slept = Vec::new();
        let mut bucket_waiting = Vec::new();
        for (&(pid, slots, bucket), b) in &m.kernel_buckets {
            if m.kernel_slots.get(&pid) != Some(&slots) {
                continue;
            }
            let l: Labels = vec![
                ("table", "kernel".into()),
                ("pid", pid.to_string()),
                ("slots", slots.to_string()),
                ("bucket", bucket.to_string()),
            ];
            bucket_slept.push((l.clone(), b.waits_blocked as f64));
            bucket_waiting.push((l, b.waiting));
        }
        if m.kernel_buckets.is_empty() {
            for (i, b) in m.buckets.iter().enumerate().filter(|(_, b)| b.waits > 0) {
                let l: Labels = vec![
                    ("table", "futex_core".into()),
                    ("pid", String::new()),
                    ("slots", m.buckets.len().to_string()),
                    ("bucket", i.to_string()),
                ];
                bucket_slept.push((l.clone(), b.waits_blocked as f64));
                bucket_waiting.push((l, b.depth));
            }
        }
        counter(&mut e, "futex_bucket_waits_slept", "Waits that slept, per bucket: table=\"kernel\" is the process's own private futex hash (Linux 6.17+), \"futex_core\" futex-core's queues (or its hash of kernel addresses).", None, &bucket_slept)?;
        gauge(
            &mut e,
            "futex_bucket_waiters",
            "Threads waiting now, per bucket (as futex_bucket_waits_slept).",
            &bucket_waiting,
        )?;
        let private: i64 = m
            .addresses
            .values()
            .filter(|a| matches!(a.kernel, Some(KernelHash::Private { .. })))
            .count() as i64;
        gauge(
            &mut e,
            "futex_words_private_hash",
            "Futex words seen in a private kernel futex hash.",
            &[(vec![], private)],
        )?;
        let (busy, idle) = m.wait_split(self.stacks.as_ref());
        histogram(
            &mut e,
            "futex_wait",
            "Time waited by waits that slept on locks (idle waits apart).",
            &busy,
        )?;
        histogram(
            &mut e,
            "futex_idle_wait",
            "Time waited by idle waits (condition variables, joins, semaphores).",
            &idle,
        )?;
        histogram(
            &mut e,
            "futex_wake_to_return",
            "From the wake that released a waiter to its return.",
            &m.wake_to_return,
        )?;
        histogram(
            &mut e,
            "futex_sched_delay",
            "From a woken waiter's sched_wakeup to its running on a CPU (kernel sources).",
            &m.sched_delay,
        )?;
        if let Some((ok, failed)) = self.extra.pushes {
            let series = [
                (vec![("result", "ok".to_string())], ok as f64),
                (vec![("result", "failed".to_string())], failed as f64),
            ];
            counter(
                &mut e,
                "futex_trace_pushes",
                "Profiles pushed to Pyroscope, by result (failed: given up on after retries).",
                None,
                &series,
            )?;
        }
        counter(
            &mut e,
            "futex_trace_cpu",
            "CPU time of the futex-trace process (with --demo, the demo's threads too).",
            Some(&Unit::Seconds),
            &[(
                vec![],
                crate::clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID) as f64 / 1e9,
            )],
        )?;
        Ok(())
    }
}
