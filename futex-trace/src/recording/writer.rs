//! Writing a recording: chunks of events as they come, the stacks each second, the end marker.

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::codec::encode;
use super::{
    StacksChunk, EVENTS_PER_CHUNK, MAGIC, SYNC, T_END, T_EVENTS, T_META, T_STACKS, V2_HEADER,
    VERSION,
};
use crate::event::Event;
use crate::stacks::StackTable;
use crate::trace::{TraceEnd, TraceMeta};

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
