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
        None => Line::from(keys(app, area.width as usize)).dim(),
    };
    f.render_widget(Paragraph::new(text), area);
}

/// The keys that fit `width`, the most used first; `? help` (which lists them all) always shows.
fn keys(app: &App, width: usize) -> String {
    let mut keys = vec!["q quit", "j/k select", "Enter detail"];
    if !app.sites.is_empty() {
        keys.push(if app.shows_sites() {
            "v words"
        } else {
            "v sites"
        });
    }
    keys.extend([
        "p pause",
        "Tab panel",
        "s sort",
        "b buckets",
        "f flamegraph",
    ]);
    if app.speed.is_some() {
        keys.insert(1, "+/- speed · n step");
    }
    let help = " · ? help";
    let mut out = String::new();
    for k in keys {
        let sep = if out.is_empty() { "" } else { " · " };
        if out.chars().count() + sep.len() + k.chars().count() + help.chars().count() > width {
            break;
        }
        out.push_str(sep);
        out.push_str(k);
    }
    out.push_str(help);
    out
}
