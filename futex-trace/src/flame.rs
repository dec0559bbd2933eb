//! Flamegraphs of where threads wait (or who wakes them), weighted by nanoseconds waited: folded stacks
//! and SVG through inferno.

use std::io::{self, Write};

use crate::model::{Model, StackKey, StackStats};
use crate::stacks::StackTable;

/// Which side of a wait.
#[cfg(test)]
mod tests {
    #[test]
    fn frames_ending_in_a_number_are_not_read_as_counts() {
        assert_eq!(super::line("p;mutex;lock 0", 5), "p;mutex;lock #0 5");
        assert_eq!(super::line("p;main", 5), "p;main 5");
        assert_eq!(super::line("p;[unknown] 0x12", 5), "p;[unknown] 0x12 5");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The waiting threads' stacks, weighted by the time they waited.
    Waiters,
    /// The waking threads' stacks, weighted by the time waited by the waiters they released.
    Wakers,
}

/// A folded line `stack count`. A stack whose innermost frame ends in a number ("lock 0") would be read
/// by inferno as a differential line (two counts), so such a number gets a `#`.
fn line(stack: &str, count: u64) -> String {
    let (head, last) = stack.rsplit_once(' ').unwrap_or(("", stack));
    if !head.is_empty() && !last.contains(';') && last.parse::<f64>().is_ok() {
        format!("{head} #{last} {count}")
    } else {
        format!("{stack} {count}")
    }
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
            self::line(&line, s.wait_ns)
        })
        .collect();
    lines.sort();
    lines
}

/// Folded lines by lock, for traces without stacks (`--no-stacks`, old demo recordings):
/// `process;kind;lock ns`.
pub fn folded_by_lock(
    model: &Model,
    labels: &std::collections::HashMap<u64, String>,
) -> Vec<String> {
    let mut lines: Vec<String> = model
        .addresses
        .iter()
        .filter(|(_, a)| a.wait_ns_total > 0)
        .map(|((_, addr), a)| {
            let name = labels
                .get(addr)
                .cloned()
                .unwrap_or_else(|| format!("{addr:#x}"));
            let kind = format!("{:?}", a.kind()).to_lowercase();
            line(
                &format!("pid {};{kind};{}", a.pid, name.replace(';', ":")),
                a.wait_ns_total,
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The folded lines of a flamegraph and the title that says what it measures: by stack when `stacks`
/// is given, else by lock (a recording made without stacks).
pub fn graph(
    model: &Model,
    stacks: Option<&StackTable>,
    labels: &std::collections::HashMap<u64, String>,
    side: Side,
) -> (Vec<String>, &'static str) {
    match (stacks, side) {
        (Some(t), Side::Waiters) => (
            folded(model, t, side),
            "Where threads wait on futexes: time waited",
        ),
        (Some(t), Side::Wakers) => (
            folded(model, t, side),
            "Who wakes waiting threads: time waited by the threads each stack woke",
        ),
        (None, _) => (
            folded_by_lock(model, labels),
            "Where threads wait: time waited, by lock (this source records no stacks)",
        ),
    }
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
