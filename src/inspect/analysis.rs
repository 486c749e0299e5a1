//! One segment file as recovery sees it, read with positioned reads: its header checked and its
//! plan decided by the recovery rules (`crate::rules`), the same functions an open runs.

use std::io;
use std::path::Path;

use crate::format::{Binding, IndexEntry, Layout, Seal};
use crate::rules::{self, Checked, Liveness};
pub(crate) use crate::rules::{AfterRecords, Footer, Plan, Prefix};
use crate::source::FileSource;

use super::HeaderInfo;

/// A segment file whose header checked out.
#[derive(Debug)]
pub(crate) struct Seg {
    pub(crate) file: FileSource,
    pub(crate) id: u64,
    pub(crate) header: HeaderInfo,
    pub(crate) checked: Checked,
}

impl Seg {
    pub(crate) fn layout(&self) -> &Layout {
        &self.header.layout
    }

    pub(crate) fn binding(&self) -> Binding {
        self.checked.binding()
    }

    pub(crate) fn base_seq(&self) -> u64 {
        self.header.base_seq
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file.path
    }

    /// The extent the plan gives: first sequence number, the one after the last, end of records.
    pub(crate) fn extent(&self, plan: &Plan) -> (u64, u64, u64) {
        plan.extent(&self.checked)
    }
}

/// What opening a segment file found.
// One per segment file of an inspected directory, never in a hot path: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Opened {
    Seg(Seg),
    /// The header is not one this crate accepts; the reason, as recovery words it.
    Rejected(String),
    /// The file was deleted between the directory listing and the open (truncation).
    Vanished,
}

/// Opens `path` (segment number `id`, or the header's own number when `id` is `None`) and
/// checks its header as recovery does.
pub(crate) fn open(path: &Path, id: Option<u64>) -> io::Result<Opened> {
    let file = match FileSource::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Opened::Vanished),
        Err(e) => return Err(e),
    };
    let checked = match rules::check_header(&file, id)? {
        Ok(checked) => checked,
        Err(damage) => return Ok(Opened::Rejected(damage.kind.to_string())),
    };
    Ok(Opened::Seg(Seg {
        id: checked.id,
        header: HeaderInfo::new(&checked.header, checked.layout),
        checked,
        file,
    }))
}

pub(crate) fn footer(seg: &Seg) -> io::Result<Footer> {
    rules::footer(&seg.file, &seg.checked)
}

/// The persisted index of a sealed segment, checked as a reader checks it before using it.
pub(crate) fn persisted_index(
    seg: &Seg,
    seal: &Seal,
) -> io::Result<Result<Vec<IndexEntry>, String>> {
    rules::persisted_index(&seg.file, &seg.checked, seal)
}

/// Decides how recovery treats `seg`, looking again at a newest segment whose tail is not clean
/// while a live writer moves its end.
pub(crate) fn plan(seg: &Seg, newest: bool) -> io::Result<Plan> {
    rules::plan(&seg.file, &seg.checked, newest, Liveness::Inspecting)
}

/// The damage `plan` proves, worded as recovery words it when it refuses the log.
pub(crate) fn plan_damage(seg: &Seg, plan: &Plan, newest: bool) -> Option<rules::Damage> {
    rules::plan_damage(&seg.file, &seg.checked, plan, newest)
}
