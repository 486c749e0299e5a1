//! Opening a log directory for inspection, with errors a user can act on.

use std::io;
use std::path::Path;

use softadastra_wal::Error;
use softadastra_wal::inspect::Log;

/// Opens `dir` as a log, or says in one line why it is not one.
pub fn open(dir: &Path) -> Result<Log, String> {
    check_dir(dir)?;
    let log = Log::open(dir).map_err(|e| describe(&e))?;
    if !log.is_log() {
        return Err(format!(
            "{} is not a softadastra-wal log (no segment files and no wal.lock)",
            dir.display()
        ));
    }
    Ok(log)
}

/// Checks that `dir` exists and is a directory.
pub fn check_dir(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!("{} is not a directory", dir.display())),
        Err(e) => Err(format!("{}: {}", dir.display(), io_message(&e))),
    }
}

/// A library error as one line.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Io {
            path,
            action,
            source,
        } => format!(
            "{}: {} (while {action})",
            path.display(),
            io_message(source)
        ),
        e => e.to_string(),
    }
}

/// An I/O error in words, without the OS error number where the kind says it all.
pub fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::NotADirectory => "not a directory".into(),
        _ => e.to_string(),
    }
}
