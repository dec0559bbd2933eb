//! Each panel rendered with ratatui's TestBackend from a fixed model, compared to a snapshot
//! (`tests/snapshots/`; re-bless with `INSTA_UPDATE=always cargo test -p futex-tui`).

use std::collections::HashMap;

use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;

use futex_trace::event::{Event, EventKind, Outcome, WaitKind};
use futex_trace::model::{BucketOrigin, Model};
use futex_tui::app::{Action, App, Key};
use futex_tui::ui;

const HOT: u64 = 0x1000;
const COLD: u64 = 0x2040;
const CV: u64 = 0x3000;
const MX: u64 = 0x3008;

fn ev(kind: EventKind) -> Event {
    Event {
        ts_ns: 1,
        pid: 42,
        tid: 7,
        kind,
    }
}

fn wait(model: &mut Model, addr: u64, wait: WaitKind, outcome: Outcome, wait_ns: u64) {
    let bucket = futex_trace::bucket_of(addr, 64) as u32;
    model.apply(&ev(EventKind::WaitStart {
        addr,
        bucket,
        wait,
        kernel: None,
    }));
    model.apply(&ev(EventKind::WaitEnd {
        addr,
        final_addr: addr,
        bucket,
        wait,
        outcome,
        wait_ns,
        wake_to_return_ns: (outcome == Outcome::Woken).then_some(wait_ns / 10),
        requeued: 0,
        sched_delay_ns: None,
        waker: None,
        kernel: None,
    }));
}

/// A fixed picture: a hot lock, a cold lock, an idle condvar that requeues onto its mutex.
fn fixed_app() -> App {
    let mut m = Model::new(64, BucketOrigin::FutexCore);
    let mut app = App::new(
        "fixture".into(),
        42,
        m.clone(),
        HashMap::from([
            (HOT, "hot lock".to_string()),
            (CV, "condvar".to_string()),
            (MX, "mutex".to_string()),
        ]),
    );
    for round in 0..2 {
        for i in 0..50 {
            wait(
                &mut m,
                HOT,
                WaitKind::Mutex,
                Outcome::Woken,
                100_000 + i * 1_000,
            );
        }
        for _ in 0..5 {
            wait(&mut m, COLD, WaitKind::Mutex, Outcome::Woken, 5_000);
        }
        wait(&mut m, COLD, WaitKind::Mutex, Outcome::Mismatch, 300);
        for _ in 0..20 {
            wait(&mut m, CV, WaitKind::Condvar, Outcome::Woken, 2_000_000);
        }
        wait(
            &mut m,
            CV,
            WaitKind::Condvar,
            Outcome::TimedOut,
            100_000_000,
        );
        m.apply(&ev(EventKind::Requeue {
            from: CV,
            to: MX,
            from_bucket: futex_trace::bucket_of(CV, 64) as u32,
            to_bucket: futex_trace::bucket_of(MX, 64) as u32,
            wait: WaitKind::Condvar,
            woken: 1,
            moved: 3,
            collisions: 0,
            kernel: None,
        }));
        app.update(m.clone(), 1.0 + round as f64);
    }
    app
}

fn render(w: u16, h: u16, f: impl Fn(&mut ratatui::Frame, Rect, &App), app: &App) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|frame| {
        let area = frame.area();
        f(frame, area, app)
    })
    .unwrap();
    t.backend().clone()
}

#[test]
fn header() {
    insta::assert_snapshot!(render(80, 2, ui::draw_header, &fixed_app()));
}

#[test]
fn a_damaged_recording_says_so_in_the_header() {
    let mut app = fixed_app();
    app.warning = Some("DAMAGED RECORDING (parts skipped)".into());
    let screen = format!("{:?}", render(160, 2, ui::draw_header, &app));
    assert!(screen.contains("DAMAGED RECORDING"), "{screen}");
}

#[test]
fn top_locks_excludes_idle_waits_and_sorts() {
    let mut app = fixed_app();
    insta::assert_snapshot!("locks_by_total", render(80, 6, ui::draw_locks, &app));
    app.on_key(Key::Char('s'));
    app.on_key(Key::Char('s')); // p99
    insta::assert_snapshot!("locks_by_p99", render(80, 6, ui::draw_locks, &app));
}

#[test]
fn heatmap() {
    insta::assert_snapshot!(render(68, 5, ui::draw_heatmap, &fixed_app()));
}

#[test]
fn requeue_movement() {
    insta::assert_snapshot!(render(60, 4, ui::draw_edges, &fixed_app()));
}

#[test]
fn latency() {
    insta::assert_snapshot!(render(40, 8, ui::draw_latency, &fixed_app()));
}

#[test]
fn whole_screen_at_80x24_with_detail() {
    let mut app = fixed_app();
    app.on_key(Key::Enter);
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| ui::draw(f, &app)).unwrap();
    insta::assert_snapshot!(t.backend());
}

#[test]
fn keys() {
    let mut app = fixed_app();
    assert_eq!(app.on_key(Key::Char('j')), Action::None);
    assert_eq!(app.selected, 1);
    app.on_key(Key::Char('k'));
    app.on_key(Key::Char('k'));
    assert_eq!(app.selected, 0);
    app.on_key(Key::Char('p'));
    assert!(app.paused);
    let before = app.model.totals.clone();
    app.update(Model::new(64, BucketOrigin::FutexCore), 9.0);
    assert_eq!(app.model.totals, before, "a paused display does not change");
    app.on_key(Key::Char('?'));
    assert!(app.help);
    assert_eq!(
        app.on_key(Key::Esc),
        Action::None,
        "Esc closes the help first"
    );
    assert!(!app.help);
    assert_eq!(app.on_key(Key::Quit), Action::Quit);
    assert_eq!(app.on_key(Key::Char('f')), Action::WriteFlamegraph);
    assert_eq!(
        app.on_key(Key::Char('n')),
        Action::None,
        "no step outside a replay"
    );
    app.speed = Some(1.0);
    assert_eq!(app.on_key(Key::Char('+')), Action::Speed(2.0));
    assert_eq!(app.on_key(Key::Char('n')), Action::Step);
}

/// A kernel-futex picture with stacks: a lock whose waiters wait in `app::lock_orders` and whose waker
/// is `app::ship_order`, symbolized through a stack table.
fn kernel_app() -> App {
    use futex_trace::event::{FutexOp, Kernel, Waker};
    use futex_trace::stacks::StackTable;
    let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
    let addr = 0x7f00_0000_1000u64;
    let bucket = futex_trace::bucket_of(addr, 64) as u32;
    let k = |stack| {
        Some(Kernel {
            op: Some(FutexOp::Wait),
            private: true,
            stack: Some(stack),
        })
    };
    for i in 0..10 {
        m.apply(&ev(EventKind::WaitStart {
            addr,
            bucket,
            wait: WaitKind::Kernel,
            kernel: k(1),
        }));
        if i < 8 {
            m.apply(&ev(EventKind::WaitEnd {
                addr,
                final_addr: addr,
                bucket,
                wait: WaitKind::Kernel,
                outcome: Outcome::Woken,
                wait_ns: 2_000_000,
                wake_to_return_ns: Some(9_000),
                requeued: 0,
                sched_delay_ns: Some(3_000),
                waker: Some(Waker {
                    tid: 9,
                    stack: Some(2),
                }),
                kernel: k(1),
            }));
        }
    }
    let mut t = StackTable::default();
    t.stacks.insert((42, 1), vec![0x10, 0x20, 0x30]);
    t.stacks.insert((42, 2), vec![0x40, 0x50]);
    for (ip, name) in [
        (0x10, "syscall"),
        (0x20, "app::lock_orders"),
        (0x30, "main"),
        (0x40, "syscall"),
        (0x50, "app::ship_order"),
    ] {
        t.symbols.insert((42, ip), vec![name.to_string()]);
    }
    let mut app = App::new(
        "kernel futexes (eBPF)".into(),
        42,
        m.clone(),
        HashMap::new(),
    );
    app.stacks = Some(t);
    app.update(m, 1.0);
    app
}

#[test]
fn kernel_locks_show_waiters_now_and_the_hottest_stack() {
    let app = kernel_app();
    let row = &app.locks[0];
    assert_eq!(row.waiting, 2, "10 waits began, 8 ended");
    assert_eq!(row.top_stack.as_deref(), Some("app::lock_orders"));
    insta::assert_snapshot!(render(120, 4, ui::draw_locks, &app));
    let mut app = app;
    app.on_key(Key::Enter);
    let mut t = Terminal::new(TestBackend::new(120, 24)).unwrap();
    t.draw(|f| ui::draw(f, &app)).unwrap();
    let screen = format!("{:?}", t.backend());
    assert!(screen.contains("waiting stacks") && screen.contains("app::lock_orders"));
    assert!(screen.contains("wakers") && screen.contains("app::ship_order"));
    assert!(screen.contains("futex-core hash"));
}

/// A kernel trace of a process with a private futex hash of 16 slots: a hot lock and a second word that
/// share its bucket, and a word in a bucket of its own.
fn kernel_buckets_app() -> App {
    use futex_trace::event::{Counts, FutexOp, KernelHash};
    let (hot, slots) = (0x7f00_0000_1040u64, 16);
    let bucket = futex_trace::khash::bucket(hot, slots);
    let sharer = (1..)
        .map(|p| hot + 0x1000 * p)
        .find(|&a| futex_trace::khash::bucket(a, slots) == bucket)
        .unwrap();
    let alone = (1..)
        .map(|p| hot + 0x1000 * p + 8)
        .find(|&a| futex_trace::khash::bucket(a, slots) != bucket)
        .unwrap();
    let counts = |addr, blocked: u64| {
        ev(EventKind::Counts {
            addr,
            op: FutexOp::Wait,
            hash: Some(KernelHash::Private {
                slots,
                bucket: futex_trace::khash::bucket(addr, slots),
            }),
            counts: Counts {
                calls: blocked,
                blocked,
                woken: blocked,
                wait_ns: blocked * 50_000,
                ..Counts::default()
            },
        })
    };
    let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
    let mut app = App::new(
        "kernel futexes (eBPF)".into(),
        42,
        m.clone(),
        HashMap::from([
            (hot, "orders lock".to_string()),
            (sharer, "stats lock".to_string()),
        ]),
    );
    for t in 1..=2 {
        m.extend(&[counts(hot, 400), counts(sharer, 100), counts(alone, 10)]);
        m.apply(&ev(EventKind::Waiting { addr: hot, now: 3 }));
        app.update(m.clone(), t as f64);
    }
    app
}

#[test]
fn kernel_traces_show_the_kernels_buckets_with_collisions_named() {
    let mut app = kernel_buckets_app();
    assert_eq!(app.kernel_table, Some((42, 16)));
    let rows = &app.kernel_rows;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0].words,
        ["orders lock", "stats lock"],
        "hottest word first"
    );
    assert_eq!((rows[0].slept_per_sec, rows[0].waiting), (500.0, 3));
    let screen = render(68, 6, ui::draw_buckets, &app);
    insta::assert_snapshot!(screen);
    // The locks table's bucket column is the kernel's, and `b` turns to futex-core's what-if.
    let locks = format!("{:?}", render(80, 6, ui::draw_locks, &app));
    assert!(locks.contains("kbkt"), "{locks}");
    app.on_key(Key::Char('b'));
    let what_if = format!("{:?}", render(68, 5, ui::draw_buckets, &app));
    assert!(
        what_if.contains("what-if") && what_if.contains("b: kernel"),
        "{what_if}"
    );
    // With --slots 2, b first shows the kernel's table regrouped under 2 slots: every word somewhere.
    app.on_key(Key::Char('b'));
    app.what_if_slots = Some(2);
    app.on_key(Key::Char('b'));
    assert_eq!(app.bucket_view, futex_tui::app::BucketView::WhatIf(2));
    let words: usize = app.kernel_rows.iter().map(|r| r.words.len()).sum();
    assert_eq!(words, 3, "{:?}", app.kernel_rows);
    assert!(app.kernel_rows.iter().all(|r| r.bucket < 2));
    let slept: f64 = app.kernel_rows.iter().map(|r| r.slept_per_sec).sum();
    assert_eq!(slept, 510.0, "the words' own rates");
    let screen = format!("{:?}", render(80, 5, ui::draw_buckets, &app));
    assert!(
        screen.contains("what-if") && screen.contains("2 slots"),
        "{screen}"
    );
    app.on_key(Key::Char('b'));
    assert_eq!(app.bucket_view, futex_tui::app::BucketView::FutexCore);
    // A source without a kernel table (the demo) says why `b` does nothing.
    let mut demo = fixed_app();
    demo.on_key(Key::Char('b'));
    assert!(demo
        .message
        .as_deref()
        .unwrap_or("")
        .contains("no kernel futex hash"));
    assert!(!demo.shows_kernel_buckets());
}
