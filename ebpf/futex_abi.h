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
#define FT_FUTEX 1      // a futex syscall returned (all fields)
#define FT_WAIT_BEGIN 2 // a wait op entered the kernel (ts, uaddr, op, stack)
#define FT_EXIT 3       // a traced process ended (group_dead)
#define FT_FORK 4       // a traced process forked a child that is now traced
#define FT_USDT 5       // a futex-core USDT probe fired: op = which probe, the six u64 slots from uaddr
                        // to final_uaddr = its six arguments

// `ft_event.op` of the futex2 syscalls: numbers above the futex(2) commands (which end at 13).
// rust: u8
#define FT_OP_FUTEX2_WAIT 64
#define FT_OP_FUTEX2_WAKE 65
#define FT_OP_FUTEX2_REQUEUE 66
#define FT_OP_FUTEX2_WAITV 67

// Indices into the `counters` map (per-CPU u64).
// rust: u32
#define C_LOST_EVENTS 0   // ring buffer full: event not sent
#define C_STACK_ERRORS 1  // bpf_get_stackid failed (map full or collision): stack not stored
#define C_INFLIGHT_FULL 2 // no room for a thread's in-flight state: that syscall is not traced
#define C_MISSED_EXITS 3  // a thread entered a futex call while its previous one was still in flight:
                          // that one's return was never seen (its event is lost; not expected)
#define C_NCOUNTERS 4

// Indices into the `config` map (u64).
// rust: u32
#define CFG_FOLLOW_FORKS 0 // non-zero: children of traced processes are traced too
#define CFG_NO_STACKS 1    // non-zero: capture no stacks (the cheapest tracing)
#define CFG_NCONFIG 4

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
    ft_u64 ts;          // when it happened (exit of the syscall for FT_FUTEX), CLOCK_MONOTONIC ns
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
    ft_u32 flags;       // the raw op word (futex(2)) or the flags argument (futex2)
    ft_u8 kind;         // FT_*
    ft_u8 op;           // futex(2) command (op & 127), FT_OP_FUTEX2_*, or FT_USDT_* for FT_USDT
    ft_u8 has_timeout;
    ft_u8 slept;        // a wait: the thread was switched out asleep (not just preempted) during the call
    ft_u8 pad[4];
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
