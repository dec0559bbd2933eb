//! The eBPF side, all of it: the object built from `ebpf/futex.bpf.c` and its ABI ([`abi`], defined once
//! in `ebpf/futex_abi.h`), the host's checks ([`check_can_trace`]), the loader that attaches the programs
//! and reads their maps and rings ([`KernelTracer`]), the decoding of what they send into [`Event`]s
//! ([`decode`]), futex-core's USDT probes ([`usdt`]), the unwinding of copied user stacks ([`unwind`]) and
//! how stacks are taken ([`StackOptions`]).
//!
//! Every error a user meets (not root, tracefs not mounted, no such pid, the kernel refusing a program)
//! is an [`crate::Error`] of one line that says what to do.
//!
//! [`Event`]: crate::event::Event

pub mod abi;
pub mod decode;
mod host;
mod options;
mod python;
mod tracer;
pub mod unwind;
pub mod usdt;

pub use host::{check_can_trace, check_pid, check_privileges, is_zombie, resolve_pid, tracefs};
pub use options::{
    stack_bytes, stack_rate, StackOptions, Unwind, DEFAULT_STACK_BYTES, DEFAULT_STACK_RATE,
    DEFAULT_WAKER_EVERY,
};
pub use tracer::{Counters, KernelTracer, TraceTarget, AGG_EVERY};
