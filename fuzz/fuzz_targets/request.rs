//! The `request` fuzz target: see `gslbd_fuzz::targets::request` (fuzz/src/targets.rs) for what
//! it feeds and checks.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd_fuzz::targets::request(data));
