//! The ABI with the eBPF programs: `ebpf/futex_abi.h` is the one definition.
//!
//! Its constants are not restated here: build.rs turns every `#define` of the header into a `pub const`
//! of this module. Its structs are mirrored below as `#[repr(C)]` Rust, each field declared with its C
//! offset: a compile-time assertion checks every offset and the size, and `tests/abi.rs` checks the
//! whole mirror (names, offsets, sizes, field count) against the BTF of the committed object, so a field
//! swapped or resized on one side only fails a test.

include!(concat!(env!("OUT_DIR"), "/abi_consts.rs"));

/// Declares a `#[repr(C)]` mirror of a C struct. Every field carries its byte offset in the C struct
/// (`name @ offset: type`); the size of the whole struct follows the C name. Generates the assertions and
/// `FIELDS`, the layout `tests/abi.rs` compares with the object's BTF. Fields are integers, or arrays
/// or mirrors of integers (plain old data): `Default` is all zeros.
macro_rules! mirror {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = C $c:literal, size $size:literal {
            $( $(#[$fmeta:meta])* pub $field:ident @ $off:literal : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                // SAFETY: a mirror's fields are integers or arrays and mirrors of integers, for which
                // all zeros is a valid value (arrays longer than 32 have no derived Default).
                unsafe { std::mem::zeroed() }
            }
        }

        const _: () = {
            assert!(std::mem::size_of::<$name>() == $size);
            $( assert!(std::mem::offset_of!($name, $field) == $off); )*
        };

        impl $name {
            /// The C struct this mirrors.
            pub const C_NAME: &'static str = $c;
            /// Each field: (name, offset, size), in declaration order.
            pub const FIELDS: &'static [(&'static str, usize, usize)] = &[
                $( (stringify!($field), $off, std::mem::size_of::<$ty>()), )*
            ];
        }
    };
}

mirror! {
    /// One record of the `events` ring buffer (`struct ft_event`); see the header for each field.
    pub struct RawEvent = C "ft_event", size 152 {
        pub ts @ 0: u64,
        pub start_ts @ 8: u64,
        pub uaddr @ 16: u64,
        pub uaddr2 @ 24: u64,
        pub wake_ts @ 32: u64,
        pub wakeup_ts @ 40: u64,
        pub oncpu_ts @ 48: u64,
        pub final_uaddr @ 56: u64,
        pub ret @ 64: i64,
        pub pid @ 72: u32,
        pub tid @ 76: u32,
        pub val @ 80: u32,
        pub val2 @ 84: u32,
        pub val3 @ 88: u32,
        pub waker_tid @ 92: u32,
        pub stack_id @ 96: i32,
        pub waker_stack_id @ 100: i32,
        pub woken_seen @ 104: u32,
        pub flags @ 108: u32,
        /// `FT_*`.
        pub kind @ 112: u8,
        pub op @ 113: u8,
        pub has_timeout @ 114: u8,
        /// `FT_SAMPLE`: how the wait ended (`FT_OUT_*`).
        pub outcome @ 115: u8,
        /// `FT_SAMPLE` with a waker stack: taken with probability 1 / this.
        pub waker_every @ 116: u32,
        /// `FT_SAMPLE` with a stack: the stack rate it was taken at (0: every wait).
        pub stack_rate @ 120: u64,
        /// The waker's process.
        pub waker_pid @ 128: u32,
        pub pad @ 132: u32,
        /// `FT_SAMPLE`: the waiting thread's name, NUL-padded.
        pub comm @ 136: [u8; 16],
    }
}

mirror! {
    /// A key of the `aggs` map (`struct ft_agg_key`).
    pub struct RawAggKey = C "ft_agg_key", size 16 {
        pub uaddr @ 0: u64,
        pub pid @ 8: u32,
        /// As [`RawEvent::op`].
        pub op @ 12: u8,
        /// The kernel futex hash table: [`FT_HASH_GLOBAL`], or log2 of the process's private hash slots.
        pub hash_shift @ 13: u8,
        pub pad @ 14: [u8; 2],
    }
}

mirror! {
    /// A value of the `aggs` map (`struct ft_agg`): counts since the start of the trace.
    pub struct RawAgg = C "ft_agg", size 432 {
        /// Not kept for waits: their outcome counts add up to it.
        pub calls @ 0: u64,
        pub blocked @ 8: u64,
        pub eagain @ 16: u64,
        pub timeouts @ 24: u64,
        pub interrupted @ 32: u64,
        pub failed @ 40: u64,
        pub acquired @ 48: u64,
        pub woken @ 56: u64,
        pub moved @ 64: u64,
        pub wait_ns @ 72: u64,
        pub max_wait_ns @ 80: u64,
        pub hist @ 88: [u64; FT_HIST_SLOTS],
        pub spins @ 408: u64,
        pub spin_ns @ 416: u64,
        pub last_tid @ 424: u32,
        pub several @ 428: u32,
    }
}

mirror! {
    /// A value of the `inflight` map (`struct ft_inflight`): a traced thread's futex call.
    pub struct RawInflight = C "ft_inflight", size 120 {
        pub start_ts @ 0: u64,
        pub uaddr @ 8: u64,
        pub uaddr2 @ 16: u64,
        pub wake_ts @ 24: u64,
        pub wakeup_ts @ 32: u64,
        pub oncpu_ts @ 40: u64,
        pub final_uaddr @ 48: u64,
        pub tgid @ 56: u32,
        pub val @ 60: u32,
        pub val2 @ 64: u32,
        pub val3 @ 68: u32,
        pub waker_tid @ 72: u32,
        pub stack_id @ 76: i32,
        pub waker_stack_id @ 80: i32,
        pub woken_seen @ 84: u32,
        pub flags @ 88: u32,
        pub op @ 92: u8,
        pub has_timeout @ 93: u8,
        pub slept @ 94: u8,
        /// Inside a futex call.
        pub active @ 95: u8,
        pub waker_pid @ 96: u32,
        pub waker_every @ 100: u32,
        pub pad @ 104: u32,
        pub spin_start @ 112: u64,
    }
}

mirror! {
    /// A key of the `edges` map (`struct ft_edge_key`).
    pub struct RawEdgeKey = C "ft_edge_key", size 24 {
        pub from @ 0: u64,
        pub to @ 8: u64,
        pub pid @ 16: u32,
        pub pad @ 20: u32,
    }
}

mirror! {
    /// A value of the `edges` map (`struct ft_edge`).
    pub struct RawEdge = C "ft_edge", size 24 {
        pub requeues @ 0: u64,
        pub moved @ 8: u64,
        pub woken @ 16: u64,
    }
}

mirror! {
    /// A value of the per-CPU `latency` map (`struct ft_hist`).
    pub struct RawHist = C "ft_hist", size 344 {
        pub count @ 0: u64,
        pub sum @ 8: u64,
        pub max @ 16: u64,
        pub slot @ 24: [u64; FT_HIST_SLOTS],
    }
}

mirror! {
    /// The head of a `ustacks` record (`struct ft_ustack_head`): registers and what the copy holds.
    pub struct RawUstackHead = C "ft_ustack_head", size 304 {
        pub ip @ 0: u64,
        pub sp @ 8: u64,
        pub bp @ 16: u64,
        pub pid @ 24: u32,
        pub tid @ 28: u32,
        /// The id events name the copy by.
        pub id @ 32: i32,
        /// Bytes of stack that follow the head.
        pub len @ 36: u32,
        /// A CPython thread's interpreter frames in `py`.
        pub py_len @ 40: u32,
        pub pad @ 44: u32,
        /// Innermost first: code objects, | 1 on a frame its eval loop entered.
        pub py @ 48: [u64; FT_PY_FRAMES],
    }
}

mirror! {
    /// A whole `ustacks` record (`struct ft_ustack`); records on the ring end after `head.len` bytes.
    pub struct RawUstack = C "ft_ustack", size 28976 {
        pub head @ 0: RawUstackHead,
        pub data @ 304: [u8; FT_USTACK_BYTES],
    }
}

mirror! {
    /// A value of the `pythons` map (`struct ft_python`): where a CPython process's frames are.
    pub struct RawPython = C "ft_python", size 24 {
        pub threads @ 0: u64,
        pub interp_threads @ 8: u16,
        pub tstate_next @ 10: u16,
        pub tstate_tid @ 12: u16,
        pub tstate_cframe @ 14: u16,
        pub cframe_frame @ 16: u16,
        pub frame_code @ 18: u16,
        pub frame_previous @ 20: u16,
        pub frame_is_entry @ 22: u16,
    }
}

/// Marks mirrors as map keys and values aya may copy to and from the kernel.
macro_rules! pod {
    ($($t:ty),*) => {$(
        // SAFETY: a mirror is a `repr(C)` struct of integers with explicit padding fields, so every
        // byte is initialized and any bit pattern is valid: what aya's `Pod` requires.
        unsafe impl aya::Pod for $t {}
    )*};
}

pod!(
    RawAggKey,
    RawAgg,
    RawInflight,
    RawEdgeKey,
    RawEdge,
    RawHist,
    RawPython
);

impl RawEvent {
    /// Reads a record from the ring buffer's bytes; `None` if it is too short (never expected: the
    /// kernel side always sends whole records).
    pub fn from_bytes(b: &[u8]) -> Option<RawEvent> {
        if b.len() < std::mem::size_of::<RawEvent>() {
            return None;
        }
        // SAFETY: `RawEvent` is `repr(C)` plain old data (integers only, every bit pattern valid), and
        // `b` holds at least `size_of::<RawEvent>()` bytes; `read_unaligned` copes with any alignment.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<RawEvent>()) })
    }

    /// The record's six USDT argument slots (an `FT_USDT` record): `uaddr` to `final_uaddr`.
    pub fn usdt_args(&self) -> [u64; 6] {
        [
            self.uaddr,
            self.uaddr2,
            self.wake_ts,
            self.wakeup_ts,
            self.oncpu_ts,
            self.final_uaddr,
        ]
    }
}

mirror! {
    /// One argument of a USDT probe site (`struct usdt_arg`).
    pub struct RawUsdtArg = C "usdt_arg", size 16 {
        /// The constant, or the memory offset.
        pub val @ 0: i64,
        /// Offset of the register in `struct pt_regs`.
        pub reg_off @ 8: u16,
        /// `USDT_CONST`, `USDT_REG` or `USDT_DEREF`.
        pub kind @ 10: u8,
        pub size @ 11: u8,
        pub is_signed @ 12: u8,
        pub pad @ 13: [u8; 3],
    }
}

mirror! {
    /// The arguments of one probe site (`struct usdt_spec`, a value of the `usdt_specs` map).
    pub struct RawUsdtSpec = C "usdt_spec", size 104 {
        pub nargs @ 0: u32,
        pub pad @ 4: u32,
        pub args @ 8: [RawUsdtArg; USDT_MAX_ARGS as usize],
    }
}

// SAFETY: `RawUsdtSpec` and `RawUsdtArg` are `repr(C)` integers with explicit padding fields, so every
// byte is initialized and any bit pattern is valid: what aya's `Pod` requires of a map value.
unsafe impl aya::Pod for RawUsdtSpec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bytes_reads_the_c_layout() {
        let mut b = vec![0u8; 152];
        b[16..24].copy_from_slice(&0xdead_beefu64.to_le_bytes()); // uaddr
        b[64..72].copy_from_slice(&(-11i64).to_le_bytes()); // ret
        b[72..76].copy_from_slice(&42u32.to_le_bytes()); // pid
        b[96..100].copy_from_slice(&(-1i32).to_le_bytes()); // stack_id
        b[112] = FT_SAMPLE;
        b[113] = 9;
        b[128..132].copy_from_slice(&43u32.to_le_bytes()); // waker_pid
        b[136..141].copy_from_slice(b"vault"); // comm
        let r = RawEvent::from_bytes(&b).unwrap();
        assert_eq!(
            (r.uaddr, r.ret, r.pid, r.stack_id, r.kind, r.op, r.waker_pid),
            (0xdead_beef, -11, 42, -1, FT_SAMPLE, 9, 43)
        );
        assert_eq!(&r.comm[..6], b"vault\0");
        assert!(RawEvent::from_bytes(&b[..151]).is_none());
    }

    #[test]
    fn the_constants_come_from_the_header() {
        let header = include_str!("../../../ebpf/futex_abi.h");
        for (name, value) in [
            ("FT_USDT", u64::from(FT_USDT)),
            ("C_MISSED_EXITS", u64::from(C_MISSED_EXITS)),
            ("CFG_NO_STACKS", u64::from(CFG_NO_STACKS)),
            ("USDT_MAX_SPECS", u64::from(USDT_MAX_SPECS)),
        ] {
            assert!(
                header.contains(&format!("#define {name} {value}")),
                "{name} = {value}"
            );
        }
    }
}
