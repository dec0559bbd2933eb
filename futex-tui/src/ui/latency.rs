//! Wakeup latency: time waited, wake-to-return and scheduler delay, with a log2 histogram.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::App;
use futex_trace::model::Log2Hist;

use super::ns;

fn latency_line(name: &str, h: &Log2Hist) -> Line<'static> {
    Line::from(format!(
        "{name:<10}{:>7}{:>7}{:>7}{:>7}",
        ns(h.percentile(0.5)),
        ns(h.percentile(0.9)),
        ns(h.percentile(0.99)),
        ns(h.max)
    ))
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
    let lines = vec![
        Line::from(format!(
            "{:<10}{:>7}{:>7}{:>7}{:>7}",
            "", "p50", "p90", "p99", "max"
        ))
        .bold(),
        latency_line("wait locks", &m.wait_contention),
        latency_line("wait idle", &m.wait_idle),
        latency_line("wake→ret", &m.wake_to_return),
        Line::from(format!(
            "wake→ret 256ns|{}|1s",
            hist_bars(&m.wake_to_return)
        ))
        .dim(),
        if m.sched_delay.count > 0 {
            latency_line("sched", &m.sched_delay)
        } else {
            Line::from("sched delay: eBPF sources only").dim()
        },
    ];
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Wakeup latency ")),
        area,
    );
}
