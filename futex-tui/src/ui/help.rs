//! The `?` popup: keys and what each panel shows.

use ratatui::text::Line;
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::Frame;

use crate::app::App;

use super::{centered, ns};

pub fn draw_help(f: &mut Frame, app: &App) {
    let lines: Vec<Line> = [
        "Keys  q/Esc quit (Esc first closes a popup) · p pause · f flamegraph (SVG)",
        "  j k ↑ ↓ select (or click; the wheel scrolls) · Tab: locks / requeues",
        "  Enter: the selected site's or word's detail (or click it again) · s sort",
        "  b buckets: the kernel's, the --slots what-if, futex-core's · ? help",
        "  replay: + / - speed, n one second on, p pauses playback",
        "  v: wait sites / futex words (sites need stacks: eBPF sources, the demo)",
        "Where threads wait: each site is a place in the program (the frame above",
        "  the lock's plumbing), every thread and word there together, classed by",
        "  behaviour: lock, hand-off (contention); work, sleep (idle); unclassified.",
        "Top words: contention per futex word; now = threads waiting now; bkt =",
        "  its bucket in the buckets panel.",
        "Buckets: kernel traces show the process's own kernel futex hash (Linux",
        "  6.17+); otherwise futex-core's queues (demo, --usdt) or its hash of",
        "  the addresses (a what-if). Bar and rate: waits that slept per second;",
        "  red ⚠: words that share a bucket (one lock, one list of waiters).",
        "Activity: per second, newest right: waits that slept, time waited, and",
        "  the p99 of wake-to-return (process) or of time waited (selected lock).",
        "Requeue movement: waiters moved from one word to another (condvars).",
        "Wakeup latency: percentiles interpolated within their log2 bucket.",
        "Colours",
        &format!(
            "  latency: green < {} ≤ yellow < {} ≤ red (--warn, --crit)",
            ns(app.thresholds.warn_ns),
            ns(app.thresholds.crit_ns)
        ),
        "  yellow: contention · dim: idle · magenta: unclassified · red in the",
        "  header: lost events, a damaged recording · cyan border: focused panel",
    ]
    .into_iter()
    .map(|l| Line::from(l.to_string()))
    .collect();
    let area = centered(f.area(), 78, lines.len() as u16 + 2);
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Help ")),
        area,
    );
}
