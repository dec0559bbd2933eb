//! The `?` popup: keys and what each panel shows.

use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use super::centered;

pub fn draw_help(f: &mut Frame) {
    let area = centered(f.area(), 60, 21);
    let lines: Vec<Line> = [
        "q / Esc   quit",
        "p         pause or resume (replay: pause playback)",
        "f         write a flamegraph (SVG) of what is shown",
        "+ / -     replay: faster / slower;  n: one second on",
        "Tab       move between Top locks and Requeue movement",
        "j k ↑ ↓   select a row",
        "Enter     details of the selected lock",
        "s         sort locks: total wait, waits/s, p99",
        "b         buckets: the kernel's, --slots what-if,",
        "          futex-core's",
        "?         this help",
        "",
        "Idle waits (condvar) are counted apart from locks.",
        "Buckets, kernel traces (-p, --): the process's own",
        "kernel futex hash (Linux 6.17+), a row per bucket;",
        "red ⚠: words sharing one lock and wait list.",
        "futex-core's: its sleep queues (demo, --usdt), or",
        "its hash of kernel addresses (a what-if).",
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
