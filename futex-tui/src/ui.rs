//! Drawing: each panel is a function of the [`App`] into a `Rect`. Nothing here aggregates events.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};
use futex_trace::model::Log2Hist;

/// A duration in at most 6 columns: `950ns`, `8.2µs`, `131µs`, `3.5ms`, `12ms`, `1.2s`.
pub fn ns(v: u64) -> String {
    let f = v as f64;
    match v {
        0..=999 => format!("{v}ns"),
        1_000..=9_999 => format!("{:.1}µs", f / 1e3),
        10_000..=999_999 => format!("{:.0}µs", f / 1e3),
        1_000_000..=9_999_999 => format!("{:.1}ms", f / 1e6),
        10_000_000..=999_999_999 => format!("{:.0}ms", f / 1e6),
        _ => format!("{:.1}s", f / 1e9),
    }
}

/// The whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let [header, top, bottom, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(8),
        Constraint::Length(8),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app);
    let [locks, heat] =
        Layout::horizontal([Constraint::Min(40), Constraint::Length(68)]).areas(top);
    // Below 150 columns the heatmap goes below the locks, so that the locks table keeps its width.
    if f.area().width < 150 {
        let [locks, heat] =
            Layout::vertical([Constraint::Min(5), Constraint::Length(5)]).areas(top);
        draw_locks(f, locks, app);
        draw_heatmap(f, heat, app);
    } else {
        draw_locks(f, locks, app);
        draw_heatmap(f, heat, app);
    }
    let [edges, lat] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(bottom);
    draw_edges(f, edges, app);
    draw_latency(f, lat, app);
    draw_footer(f, footer, app);
    if app.detail {
        draw_detail(f, app);
    }
    if app.help {
        draw_help(f);
    }
}

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
        app.model.origin.label()
    ))
    .dim();
    f.render_widget(Paragraph::new(vec![line1, line2]), area);
}

fn focused(block: Block<'_>, on: bool) -> Block<'_> {
    if on {
        block.border_style(Style::new().fg(Color::Cyan))
    } else {
        block
    }
}

pub fn draw_locks(f: &mut Frame, area: Rect, app: &App) {
    // The stack column only when there is room for it beside a readable lock name.
    let wide = area.width >= 110;
    let mut titles = vec!["lock", "kind", "waits/s", "total", "p50", "p99", "now"];
    let mut widths = vec![
        Constraint::Min(18),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(4),
    ];
    if wide {
        titles.push("hottest stack");
        widths[0] = Constraint::Length(22);
        widths.push(Constraint::Min(10));
    }
    let header = Row::new(titles).bold();
    let rows = app.locks.iter().map(|r| {
        let mut cells = vec![
            Cell::from(r.label.clone().unwrap_or_else(|| format!("{:#x}", r.addr))),
            Cell::from(format!("{:?}", r.kind).to_lowercase()),
            Cell::from(format!("{:.0}", r.waits_per_sec)),
            Cell::from(ns(r.wait_ns_total)),
            Cell::from(ns(r.p50)),
            Cell::from(ns(r.p99)),
            Cell::from(r.waiting.to_string()),
        ];
        if wide {
            cells.push(Cell::from(
                r.top_stack.clone().unwrap_or_else(|| "-".into()),
            ));
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(header)
        .row_highlight_style(Style::new().reversed())
        .block(focused(
            Block::bordered().title(format!(
                " Top locks (contention) · sort: {} ",
                app.sort.label()
            )),
            app.focus == Focus::Locks,
        ));
    let mut state = TableState::default().with_selected(Some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

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

pub fn draw_edges(f: &mut Frame, area: Rect, app: &App) {
    let rows = app.edges().into_iter().map(|((from, to), e)| {
        Row::new([
            Cell::from(format!("{} [{}]", app.name(from), e.from_bucket)),
            Cell::from(format!("{} [{}]", app.name(to), e.to_bucket)),
            Cell::from(e.moved.to_string()),
            Cell::from(format!(
                "{:.0}/s",
                app.edge_rates.get(&(from, to)).copied().unwrap_or(0.0)
            )),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Percentage(38),
            Constraint::Percentage(38),
            Constraint::Length(7),
            Constraint::Length(7),
        ],
    )
    .header(Row::new(["from [bucket]", "to [bucket]", "moved", "rate"]).bold())
    .row_highlight_style(Style::new().reversed())
    .block(focused(
        Block::bordered().title(" Requeue movement "),
        app.focus == Focus::Edges,
    ));
    let mut state = TableState::default().with_selected(Some(app.edge_selected));
    f.render_stateful_widget(table, area, &mut state);
}

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
fn hist_bars(h: &Log2Hist) -> String {
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
                "q quit · p pause · Tab panel · j/k select · Enter detail · s sort · f flamegraph{replay} · ? help"
            ))
            .dim()
        }
    };
    f.render_widget(Paragraph::new(text), area);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub fn draw_help(f: &mut Frame) {
    let area = centered(f.area(), 60, 16);
    let lines: Vec<Line> = [
        "q / Esc   quit",
        "p         pause or resume (replay: pause playback)",
        "f         write a flamegraph (SVG) of what is shown",
        "+ / -     replay: faster / slower;  n: one second on",
        "Tab       move between Top locks and Requeue movement",
        "j k ↑ ↓   select a row",
        "Enter     details of the selected lock",
        "s         sort locks: total wait, waits/s, p99",
        "?         this help",
        "",
        "Idle waits (condvar) are counted apart from locks.",
        "Buckets: futex-core's sleep queues (demo), or",
        "futex-core's hash of kernel futex addresses (-p).",
    ]
    .into_iter()
    .map(Line::from)
    .collect();
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Keys ")),
        area,
    );
}

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
