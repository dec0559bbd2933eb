//! Drawing: each panel is a function of the [`App`] into a `Rect`, one file per panel. Nothing here
//! aggregates events.

mod buckets;
mod detail;
mod edges;
mod footer;
mod header;
mod help;
mod latency;
mod locks;
mod series;

pub use buckets::{draw_buckets, draw_core_buckets, draw_kernel_buckets};
pub use detail::draw_detail;
pub use edges::draw_edges;
pub use footer::draw_footer;
pub use header::draw_header;
pub use help::draw_help;
pub use latency::draw_latency;
pub use locks::draw_locks;
pub use series::draw_series;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::Block;
use ratatui::Frame;

use crate::app::App;

/// A duration in at most 6 columns: `950ns`, `8.2µs`, `131µs`, `3.5ms`, `12ms`, `1.2s`, `999s`, `17m`,
/// `9h`: whatever its size, never cut.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    match v {
        0..=999 => format!("{v}ns"),
        1_000..=9_949 => format!("{:.1}µs", f / 1e3),
        9_950..=999_499 => format!("{:.0}µs", f / 1e3),
        999_500..=9_949_999 => format!("{:.1}ms", f / 1e6),
        9_950_000..=999_499_999 => format!("{:.0}ms", f / 1e6),
        999_500_000..=9_949_999_999 => format!("{:.1}s", f / 1e9),
        9_950_000_000..=999_499_999_999 => format!("{:.0}s", f / 1e9),
        999_500_000_000..=5_999_999_999_999_999 => format!("{:.0}m", f / 6e10),
        _ => format!("{:.0}h", (f / 3.6e12).min(99_999.0)),
    }
}

/// A count or rate in at most 5 columns: `950`, `2.8k`, `28k`, `2.8M`, `280M`, `2.8G`: whatever its
/// size, never cut (negative values, from a trace that began mid-wait, keep their sign in 6).
pub fn si(v: f64) -> String {
    if v < 0.0 {
        return format!("-{}", si(-v));
    }
    const UNITS: [(f64, &str); 6] = [
        (1e3, "k"),
        (1e6, "M"),
        (1e9, "G"),
        (1e12, "T"),
        (1e15, "P"),
        (1e18, "E"),
    ];
    if v < 999.5 {
        return format!("{v:.0}");
    }
    for (i, (unit, name)) in UNITS.iter().enumerate() {
        let x = v / unit;
        let next = UNITS.get(i + 1).map_or(f64::INFINITY, |(u, _)| u / unit);
        if x < 9.95 {
            return format!("{x:.1}{name}");
        }
        if x < 999.5 || next.is_infinite() {
            return format!("{:.0}{name}", x.min(999.0));
        }
    }
    unreachable!("the last unit takes every value")
}

/// The colour of a latency by the thresholds (`--warn`, `--crit`): green, yellow, red.
pub fn severity(app: &App, ns: u64) -> Style {
    use crate::app::Severity;
    match app.thresholds.of(ns) {
        _ if ns == 0 => Style::new().dim(),
        Severity::Fine => Style::new().fg(Color::Green),
        Severity::Warn => Style::new().fg(Color::Yellow),
        Severity::Crit => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
    }
}

/// The whole screen, laid out for its size: every row used from 80×24 up; narrower screens drop
/// columns (never digits), taller ones give the time series and the buckets more rows.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let (w, h) = (area.width, area.height);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(f, header, app);
    // Below 30 rows the time series is three bare lines; above, a panel that grows with the screen.
    let series_h = match h {
        0..30 => 3,
        30..50 => 8,
        _ => body.height / 4,
    };
    let bottom_h = if h >= 40 { 10 } else { 8 };
    let [top, series, bottom] = Layout::vertical([
        Constraint::Min(6),
        Constraint::Length(series_h),
        Constraint::Length(bottom_h),
    ])
    .areas(body);
    // From 150 columns the buckets sit beside the locks; below, under them (so the locks keep their
    // width), with a third of the rows on tall screens.
    let (locks, buckets) = if w >= 150 {
        let [l, b] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(top);
        (l, b)
    } else {
        let bh = if h >= 40 { (top.height / 3).max(5) } else { 5 };
        let [l, b] = Layout::vertical([Constraint::Min(4), Constraint::Length(bh)]).areas(top);
        (l, b)
    };
    // Tall screens keep the selected lock's detail under the locks.
    if locks.height >= 30 {
        let [l, d] = Layout::vertical([Constraint::Min(8), Constraint::Length(locks.height / 2)])
            .areas(locks);
        draw_locks(f, l, app);
        detail::draw_lock(f, d, app, false);
        app.areas.set(crate::app::Areas {
            locks: l,
            edges: Rect::default(),
        });
    } else {
        draw_locks(f, locks, app);
        app.areas.set(crate::app::Areas {
            locks,
            edges: Rect::default(),
        });
    }
    draw_buckets(f, buckets, app);
    draw_series(f, series, app);
    let [edges, lat] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_edges(f, edges, app);
    draw_latency(f, lat, app);
    draw_footer(f, footer, app);
    app.areas.set(crate::app::Areas {
        edges,
        ..app.areas.get()
    });
    if app.detail {
        draw_detail(f, app);
    }
    if app.help {
        draw_help(f, app);
    }
}

fn focused(block: Block<'_>, on: bool) -> Block<'_> {
    if on {
        block.border_style(Style::new().fg(Color::Cyan))
    } else {
        block
    }
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}
