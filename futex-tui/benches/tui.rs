//! The dashboard's frame rate and CPU, against a synthetic 1 M events/s source and the demo.
//!
//! ```sh
//! cargo bench -p futex-tui --bench tui
//! ```
//! The collector folds events into the shared model on its own thread, as futex-tui does; the UI thread
//! snapshots the model, updates the app and draws the full screen (120×40) into ratatui's in-memory
//! TestBackend (terminal I/O is not measured). For each source: the most frames/s the UI thread can draw
//! (unpaced), and the UI thread's CPU when paced at futex-tui's 10 frames/s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use futex_trace::demo::{Demo, DemoConfig};
use futex_trace::event::{Event, EventKind, Outcome, WaitKind};
use futex_trace::model::{BucketOrigin, Model};
use futex_trace::source::{Collector, ObserverSource};
use futex_tui::app::App;

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    Duration::from_nanos(futex_trace::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID))
}

/// Runs the UI loop for `secs` against `model` (fed by another thread); `pace` = Some(10 fps) or unpaced.
/// Returns (frames/s, UI-thread CPU as a fraction of one core).
fn ui_loop(model: &Arc<Mutex<Model>>, secs: f64, pace: Option<Duration>) -> (f64, f64) {
    let mut app = App::new(
        "bench".into(),
        1,
        model.lock().unwrap().clone(),
        Default::default(),
    );
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    let (t0, c0) = (Instant::now(), thread_cpu());
    let mut frames = 0u64;
    let mut next = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        let snapshot = model.lock().unwrap().clone();
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

/// A synthetic source: `rate` events/s over 500 addresses (wait start/end and wakes, some requeues),
/// folded into `model` in batches, as the collector does. Returns the events folded.
fn synthetic(
    model: Arc<Mutex<Model>>,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let batch_every = Duration::from_millis(10);
        let per_batch = (rate as f64 * batch_every.as_secs_f64()) as u64;
        let mut n = 0u64;
        let mut batch = Vec::with_capacity(per_batch as usize);
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            batch.clear();
            for i in 0..per_batch / 4 {
                let k = n + i;
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
                batch.push(e(EventKind::WaitStart {
                    addr,
                    bucket,
                    wait,
                    kernel: None,
                }));
                batch.push(e(EventKind::Wake {
                    addr,
                    bucket,
                    wait,
                    requested: 1,
                    woken: 1,
                    collisions: (k % 3) as u32,
                    kernel: None,
                }));
                batch.push(e(EventKind::WaitEnd {
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
                batch.push(e(EventKind::Requeue {
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
            {
                let mut m = model.lock().unwrap();
                for e in &batch {
                    m.apply(e);
                }
            }
            n += batch.len() as u64 / 4;
            next += batch_every;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        n * 4
    })
}

fn main() {
    let secs = 3.0;
    println!("futex-tui benchmark: full screen 120x40 into TestBackend, {secs} s per figure");
    println!(
        "{:<34} {:>12} {:>14} {:>22}",
        "source", "events/s", "max frames/s", "UI CPU at 10 fps"
    );
    // Synthetic 1 M events/s.
    {
        let rate = 1_000_000u64;
        let model = Arc::new(Mutex::new(Model::new(64, BucketOrigin::FutexCoreHash)));
        let stop = Arc::new(AtomicBool::new(false));
        let h = synthetic(model.clone(), rate, stop.clone());
        let t0 = Instant::now();
        let (max_fps, _) = ui_loop(&model, secs, None);
        let (fps10, cpu10) = ui_loop(&model, secs, Some(Duration::from_millis(100)));
        stop.store(true, Ordering::Relaxed);
        let folded = h.join().unwrap() as f64 / t0.elapsed().as_secs_f64();
        println!(
            "{:<34} {:>12.0} {:>14.0} {:>13.1}% ({:.1} fps)",
            format!("synthetic, target {} ev/s", rate),
            folded,
            max_fps,
            cpu10 * 100.0,
            fps10
        );
    }
    // The demo through the observer, as futex-tui runs it.
    {
        let src = ObserverSource::new(1 << 20).unwrap();
        let model = Model::new(src.buckets(), BucketOrigin::FutexCore);
        let demo = Demo::start(&DemoConfig::default());
        // The same collector futex-tui runs.
        let collector = Collector::spawn(src, model, Duration::from_millis(20));
        let t0 = Instant::now();
        let (max_fps, _) = ui_loop(collector.model(), secs, None);
        let (fps10, cpu10) = ui_loop(collector.model(), secs, Some(Duration::from_millis(100)));
        let rate = collector.events() as f64 / t0.elapsed().as_secs_f64();
        collector.stop();
        demo.stop();
        println!(
            "{:<34} {:>12.0} {:>14.0} {:>13.1}% ({:.1} fps)",
            "demo (observer)",
            rate,
            max_fps,
            cpu10 * 100.0,
            fps10
        );
    }
}
