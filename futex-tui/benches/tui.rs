//! The dashboard's frame rate and CPU, against a synthetic 1 M events/s source and the demo.
//!
//! ```sh
//! cargo bench -p futex-tui --bench tui
//! ```
//! A futex-trace session folds events into its model on its own thread, as futex-tui runs it; the UI
//! thread snapshots the model, updates the app and draws the full screen (120×40) into ratatui's in-memory
//! TestBackend (terminal I/O is not measured). For each source: the most frames/s the UI thread can draw
//! (unpaced), and the UI thread's CPU when paced at futex-tui's 10 frames/s.

use std::thread;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use futex_trace::demo::DemoConfig;
use futex_trace::event::{Event, EventKind, Outcome, WaitKind};
use futex_trace::model::BucketOrigin;
use futex_trace::session::{Session, SessionOptions};
use futex_trace::source::DemoSource;
use futex_trace::trace::{Control, SourceEnd, TraceMeta};
use futex_trace::trace::{Poll, Source};
use futex_trace::Error;
use futex_tui::app::App;

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(futex_trace::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID))
}

/// Runs the UI loop for `secs` against `model` (fed by another thread); `pace` = Some(10 fps) or unpaced.
/// Returns (frames/s, UI-thread CPU as a fraction of one core).
fn ui_loop(session: &Session, secs: f64, pace: Option<Duration>) -> (f64, f64) {
    let mut app = App::new("bench".into(), 1, session.snapshot(), Default::default());
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let (t0, c0) = (Instant::now(), thread_cpu());
    let mut frames = 0u64;
    let mut next = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        let snapshot = session.snapshot();
        app.update(snapshot, t0.elapsed().as_secs_f64());
        term.draw(|f| futex_tui::ui::draw(f, &app)).unwrap();
        frames += 1;
        if let Some(p) = pace {
            next += p;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    (
        frames as f64 / wall,
        (thread_cpu() - c0).as_secs_f64() / wall,
    )
}

/// A synthetic source: `rate` events/s over 500 addresses (wait start/end and wakes, some requeues), in
/// batches every 10 ms.
struct Synthetic {
    per_batch: u64,
    n: u64,
    next: Instant,
    meta: TraceMeta,
}

impl Synthetic {
    fn new(rate: u64) -> Self {
        Synthetic {
            per_batch: rate / 100,
            n: 0,
            next: Instant::now(),
            meta: TraceMeta::starting_now(
                "synthetic",
                vec![1],
                None,
                64,
                BucketOrigin::FutexCoreHash,
            ),
        }
    }
}

impl Source for Synthetic {
    fn meta(&self) -> TraceMeta {
        self.meta.clone()
    }

    fn poll(&mut self, _: &Control, out: &mut Vec<Event>, _: Duration) -> Result<Poll, Error> {
        thread::sleep(self.next.saturating_duration_since(Instant::now()));
        self.next += Duration::from_millis(10);
        let per_batch = self.per_batch;
        for i in 0..per_batch / 4 {
            let k = self.n + i;
            let addr = 0x10_0000 + (k % 500) * 64;
            let bucket = futex_trace::bucket_of(addr, 64) as u32;
            let wait = if k.is_multiple_of(7) {
                WaitKind::Condvar
            } else {
                WaitKind::Mutex
            };
            let e = |kind| Event {
                ts_ns: k,
                pid: 1,
                tid: (k % 16) as u32,
                kind,
            };
            out.push(e(EventKind::WaitStart {
                addr,
                bucket,
                wait,
                kernel: None,
            }));
            out.push(e(EventKind::Wake {
                addr,
                bucket,
                wait,
                requested: 1,
                woken: 1,
                collisions: (k % 3) as u32,
                kernel: None,
            }));
            out.push(e(EventKind::WaitEnd {
                addr,
                final_addr: addr,
                bucket,
                wait,
                outcome: Outcome::Woken,
                wait_ns: 1_000 + (k % 100_000),
                wake_to_return_ns: Some(500 + k % 5_000),
                requeued: 0,
                sched_delay_ns: None,
                waker: None,
                kernel: None,
            }));
            out.push(e(EventKind::Requeue {
                from: addr,
                to: addr + 8,
                from_bucket: bucket,
                to_bucket: bucket,
                wait,
                woken: 0,
                moved: 0,
                collisions: 0,
                kernel: None,
            }));
        }
        self.n += per_batch / 4;
        Ok(Poll::More)
    }

    fn finish(&mut self, _: &mut Vec<Event>) -> SourceEnd {
        SourceEnd::default()
    }
}

fn main() {
    let secs = 3.0;
    println!("futex-tui benchmark: full screen 120x40 into TestBackend, {secs} s per figure");
    println!(
        "{:<34} {:>12} {:>14} {:>22}",
        "source", "events/s", "max frames/s", "UI CPU at 10 fps"
    );
    // Synthetic 1 M events/s, and the demo through the observer, each in a session as futex-tui runs it.
    for (name, source) in [
        (
            "synthetic, target 1000000 ev/s",
            Box::new(Synthetic::new(1_000_000)) as Box<dyn Source>,
        ),
        (
            "demo (observer)",
            Box::new(DemoSource::start(&DemoConfig::default()).unwrap()),
        ),
    ] {
        let session = Session::start(source, SessionOptions::default(), vec![]).unwrap();
        let t0 = Instant::now();
        let (max_fps, _) = ui_loop(&session, secs, None);
        let (fps10, cpu10) = ui_loop(&session, secs, Some(Duration::from_millis(100)));
        let finished = session.stop().unwrap();
        let rate = finished.model.totals.events as f64 / t0.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>12.0} {:>14.0} {:>13.1}% ({:.1} fps)",
            name,
            rate,
            max_fps,
            cpu10 * 100.0,
            fps10
        );
    }
}
