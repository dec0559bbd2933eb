//! The kernel's own futex hash tables (Linux 6.17+, `CONFIG_FUTEX_PRIVATE_HASH`).
//!
//! A multithreaded process has a private futex hash for its private futexes (`FUTEX_PRIVATE_FLAG`):
//! created at its first thread with `roundup_pow_of_two(4 × min(threads, online CPUs))` slots (at least
//! 16), grown as threads are added, and set with `prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, n)`.
//! A private futex's bucket is (kernel/futex/core.c, `__futex_hash_private`)
//! `jhash2({page & 0xffffffff, page >> 32}, 2, offset) & hash_mask`, page being the address rounded down
//! to its page and offset the address within it. Shared futexes, and processes without a private hash,
//! use the global table, for which no bucket is claimed here.
//!
//! The eBPF side reads the mask in force at each call (`hash_shift` in futex.bpf.c); this module
//! computes the bucket, for recorded traces and for the what-if of another slot count
//! (`--slots N`) alike.

use serde::{Deserialize, Serialize};

/// The kernel futex hash table a word's calls went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelHash {
    /// The global table, for a private futex of a process without a private hash.
    Global,
    /// The global table, for a shared futex (no `FUTEX_PRIVATE_FLAG`): keyed by the memory it lies in
    /// (the mapping's inode and offset), so every process that maps it waits on the same word.
    Shared,
    /// The process's private hash of `slots` buckets (a power of two); `bucket` is the word's.
    Private { slots: u32, bucket: u32 },
}

impl KernelHash {
    /// The word at `addr` in a private hash of `slots` slots (a power of two): its bucket there.
    pub fn private_of(addr: u64, slots: u32) -> KernelHash {
        KernelHash::Private {
            slots,
            bucket: bucket(addr, slots),
        }
    }

    /// Slots and bucket of a private hash; `None` for the global table.
    pub fn private(self) -> Option<(u32, u32)> {
        match self {
            KernelHash::Private { slots, bucket } => Some((slots, bucket)),
            KernelHash::Global | KernelHash::Shared => None,
        }
    }
}

/// The page size of this machine (the traced processes' own: a futex key is taken by page).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// The bucket of the private futex at `addr` in a private hash of `slots` slots (a power of two), as
/// `__futex_hash_private` computes it.
pub fn bucket(addr: u64, slots: u32) -> u32 {
    bucket_with_page(addr, slots, page_size())
}

fn bucket_with_page(addr: u64, slots: u32, page: u64) -> u32 {
    let offset = addr % page;
    let page_addr = addr - offset;
    let words = [page_addr as u32, (page_addr >> 32) as u32];
    jhash2(&words, offset as u32) & slots.wrapping_sub(1)
}

/// `JHASH_INITVAL`, lookup3's golden start.
const JHASH_INITVAL: u32 = 0xdead_beef;

/// Bob Jenkins' lookup3 `hashword`, as the kernel's `jhash2` (include/linux/jhash.h) defines it.
pub fn jhash2(k: &[u32], initval: u32) -> u32 {
    let start = JHASH_INITVAL
        .wrapping_add((k.len() as u32) << 2)
        .wrapping_add(initval);
    lookup3(k, start)
}

/// lookup3's body over 32-bit words from the start value `start` (`hashword` and, for data that is
/// whole words, `hashlittle`: they differ only in how the start counts the length).
fn lookup3(k: &[u32], start: u32) -> u32 {
    let (mut a, mut b, mut c) = (start, start, start);
    let mut k = k;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        mix(&mut a, &mut b, &mut c);
        k = &k[3..];
    }
    match k.len() {
        3 => {
            c = c.wrapping_add(k[2]);
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        2 => {
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        1 => a = a.wrapping_add(k[0]),
        _ => return c,
    }
    final_mix(&mut a, &mut b, &mut c);
    c
}

/// `__jhash_mix`.
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

/// `__jhash_final`.
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of Bob Jenkins' own lookup3.c (its `hashword`, and the `hashlittle` values its test driver
    /// prints), computed with that C code through the `jenkins` Python package.
    #[test]
    fn jhash2_is_lookup3s_hashword() {
        for (words, initval, want) in [
            ([0x1234_5000, 0x7f], 0x10, 0x68d6_03b9),
            ([0xc3be_f000, 0x0], 0x454, 0x5ac2_27a4),
            ([0x0, 0x0], 0x0, 0x58c1_84bf),
            ([0xdead_b000, 0x7ffd], 0xffc, 0xb2ef_2a85),
            ([0xc3be_f000, 0x5640], 0x454, 0xeb05_69e1),
        ] {
            assert_eq!(jhash2(&words, initval), want, "{words:x?} {initval:#x}");
        }
        assert_eq!(jhash2(&[], 0), JHASH_INITVAL);
        // hashlittle("Four score and seven years ago", 30, initval): the same body over more blocks
        // (its last word padded with zeros; its start counts bytes, not words).
        let text = b"Four score and seven years ago\0\0";
        let words: Vec<u32> = text
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(lookup3(&words, JHASH_INITVAL + 30), 0x1777_0551);
        assert_eq!(lookup3(&words, JHASH_INITVAL + 30 + 1), 0xcd62_8161);
    }

    #[test]
    fn a_private_bucket_is_the_kernels_formula() {
        // __futex_hash_private: jhash2 of the page's two halves, the offset in the page as initval.
        let addr = 0x5640_c3be_f454u64;
        assert_eq!(
            bucket_with_page(addr, 1 << 31, 4096),
            0xeb05_69e1 & 0x7fff_ffff
        );
        assert_eq!(bucket_with_page(addr, 16, 4096), 0xeb05_69e1 & 15);
        assert_eq!(
            KernelHash::private_of(addr, 16),
            KernelHash::Private {
                slots: 16,
                bucket: bucket(addr, 16)
            }
        );
    }

    #[test]
    fn a_bucket_is_within_the_table_and_depends_on_the_offset_in_the_page() {
        for slots in [2, 4, 16, 64, 1024] {
            for addr in (0x7f00_0000_0000u64..).step_by(4).take(2000) {
                assert!(bucket_with_page(addr, slots, 4096) < slots);
            }
        }
        // Same page, another offset: another initval, so (almost always) another bucket somewhere.
        let spread: std::collections::HashSet<u32> = (0..64)
            .map(|i| bucket_with_page(0x5555_0000_1000 + 4 * i, 64, 4096))
            .collect();
        assert!(spread.len() > 16, "{spread:?}");
        // The page is what is hashed, not the address: the same offset of two pages differs.
        assert_ne!(
            (0..8)
                .map(|p| bucket_with_page(0x1000 * p + 8, 1 << 16, 4096))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1
        );
    }
}
