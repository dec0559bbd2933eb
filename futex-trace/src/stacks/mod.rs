//! User stacks: the frames behind stack ids, the memory maps of the traced processes, and their
//! symbolization with blazesym (ELF symbols and DWARF; Rust and C++ names demangled).
//!
//! Maps are read from `/proc/PID/maps` while a process runs, so that its stacks can be symbolized after it
//! has exited: each frame becomes (file, file offset), which blazesym resolves from the file on disk
//! (`symbols`). Stacks are interned by their frames (`intern`), classed by what they wait for
//! (`classify`), and words and frames are named through [`Names`].

mod classify;
mod intern;
mod jit;
mod names;
mod plumbing;
mod symbols;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use classify::{frame_class, stack_class};
pub use intern::{StackInterner, StackLookup, Unwound, UnwoundStacks};
pub use jit::{PerfMaps, UNNAMED as UNNAMED_JIT};
pub use names::{hex, thread_group, Names};
pub use plumbing::{
    is_observer_frame, is_plumbing, is_plumbing_name, is_release, is_thread_entry, waits_in_acquire,
};
pub use symbols::{build_id, demangle, new_symbolizer};

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
    /// The file's device (`08:01`) and inode, as the maps say: the kernel keys a shared futex by them
    /// (and the offset), so two processes that map one file (or inherit one shared mapping) wait on one
    /// word. Empty and 0 in recordings made before they were kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dev: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// The maps said `(deleted)`: the file at `path` is no longer the one mapped (replaced on disk).
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

impl Mapping {
    /// A file's mapping; else anonymous code (a runtime's JIT code: see [`jit`]).
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/')
    }
}

/// Marks a stack's frame that is an interpreter's (a CPython frame: its code object's address), not an
/// instruction pointer: user addresses never have this bit. Named from the interpreter's memory by the
/// source (see [`StackLookup::frame_name`]).
pub const INTERPRETER_FRAME: u64 = 1 << 63;

/// Whether a stack's frame is an interpreter's ([`INTERPRETER_FRAME`]), not an instruction pointer.
pub fn is_interpreter_frame(ip: u64) -> bool {
    ip & INTERPRETER_FRAME != 0
}

/// The CPython minor version of an interpreter's file, by its name: `python3.11` (the executable) or
/// `libpython3.11.so…` (the library of a build with --enable-shared) → 11.
pub fn cpython_minor(path: &str) -> Option<u32> {
    let file = path.rsplit('/').next()?;
    let (v, lib) = match file.strip_prefix("libpython3.") {
        Some(v) => (v, true),
        None => (file.strip_prefix("python3.")?, false),
    };
    let (minor, rest) = v.split_at(v.bytes().take_while(u8::is_ascii_digit).count());
    let named = if lib {
        rest.starts_with(".so")
    } else {
        rest.is_empty()
    };
    named.then(|| minor.parse().ok()).flatten()
}

/// The path given to anonymous executable mappings: code a runtime compiled (see [`jit`]).
pub const ANON: &str = "[anon]";

fn is_false(v: &bool) -> bool {
    !*v
}

fn yes() -> bool {
    true
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Where to read the file mapping `m` of process `pid` maps: its path, while the file there is still
/// the one mapped (same device and inode, as the maps say); else the mapping itself through
/// `/proc/PID/map_files/START-END` (a binary replaced on disk since it was mapped, as a package upgrade
/// does: the maps then say `(deleted)`); `None` when neither can be read (the process is gone, or
/// map_files needs privileges we do not have): better no name than the new file's wrong one.
pub fn mapped_file(pid: u32, m: &Mapping) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !m.is_file() {
        return None;
    }
    let same = |meta: &std::fs::Metadata| {
        let dev = meta.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        meta.ino() == m.inode && (m.dev.is_empty() || m.dev == format!("{major:02x}:{minor:02x}"))
    };
    match std::fs::metadata(&m.path) {
        // Recordings made before maps kept inodes: the path is all there is.
        Ok(_) if m.inode == 0 => return Some(m.path.clone()),
        Ok(meta) if same(&meta) => return Some(m.path.clone()),
        _ => {}
    }
    let through = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    if std::fs::metadata(&through).is_ok_and(|meta| same(&meta)) {
        return Some(through);
    }
    // A recording read after its processes ended (or on another machine, where inodes differ): the
    // path, unless the maps said the file there had been replaced.
    (!m.deleted).then(|| m.path.clone())
}

/// Parses `/proc/PID/maps` text, keeping mappings of files (code and data) and anonymous code (JIT
/// code, as [`ANON`]; `[vdso]` and the like are not a program's).
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let range = it.next()?;
            let perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let dev = it.next()?.to_string();
            let inode = it.next()?.parse().ok()?;
            let mut path: String = it.collect::<Vec<_>>().join(" ");
            let exec = perms.contains('x');
            if exec && (path.is_empty() || path.starts_with("[anon")) {
                path = ANON.to_string();
            } else if !path.starts_with('/') {
                return None;
            }
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                offset,
                path: path.trim_end_matches(" (deleted)").to_string(),
                exec,
                dev,
                inode,
                deleted: path.ends_with(" (deleted)"),
            })
        })
        .collect()
}

/// What is known of a traced process: its name and the executable mappings seen so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub comm: String,
    pub maps: Vec<Mapping>,
    /// Its cgroup (v2: the `0::` line of /proc/PID/cgroup): a fleet groups by service or container.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cgroup: String,
}

impl ProcessInfo {
    /// The container id its cgroup names (see [`container_id`]).
    pub fn container(&self) -> Option<&str> {
        container_id(&self.cgroup)
    }
}

/// The container id a cgroup path names: its last 64-hex-digit run (Docker's `docker-<id>.scope`,
/// containerd's `cri-containerd-<id>.scope`, `/docker/<id>`, Podman's `libpod-<id>.scope`).
pub fn container_id(cgroup: &str) -> Option<&str> {
    (cgroup.split(|c: char| !c.is_ascii_hexdigit())).rfind(|part| part.len() == 64)
}

/// A process's cgroup v2 path, read now (empty: gone, or no cgroup v2).
pub fn cgroup_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_default()
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
            if !info.cgroup.is_empty() {
                p.cgroup = info.cgroup;
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
                    let renamed =
                        old.is_none_or(|o| o.comm != info.comm || o.cgroup != info.cgroup);
                    (renamed || !maps.is_empty()).then(|| {
                        (
                            *pid,
                            ProcessInfo {
                                comm: info.comm.clone(),
                                maps,
                                cgroup: info.cgroup.clone(),
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
            (ips.iter()).position(|&ip| !is_interpreter_frame(ip) && self.locate(pid, ip).is_none())
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

    /// The share (0..=1) of the given stacks, weighted, that were cut short in JIT code (their
    /// outermost frame is in anonymous code: a walk that went on by frame pointers the code keeps not).
    pub fn cut_in_jit_share<'a>(&self, weighted: impl Iterator<Item = (&'a StackKey, u64)>) -> f64 {
        self.share(weighted, |key, ips| {
            self.truncated.contains(key) && ips.last().is_some_and(|&ip| self.in_jit(key.0, ip))
        })
    }

    /// The share (0..=1) of the given stacks, weighted, that were cut short.
    pub fn truncated_share<'a>(&self, weighted: impl Iterator<Item = (&'a StackKey, u64)>) -> f64 {
        self.share(weighted, |key, _| self.truncated.contains(key))
    }

    /// The share (0..=1) of the given stacks known to this table, weighted, that `is` holds of.
    fn share<'a>(
        &self,
        weighted: impl Iterator<Item = (&'a StackKey, u64)>,
        is: impl Fn(&StackKey, &[u64]) -> bool,
    ) -> f64 {
        let (mut some, mut all) = (0u64, 0u64);
        for (key, w) in weighted {
            if let Some(ips) = self.stacks.get(key) {
                all += w;
                if is(key, ips) {
                    some += w;
                }
            }
        }
        if all == 0 {
            0.0
        } else {
            some as f64 / all as f64
        }
    }

    /// Whether `ip` of process `pid` is in JIT code: an anonymous executable mapping (see [`jit`]).
    pub fn in_jit(&self, pid: u32, ip: u64) -> bool {
        self.mapping_of(pid, ip).is_some_and(|m| !m.is_file())
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
        let cgroup = cgroup_of(pid);
        if !cgroup.is_empty() {
            p.cgroup = cgroup;
        }
        for m in parse_maps(&text) {
            if !p.maps.contains(&m) {
                p.maps.push(m);
            }
        }
    }

    /// Where a shared futex word lies, as the kernel keys it: the mapped file's device and inode, and the
    /// word's offset in the file (`None`: not in a file mapping this table knows).
    pub fn shared_key(&self, pid: u32, addr: u64) -> Option<(String, u64, u64)> {
        let m = self
            .processes
            .get(&pid)?
            .maps
            .iter()
            .rev()
            .find(|m| m.start <= addr && addr < m.end && m.inode != 0)?;
        Some((m.dev.clone(), m.inode, addr - m.start + m.offset))
    }

    /// The code mapping holding `ip` in process `pid`: (file, offset in the file).
    pub fn locate(&self, pid: u32, ip: u64) -> Option<(&str, u64)> {
        self.locate_in(pid, ip, true)
    }

    /// The code mapping holding `ip` in process `pid`.
    pub(crate) fn mapping_of(&self, pid: u32, ip: u64) -> Option<&Mapping> {
        self.mapping_at(pid, ip, true)
    }

    /// The mapping holding `addr` in process `pid` (`code`: executable ones only), the latest seen.
    fn mapping_at(&self, pid: u32, addr: u64, code: bool) -> Option<&Mapping> {
        (self.processes.get(&pid)?.maps.iter().rev())
            .find(|m| m.start <= addr && addr < m.end && (m.exec || !code))
    }

    pub(crate) fn locate_in(&self, pid: u32, addr: u64, code: bool) -> Option<(&str, u64)> {
        (self.mapping_at(pid, addr, code)).map(|m| (m.path.as_str(), addr - m.start + m.offset))
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
                // JIT code no perf map names: one frame for a run of them.
                (None, Some((ANON, _))) => {
                    if out.last().is_none_or(|(n, _)| n != jit::UNNAMED) {
                        out.push((jit::UNNAMED.to_string(), Some(ANON)));
                    }
                }
                (None, Some((path, off))) => {
                    let file = path.rsplit('/').next().unwrap_or(path);
                    out.push((format!("{file}+{off:#x}"), Some(path)));
                }
                (None, None) => out.push((format!("[unknown] {ip:#x}"), None)),
            }
        }
        // futex-core's observer walks the stack from inside itself: its own frames are how the stack
        // was taken, not where the program waited.
        let own = out
            .iter()
            .rev()
            .take_while(|(n, _)| is_observer_frame(n))
            .count();
        out.truncate(out.len() - own);
        out
    }

    /// Where in a stack (an index into [`StackTable::frame_names`]) the program itself waited: its
    /// innermost frame that is not plumbing (threading libraries, language runtimes, lock
    /// implementations: [`is_plumbing`]).
    pub fn program_frame(&self, key: StackKey) -> Option<usize> {
        let frames = self.frames(key);
        frames
            .iter()
            .rposition(|(name, file)| !is_plumbing(name, *file))
    }

    /// The share (0..=1) of the given stacks, weighted, that have at most two frames: the sign of a
    /// program (or libc) built without frame pointers, whose stacks the kernel cannot walk.
    pub fn short_stack_share<'a>(
        &self,
        weighted: impl Iterator<Item = (&'a StackKey, u64)>,
    ) -> f64 {
        self.share(weighted, |_, ips| ips.len() <= 2)
    }
}

/// What to tell a user whose stacks are mostly cut short.
pub const SHORT_STACKS_HELP: &str = "most stacks have at most two frames: they were walked by frame \
pointers (--unwind fp) through code built without them (glibc, distribution packages, Rust release \
builds). Trace with --unwind dwarf (the default), which unwinds from the binaries' CFI; see futex-trace's \
README.";

#[cfg(test)]
mod tests {
    #[test]
    fn a_container_id_is_found_in_the_cgroup_paths_of_the_runtimes() {
        let id = "4f1c2b9a".repeat(8);
        let of = |cgroup: &str| super::ProcessInfo {
            cgroup: cgroup.into(),
            ..Default::default()
        };
        for path in [
            format!("/system.slice/docker-{id}.scope"),
            format!("/kubepods.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
            format!("/docker/{id}"),
            format!("/machine.slice/libpod-{id}.scope/container"),
        ] {
            assert_eq!(of(&path).container(), Some(id.as_str()), "{path}");
        }
        assert_eq!(
            of("/user.slice/user-0.slice/session-3.scope").container(),
            None
        );
    }

    use super::*;

    #[test]
    fn a_cpython_interpreter_is_known_by_its_files_name() {
        for (path, minor) in [
            ("/usr/bin/python3.11", Some(11)),
            ("/usr/lib/x86_64-linux-gnu/libpython3.10.so.1.0", Some(10)),
            ("/opt/py/lib/libpython3.12.so", Some(12)),
            ("/usr/bin/python3", None),
            ("/usr/bin/python3.11-config", None),
            ("/usr/lib/libpython3.11.a", None),
        ] {
            assert_eq!(cpython_minor(path), minor, "{path}");
        }
    }

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
                dev: "08:01".into(),
                inode: 123,
                deleted: false,
            }
        );
        assert_eq!(m[2].path, "/tmp/my lib.so");
        assert!(m[2].deleted && !m[1].deleted);
        let mut t = StackTable::default();
        t.processes.insert(
            1,
            ProcessInfo {
                comm: "app".into(),
                maps: m,
                cgroup: String::new(),
            },
        );
        assert_eq!(t.locate(1, 0x55d4c0a10010), Some(("/usr/bin/app", 0x10010)));
        assert_eq!(t.locate(1, 0x55d4c0a00010), None);
        // A word in a mapped file is keyed as the kernel keys a shared futex: device, inode, offset.
        assert_eq!(
            t.shared_key(1, 0x55d4c0a10010),
            Some(("08:01".to_string(), 123, 0x10010))
        );
        t.stacks.insert((1, 5), vec![0x55d4c0a10010, 0x1234]);
        assert_eq!(
            t.frame_names((1, 5)),
            vec!["[unknown] 0x1234".to_string(), "app+0x10010".to_string()]
        );
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
            dev: String::new(),
            inode: 0,
            deleted: false,
        };
        t.processes.insert(
            1,
            ProcessInfo {
                comm: "app".into(),
                maps: vec![map(0x1000, "/usr/bin/app"), map(0x9000, libc)],
                cgroup: String::new(),
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
}
