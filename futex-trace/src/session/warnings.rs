//! What a reader of a trace must know, said the same way by every view.

use crate::model::Model;
use crate::stacks::{StackTable, SHORT_STACKS_HELP};
use crate::trace::TraceEnd;

/// What a reader of a trace must know: losses, and stacks cut short.
pub fn trace_warnings(
    model: &Model,
    stacks: Option<&StackTable>,
    end: Option<&TraceEnd>,
) -> Vec<String> {
    let mut w = Vec::new();
    if let Some(end) = end {
        if end.lost_events > 0 {
            w.push(format!(
                "{} events were lost (the ring buffer was full, or a call's return was not seen): \
                 counts are lower bounds",
                end.lost_events
            ));
        }
        if end.untraced_calls > 0 {
            w.push(format!(
                "{} futex calls were not counted (no room in the kernel's maps for their thread or \
                 their futex word: more than 65,536 of either)",
                end.untraced_calls
            ));
        }
        if end.missed_runs > 0 {
            w.push(format!(
                "the kernel skipped {} runs of futex-trace's eBPF programs (they would have started \
                 while another BPF program ran on that CPU, e.g. an interrupt that woke a task during \
                 one): a traced waiter's wakeup among them lost its waker, wake-to-return time and \
                 scheduler delay (the counts are whole)",
                end.missed_runs
            ));
        }
        if end.stack_errors > 0 {
            w.push(format!(
                "{} stacks could not be stored (their ring was full: a burst of sampled waits, raise \
                 --ring-size; with --unwind fp, the kernel's stack map full or a hash collision)",
                end.stack_errors
            ));
        }
    }
    if let Some(stacks) = stacks {
        let weights = || model.stacks.iter().map(|(k, s)| (k, s.wait_ns));
        let short = stacks.short_stack_share(weights());
        let cut = stacks.truncated_share(weights());
        if short > 0.5 {
            w.push(SHORT_STACKS_HELP.to_string());
        } else if cut > 0.1 {
            let into_jit = stacks.cut_in_jit_share(weights());
            let cause = if into_jit * 2.0 > cut {
                "a frame-pointer walk through JIT code that keeps no frame pointers (a JVM: start it \
                 with -XX:+PreserveFramePointer)"
                    .to_string()
            } else {
                "a stack deeper than its copy (a process's copies grow to the largest once its \
                 stacks are seen to be deeper: its first ones may be cut; --stack-bytes sets where \
                 they start), or a frame-pointer walk (--unwind fp) through code without frame \
                 pointers"
                    .to_string()
            };
            w.push(format!(
                "{:.0}% of the sampled waiting time is in stacks cut short (truncated): {cause}",
                cut * 100.0
            ));
        }
        w.extend(unnamed_jit(stacks, model));
        w.extend(python_unnamed(stacks));
        w.extend(replaced_binaries(stacks));
    }
    w
}

/// The code V8 interprets every JavaScript function with (by its name in node's own symbols).
const V8_INTERPRETER: &str = "Builtins_InterpreterEntryTrampoline";

/// Processes whose waits pass through JIT code that no perf map names, with what would name it, by
/// runtime (the share is of the sampled waiting time).
fn unnamed_jit(stacks: &StackTable, model: &Model) -> Vec<String> {
    let mut by_pid: std::collections::BTreeMap<u32, (u64, u64)> = Default::default();
    for (key, s) in &model.stacks {
        let Some(ips) = stacks.stacks.get(key) else {
            continue;
        };
        let e = by_pid.entry(key.0).or_default();
        e.1 += s.wait_ns;
        let name = |ip: u64| stacks.symbols.get(&(key.0, ip)).and_then(|n| n.first());
        let unnamed = (ips.iter()).any(|&ip| stacks.in_jit(key.0, ip) && name(ip).is_none());
        // V8's interpreter runs every function in one piece of code: the innermost JavaScript frame
        // is the interpreter's, not the function's, unless V8 gives each function its own copy.
        let interpreted = (ips.iter().filter_map(|&ip| name(ip)))
            .find(|n| n.starts_with("js::") || *n == V8_INTERPRETER)
            .is_some_and(|n| n == V8_INTERPRETER);
        let unnamed = unnamed || interpreted;
        if unnamed {
            e.0 += s.wait_ns;
        }
    }
    (by_pid.into_iter())
        .filter(|(_, (unnamed, all))| *unnamed * 10 > *all)
        .map(|(pid, (unnamed, all))| {
            let maps = || stacks.processes.get(&pid).into_iter().flat_map(|p| &p.maps);
            let how = if maps().any(|m| m.path.ends_with("/libjvm.so")) {
                format!(
                    "a JVM: start it with -XX:+PreserveFramePointer, and run `jcmd {pid} \
                     Compiler.perfmap` as its user while tracing (or start it with \
                     -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit)"
                )
            } else if maps().any(|m| m.path.ends_with("/node") || m.path.contains("/libnode.so")) {
                "Node: start it with --perf-basic-prof --interpreted-frames-native-stack"
                    .to_string()
            } else {
                format!("its runtime must write the perf map /tmp/perf-{pid}.map")
            };
            format!(
                "{:.0}% of pid {pid}'s sampled waiting time passes through JIT or interpreted code \
                 without names (shown as {} or {V8_INTERPRETER}): {how}",
                unnamed as f64 * 100.0 / all.max(1) as f64,
                crate::stacks::UNNAMED_JIT
            )
        })
        .collect()
}

/// CPython processes whose Python functions no stack names: a version whose frames are not read.
fn python_unnamed(stacks: &StackTable) -> Vec<String> {
    let mut out = Vec::new();
    for (&pid, p) in &stacks.processes {
        let version = (p.maps.iter()).find_map(|m| crate::stacks::cpython_minor(&m.path));
        let Some(minor) = version else { continue };
        let named = (stacks.symbols.range((pid, 0)..=(pid, u64::MAX)))
            .any(|(_, n)| n.iter().any(|n| n.starts_with("py::")));
        if named || !stacks.stacks.keys().any(|k| k.0 == pid) {
            continue;
        }
        let how = if minor >= 12 {
            "start it with -X perf (or PYTHONPERFSUPPORT=1): its perf map names them"
        } else {
            "futex-trace reads the interpreter frames of CPython 3.11 only"
        };
        out.push(format!(
            "pid {pid} runs Python 3.{minor}, and no stack names its Python functions: {how}"
        ));
    }
    out
}

/// Files replaced on disk since a process mapped them (a package upgrade), whose frames have no names
/// because the running copy could not be read: said plainly, with what would have read it.
fn replaced_binaries(stacks: &StackTable) -> Vec<String> {
    let mut said = std::collections::BTreeSet::new();
    if !(stacks.processes.values()).any(|p| p.maps.iter().any(|m| m.deleted)) {
        return Vec::new();
    }
    for (&(pid, _), ips) in &stacks.stacks {
        for &ip in ips {
            let Some(m) = stacks.mapping_of(pid, ip) else {
                continue;
            };
            if m.deleted
                && !stacks.symbols.contains_key(&(pid, ip))
                && crate::stacks::mapped_file(pid, m).is_none()
            {
                said.insert((m.path.clone(), pid));
            }
        }
    }
    (said.into_iter())
        .map(|(path, pid)| {
            format!(
                "{path} was replaced on disk after pid {pid} mapped it, and the running copy could \
                 not be read (the process has ended, or /proc/{pid}/map_files needs root): its frames \
                 are unnamed rather than named from the new file"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::stacks::{Mapping, ProcessInfo, StackTable};

    #[test]
    fn a_python_whose_functions_no_stack_names_is_told_what_would() {
        let mut t = StackTable::default();
        let map = |path: &str| Mapping {
            start: 0x1000,
            end: 0x2000,
            offset: 0,
            path: path.into(),
            exec: true,
            dev: String::new(),
            inode: 0,
            deleted: false,
        };
        for (pid, path) in [
            (1, "/usr/bin/python3.12"),
            (2, "/usr/lib/libpython3.10.so.1.0"),
        ] {
            t.processes.insert(
                pid,
                ProcessInfo {
                    maps: vec![map(path)],
                    ..Default::default()
                },
            );
            t.stacks.insert((pid, 1), vec![0x1100]);
        }
        let w = super::python_unnamed(&t);
        assert!(
            w[0].contains("Python 3.12") && w[0].contains("-X perf"),
            "{w:?}"
        );
        assert!(
            w[1].contains("Python 3.10") && w[1].contains("3.11 only"),
            "{w:?}"
        );
        // Named (a 3.12 with -X perf): nothing to say of it.
        t.symbols.insert((1, 0x1100), vec!["py::app.handle".into()]);
        assert_eq!(super::python_unnamed(&t).len(), 1);
    }

    #[test]
    fn a_replaced_binary_whose_copy_cannot_be_read_is_said_and_a_named_one_is_not() {
        // A pid no process has, a file no longer there: nothing can read the mapped copy.
        let pid = 0x7fff_fff0;
        let mut t = StackTable::default();
        t.processes.insert(
            pid,
            ProcessInfo {
                comm: "app".into(),
                maps: vec![Mapping {
                    start: 0x1000,
                    end: 0x2000,
                    offset: 0,
                    path: "/nonexistent/app".into(),
                    exec: true,
                    dev: "08:01".into(),
                    inode: 7,
                    deleted: true,
                }],
                cgroup: String::new(),
            },
        );
        t.stacks.insert((pid, 1), vec![0x1100]);
        let w = super::replaced_binaries(&t);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("/nonexistent/app was replaced on disk"),
            "{w:?}"
        );
        // Named while it ran (through map_files): nothing to say.
        t.symbols.insert((pid, 0x1100), vec!["main".into()]);
        assert!(super::replaced_binaries(&t).is_empty());
    }
}
