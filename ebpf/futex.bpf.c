// SPDX-License-Identifier: GPL-2.0
//
// futex-trace's kernel side: every futex syscall of the traced processes, with the scheduler events
// that tell who woke a waiter, when, and how long it then waited for a CPU.
//
// Built with `clang -O2 -g -target bpf` (ebpf/build.sh); the object is committed beside this file and
// loaded by aya from futex-trace (src/ebpf.rs). The records, specs and constants shared with futex-trace
// are in futex_abi.h (the one definition; see there how Rust reads it).
//
// One event per futex syscall, sent from sys_exit with what sys_enter saw (plus a WAIT_BEGIN event at
// the entry of a wait, so that waiters are visible while they sleep). Per-thread state lives in
// `inflight` between enter and exit; sched_waking/wakeup/switch annotate a sleeping waiter with its
// waker and its wake-up and on-CPU times. Nothing is dropped silently: every ring-buffer reservation
// and stack capture that fails is counted in `counters`.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <asm-generic/errno-base.h>
#include <linux/futex.h>

#include "futex_abi.h"

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

char LICENSE[] SEC("license") = "GPL";

struct inflight {
    u64 start_ts;
    u64 uaddr;
    u64 uaddr2;
    u64 wake_ts;
    u64 wakeup_ts;
    u64 oncpu_ts;
    u64 final_uaddr;
    u32 val;
    u32 val2;
    u32 val3;
    u32 waker_tid;
    s32 stack_id;
    s32 waker_stack_id;
    u32 woken_seen;
    u32 flags;
    u8 op;
    u8 has_timeout;
    u8 slept; // switched out asleep during the call (sched_switch)
    u8 pad[5];
};

// Processes to trace (tgid → 1). Written by userspace; FT_FORK children added here when following.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, u32);
    __type(value, u8);
} targets SEC(".maps");

// Thread id → what its current futex syscall is doing.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, u32);
    __type(value, struct inflight);
} inflight SEC(".maps");

// A ring buffer's records carry no type, so this global exports `struct ft_event` in the object's BTF
// (libbpf-cargo's documented practice), where futex-trace's tests check the Rust mirror against it.
struct ft_event ft_event_btf __attribute__((unused));

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    // 64 MiB: about 550,000 events, a second of a futex-bound process, for a reader starved of CPU.
    __uint(max_entries, 64 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 16384);
    __uint(key_size, sizeof(u32));
    __uint(value_size, 127 * sizeof(u64));
} stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, C_NCOUNTERS);
    __type(key, u32);
    __type(value, u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CFG_NCONFIG);
    __type(key, u32);
    __type(value, u64);
} config SEC(".maps");

// Waking the reader for every event costs more than the event: wake it only once a batch is waiting
// (userspace also drains the ring every few milliseconds, so nothing waits long).
static __always_inline void count(u32 idx);

#define WAKEUP_BYTES (256 * 1024)

static __always_inline void submit(void *e)
{
    u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
    bpf_ringbuf_submit(e, avail >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

// Stacks are captured only where they are used, because walking a user stack is the most expensive
// thing done here: a wait that slept (at its return), and a waker that woke a traced waiter (in
// sched_waking, still in the waker's context). A wake with nobody waiting costs no stack.
#define STACK_NOT_YET -1000

static __always_inline u64 cfg(u32 idx);

static __always_inline s32 capture_stack(void *ctx)
{
    if (cfg(CFG_NO_STACKS))
        return -1;
    s32 id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
    if (id < 0)
        count(C_STACK_ERRORS);
    return id;
}

static __always_inline void count(u32 idx)
{
    u64 *c = bpf_map_lookup_elem(&counters, &idx);
    if (c)
        *c += 1;
}

static __always_inline u64 cfg(u32 idx)
{
    u64 *v = bpf_map_lookup_elem(&config, &idx);
    return v ? *v : 0;
}

static __always_inline int traced(u32 tgid)
{
    return bpf_map_lookup_elem(&targets, &tgid) != 0;
}

static __always_inline int is_wait(u8 op)
{
    switch (op) {
    case FUTEX_WAIT:
    case FUTEX_LOCK_PI:
    case FUTEX_WAIT_BITSET:
    case FUTEX_WAIT_REQUEUE_PI:
    case FUTEX_LOCK_PI2:
    case FT_OP_FUTEX2_WAIT:
    case FT_OP_FUTEX2_WAITV:
        return 1;
    }
    return 0;
}

static __always_inline int is_waker(u8 op)
{
    switch (op) {
    case FUTEX_WAKE:
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
    case FUTEX_WAKE_OP:
    case FUTEX_UNLOCK_PI:
    case FUTEX_WAKE_BITSET:
    case FUTEX_CMP_REQUEUE_PI:
    case FT_OP_FUTEX2_WAKE:
    case FT_OP_FUTEX2_REQUEUE:
        return 1;
    }
    return 0;
}

// Common entry: records the thread's in-flight state and, for waits, sends WAIT_BEGIN.
static __always_inline int enter(void *ctx, u8 op, u64 uaddr, u64 uaddr2, u32 val, u32 val2, u32 val3,
                                 u32 flags, u8 has_timeout)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return 0;

    // Still in flight from a previous call: that call's return was never reported, and its event is
    // lost. Count it, so that it shows as lost rather than vanishing.
    if (bpf_map_lookup_elem(&inflight, &tid))
        count(C_MISSED_EXITS);

    struct inflight st = {};
    st.start_ts = bpf_ktime_get_ns();
    st.uaddr = uaddr;
    st.uaddr2 = uaddr2;
    st.final_uaddr = uaddr;
    st.val = val;
    st.val2 = val2;
    st.val3 = val3;
    st.flags = flags;
    st.op = op;
    st.has_timeout = has_timeout;
    st.stack_id = STACK_NOT_YET;
    st.waker_stack_id = -1;
    if (bpf_map_update_elem(&inflight, &tid, &st, BPF_ANY) != 0) {
        count(C_INFLIGHT_FULL);
        return 0;
    }

    if (is_wait(op)) {
        struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
        if (!e) {
            count(C_LOST_EVENTS);
            return 0;
        }
        __builtin_memset(e, 0, sizeof(*e));
        e->kind = FT_WAIT_BEGIN;
        e->ts = st.start_ts;
        e->start_ts = st.start_ts;
        e->pid = tgid;
        e->tid = tid;
        e->uaddr = uaddr;
        e->uaddr2 = uaddr2;
        e->final_uaddr = uaddr;
        e->val = val;
        e->val2 = val2;
        e->val3 = val3;
        e->flags = flags;
        e->op = op;
        e->has_timeout = has_timeout;
        e->stack_id = -1; // captured at the return, if the wait slept
        e->waker_stack_id = -1;
        submit(e);
    }
    return 0;
}

static __always_inline int leave(void *ctx, s64 ret)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    struct inflight *st = bpf_map_lookup_elem(&inflight, &tid);
    if (!st)
        return 0;

    s32 stack_id = st->stack_id;
    if (stack_id == STACK_NOT_YET) {
        // A wait that slept (anything but EAGAIN) gets its stack now; a waker got it when it woke.
        stack_id = is_wait(st->op) && ret != -EAGAIN ? capture_stack(ctx) : -1;
    }
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        bpf_map_delete_elem(&inflight, &tid);
        return 0;
    }
    e->kind = FT_FUTEX;
    e->ts = bpf_ktime_get_ns();
    e->start_ts = st->start_ts;
    e->uaddr = st->uaddr;
    e->uaddr2 = st->uaddr2;
    e->wake_ts = st->wake_ts;
    e->wakeup_ts = st->wakeup_ts;
    e->oncpu_ts = st->oncpu_ts;
    e->final_uaddr = st->final_uaddr;
    e->waker_tid = st->waker_tid;
    e->waker_stack_id = st->waker_stack_id;
    // A wait that returns an error (timed out, interrupted) was not released by a futex waker: its
    // wakeup came from a timer or a signal, in interrupt context, where sched_waking sees whichever
    // thread was running on that CPU. That thread is not its waker, nor its word the waiter's.
    if (is_wait(st->op) && ret < 0) {
        e->waker_tid = 0;
        e->waker_stack_id = -1;
        e->final_uaddr = st->uaddr;
    }
    e->ret = ret;
    e->pid = tgid;
    e->tid = tid;
    e->val = st->val;
    e->val2 = st->val2;
    e->val3 = st->val3;
    e->stack_id = stack_id;
    e->woken_seen = st->woken_seen;
    e->flags = st->flags;
    e->op = st->op;
    e->has_timeout = st->has_timeout;
    e->slept = st->slept;
    __builtin_memset(e->pad, 0, sizeof(e->pad));
    submit(e);
    bpf_map_delete_elem(&inflight, &tid);
    return 0;
}

// Tracepoint records, as /sys/kernel/tracing/events/syscalls/*/format gives them: an 8-byte common
// header, the syscall number, then each argument in an 8-byte slot.
struct sys_enter_args {
    u64 common;
    s64 nr;
    u64 args[6];
};

struct sys_exit_args {
    u64 common;
    s64 nr;
    s64 ret;
};

SEC("tracepoint/syscalls/sys_enter_futex")
int futex_enter(struct sys_enter_args *ctx)
{
    // futex(uaddr, op, val, utime|val2, uaddr2, val3)
    u32 raw = (u32)ctx->args[1];
    u8 cmd = raw & FUTEX_CMD_MASK;
    u8 has_timeout = 0;
    u32 val2 = 0;
    if (cmd == FUTEX_REQUEUE || cmd == FUTEX_CMP_REQUEUE || cmd == FUTEX_WAKE_OP ||
        cmd == FUTEX_CMP_REQUEUE_PI)
        val2 = (u32)ctx->args[3]; // the `utime` slot carries nr_requeue / val2
    else
        has_timeout = ctx->args[3] != 0;
    return enter(ctx, cmd, ctx->args[0], ctx->args[4], (u32)ctx->args[2], val2, (u32)ctx->args[5], raw,
                 has_timeout);
}

SEC("tracepoint/syscalls/sys_exit_futex")
int futex_exit(struct sys_exit_args *ctx)
{
    return leave(ctx, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_futex_wait")
int futex2_wait_enter(struct sys_enter_args *ctx)
{
    // futex_wait(uaddr, val, mask, flags, timeout, clockid)
    return enter(ctx, FT_OP_FUTEX2_WAIT, ctx->args[0], 0, (u32)ctx->args[1], 0, (u32)ctx->args[2],
                 (u32)ctx->args[3], ctx->args[4] != 0);
}

SEC("tracepoint/syscalls/sys_enter_futex_wake")
int futex2_wake_enter(struct sys_enter_args *ctx)
{
    // futex_wake(uaddr, mask, nr, flags)
    return enter(ctx, FT_OP_FUTEX2_WAKE, ctx->args[0], 0, (u32)ctx->args[2], 0, (u32)ctx->args[1],
                 (u32)ctx->args[3], 0);
}

// struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; }
struct futex_waitv_user {
    u64 val;
    u64 uaddr;
    u32 flags;
    u32 reserved;
};

SEC("tracepoint/syscalls/sys_enter_futex_requeue")
int futex2_requeue_enter(struct sys_enter_args *ctx)
{
    // futex_requeue(waiters[2], flags, nr_wake, nr_requeue)
    struct futex_waitv_user w[2] = {};
    bpf_probe_read_user(&w, sizeof(w), (void *)ctx->args[0]);
    return enter(ctx, FT_OP_FUTEX2_REQUEUE, w[0].uaddr, w[1].uaddr, (u32)ctx->args[2],
                 (u32)ctx->args[3], (u32)w[0].val, (u32)ctx->args[1], 0);
}

SEC("tracepoint/syscalls/sys_enter_futex_waitv")
int futex2_waitv_enter(struct sys_enter_args *ctx)
{
    // futex_waitv(waiters, nr_futexes, flags, timeout, clockid): the first word is the one shown.
    struct futex_waitv_user w = {};
    bpf_probe_read_user(&w, sizeof(w), (void *)ctx->args[0]);
    return enter(ctx, FT_OP_FUTEX2_WAITV, w.uaddr, 0, (u32)w.val, (u32)ctx->args[1], 0,
                 (u32)ctx->args[2], ctx->args[3] != 0);
}

SEC("tracepoint/syscalls/sys_exit_futex_wait")
int futex2_wait_exit(struct sys_exit_args *ctx) { return leave(ctx, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_futex_wake")
int futex2_wake_exit(struct sys_exit_args *ctx) { return leave(ctx, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_futex_requeue")
int futex2_requeue_exit(struct sys_exit_args *ctx) { return leave(ctx, ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_futex_waitv")
int futex2_waitv_exit(struct sys_exit_args *ctx) { return leave(ctx, ctx->ret); }

// sched:sched_waking / sched_wakeup: comm[16] at 8, pid at 24.
struct sched_wake_args {
    u64 common;
    char comm[16];
    s32 pid;
    s32 prio;
    s32 target_cpu;
};

// Runs in the waker's context: if the wakee sleeps in a traced futex wait and the waker is inside a
// traced futex wake or requeue, that is the waker → wakee edge.
SEC("tracepoint/sched/sched_waking")
int sched_waking(struct sched_wake_args *ctx)
{
    u32 wakee = ctx->pid;
    struct inflight *w = bpf_map_lookup_elem(&inflight, &wakee);
    if (!w || !is_wait(w->op) || w->wake_ts)
        return 0;
    w->wake_ts = bpf_ktime_get_ns();
    u32 me = (u32)bpf_get_current_pid_tgid();
    struct inflight *k = bpf_map_lookup_elem(&inflight, &me);
    if (k && is_waker(k->op)) {
        if (k->stack_id == STACK_NOT_YET)
            k->stack_id = capture_stack(ctx);
        w->waker_tid = me;
        w->waker_stack_id = k->stack_id;
        // A requeued waiter is woken from the word it was moved to.
        w->final_uaddr = k->uaddr;
        k->woken_seen += 1;
    }
    return 0;
}

SEC("tracepoint/sched/sched_wakeup")
int sched_wakeup(struct sched_wake_args *ctx)
{
    u32 wakee = ctx->pid;
    struct inflight *w = bpf_map_lookup_elem(&inflight, &wakee);
    if (!w || !is_wait(w->op) || w->wakeup_ts)
        return 0;
    w->wakeup_ts = bpf_ktime_get_ns();
    return 0;
}

struct sched_switch_args {
    u64 common;
    char prev_comm[16];
    s32 prev_pid;
    s32 prev_prio;
    s64 prev_state;
    char next_comm[16];
    s32 next_pid;
    s32 next_prio;
};

// The states sched_switch reports for a task that goes to sleep (TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE);
// a preempted task is reported as TASK_REPORT_MAX, and a running one as 0.
#define SWITCHED_OUT_ASLEEP 0x3

SEC("tracepoint/sched/sched_switch")
int sched_switch(struct sched_switch_args *ctx)
{
    // A traced waiter switched out asleep really slept (a PI lock taken at once never does).
    u32 prev = ctx->prev_pid;
    if (prev && (ctx->prev_state & SWITCHED_OUT_ASLEEP)) {
        struct inflight *p = bpf_map_lookup_elem(&inflight, &prev);
        if (p && is_wait(p->op))
            p->slept = 1;
    }
    u32 next = ctx->next_pid;
    if (!next)
        return 0;
    struct inflight *w = bpf_map_lookup_elem(&inflight, &next);
    if (!w || !w->wakeup_ts || w->oncpu_ts)
        return 0;
    w->oncpu_ts = bpf_ktime_get_ns();
    return 0;
}

// sched_process_fork's layout changed across kernels (comm became __data_loc in 6.x). A tracepoint
// program may not read past the record (the kernel refuses to attach it), so there is one program per
// layout; userspace reads the format from tracefs and attaches the matching one.
struct fork_args_dataloc { // 6.x: __data_loc parent_comm; parent_pid; __data_loc child_comm; child_pid
    u64 common;
    u32 parent_comm;
    s32 parent_pid;
    u32 child_comm;
    s32 child_pid;
};

struct fork_args_array { // older: char parent_comm[16]; parent_pid; char child_comm[16]; child_pid
    u64 common;
    char parent_comm[16];
    s32 parent_pid;
    char child_comm[16];
    s32 child_pid;
};

static __always_inline int on_fork(s32 parent, s32 child)
{
    if (!cfg(CFG_FOLLOW_FORKS))
        return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!traced(tgid) || child <= 0)
        return 0;
    // Threads (clone with CLONE_THREAD) are already covered by their tgid; a key for them is harmless
    // and removed when the thread exits (sched_process_exit below).
    u32 key = child;
    u8 one = 1;
    bpf_map_update_elem(&targets, &key, &one, BPF_NOEXIST);
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return 0;
    }
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = FT_FORK;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = parent;
    e->val = child;
    e->stack_id = -1;
    e->waker_stack_id = -1;
    submit(e);
    return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int sched_fork(struct fork_args_dataloc *ctx)
{
    return on_fork(ctx->parent_pid, ctx->child_pid);
}

SEC("tracepoint/sched/sched_process_fork")
int sched_fork_old(struct fork_args_array *ctx)
{
    return on_fork(ctx->parent_pid, ctx->child_pid);
}

struct sched_exit_args {
    u64 common;
    char comm[16];
    s32 pid;
    s32 prio;
    u8 group_dead;
};

SEC("tracepoint/sched/sched_process_exit")
int sched_exit(struct sched_exit_args *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return 0;
    // A thread killed inside a futex wait never reaches sys_exit.
    bpf_map_delete_elem(&inflight, &tid);
    if (tid != tgid)
        bpf_map_delete_elem(&targets, &tid);
    if (!ctx->group_dead)
        return 0;
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return 0;
    }
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = FT_EXIT;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = tid;
    e->stack_id = -1;
    e->waker_stack_id = -1;
    submit(e);
    return 0;
}

// ---- futex-core's USDT probes ---------------------------------------------------------------------
//
// One uprobe program attached at every site of every futex_core probe, with a cookie per site:
// bits 0..32 the site's argument spec (in `usdt_specs`), bits 32..40 which probe (FT_USDT_*:
// futex-core/src/probes.rs numbers them). Arguments are decoded the way libbpf's usdt.bpf.h
// does, except that registers are read with constant offsets into pt_regs (lockdown forbids
// bpf_probe_read_kernel, which libbpf uses); memory operands are user memory (bpf_probe_read_user).

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, USDT_MAX_SPECS);
    __type(key, u32);
    __type(value, struct usdt_spec);
} usdt_specs SEC(".maps");

// x86-64 struct pt_regs, as the kernel gives a uprobe program.
struct regs {
    u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

static __always_inline u64 reg_value(struct regs *r, u16 off)
{
    switch (off) {
    case 0: return r->r15;
    case 8: return r->r14;
    case 16: return r->r13;
    case 24: return r->r12;
    case 32: return r->bp;
    case 40: return r->bx;
    case 48: return r->r11;
    case 56: return r->r10;
    case 64: return r->r9;
    case 72: return r->r8;
    case 80: return r->ax;
    case 88: return r->cx;
    case 96: return r->dx;
    case 104: return r->si;
    case 112: return r->di;
    case 128: return r->ip;
    case 152: return r->sp;
    }
    return 0;
}

SEC("uprobe")
int usdt_probe(struct regs *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return 0;
    u64 cookie = bpf_get_attach_cookie(ctx);
    u32 spec_id = (u32)cookie;
    u8 probe = (cookie >> 32) & 0xff;
    struct usdt_spec *sp = bpf_map_lookup_elem(&usdt_specs, &spec_id);
    if (!sp)
        return 0;
    // A copy of the registers on the stack: clang turns the switch in reg_value into a computed offset,
    // which the verifier refuses on the context pointer but accepts on the stack.
    struct regs regs;
    regs.r15 = ctx->r15; regs.r14 = ctx->r14; regs.r13 = ctx->r13; regs.r12 = ctx->r12;
    regs.bp = ctx->bp; regs.bx = ctx->bx; regs.r11 = ctx->r11; regs.r10 = ctx->r10;
    regs.r9 = ctx->r9; regs.r8 = ctx->r8; regs.ax = ctx->ax; regs.cx = ctx->cx;
    regs.dx = ctx->dx; regs.si = ctx->si; regs.di = ctx->di; regs.orig_ax = 0;
    regs.ip = ctx->ip; regs.cs = 0; regs.flags = 0; regs.sp = ctx->sp; regs.ss = 0;
    u64 a[USDT_MAX_ARGS] = {};
#pragma unroll
    for (int i = 0; i < USDT_MAX_ARGS; i++) {
        if (i >= sp->nargs)
            break;
        struct usdt_arg *ar = &sp->args[i];
        u64 v = 0;
        if (ar->kind == USDT_CONST) {
            v = ar->val;
        } else {
            v = reg_value(&regs, ar->reg_off);
            if (ar->kind == USDT_DEREF) {
                u64 m = 0;
                bpf_probe_read_user(&m, sizeof(m), (void *)(v + ar->val));
                v = m;
            }
        }
        u32 shift = ar->size >= 8 ? 0 : 64 - ar->size * 8;
        if (shift) {
            if (ar->is_signed)
                v = (u64)(((s64)(v << shift)) >> shift);
            else
                v = (v << shift) >> shift;
        }
        a[i] = v;
    }
    // Stacks where a flamegraph uses them: a wait that slept, a wake or requeue that released someone.
    s32 stack_id = -1;
    if ((probe == FT_USDT_WAIT_END && ((a[2] >> FT_USDT_OUTCOME_SHIFT) & 0xff) != FT_USDT_MISMATCH) ||
        ((probe == FT_USDT_WAKE || probe == FT_USDT_REQUEUE) && a[4]))
        stack_id = capture_stack(ctx);
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return 0;
    }
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = FT_USDT;
    e->op = probe;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = tid;
    e->uaddr = a[0];
    e->uaddr2 = a[1];
    e->wake_ts = a[2];
    e->wakeup_ts = a[3];
    e->oncpu_ts = a[4];
    e->final_uaddr = a[5];
    e->stack_id = stack_id;
    e->waker_stack_id = -1;
    submit(e);
    return 0;
}
