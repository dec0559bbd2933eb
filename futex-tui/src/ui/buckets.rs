//! The buckets panel: a row per bucket that saw calls, the most contended first: its number, a bar
//! and the rate of its waits that slept, waiters now and most, and its words (a bucket with several is a
//! collision: they share one lock and one list of waiters; marked ⚠ in red). The selected lock's bucket
//! is highlighted. Which table, in the title: the traced process's kernel futex hash (kernel sources),
//! a what-if of it with `--slots` slots, or futex-core's buckets (its real queues for the demo and USDT;
//! its hash of kernel addresses, a what-if). `b` switches.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table};
use ratatui::Frame;

use futex_trace::model::BucketOrigin;

use crate::app::{App, BucketView};

use super::si;

/// The buckets panel: the kernel's table or futex-core's, as [`App::shows_kernel_buckets`].
pub fn draw_buckets(f: &mut Frame, area: Rect, app: &App) {
    if app.shows_kernel_buckets() {
        draw_kernel_buckets(f, area, app);
    } else {
        draw_core_buckets(f, area, app);
    }
}

/// A panel title of the parts that fit `width` (the first always; the others, in order, while they
/// fit), joined by " · ".
fn fit_title(width: u16, parts: &[&str]) -> String {
    let mut t = String::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        let add = if t.is_empty() {
            p.to_string()
        } else {
            format!(" · {p}")
        };
        if !t.is_empty() && t.chars().count() + add.chars().count() + 4 > width as usize {
            continue;
        }
        t.push_str(&add);
    }
    format!(" {t} ")
}

/// One row's fields, whichever table it is of.
struct BucketLine<'a> {
    bucket: u64,
    rate: f64,
    now: i64,
    max: i64,
    /// Contended acquisitions of the bucket's lock so far.
    spins: u64,
    words: &'a [String],
    selected: bool,
}

/// The common table: bucket, bar, slept/s, now, max, spins (contended acquisitions of its lock), words. The bar's scale is the busiest row's
/// rate; the words column gets what is left. Where rows are left over, the table's idle buckets follow
/// (dim, by number), so a tall panel shows the whole table of `slots` buckets.
fn draw_table(f: &mut Frame, area: Rect, title: String, mut lines: Vec<BucketLine>, slots: u64) {
    let room = area.height.saturating_sub(3) as usize;
    if room > lines.len() {
        let busy: std::collections::HashSet<u64> = lines.iter().map(|l| l.bucket).collect();
        let idle = (0..slots)
            .filter(|b| !busy.contains(b))
            .take(room - lines.len());
        lines.extend(idle.map(|bucket| BucketLine {
            bucket,
            rate: 0.0,
            now: 0,
            max: 0,
            spins: 0,
            words: &[],
            selected: false,
        }));
    }
    let top = lines.iter().map(|l| l.rate).fold(0.0, f64::max);
    // The bar only where the words keep room to be read.
    let bar_w: u16 = if area.width >= 60 { 12 } else { 0 };
    let header = {
        let mut h = vec!["bucket"];
        if bar_w > 0 {
            h.push("slept/s");
        }
        h.extend(["rate", "now", "max", "spins", "words"]);
        Row::new(h).bold()
    };
    let rows = lines.iter().map(|l| {
        let collision = l.words.len() > 1;
        let words = if collision {
            format!("⚠ {}", l.words.join(" + "))
        } else {
            l.words.join("")
        };
        let mut cells = vec![Cell::from(l.bucket.to_string())];
        if bar_w > 0 {
            let n = if top > 0.0 {
                ((l.rate / top) * f64::from(bar_w)).ceil() as usize
            } else {
                0
            };
            cells.push(Cell::from("█".repeat(n)).style(Style::new().fg(Color::Cyan)));
        }
        cells.extend([
            Cell::from(si(l.rate)),
            Cell::from(si(l.now as f64)),
            Cell::from(si(l.max as f64)),
            Cell::from(si(l.spins as f64)),
            Cell::from(words),
        ]);
        let row = Row::new(cells);
        let row = if l.words.is_empty() && l.rate == 0.0 && l.max == 0 {
            row.dim()
        } else if collision {
            row.style(Style::new().fg(Color::LightRed))
        } else {
            row
        };
        if l.selected {
            row.reversed()
        } else {
            row
        }
    });
    let mut widths = vec![Constraint::Length(6)];
    if bar_w > 0 {
        widths.push(Constraint::Length(bar_w));
    }
    widths.extend([
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Min(10),
    ]);
    let block = Block::bordered().title(title);
    f.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

/// The kernel's futex hash of the traced process (or the `--slots` what-if of it).
pub fn draw_kernel_buckets(f: &mut Frame, area: Rect, app: &App) {
    let Some((pid, slots)) = app.kernel_table else {
        return draw_core_buckets(f, area, app);
    };
    let (title, selected) = match app.bucket_view {
        BucketView::WhatIf(n) => (
            fit_title(
                area.width,
                &[
                    &format!("Buckets: what-if: pid {pid}'s kernel futex hash with {n} slots"),
                    &format!("has {slots}"),
                    "b",
                    "⚠ shared",
                ],
            ),
            app.selected_lock()
                .filter(|l| l.kernel_bucket.is_some())
                .map(|l| futex_trace::khash::bucket(l.addr, n)),
        ),
        _ => (
            fit_title(
                area.width,
                &[
                    &format!("Buckets: pid {pid}'s kernel futex hash, {slots} slots"),
                    "b: futex-core's",
                    "⚠ shared",
                ],
            ),
            app.selected_lock()
                .and_then(|l| l.kernel_bucket)
                .filter(|&(n, _)| n == slots)
                .map(|(_, b)| b),
        ),
    };
    let lines = app
        .kernel_rows
        .iter()
        .map(|r| BucketLine {
            bucket: u64::from(r.bucket),
            rate: r.slept_per_sec,
            now: r.waiting,
            max: r.max_waiting,
            spins: r.spins,
            words: &r.words,
            selected: Some(r.bucket) == selected,
        })
        .collect();
    let shown = match app.bucket_view {
        BucketView::WhatIf(n) => n,
        _ => slots,
    };
    draw_table(f, area, title, lines, u64::from(shown));
}

/// futex-core's buckets: its sleep queues (demo, USDT), or its hash of kernel addresses (a what-if).
pub fn draw_core_buckets(f: &mut Frame, area: Rect, app: &App) {
    let n = app.model.buckets.len();
    let origin = match app.model.origin {
        BucketOrigin::FutexCoreHash => format!("futex-core's hash of the addresses, {n} (what-if)"),
        BucketOrigin::FutexCore => format!("futex-core's {n} sleep queues"),
    };
    let title = fit_title(
        area.width,
        &[
            &format!("Buckets: {origin}"),
            if app.kernel_table.is_some() {
                "b: kernel's"
            } else {
                ""
            },
            &app.hottest_bucket()
                .map(|(b, v)| format!("hottest {b}: {}/s", si(v)))
                .unwrap_or_default(),
            "⚠ shared",
        ],
    );
    let selected = app.selected_lock().map(|l| l.bucket);
    let lines = app
        .core_rows
        .iter()
        .map(|r| BucketLine {
            bucket: r.bucket as u64,
            rate: r.slept_per_sec,
            now: r.depth,
            max: r.max_depth,
            spins: r.spins,
            words: &r.words,
            selected: Some(r.bucket) == selected,
        })
        .collect();
    draw_table(f, area, title, lines, app.model.buckets.len() as u64);
}
