//! Wakeup latency: time waited, wake-to-return and scheduler delay, with a log2 histogram. Percentiles
//! are interpolated within their log2 bucket (by rank), coloured by the thresholds.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::App;
use futex_trace::model::Log2Hist;

use super::{ns, severity};

fn latency_line(app: &App, name: &str, h: &Log2Hist) -> Line<'static> {
    let mut spans = vec![Span::raw(format!("{name:<10}"))];
    for v in [
        h.percentile_interpolated(0.5),
        h.percentile_interpolated(0.9),
        h.percentile_interpolated(0.99),
        h.max,
    ] {
        spans.push(Span::styled(format!("{:>7}", ns(v)), severity(app, v)));
    }
    Line::from(spans)
}

/// A one-line log2 histogram: one bar character per power of two from 256 ns to ~1 s.
pub(super) fn hist_bars(h: &Log2Hist) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let slice = &h.buckets[8..30];
    let max = slice.iter().copied().max().unwrap_or(0).max(1);
    slice
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                BARS[((c * 7) / max) as usize]
            }
        })
        .collect()
}

pub fn draw_latency(f: &mut Frame, area: Rect, app: &App) {
    let m = &app.model;
    let (busy, idle) = m.wait_split(app.stacks.as_ref());
    let mut lines = vec![
        Line::from(format!(
            "{:<10}{:>7}{:>7}{:>7}{:>7}",
            "", "p50", "p90", "p99", "max"
        ))
        .bold(),
        latency_line(app, "wait locks", &busy),
        latency_line(app, "wait idle", &idle),
        latency_line(app, "wake→ret", &m.wake_to_return),
        Line::from(if area.width >= 45 {
            format!("wake→ret 256ns|{}|1s", hist_bars(&m.wake_to_return))
        } else {
            format!("256ns|{}|1s", hist_bars(&m.wake_to_return))
        })
        .dim(),
        if m.sched_delay.count > 0 {
            latency_line(app, "sched", &m.sched_delay)
        } else {
            Line::from("sched delay: eBPF sources only").dim()
        },
    ];
    if area.height >= 10 {
        let t = app.thresholds;
        lines.push(Line::from(""));
        lines.push(
            Line::from(format!(
                "green < {} ≤ yellow < {} ≤ red (--warn, --crit)",
                ns(t.warn_ns),
                ns(t.crit_ns)
            ))
            .dim(),
        );
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Wakeup latency (interpolated) ")),
        area,
    );
}
