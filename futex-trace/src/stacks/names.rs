//! How a trace names what it saw: futex words by the labels a source knows (the demo's locks) or the
//! static symbol they lie in, else their address. Every view (report, flamegraph, pprof, metrics, the
//! dashboard) names words through [`Names`], so a word reads the same everywhere.

use std::collections::HashMap;

use super::StackTable;

/// The names a trace knows: its labels, and its stack table (symbols of static words, frames).
#[derive(Clone, Copy, Debug)]
pub struct Names<'a> {
    /// Names of addresses the source knows (the demo's locks, a recording's labels).
    pub labels: &'a HashMap<u64, String>,
    /// The stacks and symbols (`None`: the source has no stacks).
    pub stacks: Option<&'a StackTable>,
}

impl<'a> Names<'a> {
    pub fn new(labels: &'a HashMap<u64, String>, stacks: Option<&'a StackTable>) -> Self {
        Names { labels, stacks }
    }

    /// The name of word `addr` of process `pid`, if it has one: its label, or the static it lies in.
    pub fn label(&self, pid: u32, addr: u64) -> Option<&'a str> {
        self.labels
            .get(&addr)
            .or_else(|| self.stacks?.addr_symbols.get(&(pid, addr)))
            .map(String::as_str)
    }

    /// The name of process `pid` (its `comm`), as the stack table knows it; empty if it does not.
    pub fn process_name(&self, pid: u32) -> String {
        (self.stacks.and_then(|t| t.processes.get(&pid)))
            .map(|p| p.comm.clone())
            .unwrap_or_default()
    }

    /// The name of word `addr` of process `pid`: its label, else its address in hex.
    pub fn word(&self, pid: u32, addr: u64) -> String {
        self.label(pid, addr)
            .map_or_else(|| hex(addr), str::to_string)
    }
}

/// An address as reports write it: `0x7f3a…`.
pub fn hex(addr: u64) -> String {
    format!("{addr:#x}")
}

/// A thread's name as every view groups threads (a flamegraph frame, a site's threads): runs of digits folded (`ledger-3` → `ledger-N`), so that the
/// threads of one pool make one tower, and pools of different roles stay apart. A thread named as its
/// process (a main thread, threads never named) keeps the name whole.
pub fn thread_group(name: &str, comm: &str) -> String {
    if name == comm {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}
