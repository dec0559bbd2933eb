// SPDX-License-Identifier: GPL-2.0
//
// The ABI between futex-trace's eBPF programs (futex.bpf.c) and futex-trace (Rust): the record the
// programs send through the ring buffer, the USDT argument specs userspace writes, and every constant
// both sides use. This file is the one definition:
// - the BPF C includes it;
// - futex-trace's build.rs turns every `#define NAME <integer>` below into `pub const NAME: T` (T is
//   set by the last `// rust: T` line above it), so Rust never restates a constant;
// - the structs are mirrored by `#[repr(C)]` Rust in futex-trace/src/abi.rs, which asserts every field's
//   offset and the size, and futex-trace/tests/abi.rs checks that mirror against the BTF of the
//   committed object (a swapped or resized field fails a test).
// Futex command numbers (FUTEX_WAIT, ...) are the kernel's own (<linux/futex.h>, libc on the Rust side).

#ifndef FUTEX_ABI_H
#define FUTEX_ABI_H

// Record kinds (`ft_event.kind`).
// rust: u8
#define FT_SAMPLE 1     // a sampled wait that slept (all fields): its stack, its waker and its waker's stack;
                        // counted in `aggs`, never here
#define FT_EXIT 3       // a traced process ended (group_dead)
#define FT_FORK 4       // a traced process forked a child that is now traced
#define FT_USDT 5       // a futex-core USDT probe fired: op = which probe, the six u64 slots from uaddr
                        // to final_uaddr = its six arguments

// How a wait ended (`ft_event.outcome`): the one place a wait's return value is read (futex.bpf.c,
// `wait_outcome`); `ft_agg` counts them.
// rust: u8
#define FT_OUT_WOKEN 0       // returned 0 (or futex_waitv's index): released by a waker
#define FT_OUT_EAGAIN 1      // the value had changed: returned without sleeping
#define FT_OUT_TIMEDOUT 2    // the timeout passed
#define FT_OUT_INTERRUPTED 3 // a signal ended the sleep (EINTR, or a kernel-internal restart code)
#define FT_OUT_FAILED 4      // failed without sleeping (EINVAL, EFAULT, EDEADLK, ENOSYS, ...)
#define FT_OUT_ACQUIRED 5    // a PI lock taken at once, without sleeping

// `ft_event.op` of the futex2 syscalls: numbers above the futex(2) commands (which end at 13).
// rust: u8
#define FT_OP_FUTEX2_WAIT 64
#define FT_OP_FUTEX2_WAKE 65
#define FT_OP_FUTEX2_REQUEUE 66
#define FT_OP_FUTEX2_WAITV 67

// Indices into the `counters` map (per-CPU u64).
// rust: u32
#define C_LOST_EVENTS 0   // ring buffer full: event not sent
#define C_STACK_ERRORS 1  // a stack was not stored: bpf_get_stackid failed (map full or collision), or
                          // (CFG_UNWIND) the user registers were unreadable or the `ustacks` ring full
#define C_INFLIGHT_FULL 2 // no room for a thread's in-flight state: that syscall is not traced
#define C_MISSED_EXITS 3  // a thread entered a futex call while its previous one was still in flight:
                          // that one's return was never seen (that call is not counted; not expected)
#define C_AGG_FULL 4      // no room in `aggs` (or `edges`) for a new futex word: its calls are not counted
#define C_NCOUNTERS 5

// Indices into the `config` map (u64).
// rust: u32
#define CFG_FOLLOW_FORKS 0 // non-zero: children of traced processes are traced too
#define CFG_NO_STACKS 1    // non-zero: capture no stacks (the cheapest tracing)
#define CFG_STACK_RATE 2   // a wait that slept for d ns gets its stack with probability min(1, d / rate)
                           // (Go's block-profile rule); 0: every wait. At most FT_MAX_STACK_RATE.
#define CFG_WAKER_EVERY 3  // a wake or requeue call that wakes a waiter gets its stack with probability
                           // 1 / this (by count, as Go's mutex profile); 0 or 1: every one
#define CFG_ONE_PID 4      // non-zero: the only process traced (no forks followed); the `targets` map is
                           // then not consulted (an array read instead of a hash lookup per call)
#define CFG_UNWIND 5       // 0: the kernel walks user stacks by frame pointers (bpf_get_stackid, `stacks`
                           // map); 1: the top of the user stack is copied with the registers
                           // (`struct ft_ustack` on the `ustacks` ring) and unwound in userspace from CFI
#define CFG_STACK_PAGES 6  // CFG_UNWIND: whole pages copied above the page the stack pointer is in
                           // (at most FT_USTACK_PAGES); a process in the `stack_pages` map gets its own
#define CFG_NCONFIG 8

// The largest CFG_STACK_RATE (the sampling draws 32 random bits): about 4.3 s.
// rust: u64
#define FT_MAX_STACK_RATE 4294967295

// The most whole pages of user stack one `ft_ustack` carries above the stack pointer's own page, and
// the size of its data: that partial page and these pages.
// rust: usize
#define FT_USTACK_PAGES 6
#define FT_USTACK_BYTES 28672
// The most interpreter frames a stack copy carries, and the most thread states searched for the
// current thread's.
// rust: usize
#define FT_PY_FRAMES 32
#define FT_PY_THREADS 128
// Bits of `ft_ustack.id` that number the stacks of one CPU (the CPU is in the bits above).
// rust: u32
#define FT_USTACK_SEQ_BITS 20

// `ft_agg_key.hash_shift` of a call that went to the kernel's global futex hash: a private futex of a
// process without a private hash (single-threaded, or set to 0 slots); and of a shared futex (no
// FUTEX_PRIVATE_FLAG), which the kernel keys by the mapping (inode and offset), not by the process, so
// that processes sharing the memory meet on one word.
// rust: u8
#define FT_HASH_GLOBAL 0
#define FT_HASH_SHARED 255

// Log2 slots of the histograms in `aggs` and `latency`: slot i counts values in [2^i, 2^(i+1)) ns (slot 0
// also holds 0, the last slot everything longer: 2^39 ns is 9 minutes).
// rust: usize
#define FT_HIST_SLOTS 40

// Keys of the `latency` map (per-CPU, whole trace).
// rust: u32
#define LAT_WAKE_TO_RETURN 0 // a woken waiter: from its waker's sched_waking to its return
#define LAT_SCHED_DELAY 1    // a woken waiter: from sched_wakeup to running on a CPU
#define LAT_KINDS 2

// futex-core's probes as `ft_event.op` of an FT_USDT record, and the packing of their `tk` argument
// (argument 2): futex-core/src/probes.rs is the encoding; futex-trace/tests/abi.rs checks these agree.
// rust: u8
#define FT_USDT_WAIT_START 0
#define FT_USDT_WAIT_END 1
#define FT_USDT_WAKE 2
#define FT_USDT_REQUEUE 3
#define FT_USDT_LOCK_CONTENDED 4
#define FT_USDT_OUTCOME_SHIFT 8 // wait_end: the outcome's bits in tk
#define FT_USDT_MISMATCH 2      // wait_end: the outcome "value changed, never slept"

// How a USDT argument is found (`usdt_arg.kind`).
// rust: u8
#define USDT_CONST 0 // the value is `val`
#define USDT_REG 1   // the value is the register at `reg_off` in struct pt_regs
#define USDT_DEREF 2 // the value is in user memory at register + `val`

// Slots of `usdt_specs` (one per probe site) and arguments per spec.
// rust: u32
#define USDT_MAX_SPECS 4096
#define USDT_MAX_ARGS 6

typedef unsigned char ft_u8;
typedef unsigned short ft_u16;
typedef unsigned int ft_u32;
typedef int ft_s32;
typedef unsigned long long ft_u64;
typedef long long ft_s64;

// One record of the `events` ring buffer.
struct ft_event {
    ft_u64 ts;          // when it happened (the return of the wait for FT_SAMPLE), CLOCK_MONOTONIC ns
    ft_u64 start_ts;    // entry into the syscall
    ft_u64 uaddr;       // first futex word
    ft_u64 uaddr2;      // second word (requeue target, WAKE_OP's second word)
    ft_u64 wake_ts;     // a waiter: sched_waking of this thread while it waited (0: none seen)
    ft_u64 wakeup_ts;   // a waiter: sched_wakeup (runnable) while it waited
    ft_u64 oncpu_ts;    // a waiter: first sched_switch onto a CPU after wakeup_ts
    ft_u64 final_uaddr; // a waiter: the word its waker was working on (differs after a requeue)
    ft_s64 ret;         // syscall return value (negative errno)
    ft_u32 pid;         // tgid
    ft_u32 tid;
    ft_u32 val;         // FUTEX_WAIT: expected value; wake/requeue: how many to wake
    ft_u32 val2;        // requeue: how many to move (the `utime` argument); futex2 waitv: nr_futexes
    ft_u32 val3;        // bitset / CMP_REQUEUE's expected value / WAKE_OP's encoded op
    ft_u32 waker_tid;   // a waiter: thread (of a traced process) whose futex call woke it; 0 unknown
    ft_s32 stack_id;    // user stack (of a wait that slept, or a waker that woke someone); < 0: none
    ft_s32 waker_stack_id;
    ft_u32 woken_seen;  // wake/requeue: traced waiters this call woke (from sched_waking)
    ft_u32 flags;       // the raw op word (futex(2)), the flags argument (futex_wait/wake(2)) or the first
                        // word's flags (futex_waitv/requeue(2)); FUTEX_PRIVATE_FLAG: a private futex
    ft_u8 kind;         // FT_*
    ft_u8 op;           // futex(2) command (op & 127), FT_OP_FUTEX2_*, or FT_USDT_* for FT_USDT
    ft_u8 has_timeout;
    ft_u8 outcome;      // FT_SAMPLE: how the wait ended (FT_OUT_*)
    ft_u32 waker_every; // FT_SAMPLE with a waker stack: it was taken with probability 1 / waker_every
    ft_u64 stack_rate;  // FT_SAMPLE with a stack: CFG_STACK_RATE when it was taken (0: every wait)
    ft_u32 waker_pid;   // a waiter: the process (tgid) of `waker_tid`, which may be another process than
                        // the waiter's (a futex in shared memory)
    ft_u32 pad;
    char comm[16];      // FT_SAMPLE: the waiting thread's name (its `comm`) when its wait returned
};

// A copy of the top of a user stack (CFG_UNWIND), on the `ustacks` ring: the registers an unwinder starts
// from and the bytes from the stack pointer up, as many as were readable (a copy stops at the first
// page that is not mapped). The record is `head` and `head.len` bytes of `data`; events name it by
// `head.id` in their stack ids.
struct ft_ustack_head {
    ft_u64 ip;  // user registers at the capture (the syscall's return address, or the probe site)
    ft_u64 sp;
    ft_u64 bp;
    ft_u32 pid; // tgid
    ft_u32 tid;
    ft_s32 id;  // (cpu << FT_USTACK_SEQ_BITS) | that CPU's count, never negative
    ft_u32 len; // bytes of data
    ft_u32 py_len; // a CPython thread's interpreter frames in `py` (0: not one, or none found)
    ft_u32 pad;
    ft_u64 py[FT_PY_FRAMES]; // innermost first: each frame's code object, | 1 if it is the first frame
                             // its evaluation loop entered (`is_entry`: the C stack's eval frame ends there)
};

// Where a CPython process keeps its threads' interpreter frames (a value of the `pythons` map, tgid →
// this): written by userspace, which finds `_PyRuntime` in the interpreter's ELF and knows its version's
// layouts. Offsets are of the version's C structures.
struct ft_python {
    ft_u64 threads;          // the address of `_PyRuntime.interpreters.head`
    ft_u16 interp_threads;   // PyInterpreterState.threads.head
    ft_u16 tstate_next;      // PyThreadState.next
    ft_u16 tstate_tid;       // PyThreadState.native_thread_id
    ft_u16 tstate_cframe;    // PyThreadState.cframe
    ft_u16 cframe_frame;     // _PyCFrame.current_frame
    ft_u16 frame_code;       // _PyInterpreterFrame.f_code
    ft_u16 frame_previous;   // _PyInterpreterFrame.previous
    ft_u16 frame_is_entry;   // _PyInterpreterFrame.is_entry
};

struct ft_ustack {
    struct ft_ustack_head head;
    ft_u8 data[FT_USTACK_BYTES];
};

// A value of the `inflight` map (tid → the thread's futex call): one entry per traced thread from its
// first futex call to its exit, reused by each call. Userspace reads it for the waiters of each word now.
struct ft_inflight {
    ft_u64 start_ts;
    ft_u64 uaddr;
    ft_u64 uaddr2;
    ft_u64 wake_ts;
    ft_u64 wakeup_ts;
    ft_u64 oncpu_ts;
    ft_u64 final_uaddr;
    ft_u32 tgid;
    ft_u32 val;
    ft_u32 val2;
    ft_u32 val3;
    ft_u32 waker_tid;
    ft_s32 stack_id;
    ft_s32 waker_stack_id;
    ft_u32 woken_seen;
    ft_u32 flags;
    ft_u8 op;
    ft_u8 has_timeout;
    ft_u8 slept;  // switched out asleep during the call (sched_switch)
    ft_u8 active; // inside a futex call; 0 between calls
    ft_u32 waker_pid; // as ft_event.waker_pid
    // A waiter: the releases its waker's stack stands for (ft_event.waker_every; 1: taken because the
    // wait was long). A waker: the weight of its stack for its short waiters (0: not sampled by count).
    ft_u32 waker_every;
    ft_u32 pad;
    ft_u64 spin_start; // spinning on its futex bucket's lock since (lock:contention_begin); 0: not
};

// Key of the `aggs` map: the calls of one kind on one futex word of one process, in one kernel futex
// hash table.
struct ft_agg_key {
    ft_u64 uaddr;
    ft_u32 pid;
    ft_u8 op;         // as ft_event.op
    ft_u8 hash_shift; // the kernel hash table the calls went to: FT_HASH_GLOBAL, or log2 of the slots
                      // of the process's private futex hash (task->mm->futex_phash) at their return
    ft_u8 pad[2];
};

// What the calls of one key did, from the start of the trace (read and diffed by userspace). Counts are
// exact; times are summed in the kernel. Updated with atomic adds: one copy per key, not per CPU.
struct ft_agg {
    ft_u64 calls;       // calls returned, but for waits: their outcome counts below add up to theirs
    ft_u64 blocked;     // waits that slept: woken, timed out or interrupted
    ft_u64 eagain;      // waits that found the value changed
    ft_u64 timeouts;    // waits that timed out
    ft_u64 interrupted; // waits a signal ended
    ft_u64 failed;      // calls that failed otherwise (EINVAL, EFAULT, EDEADLK, ...)
    ft_u64 acquired;    // PI locks taken at once, without sleeping
    ft_u64 woken;       // waits: returned woken; wakes and requeues: waiters they woke
    ft_u64 moved;       // requeues: waiters they moved
    ft_u64 wait_ns;     // waits that slept: time, summed
    ft_u64 max_wait_ns; // waits that slept: the longest
    ft_u64 hist[FT_HIST_SLOTS]; // waits that slept: log2 slots of their time
    ft_u64 spins;       // contended acquisitions of the word's bucket lock (a private hash's) in these calls
    ft_u64 spin_ns;     // and the time spun for it
    ft_u32 last_tid;    // the thread of the latest call
    ft_u32 several;     // non-zero once two threads made these calls (a word one thread calls cannot
                        // contend with itself for its bucket's lock)
};

// Key of the `edges` map: requeues of one process from one word to another.
struct ft_edge_key {
    ft_u64 from;
    ft_u64 to;
    ft_u32 pid;
    ft_u32 pad;
};

struct ft_edge {
    ft_u64 requeues;
    ft_u64 moved;
    ft_u64 woken;
};

// A value of the per-CPU `latency` map: a log2 histogram of nanoseconds.
struct ft_hist {
    ft_u64 count;
    ft_u64 sum;
    ft_u64 max;
    ft_u64 slot[FT_HIST_SLOTS];
};

// One argument of a USDT probe site, as userspace parsed it from the site's note.
struct usdt_arg {
    ft_s64 val;     // the constant, or the memory offset
    ft_u16 reg_off; // offset of the register in struct pt_regs
    ft_u8 kind;     // USDT_*
    ft_u8 size;     // 1, 2, 4 or 8 bytes
    ft_u8 is_signed;
    ft_u8 pad[3];
};

// The arguments of one probe site (`usdt_specs` value).
struct usdt_spec {
    ft_u32 nargs;
    ft_u32 pad;
    struct usdt_arg args[USDT_MAX_ARGS];
};

#endif
