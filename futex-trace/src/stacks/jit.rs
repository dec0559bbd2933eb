//! Frames in code a runtime compiled at run time (JIT code: HotSpot's compiled methods and interpreter,
//! V8's bytecode handlers and compiled functions): anonymous executable mappings, without CFI, walked by
//! frame pointers where the runtime keeps them (V8 always; HotSpot with `-XX:+PreserveFramePointer`) and
//! named from the runtime's perf map, `/tmp/perf-PID.map` (`node --perf-basic-prof`, `jcmd PID
//! Compiler.perfmap`, `java -XX:+UnlockDiagnosticVMOptions -XX:+DumpPerfMapAtExit`), the format perf
//! reads: one `START SIZE NAME` line per piece of code, in hex, the latest line for an address winning.
//!
//! Names are made to read like the rest of a stack: a Java method as `pkg.Class.method` (the
//! plumbing and thread-entry tables match the JDK's by that form), a JavaScript function as
//! `js::name (file.js:LINE)` whatever tier compiled it, V8's builtins as the `Builtins_X` their
//! embedded copies in the binary are named.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};

/// The name of a frame in JIT code that no perf map names.
pub const UNNAMED: &str = "[JIT code]";

/// The perf maps of the traced processes, read as they grow.
#[derive(Default)]
pub struct PerfMaps {
    by_pid: HashMap<u32, PerfMap>,
    /// Each [`PerfMaps::round`] reads a map at most once.
    round: u64,
}

#[derive(Default)]
struct PerfMap {
    /// Where it was last read, and how much of it was read.
    path: Option<String>,
    read: u64,
    /// A line cut by the end of what was read (the runtime was writing it).
    partial: String,
    /// The round it was last read in.
    read_in: u64,
    /// Start → (end, name), the latest line for a start winning.
    code: BTreeMap<u64, (u64, String)>,
}

impl PerfMaps {
    /// The name of JIT code address `ip` of process `pid`, reading what its perf map gained since
    /// the last look when `ip` is not known yet
    /// (at most once a [`PerfMaps::round`]).
    pub fn name(&mut self, pid: u32, ip: u64) -> Option<String> {
        let map = self.by_pid.entry(pid).or_default();
        if let Some(n) = map.lookup(ip) {
            return Some(n);
        }
        if map.read_in == self.round {
            return None;
        }
        map.read_in = self.round;
        map.grow(pid);
        map.lookup(ip)
    }

    /// Starts a round of lookups: each map is read again, once, if an address is not in it.
    pub fn round(&mut self) {
        self.round += 1;
    }
}

impl PerfMap {
    fn lookup(&self, ip: u64) -> Option<String> {
        // The nearest starts below: code is moved and freed, so a later, shorter piece may start
        // between an older one's start and `ip`.
        (self.code.range(..=ip).rev().take(8))
            .find(|(_, (end, _))| ip < *end)
            .map(|(_, (_, n))| n.clone())
    }

    /// Reads what was appended since the last read. The file is looked for through the process's root
    /// (a container's /tmp, under its own pid), then in this /tmp (a process that has ended, whose
    /// map, written at exit, stays).
    fn grow(&mut self, pid: u32) {
        // Through the root while the process lives; once it has ended (a JVM writes its map as it
        // exits) only this /tmp's copy can be read, the same file for a process not in a container.
        let opened = (self.path.iter().cloned())
            .chain([
                format!(
                    "/proc/{pid}/root/tmp/perf-{}.map",
                    ns_pid(pid).unwrap_or(pid)
                ),
                format!("/tmp/perf-{pid}.map"),
            ])
            .find_map(|p| Some((std::fs::File::open(&p).ok()?, p)));
        let Some((mut f, path)) = opened else { return };
        self.path = Some(path);
        if f.metadata().is_ok_and(|m| m.len() <= self.read)
            || f.seek(SeekFrom::Start(self.read)).is_err()
        {
            return;
        }
        let mut text = String::new();
        let Ok(n) = f.read_to_string(&mut text) else {
            return;
        };
        self.read += n as u64;
        let text = std::mem::take(&mut self.partial) + &text;
        let (whole, rest) = match text.rfind('\n') {
            Some(i) => text.split_at(i + 1),
            None => ("", text.as_str()),
        };
        self.partial = rest.to_string();
        for line in whole.lines() {
            if let Some((start, size, name)) = parse_line(line) {
                self.code.insert(start, (start + size, readable(name)));
            }
        }
    }
}

/// The pid of process `pid` in its own pid namespace (a container's), from `NSpid` in its status.
fn ns_pid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// `START SIZE NAME`, in hex with or without `0x`.
fn parse_line(line: &str) -> Option<(u64, u64, &str)> {
    let mut it = line.splitn(3, ' ');
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let start = hex(it.next()?)?;
    let size = hex(it.next()?)?;
    let name = it.next()?.trim();
    (size > 0 && !name.is_empty()).then_some((start, size, name))
}

/// A perf map's name as the rest of a stack reads (see the module's documentation).
pub(super) fn readable(name: &str) -> String {
    // V8: `JS:*fn /path/file.js:12:5`, the marker saying which tier compiled it (~ interpreted,
    // ^ Sparkplug, + Maglev, * TurboFan); older V8s say `LazyCompile:`.
    for prefix in ["JS:", "LazyCompile:", "Function:"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let rest = rest.trim_start_matches(['~', '^', '+', '*']);
            let (func, at) = rest.split_once(' ').unwrap_or((rest, ""));
            let func = if func.is_empty() { "(anonymous)" } else { func };
            // file:line:column → file:line, the file's last component.
            let at = at.rsplit('/').next().unwrap_or(at);
            let at = match at.rsplit_once(':') {
                Some((fl, col)) if fl.contains(':') && col.bytes().all(|b| b.is_ascii_digit()) => {
                    fl
                }
                _ => at,
            };
            return if at.is_empty() {
                format!("js::{func}")
            } else {
                format!("js::{func} ({at})")
            };
        }
    }
    if let Some(b) = name.strip_prefix("Builtin:") {
        return format!("Builtins_{b}");
    }
    // V8's other code (bytecode handlers, stubs, regular expressions): the runtime's.
    if let Some((kind, rest)) = name.split_once(':') {
        if kind.bytes().all(|b| b.is_ascii_alphabetic()) && !rest.starts_with(':') {
            return format!("v8:{name}");
        }
    }
    // HotSpot: `RETURN-TYPE pkg.Class.method(ARGS)` → `pkg.Class.method`. Python 3.12's trampolines
    // (`py::function:file`) as 3.11's frames read. Anything else is the runtime's own code (HotSpot's
    // interpreter, stubs and adapters): `jit:` says so.
    match name.split_once('(') {
        Some((head, _)) if name.ends_with(')') && !head.ends_with(' ') => {
            head.rsplit(' ').next().unwrap_or(head).to_string()
        }
        _ if name.starts_with("py::") => python_312(name),
        _ => format!("jit:{name}"),
    }
}

/// Python 3.12+'s perf trampolines (`py::QUALNAME:/path/FILE.py`) as CPython 3.11's frames read
/// (`py::MODULE.QUALNAME (FILE)`; no line: the map has none).
fn python_312(name: &str) -> String {
    let rest = &name["py::".len()..];
    let Some((qualname, path)) = rest.split_once(':') else {
        return name.to_string();
    };
    let file = path.rsplit('/').next().unwrap_or(path);
    let module = file.strip_suffix(".py").unwrap_or(file);
    format!("py::{module}.{qualname} ({file})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_like_the_rest_of_a_stack() {
        let cases = [
            (
                "JS:^acquireAccountLock /work/tests/programs/atomics_lock.js:30:28",
                "js::acquireAccountLock (atomics_lock.js:30)",
            ),
            (
                "JS:~waitForJob /srv/app/jobs.js:71:20",
                "js::waitForJob (jobs.js:71)",
            ),
            ("JS:* node:internal/main:1:1", "js::(anonymous) (main:1)"),
            ("LazyCompile:*run /a.js:3", "js::run (a.js:3)"),
            (
                "Builtin:InterpreterEntryTrampoline",
                "Builtins_InterpreterEntryTrampoline",
            ),
            ("BytecodeHandler:Star0", "v8:BytecodeHandler:Star0"),
            (
                "void Bank.transferFunds(int, long, Bank$Acct)",
                "Bank.transferFunds",
            ),
            (
                "boolean java.util.concurrent.locks.ReentrantLock$NonfairSync.tryAcquire(int)",
                "java.util.concurrent.locks.ReentrantLock$NonfairSync.tryAcquire",
            ),
            ("Interpreter", "jit:Interpreter"),
            (
                "monitorenter Runtime1 stub",
                "jit:monitorenter Runtime1 stub",
            ),
            (
                "py::transfer_funds:/srv/bank.py",
                "py::bank.transfer_funds (bank.py)",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(readable(raw), want, "{raw}");
        }
    }

    #[test]
    fn a_perf_map_is_read_as_it_grows_and_its_latest_line_wins() {
        let dir = std::env::temp_dir().join(format!("futex-trace-jit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("perf.map");
        std::fs::write(&path, "1000 100 JS:~first /a.js:1:1\n2000 10").unwrap();
        let mut map = PerfMap {
            path: Some(path.to_string_lossy().into_owned()),
            ..Default::default()
        };
        map.grow(0);
        assert_eq!(map.lookup(0x1050).as_deref(), Some("js::first (a.js:1)"));
        assert_eq!(map.lookup(0x2000), None, "a line still being written");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "0 JS:*second /b.js:2:1\n1000 20 void A.m()").unwrap();
        map.grow(0);
        assert_eq!(map.lookup(0x2005).as_deref(), Some("js::second (b.js:2)"));
        assert_eq!(map.lookup(0x1010).as_deref(), Some("A.m"), "code replaced");
        assert_eq!(map.lookup(0x1050), None, "past the replacing code's end");
        std::fs::remove_dir_all(dir).ok();
    }
}
