//! User stacks unwound in userspace from CFI (`.eh_frame`), for code without frame pointers.
//!
//! With `--unwind dwarf` (the default) the eBPF side does not walk user stacks: at each sampled wait or
//! waker it copies the thread's user registers and the top of its stack (`struct ft_ustack`, on the
//! `ustacks` ring; see `copy_stack` in futex.bpf.c). Here each copy is unwound with framehop (samply's
//! unwinder) from the `.eh_frame`/`.eh_frame_hdr` of every executable mapping of the process, with frame
//! pointers where a module has no CFI for an address. That is what `perf record --call-graph dwarf`
//! does, and it walks through glibc and Rust release builds, which keep no frame pointers.
//!
//! Equal stacks of a process are interned to one id ([`StackInterner`]), so that the model aggregates by
//! stack as it does with the kernel's stack map; events name the copies by the copy's id, translated
//! here.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};

use super::abi::{RawUstackHead, FT_USTACK_BYTES};
use crate::stacks::{
    is_interpreter_frame, parse_maps, Mapping, StackInterner, StackLookup, Unwound,
    INTERPRETER_FRAME,
};

/// Most frames kept of one stack (as the kernel's stack map: 127).
pub const MAX_FRAMES: usize = 127;

/// How often a process's maps may be read again for an address they do not cover.
const REREAD_EVERY: Duration = Duration::from_millis(500);

/// Section data shared by every process that maps a file.
type Data = Arc<[u8]>;

/// What unwinding needs of one ELF file: its unwind sections and where its loaded segments lie.
#[derive(Clone)]
struct FileUnwindInfo {
    sections: ExplicitModuleSectionInfo<Data>,
    /// Executable PT_LOAD segments: (file offset, file size, virtual address).
    loads: Vec<(u64, u64, u64)>,
}

/// The unwinder of one traced process.
struct Process {
    unwinder: UnwinderX86_64<Data>,
    maps: Vec<Mapping>,
    /// Start addresses of the mappings added to `unwinder`.
    added: Vec<u64>,
    last_read: Option<Instant>,
    /// A CPython process: what its interpreter frames need.
    python: Option<super::python::Python>,
}

/// Unwinds stack copies and interns the stacks.
pub struct StackUnwinder {
    processes: HashMap<u32, Process>,
    files: HashMap<(String, u64), Option<FileUnwindInfo>>,
    cache: CacheX86_64,
    pub interner: StackInterner,
    /// Copy id → interned id, for the copies of the last two generations (a waker's copy is named by
    /// the waits it released, which return shortly after).
    copies: [HashMap<i32, u32>; 2],
    generation_start: Instant,
    /// Forked processes' parents: child → parent.
    parents: HashMap<u32, u32>,
    /// Processes a stack of which ended at the end of its copy, before its thread's first frame: their
    /// copies should be larger (see [`StackUnwinder::deeper`]); and those already told.
    deeper: Vec<u32>,
    told_deeper: HashSet<u32>,
    /// CPython processes found since the last call (see [`StackUnwinder::pythons`]).
    pythons: Vec<(u32, super::abi::RawPython)>,
}

/// How long a copy's id is remembered: at least this, at most twice it.
const COPY_GENERATION: Duration = Duration::from_secs(5);

impl Default for StackUnwinder {
    fn default() -> Self {
        StackUnwinder {
            processes: HashMap::new(),
            files: HashMap::new(),
            cache: CacheX86_64::new(),
            interner: StackInterner::default(),
            copies: [HashMap::new(), HashMap::new()],
            generation_start: Instant::now(),
            parents: HashMap::new(),
            deeper: Vec::new(),
            told_deeper: HashSet::new(),
            pythons: Vec::new(),
        }
    }
}

impl StackUnwinder {
    /// Unwinds one `ustacks` record (its head, then its data) and remembers its id.
    pub fn add_copy(&mut self, record: &[u8]) {
        let Some((head, data)) = RawUstackHead::from_bytes(record) else {
            return;
        };
        let mut stack = self.unwind(head.pid, head.ip, head.sp, head.bp, data);
        let py = &head.py[..(head.py_len as usize).min(head.py.len())];
        let eval = (self.processes.get(&head.pid))
            .and_then(|p| p.python.as_ref())
            .map(|p| p.eval.clone());
        if let (Some(eval), false) = (eval, py.is_empty()) {
            stack.ips = super::python::splice(&stack.ips, py, &eval);
            // Each code object named once, now, while its process runs.
            let names = &self.interner.stacks;
            for &f in stack.ips.iter().filter(|&&ip| is_interpreter_frame(ip)) {
                if !names.has_name(head.pid, f) {
                    let name = super::python::code_name(head.pid, f & !INTERPRETER_FRAME);
                    names.set_name(head.pid, f, name.unwrap_or_else(|| "py::[unknown]".into()));
                }
            }
        }
        let id = self.interner.intern(head.pid, stack);
        if self.generation_start.elapsed() >= COPY_GENERATION {
            self.copies.swap(0, 1);
            self.copies[0].clear();
            self.generation_start = Instant::now();
        }
        self.copies[0].insert(head.id, id);
    }

    /// The interned id of the stack copied as `copy` (`None`: the copy was lost or never taken).
    pub fn translate(&self, copy: i32) -> Option<u32> {
        if copy < 0 {
            return None;
        }
        self.copies[0]
            .get(&copy)
            .or_else(|| self.copies[1].get(&copy))
            .copied()
    }

    /// A process ended: its unwinder goes (its stacks stay).
    pub fn forget(&mut self, pid: u32) {
        self.processes.remove(&pid);
        self.told_deeper.remove(&pid);
    }

    /// The processes found since the last call whose stacks are deeper than their copies, each once
    /// while it lives: their copies should be the largest.
    pub fn deeper(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.deeper)
    }

    /// The CPython processes found since the last call, each with what the eBPF side needs to copy its
    /// threads' interpreter frames.
    pub fn pythons(&mut self) -> Vec<(u32, super::abi::RawPython)> {
        std::mem::take(&mut self.pythons)
    }

    /// `parent` forked `child`: until the child's own maps can be read, it has its parent's (a fork
    /// copies them; a child that is gone before anyone reads its maps keeps them).
    pub fn forked(&mut self, parent: u32, child: u32) {
        self.parents.insert(child, parent);
    }

    /// Unwinds the stack of a thread of `pid` from its registers and the copy of its stack at `sp`. A
    /// frame in a mapping not known yet (a library loaded since: dlopen) has the maps read again, once.
    pub fn unwind(&mut self, pid: u32, ip: u64, sp: u64, bp: u64, data: &[u8]) -> Unwound {
        let mut at = ip;
        let mut cut = Unwound {
            ips: Vec::new(),
            truncated: true,
        };
        for _ in 0..2 {
            if !self.refresh(pid, at) {
                break;
            }
            let (stack, end) = walk(&self.processes[&pid], &mut self.cache, ip, sp, bp, data);
            match end {
                Walked::Outside(addr) => {
                    at = addr;
                    cut = stack;
                }
                Walked::CopyEnd => {
                    if self.told_deeper.insert(pid) {
                        self.deeper.push(pid);
                    }
                    return stack;
                }
                Walked::Whole => return stack,
            }
        }
        cut
    }

    /// Makes the unwinder of `pid`, with a module for every executable mapping; its maps are read
    /// again (at most every [`REREAD_EVERY`]) when `ip` lies outside the mappings known (a library
    /// loaded since). Whether the process has any mapping.
    fn refresh(&mut self, pid: u32, ip: u64) -> bool {
        let p = self.processes.entry(pid).or_insert_with(|| Process {
            unwinder: UnwinderX86_64::new(),
            maps: Vec::new(),
            added: Vec::new(),
            last_read: None,
            python: None,
        });
        let stale =
            !in_code(&p.maps, ip) && p.last_read.is_none_or(|t| t.elapsed() >= REREAD_EVERY);
        if stale {
            p.last_read = Some(Instant::now());
            let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
                Ok(text) => parse_maps(&text),
                // Gone already: a forked child's are its parent's.
                Err(_) if p.maps.is_empty() => (self.parents.get(&pid))
                    .and_then(|pp| self.interner.stacks.maps(*pp))
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            for m in maps {
                if !p.maps.contains(&m) {
                    p.maps.push(m);
                }
            }
            self.interner.stacks.set_maps(pid, &p.maps);
            // Looked for until found: the first maps read may be of the process before it ran the
            // interpreter (a command's child before its exec) or before libpython was loaded.
            if p.python.is_none() {
                p.python = super::python::detect(pid, &p.maps);
                if let Some(py) = &p.python {
                    self.pythons.push((pid, py.raw));
                }
            }
            for m in p.maps.iter().filter(|m| m.exec) {
                if p.added.contains(&m.start) {
                    continue;
                }
                p.added.push(m.start);
                // Keyed by the file mapped (a binary replaced on disk is read as it was mapped).
                let info = self
                    .files
                    .entry((m.path.clone(), m.inode))
                    .or_insert_with(|| {
                        crate::stacks::mapped_file(pid, m).and_then(|f| file_unwind_info(&f))
                    });
                if let Some(module) = info.as_ref().and_then(|i| module(i, m)) {
                    p.unwinder.add_module(module);
                }
            }
        }
        !p.maps.is_empty()
    }
}

/// How a walk ended.
enum Walked {
    /// At the thread's first frame (or an unwinding error).
    Whole,
    /// At a frame outside the process's executable mappings (where it was cut).
    Outside(u64),
    /// At the end of the copy: a frame's caller lay above what was copied.
    CopyEnd,
}

/// Unwinds with `proc`'s modules, and says how the walk ended.
fn walk(
    proc: &Process,
    cache: &mut CacheX86_64,
    ip: u64,
    sp: u64,
    bp: u64,
    data: &[u8],
) -> (Unwound, Walked) {
    let mut out = Unwound::default();
    let mut ran_out = false;
    let mut read_stack = |addr: u64| -> Result<u64, ()> {
        let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
        // Just above the copy (as far as a frame reaches): the stack goes on there.
        if off >= data.len() && off < data.len() + 4096 {
            ran_out = true;
        }
        let b = data.get(off..off + 8).ok_or(())?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| ())?))
    };
    let mut frames = proc.unwinder.iter_frames(
        ip,
        UnwindRegsX86_64::new(ip, sp, bp),
        cache,
        &mut read_stack,
    );
    loop {
        match frames.next() {
            Ok(Some(f)) => {
                let addr = match f {
                    FrameAddress::InstructionPointer(a) => a,
                    FrameAddress::ReturnAddress(a) => a.get(),
                };
                if !in_code(&proc.maps, addr) {
                    out.truncated = true;
                    return (out, Walked::Outside(addr));
                }
                out.ips.push(addr);
                if out.ips.len() == MAX_FRAMES {
                    out.truncated = true;
                    break;
                }
            }
            Ok(None) => break,
            Err(_) => {
                out.truncated = true;
                break;
            }
        }
    }
    let end = if out.truncated && ran_out {
        Walked::CopyEnd
    } else {
        Walked::Whole
    };
    (out, end)
}

/// Whether `addr` lies in an executable file mapping.
fn in_code(maps: &[Mapping], addr: u64) -> bool {
    maps.iter()
        .any(|m| m.exec && m.start <= addr && addr < m.end)
}

/// A framehop module for the executable mapping `m` of a file.
fn module(info: &FileUnwindInfo, m: &Mapping) -> Option<Module<Data>> {
    // The executable segment the mapping holds gives the file's load bias (avma = bias + svma). The
    // kernel maps from the segment's offset rounded down to a page: a linker such as lld puts the code
    // segment at a file offset and an address that differ, so the segment must be found by its own
    // offset, not by where the mapping starts (that may lie in the segment before).
    let &(off, _, vaddr) = info
        .loads
        .iter()
        .find(|(off, size, _)| off & !0xfff <= m.offset && m.offset < off + size)?;
    // m.start holds file offset m.offset; the segment's first byte (offset `off`) is at
    // m.start + off - m.offset, and holds svma `vaddr`.
    let base_avma = (m.start + off).checked_sub(m.offset)?.checked_sub(vaddr)?;
    Some(Module::new(
        m.path.clone(),
        m.start..m.end,
        base_avma,
        info.sections.clone(),
    ))
}

/// Reads the unwind sections and loaded segments of the ELF file at `path` (`None`: unreadable).
fn file_unwind_info(path: &str) -> Option<FileUnwindInfo> {
    use object::{Object, ObjectSection, ObjectSegment};
    let cache = object::ReadCache::new(std::fs::File::open(path).ok()?);
    let file = object::File::parse(&cache).ok()?;
    let section = |name: &str| -> (Option<Range<u64>>, Option<Data>) {
        match file.section_by_name(name) {
            Some(s) => (
                Some(s.address()..s.address() + s.size()),
                s.data().ok().filter(|d| !d.is_empty()).map(Data::from),
            ),
            None => (None, None),
        }
    };
    // Not `.text`'s bytes (megabytes): framehop reads code only to unwind a first frame caught in a
    // prologue or epilogue, and a first frame here is a syscall's return or a probe site, never that.
    let text_svma = file
        .section_by_name(".text")
        .map(|s| s.address()..s.address() + s.size());
    let (eh_frame_svma, eh_frame) = section(".eh_frame");
    let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr");
    let (got_svma, _) = section(".got");
    let (_, debug_frame) = section(".debug_frame");
    let loads = file
        .segments()
        .filter(|s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & object::elf::PF_X != 0))
        .map(|s| {
            let (off, size) = s.file_range();
            (off, size, s.address())
        })
        .collect();
    Some(FileUnwindInfo {
        sections: ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            got_svma,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            debug_frame,
            ..Default::default()
        },
        loads,
    })
}

impl RawUstackHead {
    /// A `ustacks` record: its head and the stack bytes it carries.
    pub fn from_bytes(b: &[u8]) -> Option<(RawUstackHead, &[u8])> {
        let n = std::mem::size_of::<RawUstackHead>();
        if b.len() < n {
            return None;
        }
        // SAFETY: `RawUstackHead` is `repr(C)` plain old data (integers only, every bit pattern valid),
        // and `b` holds at least its size; `read_unaligned` copes with any alignment.
        let head = unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<RawUstackHead>()) };
        let len = (head.len as usize).min(FT_USTACK_BYTES).min(b.len() - n);
        Some((head, &b[n..n + len]))
    }
}

/// This thread's registers and a copy of its stack from the stack pointer up (at most 64 KiB), taken as
/// the eBPF side takes them at a syscall: for tests and benchmarks of the unwinder.
#[doc(hidden)]
#[inline(never)]
pub fn snapshot_this_thread() -> (u64, u64, u64, Vec<u8>) {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads the instruction pointer, stack pointer and frame pointer into registers; touches
    // no memory and leaves the stack as it was.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
        );
    }
    // The copy is taken after: the bytes at and above `sp` are this frame's and its callers'.
    let top = futex_core::frames::stack_top() as u64;
    let n = (64 * 1024u64).min(top.saturating_sub(sp)) as usize;
    let mut buf = vec![0u8; n];
    // SAFETY: [sp, sp + n) lies in this thread's stack mapping, between the live stack pointer and the
    // top of the thread's stack block (pthread_getattr_np), so it is mapped and readable; `buf` holds n
    // bytes and does not overlap the stack (it is on the heap).
    unsafe { std::ptr::copy_nonoverlapping(sp as *const u8, buf.as_mut_ptr(), n) };
    (ip, sp, bp, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_unwind_caller() -> (u64, u64, u64, Vec<u8>) {
        let r = snapshot_this_thread();
        std::hint::black_box(r)
    }

    #[test]
    fn unwinds_this_thread_through_its_callers() {
        let (ip, sp, bp, buf) = marker_unwind_caller();
        let pid = std::process::id();
        let mut u = StackUnwinder::default();
        let stack = u.unwind(pid, ip, sp, bp, &buf);
        let mut t = crate::stacks::StackTable::default();
        t.refresh_process(pid);
        t.stacks.insert((pid, 0), stack.ips.clone());
        t.symbolize();
        let names = t.frame_names((pid, 0)).join(";");
        assert!(names.contains("snapshot_this_thread"), "{names}");
        assert!(names.contains("marker_unwind_caller"), "{names}");
        assert!(
            names.contains("unwinds_this_thread_through_its_callers"),
            "{names}"
        );
        // The test harness runs tests on threads it spawned: the unwind reaches glibc's thread entry.
        assert!(names.contains("start_thread"), "{names}");
        assert!(!stack.truncated, "{names}");
        // A copy cut short stops the stack where the bytes end, and says so.
        let short = u.unwind(pid, ip, sp, bp, &buf[..64]);
        assert!(short.truncated && short.ips.len() < stack.ips.len());
    }

    /// The frames of a library loaded after the unwinder first read the process's maps (dlopen) are
    /// unwound through: the maps are read again.
    #[test]
    fn a_library_loaded_later_is_unwound_through() {
        let dir = std::env::temp_dir().join(format!("futex-trace-dlopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (src, lib) = (dir.join("cb.c"), dir.join("libfutexcb.so"));
        // The call is not the function's last act (no tail call), and no frame pointer is kept.
        std::fs::write(
            &src,
            "volatile int calls;\n\
             void marker_call_back(void (*f)(void *), void *a) { f(a); calls++; }\n",
        )
        .unwrap();
        let built = std::process::Command::new("gcc")
            .args(["-O2", "-fomit-frame-pointer", "-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .status();
        if !built.is_ok_and(|s| s.success()) {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "gcc is needed in CI"
            );
            eprintln!(
                "SKIPPED a_library_loaded_later_is_unwound_through: no gcc to build the library"
            );
            return;
        }
        let pid = std::process::id();
        let mut u = StackUnwinder::default();
        let (ip, sp, bp, data) = snapshot_this_thread();
        assert!(!u.unwind(pid, ip, sp, bp, &data).ips.is_empty());

        type Snap = (u64, u64, u64, Vec<u8>);
        extern "C" fn callback(out: *mut std::ffi::c_void) {
            // SAFETY: `out` is the `Option<Snap>` the test passed, alive for the call.
            unsafe { *(out as *mut Option<Snap>) = Some(snapshot_this_thread()) };
        }
        let path = std::ffi::CString::new(lib.to_str().unwrap()).unwrap();
        // SAFETY: dlopen of a library built just now with one function, looked up by name and called
        // with a callback of the signature it expects and a pointer that outlives the call.
        let snap = unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW);
            assert!(!h.is_null(), "dlopen {}", lib.display());
            let f = libc::dlsym(h, c"marker_call_back".as_ptr());
            assert!(!f.is_null());
            let f: extern "C" fn(extern "C" fn(*mut std::ffi::c_void), *mut std::ffi::c_void) =
                std::mem::transmute(f);
            let mut snap: Option<Snap> = None;
            f(callback, (&raw mut snap).cast());
            snap.unwrap()
        };
        // The maps may be read again only REREAD_EVERY after the first read.
        std::thread::sleep(REREAD_EVERY);
        let (ip, sp, bp, data) = snap;
        let stack = u.unwind(pid, ip, sp, bp, &data);
        let mut t = crate::stacks::StackTable::default();
        t.refresh_process(pid);
        t.stacks.insert((pid, 0), stack.ips.clone());
        t.symbolize();
        let names = t.frame_names((pid, 0)).join(";");
        assert!(names.contains("marker_call_back"), "{names}");
        assert!(
            names.contains("a_library_loaded_later_is_unwound_through"),
            "{names}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_frame_outside_every_mapping_ends_the_stack() {
        let pid = std::process::id();
        let mut u = StackUnwinder::default();
        // An instruction pointer in no mapping: nothing to unwind, truncated.
        let s = u.unwind(pid, 0x10, 0, 0, &[]);
        assert!(s.truncated && s.ips.is_empty());
    }
}
