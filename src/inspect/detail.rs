//! One segment file field by field: `walctl info SEGMENT`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{FOOTER_LEN, FOOTER_MAGIC, SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use crate::names::{self, FileKind};
use crate::source::{FileSource, Window};

use super::analysis::{self, Footer, Opened};
use super::dir::{Slot, SlotState};
use super::{HeaderInfo, SegmentInfo};

/// One field of an on-disk structure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Field {
    /// Offset in the file.
    pub offset: u64,
    /// Size in bytes.
    pub len: u64,
    /// The field's name in FORMAT.md.
    pub name: &'static str,
    /// Its value, decoded (integers in decimal, identifiers and checksums in hexadecimal, magic
    /// bytes as text).
    pub value: String,
}

/// A segment file described field by field, whether or not its header checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentDetail {
    /// The file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub file_len: u64,
    /// The segment number in its name, if it is named like a segment.
    pub name_id: Option<u64>,
    /// The header's fields as stored (as many as the file has bytes for).
    pub header_fields: Vec<Field>,
    /// The header as recovery checks it: its fields, or why it is rejected.
    pub header: std::result::Result<HeaderInfo, String>,
    /// The seal footer's fields as stored, when the header gives its place and it has the
    /// footer magic.
    pub footer_fields: Vec<Field>,
    /// The footer: `None` when absent (not sealed) or when the header is rejected,
    /// `Some(Ok(()))` when valid, `Some(Err(why))` when present but invalid.
    pub footer: Option<std::result::Result<(), String>>,
    /// The segment's records and state, as in [`Log::segments`](super::Log::segments) (taken
    /// as the newest segment of its log, so bytes after its records count as a torn tail).
    pub info: SegmentInfo,
}

/// Describes the segment file at `path` field by field.
///
/// # Errors
///
/// [`Error::Io`](crate::Error::Io) if the file cannot be opened or read.
pub fn segment_detail(path: impl AsRef<Path>) -> Result<SegmentDetail> {
    let path = path.as_ref().to_path_buf();
    let io_err = |e| Error::io("reading", &path, e);
    let name_id = match path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(names::parse)
    {
        Some(FileKind::Segment(id)) => Some(id),
        _ => None,
    };
    let file = FileSource::open(&path).map_err(io_err)?;
    let mut window = Window::new(&file);
    let header_fields = header_fields(
        window
            .bytes(0, SEGMENT_HEADER_LEN, SEGMENT_HEADER_LEN)
            .map_err(io_err)?,
    );
    let opened = analysis::open(&path, name_id).map_err(io_err)?;
    let mut detail = SegmentDetail {
        path: path.clone(),
        file_len: file.len,
        name_id,
        header_fields,
        header: Err(String::new()),
        footer_fields: Vec::new(),
        footer: None,
        info: SegmentInfo::blank(path.clone(), name_id.unwrap_or(0), file.len),
    };
    let state = match opened {
        Opened::Seg(seg) => {
            detail.header = Ok(seg.header);
            let layout = seg.layout();
            let at = layout.footer_offset;
            let raw = window
                .bytes(at, FOOTER_LEN, at.saturating_add(FOOTER_LEN))
                .map_err(io_err)?;
            if raw.starts_with(&FOOTER_MAGIC) {
                detail.footer_fields = footer_fields(at, raw);
            }
            detail.footer = match analysis::footer(&seg).map_err(io_err)? {
                Footer::Absent => None,
                Footer::Valid(_) => Some(Ok(())),
                Footer::Invalid(why) => Some(Err(why)),
            };
            let plan = analysis::plan(&seg, true).map_err(io_err)?;
            SlotState::Open { seg, plan }
        }
        Opened::Rejected(why) => {
            detail.header = Err(why.clone());
            SlotState::Rejected(why)
        }
        Opened::Vanished => {
            return Err(io_err(std::io::ErrorKind::NotFound.into()));
        }
    };
    let slot = Slot {
        id: detail.info.id,
        path,
        file_len: file.len,
        state,
        activated_spare: false,
    };
    detail.info = slot.info(true);
    Ok(detail)
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// `(offset, size, name, how to show it)` of each header field (FORMAT.md, "Segment header").
const HEADER: [(u64, u64, &str, Show); 10] = [
    (0, 8, "magic", Show::Text),
    (8, 4, "version", Show::Dec),
    (12, 4, "header_len", Show::Dec),
    (16, 8, "segment_size", Show::Dec),
    (24, 8, "log_id", Show::Hex),
    (32, 8, "segment_id", Show::Dec),
    (40, 8, "base_seq", Show::Dec),
    (48, 8, "index_interval", Show::Dec),
    (56, 4, "reserved", Show::Hex),
    (60, 4, "crc", Show::Hex),
];

/// The same for the seal footer, offsets relative to its start (FORMAT.md, "Sealing").
const FOOTER: [(u64, u64, &str, Show); 8] = [
    (0, 8, "magic", Show::Text),
    (8, 8, "first_seq", Show::Dec),
    (16, 8, "last_seq", Show::Dec),
    (24, 8, "data_end", Show::Dec),
    (32, 8, "index_count", Show::Dec),
    (40, 4, "index_crc", Show::Hex),
    (44, 16, "reserved", Show::Hex),
    (60, 4, "crc", Show::Hex),
];

#[derive(Clone, Copy)]
enum Show {
    Dec,
    Hex,
    Text,
}

fn fields(base: u64, bytes: &[u8], table: &[(u64, u64, &'static str, Show)]) -> Vec<Field> {
    table
        .iter()
        .filter_map(|&(offset, len, name, show)| {
            let raw = bytes.get(offset as usize..(offset + len) as usize)?;
            let value = match show {
                Show::Dec => le(raw).to_string(),
                Show::Hex if len <= 8 => {
                    format!("{:#0width$x}", le(raw), width = 2 + 2 * len as usize)
                }
                Show::Hex => raw.iter().map(|b| format!("{b:02x}")).collect(),
                Show::Text => raw
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() {
                            char::from(b).to_string()
                        } else {
                            format!("\\x{b:02x}")
                        }
                    })
                    .collect(),
            };
            Some(Field {
                offset: base + offset,
                len,
                name,
                value,
            })
        })
        .collect()
}

fn header_fields(head: &[u8]) -> Vec<Field> {
    let mut v = fields(0, head, &HEADER);
    if let Some(f) = v.iter_mut().find(|f| f.name == "magic")
        && !head.starts_with(&SEGMENT_MAGIC)
    {
        f.value.push_str(" (expected SAWALSEG)");
    }
    if let (Some(body), Some(stored), Some(f)) = (
        head.get(..60),
        head.get(60..64),
        v.iter_mut().find(|f| f.name == "crc"),
    ) {
        let computed = crc32fast::hash(body);
        if u64::from(computed) != le(stored) {
            f.value.push_str(&format!(" (computed {computed:#010x})"));
        }
    }
    v
}

fn footer_fields(footer_offset: u64, raw: &[u8]) -> Vec<Field> {
    fields(footer_offset, raw, &FOOTER)
}
