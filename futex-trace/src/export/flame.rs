//! Flamegraphs of where threads wait (or who wakes them), weighted by nanoseconds waited: folded stacks
//! and SVG through inferno.

use std::io::{self, Write};

use std::collections::BTreeMap;

use super::{stack_weights, Show};
use crate::sites::Analysis;
use crate::stacks::StackTable;

pub use crate::model::Side;

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

/// Folded stacks (`process;thread;outer;...;inner nanoseconds`), sorted, one line per distinct stack:
/// the processes of one name together, their threads by name (when known); a stack cut short says so
/// (`[truncated]`) rather than passing for a whole one. Frame names have `;` replaced.
pub fn folded(an: &Analysis<'_>, stacks: &StackTable, side: Side, show: Show) -> Vec<String> {
    let mut by_line: BTreeMap<String, u64> = BTreeMap::new();
    for (((pid, id), tid), (ns, class)) in stack_weights(an, side) {
        if ns == 0 || !show.keeps(class) {
            continue;
        }
        let comm = stacks
            .processes
            .get(&pid)
            .map(|p| p.comm.as_str())
            .filter(|c| !c.is_empty())
            .unwrap_or("?");
        let mut line = comm.replace(';', ":");
        if let Some(name) = tid.and_then(|t| an.model.threads.get(&(pid, t))) {
            line.push(';');
            line.push_str(&crate::stacks::thread_group(&name.as_str(), comm).replace(';', ":"));
        }
        if stacks.truncated.contains(&(pid, id)) {
            line.push_str(";[truncated]");
        }
        for f in stacks.frame_names((pid, id)) {
            line.push(';');
            line.push_str(&f.replace(';', ":"));
        }
        *by_line.entry(line).or_default() += ns;
    }
    by_line
        .into_iter()
        .map(|(l, ns)| self::line(&l, ns))
        .collect()
}

/// Folded lines by lock, for traces without stacks (`--no-stacks`, old demo recordings):
/// `process;class;lock ns`.
pub fn folded_by_lock(an: &Analysis<'_>, show: Show) -> Vec<String> {
    let mut lines: Vec<String> = (an.model.addresses.iter())
        .filter(|(_, a)| a.wait_ns_total > 0)
        .filter(|(&w, _)| show.keeps(an.word_class(w)))
        .map(|(&(pid, addr), a)| {
            let name = an
                .names
                .labels
                .get(&addr)
                .cloned()
                .unwrap_or_else(|| format!("{addr:#x}"));
            let kind = format!("{:?}", a.kind()).to_lowercase();
            line(
                &format!("pid {pid};{kind};{}", name.replace(';', ":")),
                a.wait_ns_total,
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The folded lines of a flamegraph and the title that says what it measures: by stack when the trace
/// has stacks, else by lock (a recording made without stacks); the waits `show` keeps.
pub fn graph(an: &Analysis<'_>, side: Side, show: Show) -> (Vec<String>, String) {
    let show = show.resolve(an);
    let (lines, what) = match (an.names.stacks, side) {
        (Some(t), Side::Waiters) => (
            folded(an, t, side, show),
            "Where threads wait on futexes: time waited",
        ),
        (Some(t), Side::Wakers) => (
            folded(an, t, side, show),
            "Who wakes waiting threads: time waited by the threads each stack woke",
        ),
        (None, _) => (
            folded_by_lock(an, show),
            "Where threads wait: time waited, by lock (this source records no stacks)",
        ),
    };
    (lines, format!("{what} — {}", show.says()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn frames_ending_in_a_number_are_not_read_as_counts() {
        assert_eq!(super::line("p;mutex;lock 0", 5), "p;mutex;lock #0 5");
        assert_eq!(super::line("p;main", 5), "p;main 5");
        assert_eq!(super::line("p;[unknown] 0x12", 5), "p;[unknown] 0x12 5");
    }
}
