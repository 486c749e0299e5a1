//! `walctl info DIR|SEGMENT`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use softadastra_wal::inspect::{self, Field, SegmentInfo, SegmentState, WriterLock};

use crate::logdir;
use crate::render::file_name;

/// Show the format version, writer lock state and one line per segment of a log directory, or
/// the header and footer of one segment file field by field.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// A log directory, or one segment file.
    path: PathBuf,
}

pub fn run(args: &InfoArgs) -> Result<ExitCode, String> {
    let path = &args.path;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{}: {}", path.display(), logdir::io_message(&e)))?;
    let text = if meta.is_dir() {
        directory(&logdir::open(path)?)
    } else {
        let detail = inspect::segment_detail(path).map_err(|e| logdir::describe(&e))?;
        segment(&detail)
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn directory(log: &inspect::Log) -> String {
    let segments = log.segments();
    let mut versions: Vec<u32> = segments
        .iter()
        .filter_map(|s| s.header.map(|h| h.version))
        .collect();
    versions.dedup();
    let version = match versions.as_slice() {
        [] => "unknown (no readable segment header)".to_string(),
        v => v.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
    };
    let lock = match inspect::writer_lock(log.dir()) {
        WriterLock::Held { pid } => format!("held by process {pid}: a writer has the log open"),
        other => other.to_string(),
    };
    let records = match (log.first_seq(), log.last_seq()) {
        (Some(first), Some(last)) => format!("{first}..={last} ({} records)", last - first + 1),
        _ => "none".to_string(),
    };
    let mut s = String::new();
    let _ = writeln!(s, "log          {}", log.dir().display());
    let _ = writeln!(s, "format       version {version}");
    if let Some(id) = log.log_id() {
        let _ = writeln!(s, "log id       {id:#018x}");
    }
    let _ = writeln!(s, "writer lock  {lock}");
    let _ = writeln!(s, "records      {records}");
    let _ = writeln!(s, "segments     {}", segments.len());
    if !segments.is_empty() {
        s.push('\n');
        s.push_str(&segment_table(&segments));
    }
    for other in log.other_files() {
        let what = match other.temp_of {
            Some(id) => format!("segment {id} being created (or left over by a crash)"),
            None => "not part of the log (ignored)".to_string(),
        };
        let _ = writeln!(s, "other file   {}: {what}", file_name(&other.path));
    }
    s
}

fn state_name(info: &SegmentInfo, newest: bool) -> &'static str {
    match info.state {
        SegmentState::Sealed => "sealed",
        SegmentState::Unsealed if newest => "active",
        SegmentState::Unsealed => "unsealed",
        SegmentState::Spare => "spare",
        SegmentState::Rejected => "rejected",
        SegmentState::Unreadable => "unreadable",
        SegmentState::Vanished => "vanished",
        _ => "unknown",
    }
}

fn segment_table(segments: &[SegmentInfo]) -> String {
    let newest = segments
        .iter()
        .rposition(|s| !matches!(s.state, SegmentState::Spare | SegmentState::Vanished));
    let dash = || "-".to_string();
    let mut rows = vec![[
        "FILE".to_string(),
        "FIRST".into(),
        "LAST".into(),
        "RECORDS".into(),
        "USED/CAPACITY".into(),
        "STATE".into(),
        "HEADER".into(),
    ]];
    let mut notes = Vec::new();
    for (i, info) in segments.iter().enumerate() {
        let header = match info.state {
            SegmentState::Spare => "none",
            _ if info.header.is_some() => "ok",
            SegmentState::Rejected => "bad",
            _ => "-",
        };
        let used = if info.header.is_some() {
            format!("{}/{}", info.used, info.capacity)
        } else {
            dash()
        };
        rows.push([
            file_name(&info.path),
            info.first_seq.map_or_else(dash, |v| v.to_string()),
            info.last_seq.map_or_else(dash, |v| v.to_string()),
            info.records.to_string(),
            used,
            state_name(info, Some(i) == newest).to_string(),
            header.to_string(),
        ]);
        if let Some(note) = &info.note {
            notes.push(format!("  {}: {note}", file_name(&info.path)));
        }
    }
    let mut s = table(&rows);
    for note in notes {
        s.push_str(&note);
        s.push('\n');
    }
    s
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut s = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

fn fields(fields: &[Field]) -> String {
    let mut rows = vec![[
        "  OFFSET".to_string(),
        "SIZE".into(),
        "FIELD".into(),
        "VALUE".into(),
    ]];
    for f in fields {
        rows.push([
            format!("  {}", f.offset),
            f.len.to_string(),
            f.name.to_string(),
            f.value.clone(),
        ]);
    }
    table(&rows)
}

fn segment(d: &inspect::SegmentDetail) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "file         {}", d.path.display());
    let _ = writeln!(s, "length       {} bytes", d.file_len);
    match d.name_id {
        Some(id) => {
            let _ = writeln!(s, "segment      {id} (from the file name)");
        }
        None => {
            let _ = writeln!(
                s,
                "segment      unknown: not named like a segment ({{id:020}}.seg), so the log ignores it"
            );
        }
    }
    match &d.header {
        Ok(h) => {
            let l = &h.layout;
            let _ = writeln!(s, "header       ok");
            let _ = writeln!(
                s,
                "layout       records {}..{} ({} bytes), index {}..{} (room for {} entries), footer at {}",
                l.data_start(),
                l.data_limit,
                l.capacity(),
                l.index_offset(),
                l.footer_offset,
                l.max_index_entries,
                l.footer_offset
            );
        }
        Err(why) => {
            let _ = writeln!(s, "header       rejected: {why}");
        }
    }
    s.push_str(&fields(&d.header_fields));
    match &d.footer {
        None if d.header.is_ok() => {
            let _ = writeln!(s, "footer       absent (not sealed)");
        }
        None => {}
        Some(Ok(())) => {
            let _ = writeln!(s, "footer       valid (sealed)");
        }
        Some(Err(why)) => {
            let _ = writeln!(s, "footer       invalid: {why}");
        }
    }
    if !d.footer_fields.is_empty() {
        s.push_str(&fields(&d.footer_fields));
    }
    let info = &d.info;
    let records = match (info.first_seq, info.last_seq) {
        (Some(first), Some(last)) => format!("{first}..={last} ({} records)", info.records),
        _ => "none".to_string(),
    };
    let _ = writeln!(s, "records      {records}");
    if info.header.is_some() {
        let _ = writeln!(s, "used         {} of {} bytes", info.used, info.capacity);
    }
    let _ = writeln!(s, "state        {}", state_name(info, true));
    if let Some(note) = &info.note {
        let _ = writeln!(s, "note         {note}");
    }
    s
}
