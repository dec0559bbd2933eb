//! The recorded trace format (`.ftr`), version 6. Documented in `futex-trace/FORMAT.md`.
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

mod codec;
mod reader;
mod writer;

use serde::{Deserialize, Serialize};

use crate::stacks::{ProcessInfo, StackTable};

pub use crate::error::ReadError;
pub use codec::encode;
pub use reader::{ending_warning, read, Chunk, TraceReader};
pub use writer::TraceWriter;

pub const MAGIC: &[u8; 8] = b"FUTEXTRC";
/// The version written. Versions 1 (one STACKS chunk at the end), 2 (no kernel aggregates: event
/// tags 10-14), 3 (counts without their kernel hash table: tag 10, not 15) and 4 (no waker process, no
/// shared-futex table, no thread names: tag 16) and 5 (no bucket lock spins: tag 17) are read too.
pub const VERSION: u16 = 6;
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

pub use crate::trace::{TraceEnd, TraceMeta};

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

fn bad(msg: String) -> ReadError {
    ReadError::Format(msg)
}
