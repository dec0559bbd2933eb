//! The buckets panel: contention per bucket over the last minute, as a heat waterfall.

use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use crate::app::App;

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

pub fn draw_heatmap(f: &mut Frame, area: Rect, app: &App) {
    let origin = app.model.origin.label();
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
