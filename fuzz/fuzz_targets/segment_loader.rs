#![no_main]
//! Fuzz target `segment_loader`: the body is `softadastra_wal_fuzz::segment_loader` (src/lib.rs), so that the corpus
//! and the regressions replay as an ordinary test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| softadastra_wal_fuzz::segment_loader(data));
