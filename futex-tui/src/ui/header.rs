//! The header: source, pid, uptime, events/s, lost events, the tracer's cost, which table the buckets are.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;

use super::{ns, si};

pub fn draw_header(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.model.totals;
    // Flags first (a damaged recording, a pause, a replay's speed, lost events), so that a narrow
    // screen cuts the figures, never the flags.
    let mut spans = vec![Span::styled("futex-tui ", Style::new().bold())];
    let alarm = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
    if let Some(w) = &app.warning {
        spans.push(Span::styled(format!("{w} · "), alarm));
    }
    if app.paused {
        spans.push(Span::styled(
            "PAUSED · ",
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ));
    }
    if let Some(x) = app.speed {
        spans.push(Span::raw(format!("replay ×{x} · ")));
    }
    if t.lost_events > 0 {
        spans.push(Span::styled(
            format!("lost {} · ", si(t.lost_events as f64)),
            alarm,
        ));
    }
    spans.push(Span::raw(format!(
        "up {} · {} · pid {} · {} ev/s",
        ns((app.uptime_s * 1e9) as u64),
        app.source,
        app.pid,
        si(app.events_per_sec)
    )));
    if t.lost_events == 0 {
        spans.push(Span::raw(" · lost 0"));
    }
    if let Some(c) = &app.tracer_cost {
        spans.push(Span::raw(format!(" · {c}")));
    }
    let line1 = Line::from(spans);
    // The totals, in units that fit; what does not fit the width is left off whole, from the end.
    let table = match app.kernel_table {
        Some((_, slots)) if app.shows_kernel_buckets() => {
            format!("kernel futex hash, {slots} slots")
        }
        _ => app.model.origin.label().to_string(),
    };
    let parts = [
        format!(
            "waits {} (slept {}, changed {}, timed out {})",
            si(t.waits as f64),
            si(t.waits_blocked as f64),
            si(t.mismatches as f64),
            si(t.timeouts as f64)
        ),
        format!("woke {}", si(t.woken as f64)),
        format!("requeued {}", si(t.moved as f64)),
        format!("idle waits {}/s", si(app.idle_per_sec)),
        table,
    ];
    let mut line2 = String::new();
    for p in parts {
        let sep = if line2.is_empty() { "" } else { " · " };
        if line2.chars().count() + sep.len() + p.chars().count() > area.width as usize {
            break;
        }
        line2.push_str(sep);
        line2.push_str(&p);
    }
    f.render_widget(Paragraph::new(vec![line1, Line::from(line2).dim()]), area);
}
