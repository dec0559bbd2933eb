//! Top locks (contention): one row per futex word, sorted as the user chose. Numbers take units that
//! fit their column (2.8k, 262µs); a narrow screen drops columns, never digits. Latencies are coloured
//! by the thresholds (`--warn`, `--crit`).

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};

use super::{focused, ns, severity, si};

pub fn draw_locks(f: &mut Frame, area: Rect, app: &App) {
    let kernel = app.shows_kernel_buckets();
    // Columns by what a narrow screen drops first: the stack, then the kind and p50.
    let wide = area.width >= 110;
    let narrow = area.width < 78;
    let mut titles = vec!["lock"];
    let mut widths = vec![Constraint::Min(18)];
    let mut col = |t: &'static str, w: u16, titles: &mut Vec<&'static str>| {
        titles.push(t);
        widths.push(Constraint::Length(w));
    };
    if !narrow {
        col("kind", 7, &mut titles);
    }
    col("waits/s", 7, &mut titles);
    col("total", 6, &mut titles);
    if !narrow {
        col("p50", 6, &mut titles);
    }
    col("p99", 6, &mut titles);
    col("now", 5, &mut titles);
    col(if kernel { "kbkt" } else { "bkt" }, 5, &mut titles);
    if wide {
        titles.push("hottest stack");
        widths[0] = Constraint::Length(24);
        widths.push(Constraint::Min(10));
    }
    let header = Row::new(titles).bold();
    let rows = app.locks.iter().map(|r| {
        let mut cells = vec![Cell::from(
            r.label.clone().unwrap_or_else(|| format!("{:#x}", r.addr)),
        )];
        if !narrow {
            cells.push(Cell::from(r.kind.name().to_string()));
        }
        cells.push(Cell::from(si(r.waits_per_sec)));
        cells.push(Cell::from(ns(r.wait_ns_total)));
        if !narrow {
            cells.push(Cell::from(ns(r.p50)).style(severity(app, r.p50)));
        }
        cells.push(Cell::from(ns(r.p99)).style(severity(app, r.p99)));
        cells.push(Cell::from(si(r.waiting as f64)));
        // The bucket the panel beside shows: the kernel's (`-`: the global table), or futex-core's.
        cells.push(Cell::from(if kernel {
            r.kernel_bucket.map_or("-".into(), |(_, b)| b.to_string())
        } else {
            r.bucket.to_string()
        }));
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
