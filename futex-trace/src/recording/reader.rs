//! Reading a recording chunk by chunk: past damage (skipped, said) and up to a cut (said), never a panic.

use std::collections::VecDeque;
use std::io::{self, Read};

use super::codec::{decode, Cursor};
use super::{
    bad, ReadError, StacksChunk, Trace, MAGIC, MAX_CHUNK, SYNC, T_END, T_EVENTS, T_META, T_STACKS,
    V1_HEADER, V2_HEADER, VERSION,
};
use crate::event::Event;
use crate::stacks::StackTable;
use crate::trace::{TraceEnd, TraceMeta};

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
                    version: self.version,
                };
                let count: u32 = c.get()?;
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
