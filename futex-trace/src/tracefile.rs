//! The recorded trace format (`.ftr`), version 4. Documented in `futex-trace/FORMAT.md`.
//!
//! ```text
//! file   := magic "FUTEXTRC" | version u16 LE | reserved u16 (0) | chunk*
//! chunk  := sync f7 7c | type u8 | length u32 LE | crc32 u32 LE | payload[length]
//!           (version 1: type u8 | length u32 LE | payload[length])
//! type 1 META    JSON object (TraceMeta): source, pids, command, buckets, bucket origin, start time
//! type 2 EVENTS  count u32 LE, then `count` events in the binary encoding below
//! type 3 STACKS  JSON object (stack frames, process maps, symbols): each second what is new, and at
//!                the end (version 1: once, at the end); a reader merges them all
//! type 4 END     JSON object (TraceEnd): duration, lost events, stack errors, why it stopped
//! ```
//! A recording cut short (killed, disk full) keeps every whole chunk before the cut: the reader returns
//! them with a warning. A damaged chunk (its marker, header or CRC does not check) is skipped: the reader
//! finds the next whole chunk byte by byte, reads on, and says how many bytes it skipped. Anything else that does not parse is an error that says where and what, never a
//! panic (the reader is fuzzed: `tests/tracefile.rs`).

use std::collections::VecDeque;
use std::io::{self, BufWriter, Read, Write};

use serde::{Deserialize, Serialize};

use crate::event::{
    Counts, Event, EventKind, FutexOp, HistOf, Kernel, KernelHash, Outcome, WaitKind, Waker,
};
use crate::stacks::{ProcessInfo, StackTable};

pub const MAGIC: &[u8; 8] = b"FUTEXTRC";
/// The version written. Versions 1 (one STACKS chunk at the end), 2 (no kernel aggregates: event
/// tags 10-14) and 3 (counts without their kernel hash table: tag 10, not 15) are read too.
pub const VERSION: u16 = 4;
const T_META: u8 = 1;
const T_EVENTS: u8 = 2;
const T_STACKS: u8 = 3;
const T_END: u8 = 4;
/// Marks the start of every chunk since version 2, so that a reader can find the next chunk after damage.
const SYNC: [u8; 2] = [0xf7, 0x7c];
/// Bytes before a chunk's payload: version 1 `type u8 | length u32`; version 2 `sync [u8; 2] | type u8 |
/// length u32 | crc32 u32` (the CRC32 of the payload).
const V1_HEADER: usize = 5;
const V2_HEADER: usize = 11;
/// No chunk is larger (the writer splits event batches well below it).
const MAX_CHUNK: u32 = 64 << 20;
const EVENTS_PER_CHUNK: usize = 65536;

pub use crate::session::{TraceEnd, TraceMeta};

/// The STACKS chunk: JSON cannot key maps by tuples, hence lists.
#[derive(Serialize, Deserialize)]
struct StacksChunk {
    stacks: Vec<(u32, u32, Vec<u64>)>,
    processes: Vec<(u32, ProcessInfo)>,
    symbols: Vec<(u32, u64, Vec<String>)>,
    #[serde(default)]
    addr_symbols: Vec<(u32, u64, String)>,
    /// Stacks cut short (added in version 4 without a version change: older readers ignore it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    truncated: Vec<(u32, u32)>,
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
            truncated: t.truncated.iter().copied().collect(),
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
            truncated: c.truncated.into_iter().collect(),
            kinds: Default::default(),
        }
    }
}

/// Writes a recording. Each [`TraceWriter::events`] call becomes whole chunks, flushed at once, so a
/// recording killed midway keeps what it had written.
pub struct TraceWriter<W: Write> {
    out: BufWriter<W>,
    buf: Vec<u8>,
    /// Bytes written (handed to the buffered writer) so far.
    bytes: u64,
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
            bytes: (MAGIC.len() + 4) as u64,
        };
        t.json_chunk(T_META, meta)?;
        t.out.flush()?;
        Ok(t)
    }

    /// Bytes written so far (the whole file, once flushed).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn chunk(&mut self, ty: u8, payload: &[u8]) -> io::Result<()> {
        self.bytes += (V2_HEADER + payload.len()) as u64;
        self.out.write_all(&SYNC)?;
        self.out.write_all(&[ty])?;
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out
            .write_all(&crc32fast::hash(payload).to_le_bytes())?;
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

    /// Appends a STACKS chunk (what is new since the last one: a reader merges them all) and flushes,
    /// so that a recording cut short keeps the stacks of its events.
    pub fn stacks(&mut self, stacks: &StackTable) -> io::Result<()> {
        self.json_chunk(T_STACKS, &StacksChunk::from(stacks))?;
        self.out.flush()
    }

    /// Writes the last stacks (what is new since the last [`TraceWriter::stacks`]) and the end
    /// marker, and flushes.
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

/// One chunk of a recording, as [`TraceReader::next`] reads it.
#[derive(Debug)]
pub enum Chunk {
    /// A header chunk after the first (the last one read is the recording's header).
    Meta(TraceMeta),
    /// `n` events, appended to the caller's buffer.
    Events(usize),
    Stacks(StackTable),
    End(TraceEnd),
}

/// Reads a recording chunk by chunk, so that memory is bounded by the largest chunk, not the file.
pub struct TraceReader<R: Read> {
    inner: HeaderlessReader<R>,
    meta: TraceMeta,
}

/// The chunk layer of a [`TraceReader`].
struct HeaderlessReader<R: Read> {
    r: R,
    /// Bytes given back after a candidate chunk failed its check, read again before `r`.
    back: VecDeque<u8>,
    version: u16,
    /// File offset of the next chunk.
    pos: u64,
    payload: Vec<u8>,
    /// A chunk header or payload ended before its length: what the user should know.
    cut: Option<String>,
    /// Damaged stretches skipped (version 2): (first byte, length).
    damage: Vec<(u64, u64)>,
    /// Where the stretch being skipped began, and what to say if it runs to the end of the file
    /// because it began with a chunk cut short (a killed recording's last chunk).
    skipping: Option<(u64, Option<String>)>,
}

impl<R: Read> TraceReader<R> {
    /// Reads the file header and the header chunk (which must come first).
    pub fn new(mut r: R) -> Result<Self, ReadError> {
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
        if !(1..=VERSION).contains(&version) {
            return Err(bad(format!(
                "this recording is format version {version}; this futex-trace reads versions 1 to \
                 {VERSION}: use a newer futex-trace"
            )));
        }
        // The header chunk, read with a reader that has no header yet.
        let mut r = HeaderlessReader::new(r, version);
        match r.raw_chunk()? {
            Some((T_META, at)) => {
                let meta = serde_json::from_slice(&r.payload).map_err(|e| {
                    bad(format!("corrupt recording: header chunk at byte {at}: {e}"))
                })?;
                return Ok(TraceReader { inner: r, meta });
            }
            Some((ty, at)) => {
                return Err(bad(format!(
                    "corrupt recording: chunk type {ty} at byte {at} before the header chunk"
                )))
            }
            None => {}
        }
        Err(bad("the recording has no header chunk: it is empty".into()))
    }

    /// The recording's header.
    pub fn meta(&self) -> &TraceMeta {
        &self.meta
    }

    /// Why the recording stopped before its end (a cut-short file), once [`TraceReader::next`] has
    /// reached the cut.
    pub fn cut_short(&self) -> Option<&str> {
        self.inner.cut.as_deref()
    }

    /// What a reader must be told about how the recording ends (`end`: its end marker, if one was
    /// read) and about damage skipped so far; `None` when there is nothing to tell.
    pub fn warning(&self, end: Option<&TraceEnd>) -> Option<String> {
        let damage = &self.inner.damage;
        let damaged = (!damage.is_empty()).then(|| {
            let bytes: u64 = damage.iter().map(|d| d.1).sum();
            let at: Vec<String> = damage.iter().take(3).map(|d| d.0.to_string()).collect();
            format!(
                "{bytes} damaged bytes were skipped (from byte {}{}); every whole chunk before and \
                 after them was read",
                at.join(", byte "),
                if damage.len() > 3 { ", …" } else { "" }
            )
        });
        let ending = ending_warning(end, self.cut_short());
        match (damaged, ending) {
            (Some(d), Some(e)) => Some(format!("{d}; {e}")),
            (d, e) => d.or(e),
        }
    }

    /// The next chunk, its events appended to `events` (unless `skip_events`: then event chunks are
    /// passed over unread, and report 0 events). `None` at the end of the recording or at a cut.
    pub fn next(
        &mut self,
        events: &mut Vec<Event>,
        skip_events: bool,
    ) -> Result<Option<Chunk>, ReadError> {
        self.inner.next(events, skip_events)
    }
}

impl<R: Read> HeaderlessReader<R> {
    fn new(r: R, version: u16) -> Self {
        HeaderlessReader {
            r,
            back: VecDeque::new(),
            version,
            pos: 12,
            payload: Vec::new(),
            cut: None,
            damage: Vec::new(),
            skipping: None,
        }
    }

    /// The bytes before a chunk's payload.
    fn header_len(&self) -> usize {
        if self.version == 1 {
            V1_HEADER
        } else {
            V2_HEADER
        }
    }

    /// Reads into `buf` what was given back first, then the file: how many bytes (fewer at the end).
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut n = 0;
        while n < buf.len() {
            match self.back.pop_front() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n + read_full(&mut self.r, &mut buf[n..]).map_err(ReadError::Io)?)
    }

    /// Reads the next whole chunk into `self.payload`: its type and offset; `None` at the end or a cut.
    /// Version 2: a chunk whose marker, header or CRC does not check is damage, skipped byte by byte up
    /// to the next chunk that checks. Version 1 has neither: a bad header is an error, as it always was.
    fn raw_chunk(&mut self) -> Result<Option<(u8, u64)>, ReadError> {
        if self.cut.is_some() {
            return Ok(None);
        }
        let hl = self.header_len();
        loop {
            let at = self.pos;
            let mut head = [0u8; V2_HEADER];
            let n = self.fill(&mut head[..hl])?;
            if n == 0 {
                if let Some((from, cut)) = self.skipping.take() {
                    match cut {
                        Some(c) => self.cut = Some(c),
                        None => self.damage.push((from, at - from)),
                    }
                }
                return Ok(None);
            }
            if n < hl && self.skipping.is_none() {
                self.cut = Some(format!(
                    "the recording is cut short at byte {at} (inside a chunk header)"
                ));
                return Ok(None);
            }
            let (ty, len, crc) = match self.version {
                1 => (
                    head[0],
                    u32::from_le_bytes(head[1..5].try_into().expect("4")),
                    None,
                ),
                _ => (
                    head[2],
                    u32::from_le_bytes(head[3..7].try_into().expect("4")),
                    Some(u32::from_le_bytes(head[7..11].try_into().expect("4"))),
                ),
            };
            let plausible = n == hl
                && (self.version == 1 || head[..2] == SYNC)
                && (T_META..=T_END).contains(&ty)
                && len <= MAX_CHUNK;
            if self.version == 1 && !plausible {
                return Err(bad(if (T_META..=T_END).contains(&ty) {
                    format!("corrupt recording: chunk of {len} bytes at byte {at} (at most {MAX_CHUNK})")
                } else {
                    format!("corrupt recording: unknown chunk type {ty} at byte {at}")
                }));
            }
            let mut payload = std::mem::take(&mut self.payload);
            let mut got = 0;
            if plausible {
                payload.resize(len as usize, 0);
                got = self.fill(&mut payload)?;
                let whole = got == len as usize;
                if whole && crc.is_none_or(|c| c == crc32fast::hash(&payload)) {
                    self.payload = payload;
                    self.pos = at + (hl + len as usize) as u64;
                    if let Some((from, _)) = self.skipping.take() {
                        self.damage.push((from, at - from));
                    }
                    return Ok(Some((ty, at)));
                }
                if !whole && self.version == 1 {
                    self.cut = Some(format!(
                        "the recording is cut short at byte {} (a chunk of {len} bytes has {got})",
                        at + hl as u64
                    ));
                    return Ok(None);
                }
            }
            // Damage (or a chunk cut short by the end of the file): give back all but the first byte
            // and look for the next chunk from the byte after this one.
            if self.skipping.is_none() {
                let cut = (plausible && got < len as usize).then(|| {
                    format!(
                        "the recording is cut short at byte {} (a chunk of {len} bytes has {got})",
                        at + hl as u64
                    )
                });
                self.skipping = Some((at, cut));
            }
            for &b in payload[..got].iter().rev().chain(head[1..n].iter().rev()) {
                self.back.push_front(b);
            }
            self.payload = payload;
            self.pos = at + 1;
        }
    }

    /// The next chunk, its events appended to `events` (unless `skip_events`: then event chunks are
    /// read and checked but not decoded, and report 0 events). `None` at the end of the recording or at
    /// a cut.
    fn next(
        &mut self,
        events: &mut Vec<Event>,
        skip_events: bool,
    ) -> Result<Option<Chunk>, ReadError> {
        let Some((ty, at)) = self.raw_chunk()? else {
            return Ok(None);
        };
        if ty == T_EVENTS && skip_events {
            return Ok(Some(Chunk::Events(0)));
        }
        let base = at + self.header_len() as u64;
        Ok(Some(match ty {
            T_META => {
                Chunk::Meta(serde_json::from_slice(&self.payload).map_err(|e| {
                    bad(format!("corrupt recording: header chunk at byte {at}: {e}"))
                })?)
            }
            T_EVENTS => {
                let mut c = Cursor {
                    b: &self.payload,
                    i: 0,
                    base,
                };
                let count = c.u32()?;
                let before = events.len();
                for _ in 0..count {
                    events.push(decode(&mut c)?);
                }
                if c.i != self.payload.len() {
                    return Err(bad(format!(
                        "corrupt recording: {} stray bytes after the events of the chunk at byte {at}",
                        self.payload.len() - c.i
                    )));
                }
                Chunk::Events(events.len() - before)
            }
            T_STACKS => {
                let s: StacksChunk = serde_json::from_slice(&self.payload).map_err(|e| {
                    bad(format!("corrupt recording: stacks chunk at byte {at}: {e}"))
                })?;
                Chunk::Stacks(s.into())
            }
            _ => Chunk::End(
                serde_json::from_slice(&self.payload)
                    .map_err(|e| bad(format!("corrupt recording: end chunk at byte {at}: {e}")))?,
            ),
        }))
    }
}

/// What a reader of a recording must be told about its ending, if anything: where it was cut short, or
/// that it has no end marker.
pub fn ending_warning(end: Option<&TraceEnd>, cut: Option<&str>) -> Option<String> {
    match (end, cut) {
        (_, Some(cut)) => Some(cut.to_string()),
        (None, None) => Some(
            "the recording did not end cleanly (no end marker): it holds what was written up to its \
             last second"
                .into(),
        ),
        (Some(_), None) => None,
    }
}

/// Reads a recording, handing each event to `on_event` in file order.
pub fn read(r: impl Read, mut on_event: impl FnMut(&Event)) -> Result<Trace, ReadError> {
    let mut reader = TraceReader::new(r)?;
    let mut stacks = StackTable::default();
    let mut end = None;
    let mut events = Vec::new();
    while let Some(chunk) = reader.next(&mut events, false)? {
        match chunk {
            Chunk::Meta(m) => reader.meta = m,
            Chunk::Events(_) => events.drain(..).for_each(|e| on_event(&e)),
            Chunk::Stacks(s) => stacks.merge(s),
            Chunk::End(e) => end = Some(e),
        }
    }
    let warning = reader.warning(end.as_ref());
    stacks.classify(None);
    Ok(Trace {
        meta: reader.meta,
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
/// An unsigned LEB128 varint: counts are mostly small.
fn put_var(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}
fn put_waker(b: &mut Vec<u8>, waker: Option<Waker>) {
    match waker {
        None => b.push(0),
        Some(w) => {
            b.push(1);
            put_u32(b, w.tid);
            put_opt_u32(b, w.stack);
        }
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
        EventKind::Counts { hash: None, .. } => 10,
        EventKind::Counts { hash: Some(_), .. } => 15,
        EventKind::Hist { .. } => 11,
        EventKind::Moved { .. } => 12,
        EventKind::WaitSample { .. } => 13,
        EventKind::Waiting { .. } => 14,
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
            put_waker(b, waker);
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
        EventKind::Counts {
            addr,
            op,
            hash,
            counts,
        } => {
            put_u64(b, addr);
            b.push(index_of(&OPS, &op));
            match hash {
                None => {}
                Some(KernelHash::Global) => b.push(0),
                Some(KernelHash::Private { slots, bucket }) => {
                    b.push(1);
                    put_var(b, u64::from(slots));
                    put_var(b, u64::from(bucket));
                }
            }
            for v in counts_fields(&counts) {
                put_var(b, v);
            }
        }
        EventKind::Hist {
            of,
            slot,
            count,
            sum,
            max,
        } => {
            match of {
                HistOf::Wait { addr } => {
                    b.push(0);
                    put_u64(b, addr);
                }
                HistOf::WakeToReturn => b.push(1),
                HistOf::SchedDelay => b.push(2),
            }
            b.push(slot);
            put_var(b, count);
            put_var(b, sum);
            put_var(b, max);
        }
        EventKind::Waiting { addr, now } => {
            put_u64(b, addr);
            put_var(b, u64::from(now));
        }
        EventKind::Moved {
            from,
            to,
            requeues,
            moved,
            woken,
        } => {
            put_u64(b, from);
            put_u64(b, to);
            put_var(b, requeues);
            put_var(b, moved);
            put_var(b, woken);
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
        } => {
            put_u64(b, addr);
            put_u64(b, final_addr);
            b.push(index_of(&OPS, &op));
            b.push(index_of(&OUTCOMES, &outcome));
            put_u64(b, wait_ns);
            put_opt_u64(b, wake_to_return_ns);
            put_opt_u64(b, sched_delay_ns);
            put_waker(b, waker);
            put_opt_u32(b, stack);
            put_u64(b, stack_rate_ns);
            put_u32(b, waker_every);
        }
    }
}

/// The fields of [`Counts`] in their recorded order.
fn counts_fields(c: &Counts) -> [u64; 10] {
    [
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
    ]
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
    fn var(&mut self) -> Result<u64, ReadError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.invalid("varint byte", 0x80))
    }
    fn var_u32(&mut self) -> Result<u32, ReadError> {
        let v = self.var()?;
        u32::try_from(v).map_err(|_| self.invalid("32-bit varint", 0xff))
    }
    fn waker(&mut self) -> Result<Option<Waker>, ReadError> {
        Ok(if self.flag()? {
            Some(Waker {
                tid: self.u32()?,
                stack: self.opt_u32()?,
            })
        } else {
            None
        })
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
            waker: c.waker()?,
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
        10 | 15 => {
            let addr = c.u64()?;
            let op = c.pick(&OPS, "futex op")?;
            let hash = if tag == 10 {
                None
            } else {
                Some(match c.u8()? {
                    0 => KernelHash::Global,
                    1 => KernelHash::Private {
                        slots: c.var_u32()?,
                        bucket: c.var_u32()?,
                    },
                    v => return Err(c.invalid("kernel hash table", v)),
                })
            };
            let mut f = [0u64; 10];
            for v in &mut f {
                *v = c.var()?;
            }
            let [calls, blocked, mismatches, timeouts, interrupted, failed, acquired, woken, moved, wait_ns] =
                f;
            EventKind::Counts {
                addr,
                op,
                hash,
                counts: Counts {
                    calls,
                    blocked,
                    mismatches,
                    timeouts,
                    interrupted,
                    failed,
                    acquired,
                    woken,
                    moved,
                    wait_ns,
                },
            }
        }
        11 => EventKind::Hist {
            of: match c.u8()? {
                0 => HistOf::Wait { addr: c.u64()? },
                1 => HistOf::WakeToReturn,
                2 => HistOf::SchedDelay,
                v => return Err(c.invalid("histogram", v)),
            },
            slot: match c.u8()? {
                s @ 0..=63 => s,
                v => return Err(c.invalid("histogram slot", v)),
            },
            count: c.var()?,
            sum: c.var()?,
            max: c.var()?,
        },
        14 => EventKind::Waiting {
            addr: c.u64()?,
            now: u32::try_from(c.var()?).map_err(|_| c.invalid("waiter count", 0xff))?,
        },
        12 => EventKind::Moved {
            from: c.u64()?,
            to: c.u64()?,
            requeues: c.var()?,
            moved: c.var()?,
            woken: c.var()?,
        },
        13 => EventKind::WaitSample {
            addr: c.u64()?,
            final_addr: c.u64()?,
            op: c.pick(&OPS, "futex op")?,
            outcome: c.pick(&OUTCOMES, "outcome")?,
            wait_ns: c.u64()?,
            wake_to_return_ns: c.opt_u64()?,
            sched_delay_ns: c.opt_u64()?,
            waker: c.waker()?,
            stack: c.opt_u32()?,
            stack_rate_ns: c.u64()?,
            waker_every: c.u32()?,
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
