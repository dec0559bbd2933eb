//! `futex-trace serve`: a session, served over HTTP for the tools a fleet already runs.
//!
//! - `/metrics`: Prometheus/OpenMetrics text (the official `prometheus-client` crate): totals, the top
//!   locks by time waited (labelled by name, the rest summed under `lock="other"`, so the label set stays
//!   bounded), per-bucket series of the kernel's private futex hashes (or futex-core's queues), wait-time
//!   and wake-latency histograms in seconds, lost events and the tracer's own CPU time.
//! - `/debug/pprof/block` and `/debug/pprof/mutex`, as Go's `net/http/pprof` answers them: without
//!   `seconds`, everything since the start; with `?seconds=N`, what the next N seconds gather (the
//!   request waits for them). So `go tool pprof http://HOST:PORT/debug/pprof/block?seconds=10` and a
//!   Parca or Pyroscope scrape job pull from it unchanged. `?debug=1`: the same as text; `/debug/pprof/`:
//!   Go's index of the profiles.
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

use crate::export::flame::Side;
use crate::export::Show;
use crate::model::Model;
use crate::session::Session;
use crate::sites::{Analysis, Rules};
use crate::stacks::{Names, StackTable};

mod metrics;
mod push;

use crate::trace::Finished;
use crate::Error;
pub use metrics::{metrics_text, Extra};
use push::push_loop;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Locks with a series of their own on /metrics (the rest are summed under `lock="other"`).
    pub top_locks: usize,
    /// Push each interval's profile to a Pyroscope server too.
    pub push: Option<PushOptions>,
    /// Which waits profiles and flamegraphs draw unless a request says (`?show=`).
    pub show: Show,
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

/// How long a profile waits for the stacks seen so far to be symbolized: the first symbolization of a
/// large binary with debug info took over 5 s on a loaded CI machine (its first push then named no
/// function); a profile of addresses is worth less than one a few seconds late.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(15);

/// The longest window a profile request may ask for.
pub const MAX_SECONDS: u64 = 3600;

pub(super) struct Served {
    session: Mutex<Option<Session>>,
    labels: HashMap<u64, String>,
    rules: Rules,
    show: Show,
    title: String,
    top_locks: usize,
    /// Profiles pushed, and those given up on after [`PUSH_TRIES`] (shown on /metrics).
    pushed: std::sync::atomic::AtomicU64,
    push_failed: std::sync::atomic::AtomicU64,
    /// What was said of failed pushes (both push threads fail intervals).
    push_failures: Mutex<push::Failures>,
}

impl Served {
    /// The analysis of `model` (a window, or everything), named with `stacks`.
    fn analysis<'a>(&'a self, model: &'a Model, stacks: &'a Option<StackTable>) -> Analysis<'a> {
        Analysis::new(
            model,
            Names::new(&self.labels, stacks.as_ref()),
            &self.rules,
        )
    }

    /// Which waits a request asks to draw (`?show=contention|idle|all|auto`), else the default.
    fn show(&self, q: &HashMap<String, String>) -> Result<Show, String> {
        use clap::ValueEnum;
        match q.get("show") {
            None => Ok(self.show),
            Some(v) => Show::from_str(v, true)
                .map_err(|_| format!("show={v}: give contention, idle, all or auto")),
        }
    }

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
) -> crate::Result<Finished> {
    let problem: Arc<dyn Fn(String) + Send + Sync> = Arc::new(problem);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Http(format!("cannot start the HTTP server: {e}")))?;
    let control = session.control().clone();
    let served = Arc::new(Served {
        labels: session.labels().clone(),
        rules: session.rules().clone(),
        show: opts.show,
        title: session.title().to_string(),
        session: Mutex::new(Some(session)),
        top_locks: opts.top_locks,
        pushed: Default::default(),
        push_failed: Default::default(),
        push_failures: Mutex::new(push::Failures::new()),
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
        .route("/debug/pprof/", get(pprof_index))
        .route("/debug/pprof", get(pprof_index))
        .route("/debug/pprof/block", get(block))
        .route("/debug/pprof/mutex", get(mutex))
        .route("/flamegraph.svg", get(flamegraph))
        .with_state(served.clone());
    let listen = opts.listen;
    let watched = served.clone();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Http(format!("cannot listen on {listen}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Http(format!("cannot listen on {listen}: {e}")))?;
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
            .map_err(|e| Error::Http(format!("the HTTP server failed: {e}")))
    })?;
    let session = crate::lock(&served.session)
        .take()
        .ok_or_else(|| Error::Thread("the session was taken".into()))?;
    let f = session.stop();
    if let Some(Ok(h)) = pusher {
        let _ = h.join();
    }
    f
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

/// Go's `/debug/pprof/` index: the profiles served, each with its text form (`debug=1`).
async fn pprof_index(State(s): State<Arc<Served>>) -> Html<String> {
    Html(format!(
        "<html><head><title>/debug/pprof/</title></head><body><p>futex-trace: {}</p>\
         <p>Profiles (everything since the start; <code>?seconds=N</code>: the next N seconds):</p>\
         <table><tr><td><a href=\"block?debug=1\">block</a></td><td>Stack traces of where threads \
         waited on futexes (delay, contentions)</td></tr>\
         <tr><td><a href=\"mutex?debug=1\">mutex</a></td><td>Stack traces of the threads that \
         released them (wakers)</td></tr></table>\
         <p>go tool pprof http://HOST:PORT/debug/pprof/block?seconds=10</p></body></html>",
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
    // Go's `debug`: 0 (or none) the binary profile, 1 the same as text.
    let text = match q.get("debug").map(String::as_str) {
        None | Some("0") => false,
        Some("1") => true,
        Some(v) => return bad(format!("debug={v}: give 0 (a binary profile) or 1 (text)")),
    };
    let show = match s.show(&q) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let Some((model, stacks)) = window(&s, secs).await else {
        return gone();
    };
    let span = crate::export::pprof::Span {
        start_unix_ns: crate::clock_ns(libc::CLOCK_REALTIME) as i64
            - secs.unwrap_or(0) as i64 * 1_000_000_000,
        duration_ns: (secs.map_or(model.span_secs(), |n| n as f64) * 1e9) as i64,
    };
    let p = crate::export::pprof::build(&s.analysis(&model, &stacks), side, span, show);
    if text {
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            crate::export::pprof::text(&p),
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"profile\"",
            ),
        ],
        crate::export::pprof::encode_gz(&p),
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
    let show = match s.show(&q) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let Some((model, stacks)) = window(&s, secs).await else {
        return gone();
    };
    if wakers && stacks.is_none() {
        return bad("wakers=1 needs stacks, which this source does not record".into());
    }
    let side = if wakers { Side::Wakers } else { Side::Waiters };
    let (lines, what) = crate::export::flame::graph(&s.analysis(&model, &stacks), side, show);
    let subtitle = match secs {
        Some(n) => format!("{} · the last {n} s", s.title),
        None => format!("{} · since the start", s.title),
    };
    let mut svg = Vec::new();
    if let Err(e) = crate::export::flame::svg(&lines, &what, &subtitle, &mut svg) {
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
        &s.rules,
        Extra {
            lost_events: status.lost_events,
            missed_runs: status.health.missed_runs,
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
