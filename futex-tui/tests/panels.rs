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
    // At 80 columns too: the figures are cut, never the flag.
    let screen = format!("{:?}", render(80, 2, ui::draw_header, &app));
    assert!(screen.contains("DAMAGED RECORDING"), "{screen}");
}

#[test]
fn the_footer_fits_80_columns_and_keeps_its_help_key() {
    let mut app = fixed_app();
    for w in [60u16, 80, 200] {
        let screen = format!("{:?}", render(w, 1, ui::draw_footer, &app));
        assert!(
            screen.contains("? help") && screen.contains("q quit"),
            "{w}: {screen}"
        );
    }
    // A key with no effect here says so, in a line that fits.
    app.on_key(Key::Char('v'));
    let said = app.message.clone().expect("v says why there are no sites");
    assert!(said.chars().count() <= 80, "{said}");
    app.on_key(Key::Char('+'));
    assert!(app.message.as_deref().is_some_and(|m| m.contains("replay")));
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
fn futex_core_buckets() {
    insta::assert_snapshot!(render(68, 6, ui::draw_core_buckets, &fixed_app()));
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

/// Stacks of process 42: 1 waits in `app::lock_orders`, 2 (its waker) is `app::ship_order`.
fn lock_orders_stacks() -> futex_trace::stacks::StackTable {
    let mut t = futex_trace::stacks::StackTable::default();
    t.stacks.insert((42, 1), vec![0x10, 0x20, 0x30]);
    t.stacks.insert((42, 2), vec![0x40, 0x50]);
    for (ip, name) in [
        (0x10, "syscall"),
        (0x20, "app::lock_orders"),
        (0x30, "main"),
        (0x40, "__lll_unlock_wake"),
        (0x50, "app::ship_order"),
    ] {
        t.symbols.insert((42, ip), vec![name.to_string()]);
    }
    // `syscall` and `__lll_unlock_wake` are glibc's (the threading library: not the frame shown; the
    // waker's is an unlock, so the word is a lock), the rest the program's.
    let map = |start: u64, path: &str| futex_trace::stacks::Mapping {
        start,
        end: start + 0x10,
        offset: 0,
        path: path.into(),
        exec: true,
        dev: String::new(),
        inode: 0,
        deleted: false,
    };
    let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    t.processes.insert(
        42,
        futex_trace::stacks::ProcessInfo {
            comm: "app".into(),
            maps: vec![
                map(0x10, libc),
                map(0x20, "/usr/bin/app"),
                map(0x30, "/usr/bin/app"),
                map(0x40, libc),
                map(0x50, "/usr/bin/app"),
            ],
            cgroup: String::new(),
        },
    );
    t
}

/// A kernel-futex picture with stacks: a lock whose waiters wait in `app::lock_orders` and whose waker
/// is `app::ship_order`, symbolized through a stack table.
fn kernel_app() -> App {
    use futex_trace::event::{FutexOp, Kernel, Waker};
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
                    pid: 0,
                }),
                kernel: k(1),
            }));
        }
    }
    let t = lock_orders_stacks();
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
    app.stacks = Some(lock_orders_stacks());
    for t in 1..=2 {
        m.extend(&[counts(hot, 400), counts(sharer, 100), counts(alone, 10)]);
        m.apply(&ev(EventKind::Waiting { addr: hot, now: 3 }));
        // The shared bucket's lock, spun on by the wakes of its two words' threads.
        m.apply(&ev(EventKind::BucketSpins {
            addr: hot,
            op: FutexOp::Wake,
            hash: KernelHash::Private { slots, bucket },
            spins: 700,
            spin_ns: 2_000_000,
            several_callers: true,
        }));
        // Their times, as the kernel's histograms send them: 2^16..2^17 ns (65-131 µs), and a few long.
        for (addr, n) in [(hot, 390u64), (sharer, 100), (alone, 10)] {
            m.apply(&ev(EventKind::Hist {
                of: futex_trace::event::HistOf::Wait { addr },
                slot: 16,
                count: n,
                sum: n * 50_000,
                max: 130_000,
            }));
        }
        m.apply(&ev(EventKind::Hist {
            of: futex_trace::event::HistOf::Wait { addr: hot },
            slot: 24,
            count: 10,
            sum: 10 * 20_000_000,
            max: 25_000_000,
        }));
        m.apply(&ev(EventKind::WaitSample {
            addr: hot,
            final_addr: hot,
            op: FutexOp::Wait,
            outcome: Outcome::Woken,
            wait_ns: 2_000_000,
            wake_to_return_ns: Some(9_000),
            sched_delay_ns: Some(3_000),
            waker: Some(futex_trace::event::Waker {
                tid: 9,
                stack: Some(2),
                pid: 0,
            }),
            stack: Some(1),
            stack_rate_ns: 0,
            waker_every: 1,
        }));
        app.update(m.clone(), t as f64);
    }
    app
}

/// Renders the whole screen of `app` at `w`×`h`, checks that every row of it is used, and returns it.
fn screen(app: &App, w: u16, h: u16) -> TestBackend {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| ui::draw(f, app)).unwrap();
    let b = t.backend().clone();
    let buf = b.buffer();
    for y in 0..h {
        let row: String = (0..w).map(|x| buf[(x, y)].symbol()).collect();
        assert!(!row.trim().is_empty(), "{w}x{h}: row {y} is empty:\n{b}");
    }
    b
}

#[test]
fn the_screen_is_laid_out_for_its_size() {
    for (name, app) in [("demo", fixed_app()), ("kernel", kernel_buckets_app())] {
        for (w, h) in [(80u16, 24u16), (120, 40), (200, 60)] {
            let b = screen(&app, w, h);
            insta::assert_snapshot!(format!("screen_{name}_{w}x{h}"), b);
            let text = format!("{b:?}");
            // Every panel is there at every size.
            // The kernel trace has stacks: its sites; the demo's fixture has none: its words.
            let locks = if name == "kernel" {
                "Where threads wait"
            } else {
                "Top words"
            };
            for panel in [locks, "Buckets", "Requeue movement", "Wakeup latency"] {
                assert!(text.contains(panel), "{name} {w}x{h}: no {panel}");
            }
            assert!(
                text.contains("slept/s") && text.contains("wake p99"),
                "{name} {w}x{h}"
            );
            if h >= 40 {
                assert!(
                    text.contains("Activity"),
                    "{name} {w}x{h}: no activity panel"
                );
            }
            if w >= 150 && h >= 50 {
                assert!(text.contains("Selected "), "{name} {w}x{h}");
            }
        }
    }
    // The kernel screen names the stacks and the shared bucket.
    let text = format!("{:?}", screen(&kernel_buckets_app(), 200, 60));
    for want in [
        "app::lock_orders",
        "app::ship_order",
        "⚠ orders lock + stats lock",
    ] {
        assert!(text.contains(want), "no {want}");
    }
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
    assert_eq!(
        (rows[0].spins, rows[1].spins),
        (1400, 0),
        "spins on the shared bucket only"
    );
    let screen = render(68, 6, ui::draw_buckets, &app);
    insta::assert_snapshot!(screen);
    // The words table's bucket column is the kernel's, and `b` turns to futex-core's what-if.
    app.on_key(Key::Char('v'));
    let locks = format!("{:?}", render(80, 6, ui::draw_locks, &app));
    assert!(locks.contains("kbkt"), "{locks}");
    app.on_key(Key::Char('b'));
    let what_if = format!("{:?}", render(90, 5, ui::draw_buckets, &app));
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

/// The value a number as the dashboard prints it stands for: `950`, `2.8k`, `123M`; `950ns`, `8.2µs`,
/// `3.5ms`, `1.2s`, `17m`, `9h` (in ns). `None`: not a whole number with a known unit.
fn parse_shown(t: &str) -> Option<f64> {
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(t.len());
    if split == 0 {
        return None;
    }
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "ns" => 1.0,
        "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 6e10,
        "h" => 3.6e12,
        _ => return None,
    };
    Some(v * mult)
}

fn shown_as(t: &str, want: f64) {
    let got = parse_shown(t).unwrap_or_else(|| panic!("{t:?} is not a number with its unit"));
    // Two or three significant digits: within 5% (or exact below 1000).
    let ok = if want < 999.5 {
        (got - want.round()).abs() < 0.5
    } else {
        (got - want).abs() <= 0.05 * want
    };
    assert!(ok, "{t:?} reads as {got}, the value is {want}");
}

#[test]
fn numbers_fit_their_columns_whatever_their_size() {
    // The formatters never exceed the widths the columns are given.
    let mut v = 1u64;
    while v < u64::MAX / 3 {
        for x in [v, v * 2, v * 3 - 1, v.saturating_mul(9) + v / 2] {
            assert!(ui::ns(x).chars().count() <= 6, "{x} ns: {}", ui::ns(x));
            assert!(
                ui::si(x as f64).chars().count() <= 5,
                "{x}: {}",
                ui::si(x as f64)
            );
            shown_as(&ui::si(x as f64), x as f64);
            if x < 5_000_000_000_000_000 {
                shown_as(&ui::ns(x), x as f64);
            }
        }
        v *= 10;
    }
    // A lock with huge figures, at 80 columns: every number in its row reads as its value.
    use futex_trace::event::{Counts, FutexOp};
    let mut m = Model::new(64, BucketOrigin::FutexCoreHash);
    let addr = 0x5000;
    let mut app = App::new(
        "wide".into(),
        42,
        m.clone(),
        HashMap::from([(addr, "huge".to_string())]),
    );
    for t in 1..=2 {
        m.extend(&[
            ev(EventKind::Counts {
                addr,
                op: FutexOp::Wait,
                hash: None,
                counts: Counts {
                    calls: 123_456_789,
                    blocked: 123_456_789,
                    woken: 123_456_789,
                    wait_ns: 98_765_432_100_000,
                    ..Counts::default()
                },
            }),
            ev(EventKind::Hist {
                of: futex_trace::event::HistOf::Wait { addr },
                slot: 36,
                count: 123_456_789,
                sum: 98_765_432_100_000,
                max: 123_456_789_012,
            }),
            ev(EventKind::Waiting {
                addr,
                now: 123_456 * t,
            }),
        ]);
        app.update(m.clone(), f64::from(t));
    }
    let r = app.locks[0].clone();
    let b = screen(&app, 80, 24);
    let text = format!("{b:?}");
    let row = text
        .lines()
        .find(|l| l.contains("│huge "))
        .unwrap_or_else(|| panic!("no row for the lock:\n{text}"));
    let cells: Vec<&str> = row
        .trim()
        .trim_matches(|c| c == '"' || c == '│' || c == ',')
        .split_whitespace()
        .collect();
    // lock class waits/s total p50 p99 now bkt
    assert_eq!(cells[..2], ["huge", "unclass."], "{row}");
    assert!(r.waits_per_sec > 1e8 && r.waiting > 100_000, "{r:?}");
    shown_as(cells[2], r.waits_per_sec);
    shown_as(cells[3], r.wait_ns_total as f64);
    shown_as(cells[4], r.p50 as f64);
    shown_as(cells[5], r.p99 as f64);
    shown_as(cells[6], r.waiting as f64);
    assert_eq!(cells[7], r.bucket.to_string());
    // Every other figure on the screen: the buckets row, the latency panel, the header's totals.
    let tokens = |needle: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} on\n{text}"));
        line.split(|c: char| {
            c.is_whitespace() || c == '│' || c == '"' || c == '(' || c == ')' || c == ','
        })
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
    };
    let b = &app.core_rows[0];
    let row = tokens("█");
    let i = row.iter().position(|t| t.contains('█')).unwrap();
    shown_as(&row[i + 1], b.slept_per_sec);
    shown_as(&row[i + 2], b.depth as f64);
    shown_as(&row[i + 3], b.max_depth as f64);
    let h = &app.model.wait_contention;
    let lat = tokens("wait locks");
    let at = lat.iter().position(|t| t == "locks").unwrap();
    for (k, want) in [
        h.percentile_interpolated(0.5),
        h.percentile_interpolated(0.9),
        h.percentile_interpolated(0.99),
        h.max,
    ]
    .into_iter()
    .enumerate()
    {
        shown_as(&lat[at + 1 + k], want as f64);
    }
    let head = tokens("waits ");
    let t = &app.model.totals;
    let after = |w: &str| head[head.iter().position(|x| x == w).unwrap() + 1].clone();
    shown_as(&after("waits"), t.waits as f64);
    shown_as(&after("slept"), t.waits_blocked as f64);
    shown_as(&after("woke"), t.woken as f64);
    // Any token of the screen that starts with a digit is a whole number with its unit.
    for tok in text.split(|c: char| c.is_whitespace() || "│\"(),[]|:/·+".contains(c)) {
        if tok.starts_with(|c: char| c.is_ascii_digit()) && !tok.starts_with("0x") {
            assert!(
                parse_shown(tok).is_some(),
                "{tok:?} is cut or unitless in\n{text}"
            );
        }
    }
}

#[test]
fn a_click_selects_a_row_and_a_second_click_opens_it_and_the_wheel_scrolls() {
    let mut app = fixed_app();
    screen(&app, 80, 24); // drawing records where the tables are
    let locks = app.areas.get().locks;
    let second_row = locks.y + 3; // border, header, first row
    assert_eq!(app.on_key(Key::Click(5, second_row)), Action::None);
    assert_eq!((app.selected, app.detail), (1, false));
    app.on_key(Key::Click(5, second_row));
    assert!(app.detail, "a click on the selected lock opens its detail");
    app.on_key(Key::Click(0, 0));
    assert!(!app.detail, "a click elsewhere closes it");
    app.on_key(Key::ScrollUp(5, locks.y + 2));
    assert_eq!(app.selected, 0);
    let edges = app.areas.get().edges;
    app.on_key(Key::ScrollDown(edges.x + 2, edges.y + 2));
    assert_eq!(app.focus, futex_tui::app::Focus::Edges);
}
