//! futex-trace: sources → one event type → model of aggregates → exporters.
//!
//! Built up issue by issue. Now: the event type ([`event`]), the model ([`model`]), futex-core's
//! in-process observer as a source ([`source`]), the built-in demo workload ([`demo`]), and reports
//! ([`report`]). eBPF sources, recorded traces and flamegraphs come next.

pub mod demo;
pub mod ebpf;
pub mod event;
pub mod flame;
pub mod kernel;
pub mod live;
pub mod model;
pub mod report;
pub mod source;
pub mod stacks;
pub mod tracefile;
pub mod usdt;

/// The bucket (futex-core hash) an address falls in for a table of `queues` queues. For kernel futexes
/// of another process this is futex-core's hash of the address, not the kernel's own table.
pub fn bucket_of(addr: u64, queues: usize) -> usize {
    futex_core::bucket_of_addr(addr as usize, queues.trailing_zeros())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_matches_futex_core_table() {
        let t = futex_core::Table::new(64);
        let words: Vec<futex_core::AtomicU32> = (0..256).map(futex_core::AtomicU32::new).collect();
        for w in &words {
            assert_eq!(super::bucket_of(w as *const _ as u64, 64), t.bucket_of(w));
        }
    }
}
