//! Symbols: the names of a trace's frames and static futex words, from the files on disk (blazesym:
//! ELF symbols and DWARF; Rust and C++ names demangled by their scheme), and what else is read of those
//! files (build ids, loaded segments).

use std::collections::HashMap;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use super::StackTable;

impl StackTable {
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
        // The file to read each mapping from (a binary replaced on disk: the mapped one, or none).
        let mut files: HashMap<(u32, u64), Option<String>> = HashMap::new();
        for (&(pid, _), ips) in &self.stacks {
            for &ip in ips {
                if self.symbols.contains_key(&(pid, ip)) {
                    continue;
                }
                let Some(m) = self.mapping_of(pid, ip) else {
                    continue;
                };
                let file = files
                    .entry((pid, m.start))
                    .or_insert_with(|| super::mapped_file(pid, m));
                // Return addresses point after the call: look up the call itself.
                if let Some(file) = file {
                    by_file
                        .entry(file.clone())
                        .or_default()
                        .push(((pid, ip), (ip - m.start + m.offset).saturating_sub(1)));
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
}

impl StackTable {
    /// Names the frames in JIT code not named yet from their processes' perf maps (see
    /// [`super::jit`]); whether any got a name.
    pub fn name_jit(&mut self, perf: &mut super::PerfMaps) -> bool {
        perf.round();
        let mut named = Vec::new();
        for (&(pid, _), ips) in &self.stacks {
            for &ip in ips {
                if self.symbols.contains_key(&(pid, ip)) || !self.in_jit(pid, ip) {
                    continue;
                }
                // A return address points after the call: the call is in the code before it.
                if let Some(name) = perf.name(pid, ip - 1) {
                    named.push(((pid, ip), name));
                }
            }
        }
        let any = !named.is_empty();
        for (key, name) in named {
            self.symbols.insert(key, vec![name]);
        }
        any
    }
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
    use super::*;

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
