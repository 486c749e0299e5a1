//! Writes the log directory that a `segment_loader` or `recovery` input (a crash, a corpus file)
//! describes, to look at it with ordinary tools.
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --bin materialize -- <target> <input> <dir>`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, input, dir] = &args[..] else {
        eprintln!("usage: materialize <segment_loader|recovery> <input file> <output dir>");
        return ExitCode::from(2);
    };
    let data = match std::fs::read(input) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(files) = softadastra_wal_fuzz::files_of(target, &data) else {
        eprintln!("{target}: not a target whose input is a log directory");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    for (name, bytes) in files {
        let path = dir.join(&name);
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &bytes)) {
            eprintln!("{}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    ExitCode::SUCCESS
}
