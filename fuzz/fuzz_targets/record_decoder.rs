#![no_main]
//! Fuzz target `record_decoder`: the body is `softadastra_wal_fuzz::record_decoder` (src/lib.rs), so that the corpus
//! and the regressions replay as an ordinary test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| softadastra_wal_fuzz::record_decoder(data));
