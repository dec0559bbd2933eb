//! The `Enter` popup: one lock's stacks, wakers and latency.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;

use super::latency::hist_bars;
use super::{centered, ns, severity};

/// The `Enter` popup over the screen.
pub fn draw_detail(f: &mut Frame, app: &App) {
    let area = centered(f.area(), 96, 20);
    draw_lock(f, area, app, true);
}

/// The selected lock's detail in `area`: a popup (`popup`: cleared first), or the panel tall screens
/// keep under the locks.
pub(super) fn draw_lock(f: &mut Frame, area: Rect, app: &App, popup: bool) {
    let Some(r) = app.locks.get(app.selected) else {
        if !popup {
            f.render_widget(Block::bordered().title(" Selected lock: none "), area);
        }
        return;
    };
    let s = app.model.addresses.get(&(r.pid, r.addr));
    let mut lines = vec![
        Line::from(format!(
            "address {:#x} · {} · {:?}",
            r.addr,
            match r.kernel_bucket {
                Some((slots, b)) => format!("kernel bucket {b} of {slots}"),
                None => format!("futex-core bucket {}", r.bucket),
            },
            r.kind
        )),
        Line::from(format!(
            "waits {} · slept {} · woken {} · timed out {}",
            r.waits,
            s.map_or(0, |s| s.waits_blocked),
            s.map_or(0, |s| s.woken),
            r.timeouts
        )),
        Line::from(vec![
            Span::raw(format!("time waited: total {} · p50 ", ns(r.wait_ns_total))),
            Span::styled(ns(r.p50), severity(app, r.p50)),
            Span::raw(" · p99 "),
            Span::styled(ns(r.p99), severity(app, r.p99)),
            Span::raw(" · max "),
            Span::styled(
                ns(s.map_or(0, |s| s.wait_ns.max)),
                severity(app, s.map_or(0, |s| s.wait_ns.max)),
            ),
        ]),
    ];
    if let Some(s) = s {
        lines.push(Line::from(format!(
            "time waited 256ns|{}|1s",
            hist_bars(&s.wait_ns)
        )));
    }
    lines.push(Line::from(""));
    match (s, &app.stacks) {
        (Some(s), Some(t)) if !s.stacks.is_empty() => {
            for (title, by) in [("waiting stacks", &s.stacks), ("wakers", &s.waker_stacks)] {
                let mut v: Vec<(&u32, &u64)> = by.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                lines.push(Line::from(format!("{title} (time waited)")).bold());
                if v.is_empty() {
                    lines.push(Line::from("  none seen").dim());
                }
                for (id, w) in v.into_iter().take(2) {
                    let frames = t.frame_names((s.pid, *id));
                    let tail: Vec<&str> = frames.iter().rev().take(4).map(String::as_str).collect();
                    lines.push(Line::from(format!("  {:>7}  {}", ns(*w), tail.join(" ← "))));
                }
            }
        }
        _ => lines.push(Line::from("stacks and wakers: eBPF sources only (-p PID, -- CMD)").dim()),
    }
    if popup {
        f.render_widget(Clear, area);
    }
    let name = r.label.clone().unwrap_or_else(|| app.name(r.addr));
    let title = if popup {
        format!(" {name} ")
    } else {
        format!(" Selected lock: {name} (Enter: popup) ")
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
