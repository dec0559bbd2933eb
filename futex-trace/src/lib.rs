//! futex-trace: sources → one event type → model of aggregates → exporters.
//!
//! This crate is being built up issue by issue (see the README). For now it only exposes the bucket
//! mapping that every source shares: a futex address mapped onto futex-core's sleep queues.

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
