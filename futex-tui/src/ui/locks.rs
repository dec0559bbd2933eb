//! Top locks (contention): one row per futex word, sorted as the user chose.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};

use super::{focused, ns};

pub fn draw_locks(f: &mut Frame, area: Rect, app: &App) {
    // The stack column only when there is room for it beside a readable lock name.
    let wide = area.width >= 110;
    let kernel = app.shows_kernel_buckets();
    let mut titles = vec![
        "lock",
        "kind",
        "waits/s",
        "total",
        "p50",
        "p99",
        "now",
        if kernel { "kbkt" } else { "bkt" },
    ];
    let mut widths = vec![
        Constraint::Min(18),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(5),
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
            // The bucket the panel beside shows: the kernel's (`-`: the global table), or futex-core's.
            Cell::from(if kernel {
                r.kernel_bucket.map_or("-".into(), |(_, b)| b.to_string())
            } else {
                r.bucket.to_string()
            }),
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
