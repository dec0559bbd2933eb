//! The `?` popup: keys and what each panel shows.

use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::centered;

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
