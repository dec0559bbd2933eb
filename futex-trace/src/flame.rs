//! Flamegraphs of where threads wait (or who wakes them), weighted by nanoseconds waited: folded stacks
//! and SVG through inferno.

use std::io::{self, Write};

use crate::model::{Model, StackKey, StackStats};
use crate::stacks::StackTable;

/// Which side of a wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The waiting threads' stacks, weighted by the time they waited.
    Waiters,
    /// The waking threads' stacks, weighted by the time waited by the waiters they released.
    Wakers,
}

/// Folded stacks (`process;outer;...;inner nanoseconds`), sorted, one line per stack. Frame names have
/// `;` replaced, since it separates frames.
pub fn folded(model: &Model, stacks: &StackTable, side: Side) -> Vec<String> {
    let by: &std::collections::HashMap<StackKey, StackStats> = match side {
        Side::Waiters => &model.stacks,
        Side::Wakers => &model.waker_stacks,
    };
    let mut lines: Vec<String> = by
        .iter()
        .filter(|(_, s)| s.wait_ns > 0)
        .map(|(&key, s)| {
            let (pid, _) = key;
            let comm = stacks
                .processes
                .get(&pid)
                .map(|p| p.comm.as_str())
                .filter(|c| !c.is_empty())
                .unwrap_or("?");
            let mut line = format!("{comm} ({pid})");
            for f in stacks.frame_names(key) {
                line.push(';');
                line.push_str(&f.replace(';', ":"));
            }
            line.push(' ');
            line.push_str(&s.wait_ns.to_string());
            line
        })
        .collect();
    lines.sort();
    lines
}

/// Renders folded lines as an SVG flamegraph.
pub fn svg(lines: &[String], title: &str, subtitle: &str, out: impl Write) -> io::Result<()> {
    let mut opt = inferno::flamegraph::Options::default();
    opt.title = title.to_string();
    opt.subtitle = Some(subtitle.to_string());
    opt.count_name = "ns".into();
    opt.name_type = "Function:".into();
    if lines.is_empty() {
        // inferno refuses an empty input; an empty graph that says why is more useful.
        let empty = ["no waits with a captured stack 1".to_string()];
        return inferno::flamegraph::from_lines(&mut opt, empty.iter().map(String::as_str), out)
            .map_err(io::Error::other);
    }
    inferno::flamegraph::from_lines(&mut opt, lines.iter().map(String::as_str), out)
        .map_err(io::Error::other)
}
