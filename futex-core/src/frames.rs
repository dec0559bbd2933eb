//! The waiting thread's stack for the in-process observer: return addresses by a frame-pointer walk,
//! cheap enough for a slow path (tens of nanoseconds), so that observer-only tools (no root) can show
//! where a program waited. Programs built with frame pointers (`-C force-frame-pointers=yes`, as this
//! workspace builds everything) give whole stacks; elsewhere the walk stops at the first frame without
//! one.

/// Most return addresses kept of one stack.
pub const MAX_FRAMES: usize = 32;

/// A stack the observer captured: the id events carry ([`crate::QueueEvent::stack`]) and its return
/// addresses, innermost first (`frames[..len]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stack {
    pub id: u32,
    pub len: u8,
    pub frames: [usize; MAX_FRAMES],
}

impl Stack {
    /// Its return addresses, innermost first.
    pub fn frames(&self) -> &[usize] {
        &self.frames[..usize::from(self.len).min(MAX_FRAMES)]
    }
}

/// The top (highest address) of the calling thread's stack block, read once per thread (0 if unknown).
pub fn stack_top() -> usize {
    use std::cell::Cell;
    thread_local!(static TOP: Cell<usize> = const { Cell::new(0) });
    TOP.with(|t| {
        if t.get() == 0 {
            // SAFETY: pthread_getattr_np fills `attr` for the calling thread (a live pthread), which is
            // destroyed after use; the out-pointers are to live locals.
            let top = unsafe {
                let mut attr: libc::pthread_attr_t = std::mem::zeroed();
                if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
                    return 0;
                }
                let (mut addr, mut size) = (std::ptr::null_mut(), 0);
                libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
                libc::pthread_attr_destroy(&mut attr);
                addr as usize + size
            };
            t.set(top);
        }
        t.get()
    })
}

/// Walks the calling thread's frame pointers into `out`; returns how many return addresses it wrote
/// (the first is the return into this function's caller).
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub(crate) fn walk(out: &mut [usize; MAX_FRAMES]) -> usize {
    let (mut fp, sp): (usize, usize);
    // SAFETY: copies two registers; touches no memory.
    unsafe {
        std::arch::asm!("mov {fp}, rbp", "mov {sp}, rsp", fp = out(reg) fp, sp = out(reg) sp,
                        options(nomem, nostack, preserves_flags));
    }
    let top = stack_top();
    let mut n = 0;
    // Each frame record is [saved rbp, return address] at rbp, and lies above the last: a chain that
    // leaves [sp, top) or goes down is not one (a frame without a frame pointer), and ends the walk.
    while n < MAX_FRAMES && fp >= sp && fp % 8 == 0 && fp.checked_add(16).is_some_and(|e| e <= top)
    {
        // SAFETY: [fp, fp + 16) lies in the calling thread's own stack between its stack pointer and
        // the top of its stack block, so it is mapped and readable. Volatile reads: the words are only
        // used as numbers (compared, returned), never as pointers outside these bounds.
        let (next, ret) = unsafe {
            (
                std::ptr::read_volatile(fp as *const usize),
                std::ptr::read_volatile((fp + 8) as *const usize),
            )
        };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// Other architectures: no stacks (yet).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn walk(_: &mut [usize; MAX_FRAMES]) -> usize {
    0
}

#[cfg(all(test, target_arch = "x86_64", not(loom)))]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_inner(out: &mut [usize; MAX_FRAMES]) -> usize {
        std::hint::black_box(walk(out))
    }

    #[inline(never)]
    fn marker_outer(out: &mut [usize; MAX_FRAMES]) -> usize {
        std::hint::black_box(marker_inner(out))
    }

    #[test]
    fn the_walk_returns_into_each_caller() {
        let mut out = [0; MAX_FRAMES];
        let n = marker_outer(&mut out);
        assert!(n >= 3, "{n} frames");
        // The first return address is in marker_inner, the second in marker_outer: each lies after
        // its function's start and within a few hundred bytes of it.
        let inner = marker_inner as *const () as usize;
        let outer = marker_outer as *const () as usize;
        assert!(
            out[0] > inner && out[0] - inner < 512,
            "{:#x} vs {inner:#x}",
            out[0]
        );
        assert!(
            out[1] > outer && out[1] - outer < 512,
            "{:#x} vs {outer:#x}",
            out[1]
        );
    }
}
