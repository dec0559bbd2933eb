//! The binary event encoding of EVENTS chunks: a tag byte per kind, the event's time, process and thread,
//! then its fields in order, each by its [`Field`] encoding (little-endian fixed widths; varints for
//! counts; a flag byte before an optional value; an index for an enum). `FORMAT.md` is the contract.

use super::{bad, ReadError};
use crate::event::{
    Counts, Event, EventKind, FutexOp, HistOf, Kernel, KernelHash, Outcome, ThreadName, WaitKind,
    Waker,
};

const WAIT_KINDS: [WaitKind; 4] = [
    WaitKind::Raw,
    WaitKind::Mutex,
    WaitKind::Condvar,
    WaitKind::Kernel,
];
/// Outcomes by their number in the file; new ones are only ever appended.
const OUTCOMES: [Outcome; 6] = [
    Outcome::Woken,
    Outcome::TimedOut,
    Outcome::Mismatch,
    Outcome::Interrupted,
    Outcome::Failed,
    Outcome::Acquired,
];
const OPS: [FutexOp; 19] = [
    FutexOp::Wait,
    FutexOp::Wake,
    FutexOp::Fd,
    FutexOp::Requeue,
    FutexOp::CmpRequeue,
    FutexOp::WakeOp,
    FutexOp::LockPi,
    FutexOp::UnlockPi,
    FutexOp::TrylockPi,
    FutexOp::WaitBitset,
    FutexOp::WakeBitset,
    FutexOp::WaitRequeuePi,
    FutexOp::CmpRequeuePi,
    FutexOp::LockPi2,
    FutexOp::Futex2Wait,
    FutexOp::Futex2Wake,
    FutexOp::Futex2Requeue,
    FutexOp::Futex2Waitv,
    FutexOp::Unknown,
];

/// Reads the fields of one EVENTS chunk's payload.
pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    /// File offset of `b[0]`, for messages.
    pub(super) base: u64,
    /// The recording's format version (fields added since are read from the version that added them).
    pub(super) version: u16,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ReadError> {
        if self.b.len() - self.i < n {
            return Err(bad(format!(
                "corrupt recording: an event at byte {} runs past the end of its chunk",
                self.base + self.i as u64
            )));
        }
        let s = &self.b[self.i..self.i + n];
        self.i += n;
        Ok(s)
    }

    fn invalid(&self, what: &str, v: u8) -> ReadError {
        bad(format!(
            "corrupt recording: invalid {what} {v} at byte {}",
            self.base + self.i as u64 - 1
        ))
    }

    /// The next field, of the type asked for.
    pub(super) fn get<T: Field>(&mut self) -> Result<T, ReadError> {
        T::get(self)
    }

    /// An index into `all` (an enum's values in file order).
    fn pick<T: Copy>(&mut self, all: &[T], what: &str) -> Result<T, ReadError> {
        let v: u8 = self.get()?;
        all.get(v as usize)
            .copied()
            .ok_or_else(|| self.invalid(what, v))
    }
}

/// How one field is written and read.
pub(super) trait Field: Sized {
    fn put(&self, b: &mut Vec<u8>);
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError>;
}

macro_rules! fixed {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn put(&self, b: &mut Vec<u8>) {
                b.extend_from_slice(&self.to_le_bytes());
            }
            fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
                let bytes = c.take(size_of::<$t>())?;
                Ok(<$t>::from_le_bytes(bytes.try_into().expect("the width of the type")))
            }
        }
    )*};
}
fixed!(u8, u32, u64, i64);

/// An unsigned LEB128 varint: counts are mostly small.
struct Var(u64);

impl Field for Var {
    fn put(&self, b: &mut Vec<u8>) {
        let mut v = self.0;
        while v >= 0x80 {
            b.push(v as u8 | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte: u8 = c.get()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(Var(v));
            }
        }
        Err(c.invalid("varint byte", 0x80))
    }
}

/// A varint that must fit 32 bits (`what` names it in the error).
fn var_u32(c: &mut Cursor<'_>, what: &str) -> Result<u32, ReadError> {
    let Var(v) = c.get()?;
    u32::try_from(v).map_err(|_| c.invalid(what, 0xff))
}

impl Field for bool {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(u8::from(*self));
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        match c.get::<u8>()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(c.invalid("flag", v)),
        }
    }
}

/// A flag byte, then the value when there is one.
impl<T: Field> Field for Option<T> {
    fn put(&self, b: &mut Vec<u8>) {
        self.is_some().put(b);
        if let Some(v) = self {
            v.put(b);
        }
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        Ok(if c.get::<bool>()? {
            Some(c.get()?)
        } else {
            None
        })
    }
}

fn index_of<T: PartialEq>(all: &[T], v: &T) -> u8 {
    all.iter().position(|x| x == v).expect("listed") as u8
}

impl Field for WaitKind {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(index_of(&WAIT_KINDS, self));
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        c.pick(&WAIT_KINDS, "wait kind")
    }
}

impl Field for Outcome {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(index_of(&OUTCOMES, self));
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        c.pick(&OUTCOMES, "outcome")
    }
}

impl Field for FutexOp {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(index_of(&OPS, self));
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        c.pick(&OPS, "futex op")
    }
}

/// The thread, its stack, then (version 5) its process.
impl Field for Waker {
    fn put(&self, b: &mut Vec<u8>) {
        self.tid.put(b);
        self.stack.put(b);
        self.pid.put(b);
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        Ok(Waker {
            tid: c.get()?,
            stack: c.get()?,
            pid: if c.version >= 5 { c.get()? } else { 0 },
        })
    }
}

/// Its 16 bytes, as the kernel gives them.
impl Field for ThreadName {
    fn put(&self, b: &mut Vec<u8>) {
        b.extend_from_slice(&self.0);
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        Ok(ThreadName(c.take(16)?.try_into().expect("16 bytes")))
    }
}

/// The op as its index, or 0xff for none; the private flag; the stack.
impl Field for Kernel {
    fn put(&self, b: &mut Vec<u8>) {
        b.push(self.op.map_or(0xff, |o| index_of(&OPS, &o)));
        self.private.put(b);
        self.stack.put(b);
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        let op = match c.get::<u8>()? {
            0xff => None,
            v => Some(
                *OPS.get(v as usize)
                    .ok_or_else(|| c.invalid("futex op", v))?,
            ),
        };
        Ok(Kernel {
            op,
            private: c.get()?,
            stack: c.get()?,
        })
    }
}

/// Every count as a varint, in the order of the struct.
impl Field for Counts {
    fn put(&self, b: &mut Vec<u8>) {
        let c = self;
        for v in [
            c.calls,
            c.blocked,
            c.mismatches,
            c.timeouts,
            c.interrupted,
            c.failed,
            c.acquired,
            c.woken,
            c.moved,
            c.wait_ns,
        ] {
            Var(v).put(b);
        }
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        let mut v = || c.get::<Var>().map(|Var(v)| v);
        Ok(Counts {
            calls: v()?,
            blocked: v()?,
            mismatches: v()?,
            timeouts: v()?,
            interrupted: v()?,
            failed: v()?,
            acquired: v()?,
            woken: v()?,
            moved: v()?,
            wait_ns: v()?,
        })
    }
}

/// 0: the global table; 1, then the slots and bucket as varints: a private hash; 2 (version 5): the global
/// table, for a shared futex.
impl Field for KernelHash {
    fn put(&self, b: &mut Vec<u8>) {
        match *self {
            KernelHash::Global => b.push(0),
            KernelHash::Shared => b.push(2),
            KernelHash::Private { slots, bucket } => {
                b.push(1);
                Var(u64::from(slots)).put(b);
                Var(u64::from(bucket)).put(b);
            }
        }
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        match c.get::<u8>()? {
            0 => Ok(KernelHash::Global),
            2 if c.version >= 5 => Ok(KernelHash::Shared),
            1 => Ok(KernelHash::Private {
                slots: var_u32(c, "32-bit varint")?,
                bucket: var_u32(c, "32-bit varint")?,
            }),
            v => Err(c.invalid("kernel hash table", v)),
        }
    }
}

/// 0 and the word: a word's waits; 1: wake-to-return; 2: scheduler delay.
impl Field for HistOf {
    fn put(&self, b: &mut Vec<u8>) {
        match *self {
            HistOf::Wait { addr } => {
                b.push(0);
                addr.put(b);
            }
            HistOf::WakeToReturn => b.push(1),
            HistOf::SchedDelay => b.push(2),
        }
    }
    fn get(c: &mut Cursor<'_>) -> Result<Self, ReadError> {
        match c.get::<u8>()? {
            0 => Ok(HistOf::Wait { addr: c.get()? }),
            1 => Ok(HistOf::WakeToReturn),
            2 => Ok(HistOf::SchedDelay),
            v => Err(c.invalid("histogram", v)),
        }
    }
}

/// Writes the fields given, in order.
macro_rules! put {
    ($b:expr; $($v:expr),* $(,)?) => {{ $( Field::put(&$v, $b); )* }};
}

/// The tag of each event kind in the file (10: counts recorded before their kernel table was).
fn tag(kind: &EventKind) -> u8 {
    match kind {
        EventKind::WaitStart { .. } => 1,
        EventKind::WaitEnd { .. } => 2,
        EventKind::Wake { .. } => 3,
        EventKind::Requeue { .. } => 4,
        EventKind::LockContended { .. } => 5,
        EventKind::Lost { .. } => 6,
        EventKind::OtherOp { .. } => 7,
        EventKind::Fork { .. } => 8,
        EventKind::Exit => 9,
        EventKind::Counts { hash: None, .. } => 10,
        EventKind::Counts { hash: Some(_), .. } => 15,
        EventKind::Hist { .. } => 11,
        EventKind::Moved { .. } => 12,
        EventKind::WaitSample { .. } => 13,
        EventKind::Waiting { .. } => 14,
        EventKind::ThreadName { .. } => 16,
        EventKind::BucketSpins { .. } => 17,
    }
}

/// Appends one event's encoding.
pub fn encode(e: &Event, b: &mut Vec<u8>) {
    put!(b; tag(&e.kind), e.ts_ns, e.pid, e.tid);
    match e.kind {
        EventKind::WaitStart { .. }
        | EventKind::WaitEnd { .. }
        | EventKind::Wake { .. }
        | EventKind::Requeue { .. }
        | EventKind::LockContended { .. } => encode_core(&e.kind, b),
        _ => encode_kernel(&e.kind, b),
    }
}

/// The fields of futex-core's events (tags 1 to 5).
fn encode_core(kind: &EventKind, b: &mut Vec<u8>) {
    match *kind {
        EventKind::WaitStart {
            addr,
            bucket,
            wait,
            kernel,
        } => put!(b; addr, bucket, wait, kernel),
        EventKind::WaitEnd {
            addr,
            final_addr,
            bucket,
            wait,
            outcome,
            wait_ns,
            wake_to_return_ns,
            requeued,
            sched_delay_ns,
            waker,
            kernel,
        } => put!(b; addr, final_addr, bucket, wait, outcome, wait_ns, wake_to_return_ns, requeued,
                  sched_delay_ns, waker, kernel),
        EventKind::Wake {
            addr,
            bucket,
            wait,
            requested,
            woken,
            collisions,
            kernel,
        } => {
            put!(b; addr, bucket, wait, requested, woken, collisions, kernel)
        }
        EventKind::Requeue {
            from,
            to,
            from_bucket,
            to_bucket,
            wait,
            woken,
            moved,
            collisions,
            kernel,
        } => {
            put!(b; from, to, from_bucket, to_bucket, wait, woken, moved, collisions, kernel)
        }
        EventKind::LockContended {
            addr,
            bucket,
            wait,
            wait_ns,
        } => put!(b; addr, bucket, wait, wait_ns),
        _ => unreachable!("not a futex-core event"),
    }
}

/// The fields of kernel sources' and process events (tags 6 to 15).
fn encode_kernel(kind: &EventKind, b: &mut Vec<u8>) {
    match *kind {
        EventKind::Lost { count } => put!(b; count),
        EventKind::OtherOp { addr, op, ret } => put!(b; addr, op, ret),
        EventKind::Fork { child } => put!(b; child),
        EventKind::Exit => {}
        EventKind::Counts {
            addr,
            op,
            hash,
            counts,
        } => {
            put!(b; addr, op);
            if let Some(h) = hash {
                h.put(b);
            }
            counts.put(b);
        }
        EventKind::Hist {
            of,
            slot,
            count,
            sum,
            max,
        } => put!(b; of, slot, Var(count), Var(sum), Var(max)),
        EventKind::Waiting { addr, now } => put!(b; addr, Var(u64::from(now))),
        EventKind::ThreadName { name } => put!(b; name),
        EventKind::BucketSpins {
            addr,
            op,
            hash,
            spins,
            spin_ns,
            several_callers,
        } => put!(b; addr, op, hash, Var(spins), Var(spin_ns), u8::from(several_callers)),
        EventKind::Moved {
            from,
            to,
            requeues,
            moved,
            woken,
        } => {
            put!(b; from, to, Var(requeues), Var(moved), Var(woken))
        }
        EventKind::WaitSample {
            addr,
            final_addr,
            op,
            outcome,
            wait_ns,
            wake_to_return_ns,
            sched_delay_ns,
            waker,
            stack,
            stack_rate_ns,
            waker_every,
        } => put!(b; addr, final_addr, op, outcome, wait_ns, wake_to_return_ns, sched_delay_ns,
                  waker, stack, stack_rate_ns, waker_every),
        _ => unreachable!("a futex-core event"),
    }
}

/// Reads one event.
pub(super) fn decode(c: &mut Cursor<'_>) -> Result<Event, ReadError> {
    let tag: u8 = c.get()?;
    let (ts_ns, pid, tid) = (c.get()?, c.get()?, c.get()?);
    let kind = match tag {
        1..=5 => decode_core(c, tag)?,
        6..=15 => decode_kernel(c, tag)?,
        16 if c.version >= 5 => EventKind::ThreadName { name: c.get()? },
        17 if c.version >= 6 => EventKind::BucketSpins {
            addr: c.get()?,
            op: c.get()?,
            hash: c.get()?,
            spins: c.get::<Var>()?.0,
            spin_ns: c.get::<Var>()?.0,
            several_callers: c.get::<u8>()? != 0,
        },
        v => {
            return Err(bad(format!(
                "corrupt recording: unknown event type {v} at byte {}",
                c.base + c.i as u64 - 17
            )))
        }
    };
    Ok(Event {
        ts_ns,
        pid,
        tid,
        kind,
    })
}

/// The events of futex-core (its observer and its probes): tags 1 to 5.
fn decode_core(c: &mut Cursor<'_>, tag: u8) -> Result<EventKind, ReadError> {
    Ok(match tag {
        1 => EventKind::WaitStart {
            addr: c.get()?,
            bucket: c.get()?,
            wait: c.get()?,
            kernel: c.get()?,
        },
        2 => EventKind::WaitEnd {
            addr: c.get()?,
            final_addr: c.get()?,
            bucket: c.get()?,
            wait: c.get()?,
            outcome: c.get()?,
            wait_ns: c.get()?,
            wake_to_return_ns: c.get()?,
            requeued: c.get()?,
            sched_delay_ns: c.get()?,
            waker: c.get()?,
            kernel: c.get()?,
        },
        3 => EventKind::Wake {
            addr: c.get()?,
            bucket: c.get()?,
            wait: c.get()?,
            requested: c.get()?,
            woken: c.get()?,
            collisions: c.get()?,
            kernel: c.get()?,
        },
        4 => EventKind::Requeue {
            from: c.get()?,
            to: c.get()?,
            from_bucket: c.get()?,
            to_bucket: c.get()?,
            wait: c.get()?,
            woken: c.get()?,
            moved: c.get()?,
            collisions: c.get()?,
            kernel: c.get()?,
        },
        _ => EventKind::LockContended {
            addr: c.get()?,
            bucket: c.get()?,
            wait: c.get()?,
            wait_ns: c.get()?,
        },
    })
}

/// The events of kernel sources and the process events: tags 6 to 15.
fn decode_kernel(c: &mut Cursor<'_>, tag: u8) -> Result<EventKind, ReadError> {
    let var = |c: &mut Cursor<'_>| c.get::<Var>().map(|Var(v)| v);
    Ok(match tag {
        6 => EventKind::Lost { count: c.get()? },
        7 => EventKind::OtherOp {
            addr: c.get()?,
            op: c.get()?,
            ret: c.get()?,
        },
        8 => EventKind::Fork { child: c.get()? },
        9 => EventKind::Exit,
        10 | 15 => EventKind::Counts {
            addr: c.get()?,
            op: c.get()?,
            hash: if tag == 15 { Some(c.get()?) } else { None },
            counts: c.get()?,
        },
        11 => EventKind::Hist {
            of: c.get()?,
            slot: match c.get::<u8>()? {
                s @ 0..=63 => s,
                v => return Err(c.invalid("histogram slot", v)),
            },
            count: var(c)?,
            sum: var(c)?,
            max: var(c)?,
        },
        12 => EventKind::Moved {
            from: c.get()?,
            to: c.get()?,
            requeues: var(c)?,
            moved: var(c)?,
            woken: var(c)?,
        },
        13 => EventKind::WaitSample {
            addr: c.get()?,
            final_addr: c.get()?,
            op: c.get()?,
            outcome: c.get()?,
            wait_ns: c.get()?,
            wake_to_return_ns: c.get()?,
            sched_delay_ns: c.get()?,
            waker: c.get()?,
            stack: c.get()?,
            stack_rate_ns: c.get()?,
            waker_every: c.get()?,
        },
        _ => EventKind::Waiting {
            addr: c.get()?,
            now: var_u32(c, "waiter count")?,
        },
    })
}
