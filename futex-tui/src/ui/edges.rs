//! Requeue movement: waiters moved from one futex word (and bucket) to another.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Style, Stylize};
use ratatui::widgets::{Block, Cell, Row, Table, TableState};
use ratatui::Frame;

use crate::app::{App, Focus};

use super::{focused, si};

/// A requeue's two ends, told apart however narrow the columns: the destination without the words it
/// shares with the source (`demo: broadcast condvar` → `…mutex`).
fn ends(from: &str, to: &str) -> (String, String) {
    let common = from
        .split_inclusive(' ')
        .zip(to.split_inclusive(' '))
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len())
        .sum::<usize>();
    if common == 0 || common >= to.len() {
        return (from.to_string(), to.to_string());
    }
    (from.to_string(), format!("…{}", &to[common..]))
}

pub fn draw_edges(f: &mut Frame, area: Rect, app: &App) {
    // The bucket columns only where the words keep room (numbers are never cut: a column goes first).
    let buckets = area.width >= 60;
    let rows = app.edges().into_iter().map(|((from, to), e)| {
        let (from_name, to_name) = ends(&app.name(from), &app.name(to));
        let mut cells = vec![Cell::from(from_name)];
        if buckets {
            cells.push(Cell::from(e.from_bucket.to_string()));
        }
        cells.push(Cell::from(to_name));
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
                Constraint::Fill(3),
                Constraint::Length(5),
                Constraint::Fill(2),
                Constraint::Length(5),
                Constraint::Length(5),
                Constraint::Length(7),
            ],
            vec!["from", "bkt", "to", "bkt", "moved", "rate"],
        )
    } else {
        (
            vec![
                Constraint::Fill(3),
                Constraint::Fill(2),
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_requeues_ends_differ_in_what_is_shown() {
        assert_eq!(
            super::ends("demo: broadcast condvar", "demo: broadcast mutex"),
            ("demo: broadcast condvar".into(), "…mutex".into())
        );
        assert_eq!(super::ends("0x10", "0x20"), ("0x10".into(), "0x20".into()));
        assert_eq!(super::ends("a b", "a b"), ("a b".into(), "a b".into()));
    }
}
