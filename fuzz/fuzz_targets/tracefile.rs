//! The recorded trace reader on arbitrary bytes: it returns a trace or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut n = 0u64;
    let _ = futex_trace::recording::read(data, |_| n += 1);
});
