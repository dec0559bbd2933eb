//! The `Enter` popup: one lock's stacks, wakers and latency.

use ratatui::style::Stylize;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;

use super::latency::hist_bars;
use super::{centered, ns};

pub fn draw_detail(f: &mut Frame, app: &App) {
    let Some(r) = app.locks.get(app.selected) else {
        return;
    };
    let area = centered(f.area(), 96, 20);
    let s = app.model.addresses.get(&(r.pid, r.addr));
    let mut lines = vec![
        Line::from(format!(
            "address {:#x} · bucket {} · {:?}",
            r.addr, r.bucket, r.kind
        )),
        Line::from(format!(
            "waits {} · slept {} · woken {} · timed out {}",
            r.waits,
            s.map_or(0, |s| s.waits_blocked),
            s.map_or(0, |s| s.woken),
            r.timeouts
        )),
        Line::from(format!(
            "time waited: total {} · p50 {} · p99 {} · max {}",
            ns(r.wait_ns_total),
            ns(r.p50),
            ns(r.p99),
            ns(s.map_or(0, |s| s.wait_ns.max))
        )),
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
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {} ", app.name(r.addr))),
        ),
        area,
    );
}
