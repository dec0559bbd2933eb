//! The footer: keys, and the latest message.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;

pub fn draw_footer(f: &mut Frame, area: Rect, app: &App) {
    let text = match &app.message {
        Some(m) => Line::from(m.clone()).yellow(),
        None => {
            let replay = if app.speed.is_some() {
                " · +/- speed · n step"
            } else {
                ""
            };
            Line::from(format!(
                "q quit · p pause · Tab panel · j/k select · Enter detail · s sort · b buckets · f flamegraph{replay} · ? help"
            ))
            .dim()
        }
    };
    f.render_widget(Paragraph::new(text), area);
}
