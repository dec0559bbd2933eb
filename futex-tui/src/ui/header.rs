//! The header: source, pid, uptime, events/s, lost events, the tracer's cost, which table the buckets are.

use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;

pub fn draw_header(f: &mut Frame, area: Rect, app: &App) {
    let t = &app.model.totals;
    let lost = if t.lost_events > 0 {
        Span::styled(
            format!("lost {}", t.lost_events),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    } else {
        Span::raw("lost 0")
    };
    let line1 = Line::from(vec![
        Span::styled("futex-tui ", Style::new().bold()),
        Span::styled(
            if app.paused { "PAUSED · " } else { "" },
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ),
        Span::raw(match app.speed {
            Some(x) => format!("replay ×{x} · "),
            None => String::new(),
        }),
        Span::raw(format!(
            "up {:.0}s · {} · pid {} · {:.0} ev/s · ",
            app.uptime_s, app.source, app.pid, app.events_per_sec
        )),
        lost,
        Span::raw(match &app.tracer_cost {
            Some(c) => format!(" · {c}"),
            None => String::new(),
        }),
        Span::styled(
            match &app.warning {
                Some(w) => format!(" · {w}"),
                None => String::new(),
            },
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
    ]);
    let line2 = Line::from(format!(
        "waits {} (slept {}, changed {}, timed out {}) · woke {} · requeued {} · idle waits {:.0}/s · {}",
        t.waits,
        t.waits_blocked,
        t.mismatches,
        t.timeouts,
        t.woken,
        t.moved,
        app.idle_per_sec,
        match app.kernel_table {
            Some((_, slots)) if app.shows_kernel_buckets() =>
                format!("kernel futex hash, {slots} slots"),
            _ => app.model.origin.label().to_string(),
        }
    ))
    .dim();
    f.render_widget(Paragraph::new(vec![line1, line2]), area);
}
