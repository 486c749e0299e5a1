//! Writes the seed corpus: every seed of `softadastra_wal_fuzz::seeds` into
//! `fuzz/corpus/<target>/seed-<name>`. Deterministic, so running it again changes nothing.
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --bin gen_corpus`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for seed in softadastra_wal_fuzz::seeds::all() {
        let dir = root.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&seed.name), &seed.bytes)?;
        println!("{}/{} ({} bytes)", seed.target, seed.name, seed.bytes.len());
    }
    Ok(())
}
