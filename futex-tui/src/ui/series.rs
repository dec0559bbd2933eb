//! Activity over time: waits that slept per second, time waited per second and a p99 per second, for
//! the whole process and for the selected lock, as sparklines (newest right, a column a second).

use std::collections::VecDeque;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Sparkline};
use ratatui::Frame;

use crate::app::{App, Point};

use super::{ns, severity, si};

/// Columns of a metric's label beside its sparkline ("waited/s   146ms max 999ms": a name of 9, two
/// values of at most 6).
const LABEL: u16 = 27;

/// One metric of a series: its name, how to read it off a point, how to print a value.
struct Metric {
    name: &'static str,
    of: fn(&Point) -> u64,
    show: fn(u64) -> String,
    /// A latency: coloured by the thresholds.
    latency: bool,
}

const fn metrics(p99: &'static str) -> [Metric; 3] {
    [
        Metric {
            name: "slept/s",
            of: |p| p.slept,
            show: |v| si(v as f64),
            latency: false,
        },
        Metric {
            name: "waited/s",
            of: |p| p.waited_ns,
            show: ns,
            latency: false,
        },
        Metric {
            name: p99,
            of: |p| p.p99_ns,
            show: ns,
            latency: true,
        },
    ]
}

pub fn draw_series(f: &mut Frame, area: Rect, app: &App) {
    let lock = app.selected_lock().map(|r| {
        let name = r.label.clone().unwrap_or_else(|| format!("{:#x}", r.addr));
        (name, app.lock_series.get(&(r.pid, r.addr)))
    });
    // The selected lock's column only where both keep a readable sparkline.
    let two = area.width >= 100 && lock.is_some();
    let inner = if area.height >= 5 {
        let secs = app.series.len();
        let block = Block::bordered().title(format!(
            " Activity · a column a second, last {secs} s{} ",
            if two {
                " · whole process | selected lock"
            } else {
                " · whole process"
            }
        ));
        let inner = block.inner(area);
        f.render_widget(block, area);
        inner
    } else {
        area
    };
    let (left, right) = if two {
        let [l, r] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        (l, Some(r))
    } else {
        (inner, None)
    };
    draw_column(
        f,
        left,
        app,
        "process",
        Some(&app.series),
        &metrics("wake p99"),
    );
    if let (Some(r), Some((name, series))) = (right, lock) {
        draw_column(f, r, app, &name, series, &metrics("wait p99"));
    }
}

/// The three metrics of one series, stacked; each a label and a sparkline, the label above the
/// sparkline where there are rows for it, beside it otherwise.
fn draw_column(
    f: &mut Frame,
    area: Rect,
    app: &App,
    title: &str,
    series: Option<&VecDeque<Point>>,
    metrics: &[Metric; 3],
) {
    let rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(area);
    for (m, &row) in metrics.iter().zip(rows.iter()) {
        if row.height == 0 {
            continue;
        }
        let values: Vec<u64> = series.map_or_else(Vec::new, |s| s.iter().map(m.of).collect());
        let now = values.last().copied().unwrap_or(0);
        let max = values.iter().copied().max().unwrap_or(0);
        let style = if m.latency {
            severity(app, now)
        } else {
            Style::new().fg(Color::Cyan)
        };
        let label = Line::from(vec![
            Span::raw(format!("{:<9}", m.name)).bold(),
            Span::styled(format!("{:>6}", (m.show)(now)), style),
            Span::raw(format!(" max {}", (m.show)(max))).dim(),
        ]);
        let (label_area, spark_area) = if row.height >= 3 {
            let [l, s] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(row);
            (l, s)
        } else {
            let [l, s] =
                Layout::horizontal([Constraint::Length(LABEL), Constraint::Min(1)]).areas(row);
            (l, s)
        };
        let label = if row.height >= 3 && m.name == "slept/s" {
            // The column's title on its first label line.
            let mut spans = vec![Span::raw(format!("{title} · ")).italic()];
            spans.extend(label.spans);
            Line::from(spans)
        } else {
            label
        };
        f.render_widget(Paragraph::new(label), label_area);
        // The newest seconds that fit, right-aligned.
        let width = spark_area.width as usize;
        let data = &values[values.len().saturating_sub(width)..];
        let pad = width - data.len();
        let data: Vec<u64> = std::iter::repeat_n(0, pad)
            .chain(data.iter().copied())
            .collect();
        f.render_widget(
            Sparkline::default()
                .data(&data)
                .max(max.max(1))
                .style(style),
            spark_area,
        );
    }
}
