//! The `Enter` popup: one site's class and why, what released it, its words and stacks; or one word's
//! stacks, wakers and latency. Stacks read outermost-first (as a flamegraph stacks them), and wrap.

use ratatui::layout::Rect;
use ratatui::style::Stylize;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use futex_trace::stacks::{is_plumbing_name, is_thread_entry};

use crate::app::App;

use super::latency::hist_bars;
use super::locks::{class_short, class_style};
use super::{centered, ns, severity};
use ratatui::style::Style;

/// The `Enter` popup over the screen.
pub fn draw_detail(f: &mut Frame, app: &App) {
    let area = centered(f.area(), 96, 20);
    draw_lock(f, area, app, true);
}

/// A stack as lines: its frames outermost first, joined by `→`, wrapped by the paragraph; a stack cut
/// short says so.
fn stack_lines(app: &App, key: (u32, u32), weight: u64, lines: &mut Vec<Line<'static>>) {
    let Some(t) = &app.stacks else { return };
    let mut frames = t.frame_names(key);
    // How the thread started (clone, start_thread, Rust's spawn and unwind guards) says nothing here.
    let start = frames
        .iter()
        .take_while(|f| is_thread_entry(f) || is_plumbing_name(f))
        .count();
    if start > 0 && start < frames.len() {
        frames.splice(..start, ["[thread start]".to_string()]);
    }
    if t.truncated.contains(&key) {
        frames.insert(0, "[truncated]".into());
    }
    lines.push(Line::from(vec![
        Span::styled(format!("  {:>7}  ", ns(weight)), Style::new().bold()),
        Span::raw(frames.join(" → ")),
    ]));
}

/// The selected site's detail.
fn site_lines(app: &App) -> Option<(String, Vec<Line<'static>>)> {
    let r = app.sites.get(app.site_selected)?;
    let mut lines = vec![
        Line::from(vec![
            Span::styled(r.class.name().to_string(), class_style(r.class).bold()),
            Span::raw(format!(": {}", r.why)),
        ]),
        Line::from(format!(
            "time waited {} ({:.0}% of all waiting) · ~{} waits · {} thread{}{}",
            ns(r.wait_ns),
            r.share * 100.0,
            r.waits,
            r.threads,
            if r.threads == 1 { "" } else { "s" },
            r.thread_names
                .as_ref()
                .map_or_else(String::new, |n| format!(": {n}"))
        )),
    ];
    if let Some(from) = r.released_from.first() {
        let more = match r.released_from.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        lines.push(Line::from(format!("released by wakers at {from}{more}")));
    }
    let words = match r.words.len() {
        0 => "none".to_string(),
        1..=3 => r.words.join(", "),
        n => format!("{}, … ({n} words)", r.words[..3].join(", ")),
    };
    lines.push(Line::from(format!("words: {words}")));
    if r.truncated_share > 0.0 {
        lines.push(
            Line::from(format!(
                "{:.0}% of its time in stacks cut short: the site may be deeper",
                r.truncated_share * 100.0
            ))
            .dim(),
        );
    }
    lines.push(Line::from(""));
    lines.push(Line::from("waiting stacks, outermost first (time waited)").bold());
    for &(k, w) in r.stacks.iter().take(3) {
        stack_lines(app, k, w, &mut lines);
    }
    Some((r.label.clone(), lines))
}

/// The selected lock's detail in `area`: a popup (`popup`: cleared first), or the panel tall screens
/// keep under the locks.
pub(super) fn draw_lock(f: &mut Frame, area: Rect, app: &App, popup: bool) {
    if app.shows_sites() {
        if let Some((name, lines)) = site_lines(app) {
            return show(f, area, popup, &name, "site", lines);
        }
    }
    let Some(r) = app.locks.get(app.selected) else {
        if !popup {
            f.render_widget(Block::bordered().title(" Selected lock: none "), area);
        }
        return;
    };
    let s = app.model.addresses.get(&(r.pid, r.addr));
    let mut lines = vec![
        Line::from(format!(
            "address {:#x} · {} · {} · {}",
            r.addr,
            match r.kernel_bucket {
                Some((slots, b)) => format!("kernel bucket {b} of {slots}"),
                None => format!("futex-core bucket {}", r.bucket),
            },
            r.kind.name(),
            class_short(r.class)
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
        (Some(s), Some(_)) if !s.stacks.is_empty() => {
            for (title, by) in [
                ("waiting stacks, outermost first (time waited)", &s.stacks),
                (
                    "wakers, outermost first (time their waiters waited)",
                    &s.waker_stacks,
                ),
            ] {
                let mut v: Vec<(&(u32, u32), &u64)> = by.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                lines.push(Line::from(title).bold());
                if v.is_empty() {
                    lines.push(Line::from("  none seen").dim());
                }
                for (key, w) in v.into_iter().take(2) {
                    stack_lines(app, *key, *w, &mut lines);
                }
            }
        }
        _ => lines.push(Line::from("stacks and wakers: none in this trace (--no-stacks?)").dim()),
    }
    let name = r.label.clone().unwrap_or_else(|| app.name(r.addr));
    show(f, area, popup, &name, "lock", lines);
}

/// The detail in `area`, titled by what it shows.
fn show(f: &mut Frame, area: Rect, popup: bool, name: &str, what: &str, lines: Vec<Line<'static>>) {
    if popup {
        f.render_widget(Clear, area);
    }
    let title = if popup {
        format!(" {name} ")
    } else {
        format!(" Selected {what}: {name} (Enter: popup) ")
    };
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}
