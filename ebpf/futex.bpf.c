// SPDX-License-Identifier: GPL-2.0
//
// futex-trace's kernel side: every futex syscall of the traced processes, with the scheduler events
// that tell who woke a waiter, when, and how long it then waited for a CPU.
//
// Built with `clang -O2 -g -target bpf` (ebpf/build.sh); the object is committed beside this file and
// loaded by aya from futex-trace (src/ebpf.rs). The records, keys, values and constants shared with
// futex-trace are in futex_abi.h (the one definition; see there how Rust reads it).
//
// Counts are kept here, not sent: each call is added at its return to `aggs`, per (process, futex word,
// operation) — counts, time waited and its log2 histogram — and each requeue to `edges`; userspace reads
// both every 100 ms and diffs them, so totals are exact at any rate and cost no ring-buffer traffic.
// Only what must be individual goes through the ring: sampled waits (FT_SAMPLE: the waiter's stack,
// its waker and the waker's stack, with the probabilities they were taken with) and fork/exit.
// Per-thread state lives in `inflight` between enter and exit; sched_waking/wakeup/switch annotate a
// sleeping waiter with its waker and its wake-up and on-CPU times. Nothing is dropped silently: every
// ring-buffer reservation, map insertion and stack capture that fails is counted in `counters`.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
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

// What every tracepoint program returns. The kernel hands a tracepoint's event on to the perf users of
// that tracepoint (perf stat, perf record, other tools) only when the program returned non-zero: 0 would
// hide every futex syscall and every scheduler event from them, machine-wide, while futex-trace runs.
#define TP_KEEP 1


// Processes to trace (tgid → 1). Written by userspace; FT_FORK children added here when following.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, u32);
    __type(value, u8);
} targets SEC(".maps");

// Thread id → what its current futex syscall is doing. An entry stays from a thread's first futex call
// to its exit (sched_process_exit removes it), reused in place by each call: inserting and deleting an
// element per call takes the map's bucket lock and free list twice, the largest cost of a cheap call.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, u32);
    __type(value, struct ft_inflight);
} inflight SEC(".maps");

// A ring buffer's records carry no type, so this global exports `struct ft_event` in the object's BTF
// (libbpf-cargo's documented practice), where futex-trace's tests check the Rust mirror against it.
struct ft_event ft_event_btf __attribute__((unused));

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    // Sized by futex-trace at load (--ring-size, 8 MiB by default); this is a placeholder.
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

// The aggregates (see the top of this file). One copy per key, updated with atomic adds: per-CPU
// copies would multiply the memory of a 416-byte value by the CPU count of big machines, and a futex
// word's calls already share its cache line. Allocated as keys appear (no preallocation).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ft_agg_key);
    __type(value, struct ft_agg);
} aggs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct ft_edge_key);
    __type(value, struct ft_edge);
} edges SEC(".maps");

// Whole-trace latency histograms (LAT_*): small, hot on every CPU, so per-CPU.
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LAT_KINDS);
    __type(key, u32);
    __type(value, struct ft_hist);
} latency SEC(".maps");

// The zero values new keys start from (read-only globals: nothing to clear on the stack per call, and
// `ft_agg` is too large for the BPF stack).
static const struct ft_agg zero_agg;
static const struct ft_edge zero_edge;
static const struct ft_inflight zero_inflight;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, CFG_NCONFIG);
    __type(key, u32);
    __type(value, u64);
} config SEC(".maps");

// The ring carries only samples and fork/exit, and userspace drains it every few milliseconds, so the
// reader is never woken from here: a wakeup from inside a tracepoint costs more than the record, and a
// BPF program that runs then (sched_waking, sched_switch) would be skipped as a recursion.
static __always_inline void submit(void *e)
{
    bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
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

// Stacks are captured only where they are used, because taking a user stack is the most expensive
// thing done here: a sampled wait (at its return), and a sampled waker (in sched_waking, still in the
// waker's context). A wake with nobody waiting costs no stack.
#define STACK_NOT_YET -1000

// CFG_UNWIND: stack copies for userspace to unwind from CFI (.eh_frame), as `perf --call-graph dwarf`
// does: code built without frame pointers (most distribution binaries, glibc, Rust's release profile)
// cannot be walked here. A separate ring, so that the copies (kilobytes each) never crowd out events;
// userspace reads it after the events ring, so a stack is there before the events naming it are used.
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    // Sized by futex-trace at load: half of --ring-size (a page when no stack is copied).
    __uint(max_entries, 32 << 20);
} ustacks SEC(".maps");

// The record being built, and this CPU's count of copies (ids). Tracepoint and uprobe programs never
// nest on a CPU (the kernel skips a program that fires while another runs there: `recursion_misses`),
// so one per CPU is never shared.
struct ustack_scratch {
    struct ft_ustack rec;
    u32 seq;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, struct ustack_scratch);
} ustack_scratch SEC(".maps");

// Processes whose stacks need more than CFG_STACK_PAGES (tgid → pages, at most FT_USTACK_PAGES): written
// by userspace when their stacks end at the end of their copy (a deep stack: V8's, a JVM's).
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, u32);
    __type(value, u32);
} stack_pages SEC(".maps");

struct ft_ustack ft_ustack_btf __attribute__((unused));

// CPython processes: where their interpreter frames are (tgid → struct ft_python), written by userspace.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, u32);
    __type(value, struct ft_python);
} pythons SEC(".maps");

struct ft_python ft_python_btf __attribute__((unused));

static __always_inline u64 read_u64(u64 addr)
{
    u64 v = 0;
    if (bpf_probe_read_user(&v, sizeof(v), (void *)addr))
        return 0;
    return v;
}

// The current thread's interpreter frames, if its process is a CPython one userspace described: its
// thread state found by native thread id in the main interpreter's list, then the frame chain from the
// current frame outwards (each frame's code object; the low bit set on a frame its eval loop entered).
// The frames are read where the thread stopped: a thread waiting for a lock released the GIL but keeps
// its frames.
static __always_inline void python_frames(struct ft_ustack_head *h)
{
    h->py_len = 0;
    struct ft_python *py = bpf_map_lookup_elem(&pythons, &h->pid);
    if (!py)
        return;
    u64 interp = read_u64(py->threads);
    if (!interp)
        return;
    u64 ts = read_u64(interp + py->interp_threads);
    int found = 0;
    for (int i = 0; i < FT_PY_THREADS && ts; i++) {
        if ((u32)read_u64(ts + py->tstate_tid) == h->tid) {
            found = 1;
            break;
        }
        ts = read_u64(ts + py->tstate_next);
    }
    if (!found)
        return;
    u64 cframe = read_u64(ts + py->tstate_cframe);
    u64 frame = cframe ? read_u64(cframe + py->cframe_frame) : 0;
    u32 n = 0;
    for (int i = 0; i < FT_PY_FRAMES && frame; i++) {
        u64 code = read_u64(frame + py->frame_code);
        u8 entry = 0;
        bpf_probe_read_user(&entry, 1, (void *)(frame + py->frame_is_entry));
        if (!code)
            break;
        h->py[i] = code | (entry ? 1 : 0);
        n = i + 1;
        frame = read_u64(frame + py->frame_previous);
    }
    h->py_len = n;
}

// The user registers of the current task (x86-64 names), read through its BTF pointer.
struct pt_regs {
    unsigned long bp;
    unsigned long ip;
    unsigned long sp;
} __attribute__((preserve_access_index));

#define PAGE 4096

// Copies the current thread's user registers and the top of its stack to the `ustacks` ring; returns
// the copy's id, or -1 (counted).
static __always_inline s32 copy_stack(void)
{
    u32 zero = 0;
    struct ustack_scratch *s = bpf_map_lookup_elem(&ustack_scratch, &zero);
    if (!s)
        return -1;
    struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    if (!r)
        return -1;
    u64 sp = r->sp;
    u64 id = bpf_get_current_pid_tgid();
    s->rec.head.ip = r->ip;
    s->rec.head.sp = sp;
    s->rec.head.bp = r->bp;
    s->rec.head.pid = id >> 32;
    s->rec.head.tid = (u32)id;
    u32 seq = s->seq++;
    s->rec.head.id = (s32)(((bpf_get_smp_processor_id() << FT_USTACK_SEQ_BITS) |
                            (seq & ((1 << FT_USTACK_SEQ_BITS) - 1))) & 0x7fffffff);
    python_frames(&s->rec.head);
    // The rest of the stack pointer's page, then whole pages: a page that is not mapped ends the copy
    // there (the top of the thread's stack), never losing what was below it.
    u32 first = PAGE - (sp & (PAGE - 1));
    u32 len = 0;
    if (bpf_probe_read_user(s->rec.data, first, (void *)sp) == 0) {
        len = first;
        u64 pages = cfg(CFG_STACK_PAGES);
        u32 *own = bpf_map_lookup_elem(&stack_pages, &s->rec.head.pid);
        if (own && *own > pages)
            pages = *own;
#pragma unroll
        for (int i = 0; i < FT_USTACK_PAGES; i++) {
            // Hidden from clang, which would otherwise prove the bound below and drop it, leaving the
            // verifier (which tracks the sum less precisely) to refuse the read.
            asm volatile("" : "+r"(len));
            if (i >= pages || len > FT_USTACK_BYTES - PAGE)
                break;
            if (bpf_probe_read_user(s->rec.data + len, PAGE, (void *)(sp + len)))
                break;
            len += PAGE;
        }
    }
    s->rec.head.len = len;
    u64 size = sizeof(s->rec.head) + len;
    if (size > sizeof(s->rec))
        size = sizeof(s->rec);
    if (bpf_ringbuf_output(&ustacks, &s->rec, size, BPF_RB_NO_WAKEUP))
        return -1;
    return s->rec.head.id;
}

static __always_inline s32 capture_stack(void *ctx)
{
    if (cfg(CFG_NO_STACKS))
        return -1;
    s32 id = cfg(CFG_UNWIND) ? copy_stack() : bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
    if (id < 0)
        count(C_STACK_ERRORS);
    return id;
}

static __always_inline int traced(u32 tgid)
{
    u64 one = cfg(CFG_ONE_PID);
    if (one)
        return tgid == one;
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

static __always_inline int is_requeue(u8 op)
{
    switch (op) {
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE:
    case FUTEX_CMP_REQUEUE_PI:
    case FT_OP_FUTEX2_REQUEUE:
        return 1;
    }
    return 0;
}

static __always_inline int is_waker(u8 op)
{
    switch (op) {
    case FUTEX_WAKE:
    case FUTEX_WAKE_OP:
    case FUTEX_UNLOCK_PI:
    case FUTEX_WAKE_BITSET:
    case FT_OP_FUTEX2_WAKE:
        return 1;
    }
    return is_requeue(op);
}

// The kernel's internal restart codes (ERESTARTSYS..ERESTART_RESTARTBLOCK), seen at syscall exit when a
// signal interrupts a sleep.
#define ERESTARTSYS 512
#define ERESTART_RESTARTBLOCK 516
#define ETIMEDOUT 110

// How a wait's return reads (FT_OUT_*): the one place it is read.
static __always_inline u8 wait_outcome(u8 op, s64 ret, u8 slept)
{
    if (ret >= 0) {
        // FUTEX_LOCK_PI returns 0 whether it slept or took the lock at once.
        if ((op == FUTEX_LOCK_PI || op == FUTEX_LOCK_PI2) && !slept)
            return FT_OUT_ACQUIRED;
        return FT_OUT_WOKEN; // 0, or futex_waitv's index of the word that woke it
    }
    if (ret == -EAGAIN)
        return FT_OUT_EAGAIN;
    if (ret == -ETIMEDOUT)
        return FT_OUT_TIMEDOUT;
    if (ret == -EINTR || (ret <= -ERESTARTSYS && ret >= -ERESTART_RESTARTBLOCK))
        return FT_OUT_INTERRUPTED;
    return FT_OUT_FAILED;
}

static __always_inline int slept_out(u8 out)
{
    return out == FT_OUT_WOKEN || out == FT_OUT_TIMEDOUT || out == FT_OUT_INTERRUPTED;
}

// floor(log2(v)), 0 for 0. The BPF instruction set has no count of leading zeros: a binary search.
static __always_inline u32 ilog2(u64 v)
{
    u32 r = 0;
    if (v >> 32) { v >>= 32; r += 32; }
    if (v >> 16) { v >>= 16; r += 16; }
    if (v >> 8) { v >>= 8; r += 8; }
    if (v >> 4) { v >>= 4; r += 4; }
    if (v >> 2) { v >>= 2; r += 2; }
    if (v >> 1) { r += 1; }
    return r;
}

// Log2 slot of a nanosecond value (see FT_HIST_SLOTS).
static __always_inline u32 log2_slot(u64 v)
{
    u32 r = ilog2(v);
    return r < FT_HIST_SLOTS ? r : FT_HIST_SLOTS - 1;
}

// The kernel's futex hash tables (kernel/futex/core.c, Linux 6.17+ with CONFIG_FUTEX_PRIVATE_HASH): a
// private futex (FUTEX_PRIVATE_FLAG) of a process with a private hash goes to bucket
// jhash2(page, offset) & hash_mask of task->mm->futex_phash; everything else to the global table. Only
// the fields read here are declared; CO-RE relocates them against the running kernel's BTF, and a
// kernel without them (older, or built without the option) has no private hashes.
struct futex_hash_bucket {
    int waiters;
} __attribute__((preserve_access_index));

struct futex_private_hash {
    unsigned int hash_mask;
    struct futex_hash_bucket queues[];
} __attribute__((preserve_access_index));

struct mm_struct {
    struct futex_private_hash *futex_phash;
} __attribute__((preserve_access_index));

struct task_struct {
    struct mm_struct *mm;
} __attribute__((preserve_access_index));

// ft_agg_key.hash_shift of a call with the raw flags `flags`, made now by the current task: the table
// its futex went to, as the kernel chose it for this call (its mask is read at the call's return, so a
// resize or a prctl(PR_FUTEX_HASH) during the trace is followed). userspace computes the bucket.
static __always_inline u8 hash_shift(u32 flags)
{
    if (!(flags & FUTEX_PRIVATE_FLAG))
        return FT_HASH_SHARED;
    if (!bpf_core_field_exists(((struct mm_struct *)0)->futex_phash))
        return FT_HASH_GLOBAL;
    // Direct loads through the task's BTF pointer (the verifier makes them fault-safe): cheaper than
    // three bpf_probe_read_kernel calls.
    struct task_struct *t = bpf_get_current_task_btf();
    struct mm_struct *mm = t->mm;
    if (!mm)
        return FT_HASH_GLOBAL;
    struct futex_private_hash *fph = mm->futex_phash;
    if (!fph)
        return FT_HASH_GLOBAL;
    u32 mask = fph->hash_mask;
    return mask ? (u8)ilog2((u64)mask + 1) : FT_HASH_GLOBAL;
}

// The value of `key` in `map`, created as `zero` on first use; NULL when the map is full, counted in
// counter `full`.
static __always_inline void *lookup_or_init(void *map, void *key, const void *zero, u32 full)
{
    void *v = bpf_map_lookup_elem(map, key);
    if (v)
        return v;
    // Another CPU may create it at the same moment (EEXIST): then the lookup below finds theirs.
    bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
    v = bpf_map_lookup_elem(map, key);
    if (!v)
        count(full);
    return v;
}

// The aggregate of (pid, uaddr, op, hash table), created zeroed on first use; NULL (counted) when the
// map is full.
static __always_inline struct ft_agg *agg_of(u32 pid, u64 uaddr, u8 op, u32 flags)
{
    struct ft_agg_key k = {};
    k.uaddr = uaddr;
    k.pid = pid;
    k.op = op;
    k.hash_shift = hash_shift(flags);
    return lookup_or_init(&aggs, &k, &zero_agg, C_AGG_FULL);
}

static __always_inline void add(u64 *v, u64 n)
{
    __sync_fetch_and_add(v, n);
}

// A value into a per-CPU latency histogram (no atomics: this CPU's copy).
static __always_inline void latency_add(u32 kind, u64 v)
{
    struct ft_hist *h = bpf_map_lookup_elem(&latency, &kind);
    if (!h)
        return;
    h->count += 1;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    u32 i = log2_slot(v);
    if (i < FT_HIST_SLOTS)
        h->slot[i] += 1;
}

// Common entry: records the thread's in-flight state (userspace counts the waiters of each word from it).
static __always_inline int enter(void *ctx, u8 op, u64 uaddr, u64 uaddr2, u32 val, u32 val2, u32 val3,
                                 u32 flags, u8 has_timeout)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return TP_KEEP;

    struct ft_inflight *st = lookup_or_init(&inflight, &tid, &zero_inflight, C_INFLIGHT_FULL);
    if (!st)
        return TP_KEEP;
    if (st->active) {
        // Still in flight from a previous call: that call's return was never reported, and it is not
        // counted. Count that, so that it shows rather than vanishing.
        count(C_MISSED_EXITS);
    }
    st->start_ts = bpf_ktime_get_ns();
    st->uaddr = uaddr;
    st->uaddr2 = uaddr2;
    st->wake_ts = 0;
    st->wakeup_ts = 0;
    st->oncpu_ts = 0;
    st->final_uaddr = uaddr;
    st->val = val;
    st->val2 = val2;
    st->val3 = val3;
    st->waker_tid = 0;
    st->waker_pid = 0;
    st->stack_id = STACK_NOT_YET;
    st->waker_stack_id = -1;
    st->waker_every = 0;
    st->spin_start = 0;
    st->woken_seen = 0;
    st->tgid = tgid;
    st->flags = flags;
    st->op = op;
    st->has_timeout = has_timeout;
    st->slept = 0;
    st->active = 1;
    return TP_KEEP;
}

// A wait that slept, sampled: its stack with probability min(1, d / CFG_STACK_RATE), and the record if
// either it or its waker's stack (taken by count in sched_waking) was taken.
static __always_inline void sample(void *ctx, struct ft_inflight *st, u32 tgid, u32 tid, s64 ret, u8 out,
                                   u64 now, u64 d)
{
    u64 rate = cfg(CFG_STACK_RATE);
    int own = !cfg(CFG_NO_STACKS) &&
              (rate == 0 || d >= rate || (((u64)bpf_get_prandom_u32() * rate) >> 32) < d);
    // A wait that returns an error (timed out, interrupted) was not released by a futex waker: its
    // wakeup came from a timer or a signal, in interrupt context, where sched_waking sees whichever
    // thread was running on that CPU. That thread is not its waker, nor its word the waiter's.
    int released = out == FT_OUT_WOKEN;
    int waker_stack = released && st->waker_stack_id >= 0;
    if (!own && !waker_stack)
        return;
    s32 stack_id = own ? capture_stack(ctx) : -1;
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return;
    }
    e->kind = FT_SAMPLE;
    e->ts = now;
    e->start_ts = st->start_ts;
    e->uaddr = st->uaddr;
    e->uaddr2 = st->uaddr2;
    e->wake_ts = st->wake_ts;
    e->wakeup_ts = st->wakeup_ts;
    e->oncpu_ts = st->oncpu_ts;
    e->final_uaddr = released ? st->final_uaddr : st->uaddr;
    e->waker_tid = released ? st->waker_tid : 0;
    e->waker_pid = released ? st->waker_pid : 0;
    e->pad = 0;
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    e->waker_stack_id = waker_stack ? st->waker_stack_id : -1;
    e->ret = ret;
    e->pid = tgid;
    e->tid = tid;
    e->val = st->val;
    e->val2 = st->val2;
    e->val3 = st->val3;
    e->stack_id = stack_id;
    e->woken_seen = 0;
    e->flags = st->flags;
    e->op = st->op;
    e->has_timeout = st->has_timeout;
    e->outcome = out;
    e->waker_every = waker_stack ? (st->waker_every ? st->waker_every : 1) : 0;
    e->stack_rate = stack_id >= 0 ? rate : 0;
    submit(e);
}

static __always_inline int leave(void *ctx, s64 ret)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    struct ft_inflight *st = bpf_map_lookup_elem(&inflight, &tid);
    if (!st || !st->active)
        return TP_KEEP;
    u8 op = st->op;
    struct ft_agg *a = agg_of(tgid, st->uaddr, op, st->flags);
    // Racy between CPUs, harmlessly: `several` only ever goes from 0 to 1.
    if (a && a->last_tid != tid) {
        if (a->last_tid)
            a->several = 1;
        a->last_tid = tid;
    }
    if (is_wait(op)) {
        u8 out = wait_outcome(op, ret, st->slept);
        // Time only for what uses it: a wait that never slept (EAGAIN) costs no clock read.
        int slept = slept_out(out);
        u64 now = slept || st->wakeup_ts ? bpf_ktime_get_ns() : 0;
        u64 d = now - st->start_ts;
        if (a) {
            switch (out) {
            case FT_OUT_WOKEN: add(&a->woken, 1); break;
            case FT_OUT_EAGAIN: add(&a->eagain, 1); break;
            case FT_OUT_TIMEDOUT: add(&a->timeouts, 1); break;
            case FT_OUT_INTERRUPTED: add(&a->interrupted, 1); break;
            case FT_OUT_FAILED: add(&a->failed, 1); break;
            case FT_OUT_ACQUIRED: add(&a->acquired, 1); break;
            }
            if (slept) {
                add(&a->blocked, 1);
                add(&a->wait_ns, d);
                if (d > a->max_wait_ns)
                    a->max_wait_ns = d; // racy between CPUs: at worst a maximum a moment late
                u32 i = log2_slot(d);
                if (i < FT_HIST_SLOTS)
                    add(&a->hist[i], 1);
            }
        }
        if (out == FT_OUT_WOKEN && st->wake_ts && st->waker_tid)
            latency_add(LAT_WAKE_TO_RETURN, now - st->wake_ts);
        if (st->wakeup_ts && st->oncpu_ts >= st->wakeup_ts)
            latency_add(LAT_SCHED_DELAY, st->oncpu_ts - st->wakeup_ts);
        if (slept)
            sample(ctx, st, tgid, tid, ret, out, now, d);
    } else if (a) {
        add(&a->calls, 1);
        if (ret < 0) {
            add(&a->failed, 1);
        } else if (is_requeue(op)) {
            // The kernel returns woken + moved. It wakes up to nr_wake first, except for
            // CMP_REQUEUE_PI, whose top waiter is woken only if it can take the PI lock at once (else
            // it is moved too): there, count the wakeups seen.
            u64 total = ret;
            u64 woken = op == FUTEX_CMP_REQUEUE_PI ? st->woken_seen : st->val;
            if (woken > total)
                woken = total;
            add(&a->woken, woken);
            add(&a->moved, total - woken);
            struct ft_edge_key ek = {};
            ek.from = st->uaddr;
            ek.to = st->uaddr2;
            ek.pid = tgid;
            struct ft_edge *e = lookup_or_init(&edges, &ek, &zero_edge, C_AGG_FULL);
            if (e) {
                add(&e->requeues, 1);
                add(&e->moved, total - woken);
                add(&e->woken, woken);
            }
        } else if (is_waker(op)) {
            // UNLOCK_PI returns 0 whether or not it woke anyone: count the wakeups seen.
            add(&a->woken, op == FUTEX_UNLOCK_PI ? st->woken_seen : (u64)ret);
        }
    }
    st->active = 0;
    return TP_KEEP;
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
    // The flags shown are the first word's (FUTEX2_PRIVATE = FUTEX_PRIVATE_FLAG; the syscall's own
    // flags argument is unused).
    struct futex_waitv_user w[2] = {};
    bpf_probe_read_user(&w, sizeof(w), (void *)ctx->args[0]);
    return enter(ctx, FT_OP_FUTEX2_REQUEUE, w[0].uaddr, w[1].uaddr, (u32)ctx->args[2],
                 (u32)ctx->args[3], (u32)w[0].val, w[0].flags, 0);
}

SEC("tracepoint/syscalls/sys_enter_futex_waitv")
int futex2_waitv_enter(struct sys_enter_args *ctx)
{
    // futex_waitv(waiters, nr_futexes, flags, timeout, clockid): the first word is the one shown, with
    // its flags (the syscall's own flags argument is unused).
    struct futex_waitv_user w = {};
    bpf_probe_read_user(&w, sizeof(w), (void *)ctx->args[0]);
    return enter(ctx, FT_OP_FUTEX2_WAITV, w.uaddr, 0, (u32)w.val, (u32)ctx->args[1], 0, w.flags,
                 ctx->args[3] != 0);
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
    struct ft_inflight *w = bpf_map_lookup_elem(&inflight, &wakee);
    if (!w || !w->active || !is_wait(w->op) || w->wake_ts)
        return TP_KEEP;
    w->wake_ts = bpf_ktime_get_ns();
    u64 me_id = bpf_get_current_pid_tgid();
    u32 me = (u32)me_id;
    struct ft_inflight *k = bpf_map_lookup_elem(&inflight, &me);
    if (k && k->active && is_waker(k->op)) {
        // The waker's stack, sampled by count: decided once per wake call; its weight is `every`.
        if (k->stack_id == STACK_NOT_YET) {
            u64 every = cfg(CFG_WAKER_EVERY);
            int by_count = every <= 1 || bpf_get_prandom_u32() % every == 0;
            k->stack_id = by_count ? capture_stack(ctx) : -1;
            k->waker_every = by_count ? (every > 1 ? (u32)every : 1) : 0;
        }
        // A wait as long as the stack rate (whose own stack is always taken) always gets its waker's
        // stack too, with weight 1: the long waits, the ones that matter, all say who released them.
        u64 rate = cfg(CFG_STACK_RATE);
        int long_wait = rate > 0 && w->wake_ts - w->start_ts >= rate;
        if (long_wait && k->stack_id < 0)
            k->stack_id = capture_stack(ctx);
        w->waker_tid = me;
        w->waker_pid = me_id >> 32;
        w->waker_every = long_wait ? 1 : k->waker_every;
        w->waker_stack_id = w->waker_every ? k->stack_id : -1;
        // A requeued waiter is woken from the word it was moved to.
        w->final_uaddr = k->uaddr;
        k->woken_seen += 1;
    }
    return TP_KEEP;
}

SEC("tracepoint/sched/sched_wakeup")
int sched_wakeup(struct sched_wake_args *ctx)
{
    u32 wakee = ctx->pid;
    struct ft_inflight *w = bpf_map_lookup_elem(&inflight, &wakee);
    if (!w || !w->active || !is_wait(w->op) || w->wakeup_ts)
        return TP_KEEP;
    w->wakeup_ts = bpf_ktime_get_ns();
    return TP_KEEP;
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
        struct ft_inflight *p = bpf_map_lookup_elem(&inflight, &prev);
        if (p && p->active && is_wait(p->op))
            p->slept = 1;
    }
    u32 next = ctx->next_pid;
    if (!next)
        return TP_KEEP;
    struct ft_inflight *w = bpf_map_lookup_elem(&inflight, &next);
    if (!w || !w->active || !w->wakeup_ts || w->oncpu_ts)
        return TP_KEEP;
    w->oncpu_ts = bpf_ktime_get_ns();
    return TP_KEEP;
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
        return TP_KEEP;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (!traced(tgid) || child <= 0)
        return TP_KEEP;
    // Threads (clone with CLONE_THREAD) are already covered by their tgid; a key for them is harmless
    // and removed when the thread exits (sched_process_exit below).
    u32 key = child;
    u8 one = 1;
    bpf_map_update_elem(&targets, &key, &one, BPF_NOEXIST);
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return TP_KEEP;
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
    return TP_KEEP;
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
        return TP_KEEP;
    // A thread killed inside a futex wait never reaches sys_exit.
    bpf_map_delete_elem(&inflight, &tid);
    if (tid != tgid)
        bpf_map_delete_elem(&targets, &tid);
    if (!ctx->group_dead)
        return TP_KEEP;
    struct ft_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) {
        count(C_LOST_EVENTS);
        return TP_KEEP;
    }
    __builtin_memset(e, 0, sizeof(*e));
    e->kind = FT_EXIT;
    e->ts = bpf_ktime_get_ns();
    e->pid = tgid;
    e->tid = tid;
    e->stack_id = -1;
    e->waker_stack_id = -1;
    submit(e);
    return TP_KEEP;
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

// Contention on the futex buckets' own locks, from the kernel's lock contention tracepoints (as `perf lock
// contention` reads them): a traced thread, inside a futex call, that spins for a lock of its process's
// private futex hash (the lock's address within the table's buckets, as CO-RE lays them out on this
// kernel) counts a spin and the time spun on the call's word, whose bucket userspace names. The global
// table's locks are not told apart from other kernel locks here, and not counted.
struct lock_contention_args {
    u64 common;
    u64 lock_addr;
    u32 flags;
};

#define LCB_F_SPIN 1

static __always_inline int private_bucket_lock(u64 lock)
{
    if (!bpf_core_field_exists(((struct mm_struct *)0)->futex_phash))
        return 0;
    struct task_struct *t = bpf_get_current_task_btf();
    struct mm_struct *mm = t->mm;
    if (!mm)
        return 0;
    struct futex_private_hash *fph = mm->futex_phash;
    if (!fph)
        return 0;
    u64 base = (u64)fph + bpf_core_field_offset(struct futex_private_hash, queues);
    u64 size = bpf_core_type_size(struct futex_hash_bucket);
    u64 n = (u64)fph->hash_mask + 1;
    return lock >= base && lock < base + n * size;
}

SEC("tracepoint/lock/contention_begin")
int lock_contention_begin(struct lock_contention_args *ctx)
{
    if (!(ctx->flags & LCB_F_SPIN))
        return TP_KEEP;
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return TP_KEEP;
    struct ft_inflight *st = bpf_map_lookup_elem(&inflight, &tid);
    if (!st || !st->active || !(st->flags & FUTEX_PRIVATE_FLAG) || !private_bucket_lock(ctx->lock_addr))
        return TP_KEEP;
    st->spin_start = bpf_ktime_get_ns();
    return TP_KEEP;
}

SEC("tracepoint/lock/contention_end")
int lock_contention_end(void *ctx)
{
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32, tid = (u32)id;
    if (!traced(tgid))
        return TP_KEEP;
    struct ft_inflight *st = bpf_map_lookup_elem(&inflight, &tid);
    if (!st || !st->spin_start)
        return TP_KEEP;
    u64 d = bpf_ktime_get_ns() - st->spin_start;
    st->spin_start = 0;
    struct ft_agg *a = agg_of(tgid, st->uaddr, st->op, st->flags);
    if (a) {
        add(&a->spins, 1);
        add(&a->spin_ns, d);
    }
    return TP_KEEP;
}
