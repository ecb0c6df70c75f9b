//! The `zone` fuzz target: see `gslbd_fuzz::targets::zone` (fuzz/src/targets.rs) for what
//! it feeds and checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd_fuzz::targets::zone(data));
