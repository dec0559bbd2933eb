//! The observer source and the model: per-bucket counts folded from the events equal futex-core's own
//! statistics for the same run, exactly, when nothing was lost.

use std::time::Duration;

use futex_trace::demo::DemoConfig;
use futex_trace::session::{Session, SessionOptions};
use futex_trace::source::DemoSource;

#[test]
fn model_buckets_equal_futex_core_statistics() {
    let t = futex_core::default_table();
    let before = t.stats();
    // The demo under the observer, through a session, as `futex-trace report --demo` runs it; the
    // source stops the demo's threads and collects their last events before the session ends.
    let source = DemoSource::start(&DemoConfig::default()).unwrap();
    let opts = SessionOptions {
        duration: Some(Duration::from_millis(300)),
        ..SessionOptions::default()
    };
    let finished = Session::start(Box::new(source), opts, vec![])
        .unwrap()
        .wait()
        .unwrap();
    let after = t.stats();
    let model = finished.model;

    assert_eq!(
        model.totals.lost_events, 0,
        "raise the capacity: the comparison needs every event"
    );
    assert!(
        model.totals.waits > 100 && model.totals.requeues > 0,
        "{:?}",
        model.totals
    );
    for (b, a) in before.iter().zip(&after) {
        let m = &model.buckets[a.index];
        assert_eq!(
            m.counters,
            a.counters.since(&b.counters),
            "bucket {}",
            a.index
        );
        // Every demo thread has returned: the model's depth is back to where the table's is.
        assert_eq!(
            m.depth,
            a.depth as i64 - b.depth as i64,
            "bucket {} depth",
            a.index
        );
    }
}
