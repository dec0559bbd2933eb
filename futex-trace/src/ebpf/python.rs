//! CPython's own frames: the Python function each waiting thread is in, as py-spy and the OpenTelemetry
//! eBPF profiler read them. The eBPF side walks the thread's interpreter frames (from its thread state,
//! found by native thread id in the interpreter's list) and copies each frame's code object address with
//! the stack; here a process is recognised as CPython (its interpreter's ELF exports `_PyRuntime`),
//! described to the eBPF side (`pythons` map), its frames spliced into the native stack at the
//! evaluation loop's frames, and each code object named once, from the process's memory, while it runs.
//!
//! Layouts are per CPython version; 3.11's are here (Debian 12's and Ubuntu 22.04's python3). Python
//! 3.12+ started with `-X perf` is named from its perf map instead (see `stacks::jit`).

use std::ops::Range;

use super::abi::RawPython;
use crate::stacks::{cpython_minor, Mapping, INTERPRETER_FRAME};

/// A CPython process: where its eval loop's code is, and what the eBPF side needs.
#[derive(Clone, Debug)]
pub(super) struct Python {
    /// `_PyEval_EvalFrameDefault`'s code: a native frame there runs interpreter frames.
    pub(super) eval: Range<u64>,
    pub(super) raw: RawPython,
}

/// CPython 3.11 (x86-64): offsets read off its headers (`offsetof` in a program built with
/// `Py_BUILD_CORE` against python3.11-dev).
mod v311 {
    pub(super) const INTERPRETERS_HEAD: u64 = 40;
    pub(super) const INTERP_THREADS_HEAD: u16 = 16;
    pub(super) const TSTATE_NEXT: u16 = 8;
    pub(super) const TSTATE_NATIVE_THREAD_ID: u16 = 160;
    pub(super) const TSTATE_CFRAME: u16 = 56;
    pub(super) const CFRAME_CURRENT_FRAME: u16 = 8;
    pub(super) const FRAME_F_CODE: u16 = 32;
    pub(super) const FRAME_PREVIOUS: u16 = 48;
    pub(super) const FRAME_IS_ENTRY: u16 = 68;
    pub(super) const CODE_FIRSTLINENO: usize = 72;
    pub(super) const CODE_FILENAME: usize = 112;
    pub(super) const CODE_QUALNAME: usize = 128;
    /// `PyASCIIObject`: its length, its state bits, its size (a compact ASCII string's data follows).
    pub(super) const STR_LENGTH: usize = 16;
    pub(super) const STR_STATE: usize = 32;
    pub(super) const ASCII_SIZE: usize = 48;
    /// `PyCompactUnicodeObject`'s size: a compact non-ASCII string's data follows.
    pub(super) const COMPACT_SIZE: usize = 72;
}

/// Whether process `pid`, with these maps, runs CPython 3.11, and where.
pub(super) fn detect(pid: u32, maps: &[Mapping]) -> Option<Python> {
    // The interpreter is in the executable (Debian's) or in libpython (a build with --enable-shared,
    // whose executable is a launcher without it).
    let (m, (runtime, eval, shared)) = (maps.iter())
        .filter(|m| m.exec && cpython_minor(&m.path) == Some(11))
        .find_map(|m| Some((m, symbols(&crate::stacks::mapped_file(pid, m)?)?)))?;
    // A shared object (or a PIE) is placed where its first mapping (file offset 0) begins.
    let bias = if shared {
        (maps.iter())
            .filter(|o| o.path == m.path && o.inode == m.inode && o.offset == 0)
            .map(|o| o.start)
            .min()?
    } else {
        0
    };
    Some(Python {
        eval: bias + eval.start..bias + eval.end,
        raw: RawPython {
            threads: bias + runtime + v311::INTERPRETERS_HEAD,
            interp_threads: v311::INTERP_THREADS_HEAD,
            tstate_next: v311::TSTATE_NEXT,
            tstate_tid: v311::TSTATE_NATIVE_THREAD_ID,
            tstate_cframe: v311::TSTATE_CFRAME,
            cframe_frame: v311::CFRAME_CURRENT_FRAME,
            frame_code: v311::FRAME_F_CODE,
            frame_previous: v311::FRAME_PREVIOUS,
            frame_is_entry: v311::FRAME_IS_ENTRY,
        },
    })
}

/// `_PyRuntime`'s address, `_PyEval_EvalFrameDefault`'s code, and whether the file is placed at load
/// (not an executable linked at fixed addresses).
fn symbols(path: &str) -> Option<(u64, Range<u64>, bool)> {
    use object::{Object, ObjectSymbol};
    let data = std::fs::read(path).ok()?;
    let f = object::File::parse(&*data).ok()?;
    let (mut runtime, mut eval) = (None, None);
    for s in f.dynamic_symbols().chain(f.symbols()) {
        match s.name() {
            Ok("_PyRuntime") => runtime = Some(s.address()),
            Ok("_PyEval_EvalFrameDefault") => eval = Some(s.address()..s.address() + s.size()),
            _ => {}
        }
    }
    Some((runtime?, eval?, f.kind() != object::ObjectKind::Executable))
}

/// `native` (instruction pointers, innermost first) with the interpreter frames `py` (the eBPF side's:
/// innermost first, the low bit set on a frame its eval loop entered) placed at the eval loop's native
/// frames: each runs the interpreter frames from where the previous left off to the one it entered
/// with, and they are put before it (inner to it). A frame is [`INTERPRETER_FRAME`] | its code object.
pub(super) fn splice(native: &[u64], py: &[u64], eval: &Range<u64>) -> Vec<u64> {
    let mut out = Vec::with_capacity(native.len() + py.len());
    let mut next = py.iter();
    for &ip in native {
        // A return address is just after its call.
        if eval.contains(&(ip.wrapping_sub(1))) || eval.contains(&ip) {
            for &f in next.by_ref() {
                out.push(INTERPRETER_FRAME | (f & !1));
                if f & 1 == 1 {
                    break;
                }
            }
        }
        out.push(ip);
    }
    out
}

/// The name of code object `code` of process `pid`, read from its memory:
/// `py::MODULE.QUALNAME (FILE:FIRST_LINE)`, the module being the file's name without `.py`.
pub(super) fn code_name(pid: u32, code: u64) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let read = |addr: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        mem.read_exact_at(&mut b, addr).ok()?;
        Some(b)
    };
    let u64_at = |b: &[u8], off: usize| u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
    let c = read(code, v311::CODE_QUALNAME + 8)?;
    let line = i32::from_le_bytes(c[v311::CODE_FIRSTLINENO..][..4].try_into().unwrap());
    let string = |addr: u64| -> Option<String> {
        let h = read(addr, v311::COMPACT_SIZE)?;
        let len = usize::try_from(u64_at(&h, v311::STR_LENGTH))
            .ok()?
            .min(4096);
        let state = u32::from_le_bytes(h[v311::STR_STATE..][..4].try_into().unwrap());
        let (kind, compact, ascii) = (
            (state >> 2) & 7,
            state & (1 << 5) != 0,
            state & (1 << 6) != 0,
        );
        match (compact, ascii, kind) {
            (true, true, _) => String::from_utf8(read(addr + v311::ASCII_SIZE as u64, len)?).ok(),
            (true, false, 1) => {
                let b = read(addr + v311::COMPACT_SIZE as u64, len)?;
                Some(b.iter().map(|&c| char::from(c)).collect())
            }
            _ => None,
        }
    };
    let qualname = string(u64_at(&c, v311::CODE_QUALNAME))?;
    let filename = string(u64_at(&c, v311::CODE_FILENAME)).unwrap_or_default();
    let file = filename.rsplit('/').next().unwrap_or(&filename);
    let module = file.strip_suffix(".py").unwrap_or(file);
    Some(format!("py::{module}.{qualname} ({file}:{line})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_frames_go_inside_the_eval_frames_that_ran_them() {
        let eval = 0x1000..0x2000;
        // futex ← acquire (C) ← eval[f1 ← f2(entry)] ← call ← eval[f3(entry)] ← main
        let native = [0x9000, 0x8000, 0x1100, 0x7000, 0x1200, 0x6000];
        let py = [0xa0, 0xb0 | 1, 0xc0 | 1];
        let got = splice(&native, &py, &eval);
        let f = |c: u64| INTERPRETER_FRAME | c;
        assert_eq!(
            got,
            [
                0x9000,
                0x8000,
                f(0xa0),
                f(0xb0),
                0x1100,
                0x7000,
                f(0xc0),
                0x1200,
                0x6000
            ]
        );
        // No eval frame (a stack cut short): the native frames alone.
        assert_eq!(splice(&[0x9000], &py, &eval), [0x9000]);
    }
}
