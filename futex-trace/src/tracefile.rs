//! The recorded trace format (`.ftr`), version 1. Documented in `futex-trace/FORMAT.md`.
//!
//! ```text
//! file   := magic "FUTEXTRC" | version u16 LE | reserved u16 (0) | chunk*
//! chunk  := type u8 | length u32 LE | payload[length]
//! type 1 META    JSON object (TraceMeta): source, pids, command, buckets, bucket origin, start time
//! type 2 EVENTS  count u32 LE, then `count` events in the binary encoding below
//! type 3 STACKS  JSON object (stack frames, process maps, symbols), written when the recording ends
//! type 4 END     JSON object (TraceEnd): duration, lost events, stack errors, why it stopped
//! ```
//! A recording cut short (killed, disk full) keeps every whole chunk before the cut: the reader returns
//! them with a warning. Anything else that does not parse is an error that says where and what, never a
//! panic (the reader is fuzzed: `tests/tracefile.rs`).

use std::io::{self, BufWriter, Read, Write};

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind, FutexOp, Kernel, Outcome, WaitKind, Waker};
use crate::model::BucketOrigin;
use crate::stacks::{ProcessInfo, StackTable};

pub const MAGIC: &[u8; 8] = b"FUTEXTRC";
pub const VERSION: u16 = 1;
const T_META: u8 = 1;
const T_EVENTS: u8 = 2;
const T_STACKS: u8 = 3;
const T_END: u8 = 4;
/// No chunk is larger (the writer splits event batches well below it).
const MAX_CHUNK: u32 = 64 << 20;
const EVENTS_PER_CHUNK: usize = 65536;

/// What was traced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceMeta {
    /// e.g. "kernel futexes (eBPF)".
    pub source: String,
    pub pids: Vec<u32>,
    /// The command line, when futex-trace started the traced command.
    pub command: Option<Vec<String>>,
    pub buckets: usize,
    pub bucket_origin: BucketOrigin,
    /// Wall clock at the start, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// `CLOCK_MONOTONIC` at the start (events' clock), nanoseconds.
    pub started_mono_ns: u64,
}

/// How the recording ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceEnd {
    /// Every process traced (those given, the command started, and the children followed).
    #[serde(default)]
    pub pids: Vec<u32>,
    pub duration_s: f64,
    pub events: u64,
    pub lost_events: u64,
    pub stack_errors: u64,
    /// Futex calls not traced: no room for the thread's in-flight state in the kernel.
    #[serde(default)]
    pub untraced_calls: u64,
    pub reason: String,
    /// Names of addresses, where the source knows them (the demo's locks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<(u64, String)>,
}

/// The STACKS chunk: JSON cannot key maps by tuples, hence lists.
#[derive(Serialize, Deserialize)]
struct StacksChunk {
    stacks: Vec<(u32, u32, Vec<u64>)>,
    processes: Vec<(u32, ProcessInfo)>,
    symbols: Vec<(u32, u64, Vec<String>)>,
    #[serde(default)]
    addr_symbols: Vec<(u32, u64, String)>,
}

impl From<&StackTable> for StacksChunk {
    fn from(t: &StackTable) -> Self {
        StacksChunk {
            stacks: t
                .stacks
                .iter()
                .map(|(k, v)| (k.0, k.1, v.clone()))
                .collect(),
            processes: t.processes.iter().map(|(k, v)| (*k, v.clone())).collect(),
            symbols: t
                .symbols
                .iter()
                .map(|(k, v)| (k.0, k.1, v.clone()))
                .collect(),
            addr_symbols: t
                .addr_symbols
                .iter()
                .map(|(k, v)| (k.0, k.1, v.clone()))
                .collect(),
        }
    }
}

impl From<StacksChunk> for StackTable {
    fn from(c: StacksChunk) -> Self {
        StackTable {
            stacks: c.stacks.into_iter().map(|(p, i, v)| ((p, i), v)).collect(),
            processes: c.processes.into_iter().collect(),
            symbols: c.symbols.into_iter().map(|(p, i, v)| ((p, i), v)).collect(),
            addr_symbols: c
                .addr_symbols
                .into_iter()
                .map(|(p, a, v)| ((p, a), v))
                .collect(),
        }
    }
}

/// Writes a recording. Each [`TraceWriter::events`] call becomes whole chunks, flushed at once, so a
/// recording killed midway keeps what it had written.
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    buf: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(w: W, meta: &TraceMeta) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(1 << 20, w);
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&0u16.to_le_bytes())?;
        let mut t = TraceWriter {
            out,
            buf: Vec::new(),
        };
        t.json_chunk(T_META, meta)?;
        t.out.flush()?;
        Ok(t)
    }

    fn chunk(&mut self, ty: u8, payload: &[u8]) -> io::Result<()> {
        self.out.write_all(&[ty])?;
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(payload)
    }

    fn json_chunk<T: Serialize>(&mut self, ty: u8, v: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(v).map_err(io::Error::other)?;
        self.chunk(ty, &bytes)
    }

    /// Appends events.
    pub fn events(&mut self, events: &[Event]) -> io::Result<()> {
        for part in events.chunks(EVENTS_PER_CHUNK) {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            buf.extend_from_slice(&(part.len() as u32).to_le_bytes());
            for e in part {
                encode(e, &mut buf);
            }
            let r = self.chunk(T_EVENTS, &buf);
            self.buf = buf;
            r?;
        }
        self.out.flush()
    }

    /// Writes the stacks and the end marker, and flushes.
    pub fn finish(mut self, stacks: &StackTable, end: &TraceEnd) -> io::Result<W> {
        self.json_chunk(T_STACKS, &StacksChunk::from(stacks))?;
        self.json_chunk(T_END, end)?;
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// A recording, read back.
#[derive(Clone, Debug)]
pub struct Trace {
    pub meta: TraceMeta,
    pub stacks: StackTable,
    /// `None` when the recording did not end cleanly.
    pub end: Option<TraceEnd>,
    /// Something the user should know (a recording cut short).
    pub warning: Option<String>,
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// Not a recording, a version we cannot read, or corrupt: says where and what.
    Format(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Format(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ReadError {}

fn bad(msg: String) -> ReadError {
    ReadError::Format(msg)
}

/// Reads as much as fits in `buf`: how many bytes (fewer at end of file).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a recording, handing each event to `on_event` in file order.
pub fn read(mut r: impl Read, mut on_event: impl FnMut(&Event)) -> Result<Trace, ReadError> {
    let mut header = [0u8; 12];
    let n = read_full(&mut r, &mut header).map_err(ReadError::Io)?;
    if n < 12 || &header[..8] != MAGIC {
        return Err(bad(
            "not a futex-trace recording (it does not start with FUTEXTRC); make one with \
             `futex-trace record`"
                .into(),
        ));
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(bad(format!(
            "this recording is format version {version}; this futex-trace reads version {VERSION}"
        )));
    }
    let mut pos = 12u64;
    let mut meta: Option<TraceMeta> = None;
    let mut stacks = StackTable::default();
    let mut end = None;
    let mut warning = None;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; 5];
        let n = read_full(&mut r, &mut head).map_err(ReadError::Io)?;
        if n == 0 {
            break;
        }
        if n < 5 {
            warning = Some(format!(
                "the recording is cut short at byte {pos} (inside a chunk header)"
            ));
            break;
        }
        let ty = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
        if !(T_META..=T_END).contains(&ty) {
            return Err(bad(format!(
                "corrupt recording: unknown chunk type {ty} at byte {pos}"
            )));
        }
        if len > MAX_CHUNK {
            return Err(bad(format!(
                "corrupt recording: chunk of {len} bytes at byte {pos} (at most {MAX_CHUNK})"
            )));
        }
        payload.resize(len as usize, 0);
        let got = read_full(&mut r, &mut payload).map_err(ReadError::Io)?;
        if got < len as usize {
            warning = Some(format!(
                "the recording is cut short at byte {} (a chunk of {len} bytes has {got})",
                pos + 5
            ));
            break;
        }
        let at = pos;
        pos += 5 + u64::from(len);
        if meta.is_none() && ty != T_META {
            return Err(bad(format!(
                "corrupt recording: chunk type {ty} at byte {at} before the header chunk"
            )));
        }
        match ty {
            T_META => {
                meta = Some(serde_json::from_slice(&payload).map_err(|e| {
                    bad(format!("corrupt recording: header chunk at byte {at}: {e}"))
                })?)
            }
            T_EVENTS => {
                let mut c = Cursor {
                    b: &payload,
                    i: 0,
                    base: at + 5,
                };
                let count = c.u32()?;
                for _ in 0..count {
                    let e = decode(&mut c)?;
                    on_event(&e);
                }
                if c.i != payload.len() {
                    return Err(bad(format!(
                        "corrupt recording: {} stray bytes after the events of the chunk at byte {at}",
                        payload.len() - c.i
                    )));
                }
            }
            T_STACKS => {
                let s: StacksChunk = serde_json::from_slice(&payload).map_err(|e| {
                    bad(format!("corrupt recording: stacks chunk at byte {at}: {e}"))
                })?;
                stacks = s.into();
            }
            _ => {
                end =
                    Some(serde_json::from_slice(&payload).map_err(|e| {
                        bad(format!("corrupt recording: end chunk at byte {at}: {e}"))
                    })?)
            }
        }
    }
    let meta = meta.ok_or_else(|| bad("the recording has no header chunk: it is empty".into()))?;
    if end.is_none() && warning.is_none() {
        warning = Some(
            "the recording did not end cleanly (no end marker): its stacks may be missing".into(),
        );
    }
    Ok(Trace {
        meta,
        stacks,
        end,
        warning,
    })
}

// The binary event encoding: a tag byte per kind, then little-endian fields.

const WAIT_KINDS: [WaitKind; 4] = [
    WaitKind::Raw,
    WaitKind::Mutex,
    WaitKind::Condvar,
    WaitKind::Kernel,
];
const OUTCOMES: [Outcome; 5] = [
    Outcome::Woken,
    Outcome::TimedOut,
    Outcome::Mismatch,
    Outcome::Interrupted,
    Outcome::Failed,
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

fn index_of<T: PartialEq>(all: &[T], v: &T) -> u8 {
    all.iter().position(|x| x == v).expect("listed") as u8
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}
fn put_opt_u64(b: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            b.push(1);
            put_u64(b, v);
        }
        None => b.push(0),
    }
}
fn put_opt_u32(b: &mut Vec<u8>, v: Option<u32>) {
    match v {
        Some(v) => {
            b.push(1);
            put_u32(b, v);
        }
        None => b.push(0),
    }
}
fn put_kernel(b: &mut Vec<u8>, k: Option<Kernel>) {
    match k {
        None => b.push(0),
        Some(k) => {
            b.push(1);
            b.push(k.op.map_or(0xff, |o| index_of(&OPS, &o)));
            b.push(u8::from(k.private));
            put_opt_u32(b, k.stack);
        }
    }
}

/// Appends one event's encoding.
pub fn encode(e: &Event, b: &mut Vec<u8>) {
    let tag = match e.kind {
        EventKind::WaitStart { .. } => 1,
        EventKind::WaitEnd { .. } => 2,
        EventKind::Wake { .. } => 3,
        EventKind::Requeue { .. } => 4,
        EventKind::LockContended { .. } => 5,
        EventKind::Lost { .. } => 6,
        EventKind::OtherOp { .. } => 7,
        EventKind::Fork { .. } => 8,
        EventKind::Exit => 9,
    };
    b.push(tag);
    put_u64(b, e.ts_ns);
    put_u32(b, e.pid);
    put_u32(b, e.tid);
    match e.kind {
        EventKind::WaitStart {
            addr,
            bucket,
            wait,
            kernel,
        } => {
            put_u64(b, addr);
            put_u32(b, bucket);
            b.push(index_of(&WAIT_KINDS, &wait));
            put_kernel(b, kernel);
        }
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
        } => {
            put_u64(b, addr);
            put_u64(b, final_addr);
            put_u32(b, bucket);
            b.push(index_of(&WAIT_KINDS, &wait));
            b.push(index_of(&OUTCOMES, &outcome));
            put_u64(b, wait_ns);
            put_opt_u64(b, wake_to_return_ns);
            put_u32(b, requeued);
            put_opt_u64(b, sched_delay_ns);
            match waker {
                None => b.push(0),
                Some(w) => {
                    b.push(1);
                    put_u32(b, w.tid);
                    put_opt_u32(b, w.stack);
                }
            }
            put_kernel(b, kernel);
        }
        EventKind::Wake {
            addr,
            bucket,
            wait,
            requested,
            woken,
            collisions,
            kernel,
        } => {
            put_u64(b, addr);
            put_u32(b, bucket);
            b.push(index_of(&WAIT_KINDS, &wait));
            put_u32(b, requested);
            put_u32(b, woken);
            put_u32(b, collisions);
            put_kernel(b, kernel);
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
            put_u64(b, from);
            put_u64(b, to);
            put_u32(b, from_bucket);
            put_u32(b, to_bucket);
            b.push(index_of(&WAIT_KINDS, &wait));
            put_u32(b, woken);
            put_u32(b, moved);
            put_u32(b, collisions);
            put_kernel(b, kernel);
        }
        EventKind::LockContended {
            addr,
            bucket,
            wait,
            wait_ns,
        } => {
            put_u64(b, addr);
            put_u32(b, bucket);
            b.push(index_of(&WAIT_KINDS, &wait));
            put_u64(b, wait_ns);
        }
        EventKind::Lost { count } => put_u64(b, count),
        EventKind::OtherOp { addr, op, ret } => {
            put_u64(b, addr);
            b.push(index_of(&OPS, &op));
            put_u64(b, ret as u64);
        }
        EventKind::Fork { child } => put_u32(b, child),
        EventKind::Exit => {}
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    /// File offset of `b[0]`, for messages.
    base: u64,
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
    fn u8(&mut self) -> Result<u8, ReadError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn invalid(&self, what: &str, v: u8) -> ReadError {
        bad(format!(
            "corrupt recording: invalid {what} {v} at byte {}",
            self.base + self.i as u64 - 1
        ))
    }
    fn flag(&mut self) -> Result<bool, ReadError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.invalid("flag", v)),
        }
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, ReadError> {
        Ok(if self.flag()? {
            Some(self.u64()?)
        } else {
            None
        })
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, ReadError> {
        Ok(if self.flag()? {
            Some(self.u32()?)
        } else {
            None
        })
    }
    fn pick<T: Copy>(&mut self, all: &[T], what: &str) -> Result<T, ReadError> {
        let v = self.u8()?;
        all.get(v as usize)
            .copied()
            .ok_or_else(|| self.invalid(what, v))
    }
    fn wait(&mut self) -> Result<WaitKind, ReadError> {
        self.pick(&WAIT_KINDS, "wait kind")
    }
    fn kernel(&mut self) -> Result<Option<Kernel>, ReadError> {
        if !self.flag()? {
            return Ok(None);
        }
        let op = match self.u8()? {
            0xff => None,
            v => Some(
                *OPS.get(v as usize)
                    .ok_or_else(|| self.invalid("futex op", v))?,
            ),
        };
        let private = self.flag()?;
        let stack = self.opt_u32()?;
        Ok(Some(Kernel { op, private, stack }))
    }
}

fn decode(c: &mut Cursor<'_>) -> Result<Event, ReadError> {
    let tag = c.u8()?;
    let ts_ns = c.u64()?;
    let pid = c.u32()?;
    let tid = c.u32()?;
    let kind = match tag {
        1 => EventKind::WaitStart {
            addr: c.u64()?,
            bucket: c.u32()?,
            wait: c.wait()?,
            kernel: c.kernel()?,
        },
        2 => EventKind::WaitEnd {
            addr: c.u64()?,
            final_addr: c.u64()?,
            bucket: c.u32()?,
            wait: c.wait()?,
            outcome: c.pick(&OUTCOMES, "outcome")?,
            wait_ns: c.u64()?,
            wake_to_return_ns: c.opt_u64()?,
            requeued: c.u32()?,
            sched_delay_ns: c.opt_u64()?,
            waker: if c.flag()? {
                Some(Waker {
                    tid: c.u32()?,
                    stack: c.opt_u32()?,
                })
            } else {
                None
            },
            kernel: c.kernel()?,
        },
        3 => EventKind::Wake {
            addr: c.u64()?,
            bucket: c.u32()?,
            wait: c.wait()?,
            requested: c.u32()?,
            woken: c.u32()?,
            collisions: c.u32()?,
            kernel: c.kernel()?,
        },
        4 => EventKind::Requeue {
            from: c.u64()?,
            to: c.u64()?,
            from_bucket: c.u32()?,
            to_bucket: c.u32()?,
            wait: c.wait()?,
            woken: c.u32()?,
            moved: c.u32()?,
            collisions: c.u32()?,
            kernel: c.kernel()?,
        },
        5 => EventKind::LockContended {
            addr: c.u64()?,
            bucket: c.u32()?,
            wait: c.wait()?,
            wait_ns: c.u64()?,
        },
        6 => EventKind::Lost { count: c.u64()? },
        7 => EventKind::OtherOp {
            addr: c.u64()?,
            op: c.pick(&OPS, "futex op")?,
            ret: c.u64()? as i64,
        },
        8 => EventKind::Fork { child: c.u32()? },
        9 => EventKind::Exit,
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
