#![no_main]
//! Fuzz target `recovery`: the body is `softadastra_wal_fuzz::recovery` (src/lib.rs), so that the corpus
//! and the regressions replay as an ordinary test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| softadastra_wal_fuzz::recovery(data));
