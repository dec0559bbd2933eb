//! Stacks interned by their frames: equal stacks of a process get one id, so that the model aggregates
//! by stack (the unwinder's stacks, and the observer's frame-pointer walks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Mapping;

/// The user stacks of a live trace by id, readable from any thread while the source runs (the session's
/// stack resolver reads them).
pub trait StackLookup: Send + Sync {
    /// Stack `id` (instruction pointers, innermost first), if known, and whether it was cut short.
    fn stack(&self, id: u32) -> Option<(Vec<u64>, bool)>;

    /// The maps of process `pid` as the source read them, if it did (for a process that ended before
    /// anyone else read them).
    fn maps(&self, _pid: u32) -> Option<Vec<Mapping>> {
        None
    }

    /// The name of a frame the source named itself (an interpreter's: see
    /// [`super::INTERPRETER_FRAME`]), which no symbol file holds.
    fn frame_name(&self, _pid: u32, _ip: u64) -> Option<String> {
        None
    }
}

/// A stack of one process, unwound: instruction pointers (innermost first) and whether it was cut
/// short (a frame outside every executable mapping, or the end of the copy, before the thread's
/// first frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unwound {
    pub ips: Vec<u64>,
    pub truncated: bool,
}

/// The interned stacks by id, shared with the session's stack resolver.
#[derive(Clone, Default)]
pub struct UnwoundStacks {
    stacks: Arc<Mutex<HashMap<u32, (u32, Unwound)>>>,
    /// The maps the unwinder read of each process (a process gone before the resolver read its own).
    maps: Arc<Mutex<HashMap<u32, Vec<Mapping>>>>,
    /// Names of interpreter frames, (pid, frame) → name, read while their process ran.
    names: Arc<Mutex<HashMap<(u32, u64), String>>>,
}

impl UnwoundStacks {
    /// Keeps `maps` as process `pid`'s.
    pub fn set_maps(&self, pid: u32, maps: &[Mapping]) {
        crate::lock(&self.maps).insert(pid, maps.to_vec());
    }

    /// Whether frame `ip` of `pid` has a name already.
    pub fn has_name(&self, pid: u32, ip: u64) -> bool {
        crate::lock(&self.names).contains_key(&(pid, ip))
    }

    /// Names frame `ip` of `pid`.
    pub fn set_name(&self, pid: u32, ip: u64, name: String) {
        crate::lock(&self.names).insert((pid, ip), name);
    }
}

impl StackLookup for UnwoundStacks {
    fn stack(&self, id: u32) -> Option<(Vec<u64>, bool)> {
        crate::lock(&self.stacks)
            .get(&id)
            .map(|(_, s)| (s.ips.clone(), s.truncated))
    }

    fn maps(&self, pid: u32) -> Option<Vec<Mapping>> {
        crate::lock(&self.maps).get(&pid).cloned()
    }

    fn frame_name(&self, pid: u32, ip: u64) -> Option<String> {
        crate::lock(&self.names).get(&(pid, ip)).cloned()
    }
}

/// Equal stacks of a process under one id, shared with the session's stack resolver.
#[derive(Default)]
pub struct StackInterner {
    /// (pid, stack) → interned id.
    interned: HashMap<(u32, Vec<u64>), u32>,
    /// Interned id → (pid, stack), for the resolver.
    pub stacks: UnwoundStacks,
}

impl StackInterner {
    /// The id of `stack` of `pid`, new if it was not seen before.
    pub fn intern(&mut self, pid: u32, stack: Unwound) -> u32 {
        let next = self.interned.len() as u32;
        let id = *self
            .interned
            .entry((pid, stack.ips.clone()))
            .or_insert(next);
        if id == next {
            crate::lock(&self.stacks.stacks).insert(id, (pid, stack));
        }
        id
    }
}
