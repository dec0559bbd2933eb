//! Where threads wait: wait sites (the program's place above the locks' plumbing, every thread and
//! word there together), contention first, each with its class by behaviour; or (`v`) one row per futex
//! word of contention, sorted as the user chose. Numbers take units that fit their column (2.8k,
//! 262µs); a narrow screen drops columns, never digits. Latencies are coloured by the thresholds
//! (`--warn`, `--crit`).

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use futex_trace::sites::Class;

use crate::app::{App, Focus};

use super::{focused, ns, severity, si};

/// A class in a column: contention stands out, idle recedes, unclassified is not hidden.
pub(super) fn class_style(c: Class) -> Style {
    if c.is_contention() {
        Style::new().fg(Color::Yellow)
    } else if c.is_idle() {
        Style::new().dim()
    } else {
        Style::new().fg(Color::Magenta)
    }
}

/// A class's name in a narrow column.
pub(super) fn class_short(c: Class) -> &'static str {
    match c {
        Class::Work => "work",
        Class::Unclassified => "unclass.",
        c => c.name(),
    }
}

pub fn draw_locks(f: &mut Frame, area: Rect, app: &App) {
    if app.shows_sites() {
        return draw_sites(f, area, app);
    }
    let kernel = app.shows_kernel_buckets();
    // Columns by what a narrow screen drops first: the stack, then the kind and p50.
    let wide = area.width >= 110;
    let narrow = area.width < 78;
    let mut titles = vec!["word"];
    let mut widths = vec![Constraint::Min(18)];
    let mut col = |t: &'static str, w: u16, titles: &mut Vec<&'static str>| {
        titles.push(t);
        widths.push(Constraint::Length(w));
    };
    if !narrow {
        col("class", 8, &mut titles);
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
            cells.push(Cell::from(class_short(r.class)).style(class_style(r.class)));
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
                " Top words (contention) · sort: {}{} ",
                app.sort.label(),
                if app.sites.is_empty() {
                    ""
                } else {
                    " · v: sites"
                }
            )),
            app.focus == Focus::Locks,
        ));
    let mut state = TableState::default().with_selected(Some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

/// The sites table: contention, then idle, then unclassified; the most time waited first in each.
fn draw_sites(f: &mut Frame, area: Rect, app: &App) {
    let wide = area.width >= 120;
    let narrow = area.width < 78;
    let mut titles = vec!["site"];
    let mut widths = vec![Constraint::Min(20)];
    let mut col = |t: &'static str, w: u16| {
        titles.push(t);
        widths.push(Constraint::Length(w));
    };
    col("class", 8);
    col("total", 6);
    col("share", 5);
    if !narrow {
        col("thr", 4);
        col("waits", 6);
    }
    if wide {
        titles.push("why");
        widths[0] = Constraint::Percentage(45);
        widths.push(Constraint::Min(10));
    }
    let rows = app.sites.iter().map(|r| {
        let mut cells = vec![
            Cell::from(r.label.clone()),
            Cell::from(class_short(r.class)).style(class_style(r.class)),
            Cell::from(ns(r.wait_ns)),
            Cell::from(format!("{:.0}%", r.share * 100.0)),
        ];
        if !narrow {
            cells.push(Cell::from(r.threads.to_string()));
            cells.push(Cell::from(si(r.waits as f64)));
        }
        if wide {
            cells.push(Cell::from(r.why.clone()).dim());
        }
        Row::new(cells)
    });
    let contention: u64 = (app.sites.iter())
        .filter(|s| s.class.is_contention())
        .map(|s| s.wait_ns)
        .sum();
    let all: u64 = app.sites.iter().map(|s| s.wait_ns).sum();
    let table = Table::new(rows, widths)
        .header(Row::new(titles).bold())
        .row_highlight_style(Style::new().reversed())
        .block(focused(
            Block::bordered().title(format!(
                " Where threads wait · contention {:.0}% of {} · v: words ",
                if all == 0 {
                    0.0
                } else {
                    contention as f64 * 100.0 / all as f64
                },
                ns(all)
            )),
            app.focus == Focus::Locks,
        ));
    let mut state = TableState::default().with_selected(Some(app.site_selected));
    f.render_stateful_widget(table, area, &mut state);
}
