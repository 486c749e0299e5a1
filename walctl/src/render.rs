//! How walctl shows records and findings: one text line per record, or one JSON object per
//! line. Shared by every command that prints records (`dump`, `get`, `tail`).
//!
//! The JSON is written by hand: flat objects of numbers, booleans and strings, with strings
//! escaped as RFC 8259 requires.

use std::fmt::Write as _;
use std::path::Path;

use softadastra_wal::RecordType;
use softadastra_wal::inspect::{Finding, Severity};

/// How a record's payload is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PayloadView {
    /// Hexadecimal (text output: the first bytes only).
    Hex,
    /// Text, with anything that is not printable UTF-8 escaped (text output: the first
    /// characters only). JSON falls back to hexadecimal for a payload that is not UTF-8.
    Utf8,
    /// The length only.
    Len,
    /// Neither length nor payload.
    None,
}

/// Payload bytes shown in hexadecimal on a text line.
const HEX_PREVIEW: usize = 32;
/// Payload characters shown as text on a text line.
const TEXT_PREVIEW: usize = 64;

/// The fields of a record that a line shows. `segment` and `offset` are `None` when the record
/// was read through the library's reader, which does not say where records are.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    pub seq: u64,
    pub segment: Option<u64>,
    pub offset: Option<u64>,
    pub record_type: RecordType,
    pub timestamp: u64,
    pub payload: &'a [u8],
    /// False for a record recovery does not count as part of the log.
    pub in_log: bool,
}

/// `seq=1 segment=1 offset=64 type=Put time=2023-11-14T22:13:20.000Z len=11 payload="title=Hello"`
pub fn text(line: &Line<'_>, view: PayloadView) -> String {
    let mut s = format!("seq={}", line.seq);
    if let Some(segment) = line.segment {
        let _ = write!(s, " segment={segment}");
    }
    if let Some(offset) = line.offset {
        let _ = write!(s, " offset={offset}");
    }
    let _ = write!(
        s,
        " type={} time={}",
        type_name(line.record_type),
        utc(line.timestamp)
    );
    if !line.in_log {
        s.push_str(" outside-log");
    }
    if view != PayloadView::None {
        let _ = write!(s, " len={}", line.payload.len());
    }
    match view {
        PayloadView::Hex => {
            let _ = write!(s, " payload={}", hex_preview(line.payload));
        }
        PayloadView::Utf8 => {
            let _ = write!(s, " payload={}", text_preview(line.payload));
        }
        PayloadView::Len | PayloadView::None => {}
    }
    s
}

/// One JSON object with every field of the record and, unless `view` says otherwise, its whole
/// payload.
pub fn json(line: &Line<'_>, flags: Option<u8>, view: PayloadView) -> String {
    let mut s = format!("{{\"kind\":\"record\",\"seq\":{}", line.seq);
    if let Some(segment) = line.segment {
        let _ = write!(s, ",\"segment\":{segment}");
    }
    if let Some(offset) = line.offset {
        let _ = write!(s, ",\"offset\":{offset}");
    }
    let _ = write!(
        s,
        ",\"type\":{},\"type_code\":{},\"timestamp\":{}",
        json_str(&type_name(line.record_type)),
        line.record_type.code(),
        line.timestamp
    );
    if let Some(flags) = flags {
        let _ = write!(s, ",\"flags\":{flags}");
    }
    let _ = write!(s, ",\"in_log\":{}", line.in_log);
    if view != PayloadView::None {
        let _ = write!(s, ",\"len\":{}", line.payload.len());
    }
    match (view, std::str::from_utf8(line.payload)) {
        (PayloadView::Utf8, Ok(text)) => {
            let _ = write!(s, ",\"payload_utf8\":{}", json_str(text));
        }
        (PayloadView::Utf8 | PayloadView::Hex, _) => {
            let _ = write!(s, ",\"payload_hex\":\"{}\"", hex(line.payload));
        }
        (PayloadView::Len | PayloadView::None, _) => {}
    }
    s.push('}');
    s
}

/// `!! corruption 00000000000000000002.seg offset=7000 len=40 seq=58: what`
pub fn finding_text(f: &Finding) -> String {
    let mark = if f.severity >= Severity::TornTail {
        "!!"
    } else {
        "--"
    };
    let mut s = format!("{mark} {} {}", f.severity, file_name(&f.file));
    if let Some(offset) = f.offset {
        let _ = write!(s, " offset={offset}");
    }
    if let Some(len) = f.len {
        let _ = write!(s, " len={len}");
    }
    if let Some(seq) = f.seq {
        let _ = write!(s, " seq={seq}");
    }
    let _ = write!(s, ": {}", f.what);
    s
}

/// A finding as one JSON object.
pub fn finding_json(f: &Finding) -> String {
    let mut s = format!(
        "{{\"kind\":\"damage\",\"severity\":{},\"file\":{}",
        json_str(&f.severity.to_string()),
        json_str(&f.file.display().to_string())
    );
    for (name, value) in [
        ("segment", f.segment),
        ("offset", f.offset),
        ("len", f.len),
        ("seq", f.seq),
    ] {
        if let Some(v) = value {
            let _ = write!(s, ",\"{name}\":{v}");
        }
    }
    let _ = write!(s, ",\"what\":{}}}", json_str(&f.what));
    s
}

/// The last component of a path, for compact lines.
pub fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `Put`, `Update`, `Delete`, `Checkpoint`, `Noop` or `Custom(42)`.
pub fn type_name(t: RecordType) -> String {
    format!("{t:?}")
}

/// Parses a `--type` value: a name (any case) or a code from 1 to 255.
pub fn parse_type(s: &str) -> Result<RecordType, String> {
    let names = [
        RecordType::Put,
        RecordType::Update,
        RecordType::Delete,
        RecordType::Checkpoint,
        RecordType::Noop,
    ];
    if let Some(t) = names
        .into_iter()
        .find(|t| type_name(*t).eq_ignore_ascii_case(s))
    {
        return Ok(t);
    }
    let code = s
        .strip_prefix("Custom(")
        .or_else(|| s.strip_prefix("custom("))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(s);
    match code.parse::<u8>() {
        Ok(c) => RecordType::from_code(c).ok_or_else(|| "type code 0 is never a record".into()),
        Err(_) => {
            Err("expected put, update, delete, checkpoint, noop or a code from 1 to 255".into())
        }
    }
}

/// Parses a sequence number argument: a whole number from 1.
pub fn parse_seq(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("sequence numbers start at 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a sequence number (a whole number from 1)".into()),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn hex_preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(HEX_PREVIEW)];
    let mut s = hex(shown);
    if bytes.len() > shown.len() {
        let _ = write!(s, "...(+{} bytes)", bytes.len() - shown.len());
    }
    s
}

/// The payload as a quoted string: printable UTF-8 as is, `\n`, `\t`, `\"`, `\\`, other control
/// characters as `\u{..}` and bytes that are not UTF-8 as `\xNN`. Cut after `TEXT_PREVIEW`
/// characters.
fn text_preview(bytes: &[u8]) -> String {
    let (mut s, mut shown, mut used) = (String::from("\""), 0usize, 0usize);
    'chunks: for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == TEXT_PREVIEW {
                break 'chunks;
            }
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                c if c.is_control() => {
                    let _ = write!(s, "\\u{{{:x}}}", u32::from(c));
                }
                c => s.push(c),
            }
            shown += 1;
            used += c.len_utf8();
        }
        for b in chunk.invalid() {
            if shown == TEXT_PREVIEW {
                break 'chunks;
            }
            let _ = write!(s, "\\x{b:02x}");
            shown += 1;
            used += 1;
        }
    }
    s.push('"');
    if used < bytes.len() {
        let _ = write!(s, "...(+{} bytes)", bytes.len() - used);
    }
    s
}

/// A JSON string literal.
pub fn json_str(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", u32::from(c));
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, proleptic Gregorian
/// calendar). Timestamps past the year 9999 are shown as the raw number.
pub fn utc(ms: u64) -> String {
    // 253402300800000 ms is 10000-01-01T00:00:00Z.
    if ms >= 253_402_300_800_000 {
        return ms.to_string();
    }
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_date(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The calendar date `days` days after 1970-01-01.
///
/// Counts in 400-year eras of 146,097 days, each starting on a March 1st so that the leap day
/// is the last day of an era-year; months are then numbered from March, where every five months
/// take 153 days.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // 1970-01-01 is day 719,468 counted from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_matches_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
        // A leap day, and the last millisecond before a new year.
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc(1_704_067_199_999), "2023-12-31T23:59:59.999Z");
        assert_eq!(utc(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(utc(u64::MAX), u64::MAX.to_string());
    }

    #[test]
    fn text_preview_escapes_and_cuts() {
        assert_eq!(text_preview(b"a\"b\n\xff"), "\"a\\\"b\\n\\xff\"");
        let long = vec![b'x'; 70];
        assert_eq!(
            text_preview(&long),
            format!("\"{}\"...(+6 bytes)", "x".repeat(64))
        );
        assert_eq!(hex_preview(&[1, 2]), "0102");
        assert!(hex_preview(&[0; 40]).ends_with("...(+8 bytes)"));
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a\"\\\u{1}é"), "\"a\\\"\\\\\\u0001é\"");
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_type("put"), Ok(RecordType::Put));
        assert_eq!(parse_type("Checkpoint"), Ok(RecordType::Checkpoint));
        assert_eq!(parse_type("42"), Ok(RecordType::Custom(42)));
        assert_eq!(parse_type("custom(42)"), Ok(RecordType::Custom(42)));
        assert_eq!(parse_type("3"), Ok(RecordType::Delete));
        assert!(parse_type("0").is_err());
        assert!(parse_type("nope").is_err());
        assert_eq!(parse_seq("17"), Ok(17));
        assert!(parse_seq("0").is_err());
        assert!(parse_seq("-1").is_err());
        assert!(parse_seq("x").is_err());
    }
}
