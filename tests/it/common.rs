//! Helpers shared by the integration tests.

use softadastra_wal::{SyncMode, WalConfig, WalReader, WalRecord};
use tempfile::TempDir;

/// A fresh temporary directory for a log.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("sawal-it-")
        .tempdir()
        .expect("create temp dir")
}

/// A small-segment configuration so tests rotate often.
pub fn small_config(dir: &std::path::Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(16 << 10)
        .index_interval(256)
        .sync_mode(SyncMode::Always)
}

/// Every record of a reader, owned; panics (failing the test) on an error.
pub fn collect(reader: &WalReader) -> Vec<WalRecord> {
    reader
        .iter()
        .map(|r| r.expect("read record").to_record())
        .collect()
}
