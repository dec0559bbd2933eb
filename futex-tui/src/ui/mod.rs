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

pub use buckets::{draw_buckets, draw_heatmap, draw_kernel_buckets};
pub use detail::draw_detail;
pub use edges::draw_edges;
pub use footer::draw_footer;
pub use header::draw_header;
pub use help::draw_help;
pub use latency::draw_latency;
pub use locks::draw_locks;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::widgets::Block;
use ratatui::Frame;

use crate::app::App;

/// A duration in at most 6 columns: `950ns`, `8.2µs`, `131µs`, `3.5ms`, `12ms`, `1.2s`.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    match v {
        0..=999 => format!("{v}ns"),
        1_000..=9_999 => format!("{:.1}µs", f / 1e3),
        10_000..=999_999 => format!("{:.0}µs", f / 1e3),
        1_000_000..=9_999_999 => format!("{:.1}ms", f / 1e6),
        10_000_000..=999_999_999 => format!("{:.0}ms", f / 1e6),
        _ => format!("{:.1}s", f / 1e9),
    }
}

/// The whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let [header, top, bottom, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(8),
        Constraint::Length(8),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app);
    let [locks, heat] =
        Layout::horizontal([Constraint::Min(40), Constraint::Length(68)]).areas(top);
    // Below 150 columns the heatmap goes below the locks, so that the locks table keeps its width.
    if f.area().width < 150 {
        let [locks, heat] =
            Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(top);
        draw_locks(f, locks, app);
        draw_buckets(f, heat, app);
    } else {
        draw_locks(f, locks, app);
        draw_buckets(f, heat, app);
    }
    let [edges, lat] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_edges(f, edges, app);
    draw_latency(f, lat, app);
    draw_footer(f, footer, app);
    if app.detail {
        draw_detail(f, app);
    }
    if app.help {
        draw_help(f);
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
