//! User stacks: the frames behind stack ids, the memory maps of the traced processes, and their
//! symbolization with blazesym (ELF symbols and DWARF; Rust and C++ names demangled).
//!
//! Maps are read from `/proc/PID/maps` while a process runs, so that its stacks can be symbolized after it
//! has exited: each frame becomes (file, file offset), which blazesym resolves from the file on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use serde::{Deserialize, Serialize};

use crate::model::StackKey;

/// One executable file mapping of a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    /// Offset in the file of `start`.
    pub offset: u64,
    pub path: String,
    /// Code (frames resolve here) rather than data (lock words may be named here).
    #[serde(default = "yes")]
    pub exec: bool,
}

fn yes() -> bool {
    true
}

/// Parses `/proc/PID/maps` text, keeping mappings of files (code and data).
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let range = it.next()?;
            let perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let _inode = it.next()?;
            let path: String = it.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset,
                path: path.trim_end_matches(" (deleted)").to_string(),
                exec: perms.contains('x'),
            })
        })
        .collect()
}

/// What is known of a traced process: its name and the executable mappings seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub comm: String,
    pub maps: Vec<Mapping>,
}

/// The stacks and processes of a trace: enough to symbolize it later, even after the processes exited.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StackTable {
    /// (pid, stack id) → instruction pointers, innermost first.
    pub stacks: BTreeMap<(u32, u32), Vec<u64>>,
    pub processes: BTreeMap<u32, ProcessInfo>,
    /// (pid, ip) → frame names (the function, then the functions inlined into it, outermost first).
    pub symbols: BTreeMap<(u32, u64), Vec<String>>,
    /// (pid, futex word address) → the symbol it lies in (a static lock: `app::GLOBAL_LOCK`).
    pub addr_symbols: BTreeMap<(u32, u64), String>,
    /// Stacks cut short: at a frame outside every executable mapping (a frame-pointer walk into a
    /// function without one), or at the end of the copy unwound, before the thread's first frame.
    #[serde(default)]
    pub truncated: BTreeSet<(u32, u32)>,
    /// The wait class of each symbolized stack ([`StackTable::classify`]); derived, never stored.
    #[serde(skip)]
    pub kinds: BTreeMap<(u32, u32), crate::event::WaitKind>,
}

/// Equal stacks, processes and names; the wait classes are derived from them (and a rule), not compared.
impl PartialEq for StackTable {
    fn eq(&self, o: &StackTable) -> bool {
        // Destructured, so that a field added later must be placed here (compared or not).
        let StackTable {
            stacks,
            processes,
            symbols,
            addr_symbols,
            truncated,
            kinds: _,
        } = self;
        *stacks == o.stacks
            && *processes == o.processes
            && *symbols == o.symbols
            && *addr_symbols == o.addr_symbols
            && *truncated == o.truncated
    }
}

impl Eq for StackTable {}

impl StackTable {
    /// Adds `other` to this table (a recording's STACKS chunks each add what was new): its stacks,
    /// symbols and names, and each process's name and mappings not seen yet.
    pub fn merge(&mut self, other: StackTable) {
        self.kinds.extend(other.kinds);
        self.stacks.extend(other.stacks);
        self.truncated.extend(other.truncated);
        self.symbols.extend(other.symbols);
        self.addr_symbols.extend(other.addr_symbols);
        for (pid, info) in other.processes {
            let p = self.processes.entry(pid).or_default();
            if !info.comm.is_empty() {
                p.comm = info.comm;
            }
            for m in info.maps {
                if !p.maps.contains(&m) {
                    p.maps.push(m);
                }
            }
        }
    }

    /// What `self` holds that `written` (what was already written) does not: the next STACKS chunk.
    pub fn since(&self, written: &StackTable) -> StackTable {
        StackTable {
            stacks: (self.stacks.iter())
                .filter(|(k, _)| !written.stacks.contains_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            truncated: (self.truncated.iter())
                .filter(|k| !written.truncated.contains(k))
                .copied()
                .collect(),
            kinds: BTreeMap::new(),
            symbols: (self.symbols.iter())
                .filter(|(k, _)| !written.symbols.contains_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            addr_symbols: (self.addr_symbols.iter())
                .filter(|(k, _)| !written.addr_symbols.contains_key(k))
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            processes: (self.processes.iter())
                .filter_map(|(pid, info)| {
                    let old = written.processes.get(pid);
                    let maps: Vec<Mapping> = (info.maps.iter())
                        .filter(|m| !old.is_some_and(|o| o.maps.contains(m)))
                        .cloned()
                        .collect();
                    let renamed = old.is_none_or(|o| o.comm != info.comm);
                    (renamed || !maps.is_empty()).then(|| {
                        (
                            *pid,
                            ProcessInfo {
                                comm: info.comm.clone(),
                                maps,
                            },
                        )
                    })
                })
                .collect(),
        }
    }

    /// Adds stack `key` (instruction pointers, innermost first), cut at its first frame outside every
    /// executable mapping of its process: such a frame is a walk gone astray (a frame pointer that is
    /// not one), never drawn; the stack is then marked truncated, as it is when `truncated` is given.
    pub fn add_stack(&mut self, key: StackKey, mut ips: Vec<u64>, truncated: bool) {
        let (pid, _) = key;
        let known = self.processes.get(&pid).is_some_and(|p| !p.maps.is_empty());
        let cut = if known {
            ips.iter().position(|&ip| self.locate(pid, ip).is_none())
        } else {
            None
        };
        if let Some(i) = cut {
            ips.truncate(i);
        }
        if truncated || cut.is_some() {
            self.truncated.insert(key);
        }
        self.stacks.insert(key, ips);
    }

    /// The share (0..=1) of the given stacks, weighted, that were cut short.
    pub fn truncated_share<'a>(&self, weighted: impl Iterator<Item = (&'a StackKey, u64)>) -> f64 {
        let (mut cut, mut all) = (0u64, 0u64);
        for (key, w) in weighted {
            if self.stacks.contains_key(key) {
                all += w;
                if self.truncated.contains(key) {
                    cut += w;
                }
            }
        }
        if all == 0 {
            0.0
        } else {
            cut as f64 / all as f64
        }
    }

    /// Nothing in it.
    pub fn is_empty(&self) -> bool {
        self.truncated.is_empty()
            && self.stacks.is_empty()
            && self.symbols.is_empty()
            && self.addr_symbols.is_empty()
            && self.processes.is_empty()
    }

    /// Reads (again) the maps and name of a running process; mappings seen before are kept, so that
    /// libraries unloaded since still resolve.
    pub fn refresh_process(&mut self, pid: u32) {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
            return;
        };
        let p = self.processes.entry(pid).or_default();
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) {
            p.comm = comm.trim().to_string();
        }
        for m in parse_maps(&text) {
            if !p.maps.contains(&m) {
                p.maps.push(m);
            }
        }
    }

    /// The code mapping holding `ip` in process `pid`: (file, offset in the file).
    pub fn locate(&self, pid: u32, ip: u64) -> Option<(&str, u64)> {
        self.locate_in(pid, ip, true)
    }

    fn locate_in(&self, pid: u32, addr: u64, code: bool) -> Option<(&str, u64)> {
        self.processes.get(&pid)?.maps.iter().rev().find_map(|m| {
            (m.start <= addr && addr < m.end && (m.exec || !code))
                .then(|| (m.path.as_str(), addr - m.start + m.offset))
        })
    }

    /// The file a data address belongs to, and its offset from the file's load base (the ELF virtual
    /// address, for a PIE or a library): the file mapped last below it — `.bss` lies in the anonymous
    /// mapping right after its file's data.
    fn locate_data(&self, pid: u32, addr: u64) -> Option<(&str, u64)> {
        let maps = &self.processes.get(&pid)?.maps;
        let below = maps
            .iter()
            .filter(|m| m.start <= addr)
            .max_by_key(|m| m.start)?;
        let base = maps
            .iter()
            .filter(|m| m.path == below.path)
            .map(|m| m.start.saturating_sub(m.offset))
            .min()?;
        // Farther than 1 GiB past its file's last mapping is not that file's .bss.
        if addr - below.end.min(addr) >= 1 << 30 {
            return None;
        }
        let (exec, end) = elf_layout(&below.path)?;
        // A non-PIE executable (ELF type EXEC) is linked at its run-time addresses.
        let virt = if exec { addr } else { addr - base };
        // Past the end of its loaded segments (`.bss` included) is the heap or another mapping.
        (virt < end).then_some((below.path.as_str(), virt))
    }

    /// Names the futex words that lie in a file's loaded segments (statics), where its symbols say.
    /// Words on the heap or a stack have no name and are skipped.
    pub fn symbolize_addresses(&mut self, addrs: &[(u32, u64)], symbolizer: &Symbolizer) {
        for &(pid, addr) in addrs {
            if self.addr_symbols.contains_key(&(pid, addr)) {
                continue;
            }
            let Some((path, virt)) = self.locate_data(pid, addr) else {
                continue;
            };
            let src = Source::Elf(Elf::new(path));
            if let Ok(Symbolized::Sym(s)) =
                symbolizer.symbolize_single(&src, Input::VirtOffset(virt))
            {
                let name = if s.offset == 0 {
                    demangle(&s.name)
                } else {
                    format!("{}+{:#x}", s.name, s.offset)
                };
                self.addr_symbols.insert((pid, addr), name);
            }
        }
    }

    /// Symbolizes every frame not yet symbolized. Frames blazesym cannot name stay absent and print
    /// as `file+0xoffset` (see [`StackTable::frame_names`]).
    pub fn symbolize(&mut self) {
        self.symbolize_with(&new_symbolizer());
    }

    /// As [`StackTable::symbolize`], with a symbolizer kept between calls (it caches parsed files).
    pub fn symbolize_with(&mut self, symbolizer: &Symbolizer) {
        // Group the frames by file, so each file is opened once.
        // file → [((pid, ip), offset in the file)]
        type Frames = Vec<((u32, u64), u64)>;
        let mut by_file: HashMap<String, Frames> = HashMap::new();
        for (&(pid, _), ips) in &self.stacks {
            for &ip in ips {
                if self.symbols.contains_key(&(pid, ip)) {
                    continue;
                }
                // Return addresses point after the call: look up the call itself.
                if let Some((path, off)) = self.locate(pid, ip) {
                    by_file
                        .entry(path.to_string())
                        .or_default()
                        .push(((pid, ip), off.saturating_sub(1)));
                }
            }
        }
        for (path, frames) in by_file {
            let src = Source::Elf(Elf::new(&path));
            let offsets: Vec<u64> = frames.iter().map(|f| f.1).collect();
            let Ok(syms) = symbolizer.symbolize(&src, Input::FileOffset(&offsets)) else {
                continue;
            };
            for ((key, _), sym) in frames.iter().zip(syms) {
                if let Symbolized::Sym(s) = sym {
                    let mut names = vec![demangle(&s.name)];
                    names.extend(s.inlined.iter().map(|f| demangle(&f.name)));
                    self.symbols.insert(*key, names);
                }
            }
        }
    }

    /// The frames of a stack, outermost first, as names: symbols where known, else `file+0xoffset`,
    /// else the raw address. Inlined functions appear as frames of their own.
    pub fn frame_names(&self, key: StackKey) -> Vec<String> {
        self.frames_located(key, false)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// As [`StackTable::frame_names`], each with the file its code is in (`None`: not in a file).
    pub fn frames(&self, key: StackKey) -> Vec<(String, Option<&str>)> {
        self.frames_located(key, true)
    }

    /// The frames of a stack; a symbolized frame's file is looked up only if `files` (the lookup is a
    /// walk of the process's mappings, and names alone do not need it).
    fn frames_located(&self, key: StackKey, files: bool) -> Vec<(String, Option<&str>)> {
        let (pid, _) = key;
        let Some(ips) = self.stacks.get(&key) else {
            return vec![("[stack not captured]".into(), None)];
        };
        let mut out = Vec::with_capacity(ips.len());
        for &ip in ips.iter().rev() {
            let names = self.symbols.get(&(pid, ip));
            let at = (files || names.is_none())
                .then(|| self.locate(pid, ip))
                .flatten();
            match (names, at) {
                (Some(names), _) => out.extend(names.iter().map(|n| (n.clone(), at.map(|a| a.0)))),
                (None, Some((path, off))) => {
                    let file = path.rsplit('/').next().unwrap_or(path);
                    out.push((format!("{file}+{off:#x}"), Some(path)));
                }
                (None, None) => out.push((format!("[unknown] {ip:#x}"), None)),
            }
        }
        out
    }

    /// Where in a stack (an index into [`StackTable::frame_names`]) the program itself waited: its
    /// innermost frame outside the threading library. The library is decided by the file a frame's
    /// code is in (glibc's libc and libpthread, the dynamic loader, libstdc++, libgcc); code linked into
    /// the program (Rust's std, parking_lot, futex-core) by the crate its name is in.
    pub fn program_frame(&self, key: StackKey) -> Option<usize> {
        let frames = self.frames(key);
        frames
            .iter()
            .rposition(|(name, file)| !threading_library(name, *file))
    }

    /// The share (0..=1) of the given stacks, weighted, that have at most two frames: the sign of a
    /// program (or libc) built without frame pointers, whose stacks the kernel cannot walk.
    pub fn short_stack_share<'a>(
        &self,
        weighted: impl Iterator<Item = (&'a StackKey, u64)>,
    ) -> f64 {
        let (mut short, mut all) = (0u64, 0u64);
        for (key, w) in weighted {
            if let Some(ips) = self.stacks.get(key) {
                all += w;
                if ips.len() <= 2 {
                    short += w;
                }
            }
        }
        if all == 0 {
            0.0
        } else {
            short as f64 / all as f64
        }
    }
}

/// Whether a frame belongs to the threading library rather than the program: by the file its code is
/// in, or for code linked into the program, by its crate.
fn threading_library(name: &str, file: Option<&str>) -> bool {
    const FILES: &[&str] = &["libc.so", "libpthread", "ld-linux", "libstdc++", "libgcc_s"];
    const CRATES: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "parking_lot",
        "lock_api::",
        "futex_core::",
    ];
    let base = file.map(|f| f.rsplit('/').next().unwrap_or(f));
    if base.is_some_and(|b| FILES.iter().any(|f| b.starts_with(f))) {
        return true;
    }
    let name = name.trim_start_matches('<');
    CRATES.iter().any(|c| name.starts_with(c))
}

/// A symbolizer. It demangles nothing itself: its demangler reads any name as a C++ type (a C function
/// `w` came out as `wchar_t`), so names are demangled by [`demangle`], which looks at their scheme.
pub fn new_symbolizer() -> Symbolizer {
    Symbolizer::builder().enable_demangling(false).build()
}

/// A symbol's name demangled by its scheme: Rust (`_R`, or `_ZN…17h<hash>E`) without the hash, C++
/// (`_Z`), else as it is (C names are not mangled).
pub fn demangle(name: &str) -> String {
    if name.starts_with("_R") || name.starts_with("_Z") {
        if let Ok(d) = rustc_demangle::try_demangle(name) {
            return format!("{d:#}");
        }
    }
    if name.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(name) {
            if let Ok(d) = sym.demangle() {
                return d;
            }
        }
    }
    name.to_string()
}

/// What to tell a user whose stacks are mostly cut short.
pub const SHORT_STACKS_HELP: &str = "most stacks have at most two frames: they were walked by frame \
pointers (--unwind fp) through code built without them (glibc, distribution packages, Rust release \
builds). Trace with --unwind dwarf (the default), which unwinds from the binaries' CFI; see futex-trace's \
README.";

/// The ELF file at `path`, read lazily (only the parts asked for leave the disk).
fn with_elf<T>(
    path: &str,
    f: impl FnOnce(&object::File<'_, &object::ReadCache<std::fs::File>>) -> Option<T>,
) -> Option<T> {
    let cache = object::ReadCache::new(std::fs::File::open(path).ok()?);
    let file = object::File::parse(&cache).ok()?;
    f(&file)
}

/// The GNU build id of the ELF file at `path` (its `NT_GNU_BUILD_ID` note), in hex, as debuginfod and
/// profilers name files; `None` when it has none or cannot be read.
pub fn build_id(path: &str) -> Option<String> {
    use object::Object;
    with_elf(path, |f| {
        let id = f.build_id().ok()??;
        Some(id.iter().map(|b| format!("{b:02x}")).collect())
    })
}

/// Whether the ELF file at `path` is an executable linked at fixed addresses (type EXEC, not PIE), and
/// the end of its loaded segments' memory (`p_vaddr + p_memsz` of its PT_LOADs: `.bss` ends there).
fn elf_layout(path: &str) -> Option<(bool, u64)> {
    use object::{Object, ObjectSegment};
    with_elf(path, |f| {
        let end = f
            .segments()
            .map(|s| s.address().saturating_add(s.size()))
            .max()?;
        Some((f.kind() == object::ObjectKind::Executable, end))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_id_is_the_one_readelf_reads() {
        let exe = std::env::current_exe().unwrap();
        let id = super::build_id(exe.to_str().unwrap()).expect("this binary has a build id");
        assert!(
            id.len() >= 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        if let Ok(out) = std::process::Command::new("readelf")
            .arg("-n")
            .arg(&exe)
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(&format!("Build ID: {id}")), "{text}");
        }
        assert_eq!(super::build_id("/nonexistent"), None);
    }

    use super::*;

    #[test]
    fn parses_executable_file_mappings() {
        let text = "\
55d4c0a00000-55d4c0a10000 r--p 00000000 08:01 123 /usr/bin/app
55d4c0a10000-55d4c0a80000 r-xp 00010000 08:01 123 /usr/bin/app
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f1000000000-7f1000100000 r-xp 00028000 08:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
7f2000000000-7f2000001000 r-xp 00000000 08:01 789 /tmp/my lib.so (deleted)
";
        let m = parse_maps(text);
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(!m[0].exec && m[1].exec);
        let m: Vec<Mapping> = m.into_iter().filter(|m| m.exec).collect();
        assert_eq!(
            m[0],
            Mapping {
                start: 0x55d4c0a10000,
                end: 0x55d4c0a80000,
                offset: 0x10000,
                path: "/usr/bin/app".into(),
                exec: true,
            }
        );
        assert_eq!(m[2].path, "/tmp/my lib.so");
        let mut t = StackTable::default();
        t.processes.insert(
            1,
            ProcessInfo {
                comm: "app".into(),
                maps: m,
            },
        );
        assert_eq!(t.locate(1, 0x55d4c0a10010), Some(("/usr/bin/app", 0x10010)));
        assert_eq!(t.locate(1, 0x55d4c0a00010), None);
        t.stacks.insert((1, 5), vec![0x55d4c0a10010, 0x1234]);
        assert_eq!(
            t.frame_names((1, 5)),
            vec!["[unknown] 0x1234".to_string(), "app+0x10010".to_string()]
        );
    }

    #[test]
    fn only_mangled_names_are_demangled_by_their_scheme() {
        assert_eq!(demangle("w"), "w");
        assert_eq!(demangle("t"), "t");
        assert_eq!(demangle("take_lock"), "take_lock");
        assert_eq!(demangle("_ZN3foo3bar17h0123456789abcdefE"), "foo::bar");
        assert_eq!(demangle("_RNvCs1234_3foo3bar"), "foo::bar");
        assert_eq!(demangle("_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(demangle("_Z1wv"), "w()");
    }

    #[test]
    fn the_program_frame_is_the_first_outside_the_threading_library() {
        let mut t = StackTable::default();
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        let map = |start, path: &str| Mapping {
            start,
            end: start + 0x1000,
            offset: 0,
            path: path.into(),
            exec: true,
        };
        t.processes.insert(
            1,
            ProcessInfo {
                comm: "app".into(),
                maps: vec![map(0x1000, "/usr/bin/app"), map(0x9000, libc)],
            },
        );
        // Innermost first: libc's lock wait, libc's pthread_mutex_lock, then the program.
        t.stacks
            .insert((1, 1), vec![0x9010, 0x9020, 0x1010, 0x1020]);
        for (ip, n) in [
            (0x9010, "__lll_lock_wait"),
            (0x9020, "pthread_mutex_lock"),
            (0x1010, "take_lock"),
            (0x1020, "main"),
        ] {
            t.symbols.insert((1, ip), vec![n.into()]);
        }
        let names = t.frame_names((1, 1));
        assert_eq!(names[t.program_frame((1, 1)).unwrap()], "take_lock");
        // Rust's std linked into the program is the library by its crate.
        t.symbols.insert(
            (1, 0x1010),
            vec!["std::sys::sync::mutex::futex::Mutex::lock_contended".into()],
        );
        assert_eq!(names.len(), 4);
        let names = t.frame_names((1, 1));
        assert_eq!(names[t.program_frame((1, 1)).unwrap()], "main");
    }

    #[test]
    fn short_stacks_are_measured_by_weight() {
        let mut t = StackTable::default();
        t.stacks.insert((1, 1), vec![0x10]); // cut short: no frame pointers
        t.stacks.insert((1, 2), vec![0x10, 0x20, 0x30, 0x40]);
        let w = |a: u64, b: u64| [((1, 1), a), ((1, 2), b)];
        let share = |v: [((u32, u32), u64); 2]| t.short_stack_share(v.iter().map(|(k, w)| (k, *w)));
        assert_eq!(share(w(3, 1)), 0.75);
        assert_eq!(share(w(0, 5)), 0.0);
        assert_eq!(t.short_stack_share(std::iter::empty()), 0.0);
    }

    static MARKER_STATIC_WORD: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    #[test]
    fn names_a_static_futex_word() {
        let pid = std::process::id();
        let addr = &MARKER_STATIC_WORD as *const _ as u64;
        let mut t = StackTable::default();
        t.refresh_process(pid);
        t.symbolize_addresses(&[(pid, addr)], &new_symbolizer());
        let name = t
            .addr_symbols
            .get(&(pid, addr))
            .cloned()
            .unwrap_or_default();
        assert!(name.contains("MARKER_STATIC_WORD"), "{name:?}");
    }

    #[test]
    fn symbolizes_this_test_binary() {
        // A function of this very binary, found through our own maps, comes back by name.
        #[inline(never)]
        fn marker_function_for_symbolizer() -> u64 {
            marker_function_for_symbolizer as *const () as u64
        }
        let pid = std::process::id();
        let mut t = StackTable::default();
        t.refresh_process(pid);
        let ip = marker_function_for_symbolizer() + 1; // as a return address would be
        t.stacks.insert((pid, 0), vec![ip]);
        t.symbolize();
        let names = t.frame_names((pid, 0));
        assert!(
            names
                .iter()
                .any(|n| n.contains("marker_function_for_symbolizer")),
            "{names:?}"
        );
    }
}
