//! Requeue movement: waiters moved from one futex word (and bucket) to another.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};

use super::{focused, si};

pub fn draw_edges(f: &mut Frame, area: Rect, app: &App) {
    // The bucket columns only where the words keep room (numbers are never cut: a column goes first).
    let buckets = area.width >= 60;
    let rows = app.edges().into_iter().map(|((from, to), e)| {
        let mut cells = vec![Cell::from(app.name(from))];
        if buckets {
            cells.push(Cell::from(e.from_bucket.to_string()));
        }
        cells.push(Cell::from(app.name(to)));
        if buckets {
            cells.push(Cell::from(e.to_bucket.to_string()));
        }
        cells.push(Cell::from(si(e.moved as f64)));
        cells.push(Cell::from(format!(
            "{}/s",
            si(app.edge_rates.get(&(from, to)).copied().unwrap_or(0.0))
        )));
        Row::new(cells)
    });
    let (widths, header) = if buckets {
        (
            vec![
                Constraint::Min(8),
                Constraint::Length(5),
                Constraint::Min(8),
                Constraint::Length(5),
                Constraint::Length(5),
                Constraint::Length(7),
            ],
            vec!["from", "bkt", "to", "bkt", "moved", "rate"],
        )
    } else {
        (
            vec![
                Constraint::Min(6),
                Constraint::Min(6),
                Constraint::Length(5),
                Constraint::Length(7),
            ],
            vec!["from", "to", "moved", "rate"],
        )
    };
    let table = Table::new(rows, widths)
        .header(Row::new(header).bold())
        .row_highlight_style(Style::new().reversed())
        .block(focused(
            Block::bordered().title(" Requeue movement (waiters moved) "),
            app.focus == Focus::Edges,
        ));
    let mut state = TableState::default().with_selected(Some(app.edge_selected));
    f.render_stateful_widget(table, area, &mut state);
}
