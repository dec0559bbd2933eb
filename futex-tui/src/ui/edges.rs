//! Requeue movement: waiters moved from one futex word (and bucket) to another.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};

use super::focused;

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
