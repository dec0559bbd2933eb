//! The buckets panel. Kernel sources: the traced process's own kernel futex hash (its private table,
//! as many slots as it has), one row per bucket that saw calls, collisions named. Otherwise (and with
//! `b`): futex-core's buckets over the last minute as a heat waterfall — its real queues for the demo
//! and USDT, its hash of kernel addresses as a what-if.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};
use ratatui::Frame;

use futex_trace::model::BucketOrigin;

use crate::app::{App, BucketView};

use super::ns;

/// Shade for a cell of the heatmap: contention per second, log scale.
fn shade(v: u64) -> (char, Color) {
    match v {
        0 => ('·', Color::DarkGray),
        1..=9 => ('░', Color::Yellow),
        10..=99 => ('▒', Color::LightRed),
        100..=999 => ('▓', Color::Red),
        _ => ('█', Color::Magenta),
    }
}

/// The buckets panel: the kernel's table or futex-core's heatmap, as [`App::shows_kernel_buckets`].
pub fn draw_buckets(f: &mut Frame, area: Rect, app: &App) {
    if app.shows_kernel_buckets() {
        draw_kernel_buckets(f, area, app);
    } else {
        draw_heatmap(f, area, app);
    }
}

/// The kernel's futex hash of the traced process: a row per bucket that saw calls, the most contended
/// first; a bucket with several words is a collision (one lock, one list of waiters), marked and named;
/// the selected lock's bucket highlighted.
pub fn draw_kernel_buckets(f: &mut Frame, area: Rect, app: &App) {
    let Some((pid, slots)) = app.kernel_table else {
        return draw_heatmap(f, area, app);
    };
    let (title, selected) = match app.bucket_view {
        BucketView::WhatIf(n) => (
            format!(" Buckets: what-if: pid {pid}'s kernel futex hash with {n} slots (has {slots}) · b "),
            app.locks
                .get(app.selected)
                .filter(|l| l.kernel_bucket.is_some())
                .map(|l| futex_trace::khash::bucket(l.addr, n)),
        ),
        _ => (
            format!(" Buckets: pid {pid}'s kernel futex hash, {slots} slots · b: futex-core's "),
            app.locks
                .get(app.selected)
                .and_then(|l| l.kernel_bucket)
                .filter(|&(n, _)| n == slots)
                .map(|(_, b)| b),
        ),
    };
    let block = Block::bordered().title(title);
    let header = Row::new(["bucket", "slept/s", "total", "now", "max", "words"]).bold();
    let rows = app.kernel_rows.iter().map(|r| {
        let collision = r.words.len() > 1;
        let words = if collision {
            format!("⚠ {}", r.words.join(" + "))
        } else {
            r.words.join("")
        };
        let row = Row::new([
            Cell::from(r.bucket.to_string()),
            Cell::from(format!("{:.0}", r.slept_per_sec)),
            Cell::from(ns(r.wait_ns)),
            Cell::from(r.waiting.to_string()),
            Cell::from(r.max_waiting.to_string()),
            Cell::from(words),
        ]);
        let row = if collision {
            row.style(Style::new().fg(Color::LightRed))
        } else {
            row
        };
        if Some(r.bucket) == selected {
            row.reversed()
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Min(10),
    ];
    f.render_widget(Table::new(rows, widths).header(header).block(block), area);
}

pub fn draw_heatmap(f: &mut Frame, area: Rect, app: &App) {
    let origin = match app.model.origin {
        // Kernel sources: futex-core's hash over their addresses is not the kernel's table.
        BucketOrigin::FutexCoreHash => "futex-core hash of the addresses (what-if)",
        BucketOrigin::FutexCore => app.model.origin.label(),
    };
    let origin = if app.kernel_table.is_some() {
        format!("{origin} · b: kernel's")
    } else {
        origin.to_string()
    };
    let hottest = app
        .hottest_bucket()
        .map(|(b, v)| format!(" · hottest {b}: {v:.0}/s"))
        .unwrap_or_default();
    let block = Block::bordered().title(format!(" Buckets: {origin}{hottest} "));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let rows = inner.height as usize;
    let width = inner.width as usize;
    let mut lines = Vec::new();
    // Newest second at the top.
    for row in app.heat.iter().rev().take(rows) {
        let spans: Vec<Span> = row
            .iter()
            .take(width)
            .map(|&v| {
                let (c, col) = shade(v);
                Span::styled(c.to_string(), Style::new().fg(col))
            })
            .collect();
        lines.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
