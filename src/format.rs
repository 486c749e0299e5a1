//! The on-disk format as a pure byte codec: constants, the segment header, the record header, the
//! seal footer and the persisted sparse index. `FORMAT.md` is the prose version of this file.
//!
//! Nothing here touches a file or a mapping: every function takes byte slices, checks every
//! length against the slice before using it, and reports bad input as a value. No input makes it
//! panic; the fuzz targets call straight into this module.
//!
//! It is public for tools that read segment files themselves (an inspector, a converter, a
//! test that builds damaged files). The structs are the on-disk layouts, read and written in
//! place with zerocopy's `FromBytes` / `IntoBytes`; their integers are little-endian
//! (`zerocopy::byteorder::little_endian`), read with `.get()`. The values a decoder returns have
//! been checked; the functions that take a [`Layout`], [`Located`] or [`Seal`] expect one made by
//! this module ([`Layout::new`], [`decode_segment_header`], [`locate_record`], [`decode_footer`]),
//! not one assembled field by field.
//!
//! A segment with one record, built in memory and read back the way recovery reads it:
//!
//! ```
//! use softadastra_wal::format::{self, Binding, Layout, RecordError};
//! use zerocopy::IntoBytes;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layout = Layout::new(8192, 256)?;
//! let mut segment = vec![0u8; 8192];
//! let header = format::encode_segment_header(&layout, 0xfeed, 1, 1);
//! segment[..64].copy_from_slice(header.as_bytes());
//!
//! // Record 1 at the start of the data region: its header, its payload, zero padding.
//! let binding = Binding { log_id: 0xfeed, segment_id: 1 };
//! let at = layout.data_start() as usize;
//! let record = format::encode_record_header(binding, 1, 1_700_000_000_000, 1, 0, 0, b"hello");
//! segment[at..at + 32].copy_from_slice(record.as_bytes());
//! segment[at + 32..at + 37].copy_from_slice(b"hello");
//!
//! // Reading: the header gives the layout and the binding every record checksum covers.
//! let (header, layout) = format::decode_segment_header(&segment)?;
//! let binding = Binding { log_id: header.log_id.get(), segment_id: header.segment_id.get() };
//! let (found, payload) =
//!     format::decode_record(&segment, layout.data_start(), layout.data_limit, binding)?;
//! assert_eq!(found.header.seq.get(), 1);
//! assert_eq!(payload, b"hello");
//! assert_eq!(found.next, layout.data_start() + format::record_size(5));
//!
//! // Past the last record the preallocated space is zero.
//! let end = format::locate_record(&segment, found.next, layout.data_limit);
//! assert!(matches!(end, Err(RecordError::Zero)));
//! # Ok(())
//! # }
//! ```

// The codec parses untrusted bytes: every access is checked (`get`), never indexed.
#![deny(clippy::indexing_slicing)]

use std::ops::Range;

use zerocopy::byteorder::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SAWALSEG";
/// First bytes of a seal footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"SAWALEND";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Size of the segment header at offset 0 of every segment file.
pub const SEGMENT_HEADER_LEN: u64 = 64;
/// Size of the seal footer in the last bytes of a sealed segment.
pub const FOOTER_LEN: u64 = 64;
/// Size of a record header.
pub const RECORD_HEADER_LEN: u64 = 32;
/// Size of one persisted index entry.
pub const INDEX_ENTRY_LEN: u64 = 16;
/// Records start at multiples of this many bytes, so headers can be read in place.
pub const RECORD_ALIGN: u64 = 8;
/// Record flag: more records of the same atomic batch follow this one.
pub const FLAG_BATCH_CONTINUES: u8 = 0b0000_0001;
/// Every flag bit this version knows; any other bit set makes a record invalid.
pub const KNOWN_FLAGS: u8 = FLAG_BATCH_CONTINUES;

/// The bytes of a segment header its checksum covers: every field before the checksum.
pub const SEGMENT_HEADER_CRC_COVERS: Range<usize> = 0..60;
/// The bytes of a record header its checksum covers, after the segment binding and before the
/// payload: every field after the checksum.
pub const RECORD_HEADER_CRC_COVERS: Range<usize> = 4..32;
/// The bytes of a seal footer its checksum covers, after the segment binding: every field
/// before the checksum.
pub const FOOTER_CRC_COVERS: Range<usize> = 0..60;

/// The part of a structure's bytes that its checksum covers. The structures' sizes are checked
/// against the ranges at compile time, so the range always fits.
fn covered(bytes: &[u8], range: Range<usize>) -> &[u8] {
    bytes.get(range).unwrap_or(&[])
}

/// Segment header, offset 0 of every segment file. The checksum covers bytes 0..60.
///
/// Written once, before the segment file gets its final name, and never changed. Build it with
/// [`encode_segment_header`], check it with [`decode_segment_header`].
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`].
    pub version: U32,
    /// [`SEGMENT_HEADER_LEN`].
    pub header_len: U32,
    /// Total size of the segment file in bytes.
    pub segment_size: U64,
    /// Random identifier shared by every segment of one log.
    pub log_id: U64,
    /// This segment's number; equals the number in its file name.
    pub segment_id: U64,
    /// Sequence number of the first record this segment holds (or will hold).
    pub base_seq: U64,
    /// Bytes between sparse index entries in this segment.
    pub index_interval: U64,
    /// Zero.
    pub reserved: [u8; 4],
    /// CRC-32 (IEEE polynomial, as computed by crc32fast) of bytes 0..60.
    pub crc: U32,
}

/// Record header, at an 8-byte aligned offset in a segment's data region, followed by the
/// payload and zero padding up to the next multiple of 8.
///
/// Build it with [`encode_record_header`], find and check it with [`locate_record`] and
/// [`verify_record`] (or both at once with [`decode_record`]).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordHeader {
    /// CRC-32 of the segment binding (log id, segment id), header bytes 4..32 and the payload.
    pub crc: U32,
    /// Payload length in bytes.
    pub len: U32,
    /// Sequence number.
    pub seq: U64,
    /// Application timestamp, milliseconds since the Unix epoch by default.
    pub timestamp: U64,
    /// Record type code, never 0.
    pub record_type: u8,
    /// [`FLAG_BATCH_CONTINUES`] or 0.
    pub flags: u8,
    /// Zero.
    pub reserved: [u8; 2],
    /// How many records directly before this one were not yet known durable when it was
    /// written. Recovery uses it to tell a torn tail from damaged acknowledged data.
    pub unsynced_before: U32,
}

/// Seal footer, the last [`FOOTER_LEN`] bytes of a sealed segment. The checksum covers the
/// segment binding and bytes 0..60.
///
/// Written when the segment is full and the log moves on to the next one; all zeros before.
/// Build it with [`encode_footer`], check it with [`decode_footer`].
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SealFooter {
    /// [`FOOTER_MAGIC`].
    pub magic: [u8; 8],
    /// Sequence number of the segment's first record.
    pub first_seq: U64,
    /// Sequence number of the segment's last record.
    pub last_seq: U64,
    /// Offset just past the last record (its padding included).
    pub data_end: U64,
    /// Number of index entries stored before the footer.
    pub index_count: U64,
    /// CRC-32 of the segment binding and the `index_count` index entries.
    pub index_crc: U32,
    /// Zero.
    pub reserved: [u8; 16],
    /// CRC-32 of the segment binding and bytes 0..60.
    pub crc: U32,
}

/// One sparse index entry: the record with sequence `seq` starts at byte `offset` of the segment.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct IndexEntry {
    /// Sequence number of the record.
    pub seq: U64,
    /// Byte offset of its header inside the segment file.
    pub offset: U64,
}

const _: () = assert!(size_of::<SegmentHeader>() as u64 == SEGMENT_HEADER_LEN);
const _: () = assert!(size_of::<RecordHeader>() as u64 == RECORD_HEADER_LEN);
const _: () = assert!(size_of::<SealFooter>() as u64 == FOOTER_LEN);
const _: () = assert!(size_of::<IndexEntry>() as u64 == INDEX_ENTRY_LEN);
const _: () = assert!(SEGMENT_HEADER_CRC_COVERS.end + 4 == SEGMENT_HEADER_LEN as usize);
const _: () = assert!(RECORD_HEADER_CRC_COVERS.end == RECORD_HEADER_LEN as usize);
const _: () = assert!(FOOTER_CRC_COVERS.end + 4 == FOOTER_LEN as usize);

/// What a record's checksum binds it to: the log and the segment it was written into. A record
/// copied from another log or another segment fails its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The log's random identifier.
    pub log_id: u64,
    /// The segment's number.
    pub segment_id: u64,
}

impl Binding {
    fn hasher(self) -> crc32fast::Hasher {
        let mut h = crc32fast::Hasher::new();
        h.update(&self.log_id.to_le_bytes());
        h.update(&self.segment_id.to_le_bytes());
        h
    }
}

/// Where things are inside a segment of a given size and index interval.
///
/// Made by [`Layout::new`] (or returned by [`decode_segment_header`]), which checks that the
/// numbers describe a usable segment; the fields are public for reading.
///
/// ```text
/// [0, 64)                       segment header
/// [64, data_limit)              records
/// [index_offset, footer_offset) room for the persisted sparse index (filled at seal time)
/// [footer_offset, size)         seal footer (zero until sealed)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// File size.
    pub size: u64,
    /// Bytes between index entries.
    pub index_interval: u64,
    /// End of the record region; equals `index_offset`.
    pub data_limit: u64,
    /// Maximum number of index entries the segment can persist.
    pub max_index_entries: u64,
    /// Start of the footer.
    pub footer_offset: u64,
}

impl Layout {
    /// The layout of a segment of `size` bytes with the given index interval: the index region
    /// is sized for one entry per `index_interval` bytes of records plus the first record, and
    /// the records get what is left.
    ///
    /// This checks only what the layout needs; [`WalConfig`](crate::WalConfig) is stricter (a
    /// multiple of 4096 between 8 KiB and 16 GiB, an interval of at least 64 bytes), and this
    /// crate only ever writes segments that pass both.
    ///
    /// ```
    /// use softadastra_wal::format::Layout;
    /// # fn main() -> softadastra_wal::Result<()> {
    /// let layout = Layout::new(64 << 20, 4096)?;
    /// assert_eq!(layout.data_start(), 64);
    /// assert!(layout.index_offset() < layout.footer_offset);
    /// assert!(Layout::new(100, 4096).is_err());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `size` is not a multiple of 8, `index_interval` is 0, or the
    /// numbers leave no room for a record.
    pub fn new(size: u64, index_interval: u64) -> Result<Layout> {
        if !size.is_multiple_of(RECORD_ALIGN) || index_interval == 0 {
            return Err(Error::config(format!(
                "segment size {size} / index interval {index_interval} not usable"
            )));
        }
        let fixed = SEGMENT_HEADER_LEN + FOOTER_LEN;
        let Some(body) = size.checked_sub(fixed) else {
            return Err(Error::config(format!("segment size {size} is too small")));
        };
        // At most one entry per interval of record bytes, plus the first record.
        let max_index_entries = body / index_interval + 2;
        let index_len = max_index_entries.saturating_mul(INDEX_ENTRY_LEN);
        let footer_offset = size - FOOTER_LEN;
        let data_limit = footer_offset.saturating_sub(index_len);
        if data_limit < SEGMENT_HEADER_LEN + RECORD_HEADER_LEN {
            return Err(Error::config(format!(
                "segment size {size} with index interval {index_interval} leaves no room for records"
            )));
        }
        Ok(Layout {
            size,
            index_interval,
            data_limit,
            max_index_entries,
            footer_offset,
        })
    }

    /// First byte of the record region.
    #[must_use]
    pub fn data_start(&self) -> u64 {
        SEGMENT_HEADER_LEN
    }

    /// Start of the persisted index region.
    #[must_use]
    pub fn index_offset(&self) -> u64 {
        self.data_limit
    }

    /// Bytes available for records (headers and padding included).
    #[must_use]
    pub fn capacity(&self) -> u64 {
        self.data_limit.saturating_sub(SEGMENT_HEADER_LEN)
    }

    /// The largest payload a single record can have in this segment.
    #[must_use]
    pub fn max_payload(&self) -> u64 {
        (self.capacity().saturating_sub(RECORD_HEADER_LEN)).min(u64::from(u32::MAX))
    }
}

/// Bytes a record with `payload_len` payload bytes takes in a segment, header and padding
/// included.
///
/// That is 32 plus the payload length rounded up to a multiple of 8. `payload_len` is a
/// record's payload length, so at most `u32::MAX`.
#[must_use]
pub fn record_size(payload_len: u64) -> u64 {
    // Saturates rather than wrapping for lengths no record can have: `u64::MAX` is refused by
    // every capacity check.
    payload_len
        .div_ceil(RECORD_ALIGN)
        .saturating_mul(RECORD_ALIGN)
        .saturating_add(RECORD_HEADER_LEN)
}

/// Whether `code` can be a record type: 0 never is (it is what zeroed space reads as).
#[must_use]
pub fn is_valid_type_code(code: u8) -> bool {
    code != 0
}

/// Builds a segment header with its checksum: segment `segment_id` of the log `log_id`, whose
/// first record will have sequence number `base_seq`, with `layout`'s size and index interval.
#[must_use]
pub fn encode_segment_header(
    layout: &Layout,
    log_id: u64,
    segment_id: u64,
    base_seq: u64,
) -> SegmentHeader {
    let mut h = SegmentHeader {
        magic: SEGMENT_MAGIC,
        version: U32::new(FORMAT_VERSION),
        header_len: U32::new(SEGMENT_HEADER_LEN as u32),
        segment_size: U64::new(layout.size),
        log_id: U64::new(log_id),
        segment_id: U64::new(segment_id),
        base_seq: U64::new(base_seq),
        index_interval: U64::new(layout.index_interval),
        reserved: [0; 4],
        crc: U32::new(0),
    };
    h.crc = U32::new(crc32fast::hash(covered(
        h.as_bytes(),
        SEGMENT_HEADER_CRC_COVERS,
    )));
    h
}

/// Why a segment header was rejected by [`decode_segment_header`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`SEGMENT_HEADER_LEN`] bytes.
    Truncated,
    /// The magic bytes are wrong: not a segment of this format.
    BadMagic,
    /// The checksum does not match.
    BadChecksum,
    /// A version this crate does not read.
    UnsupportedVersion(u32),
    /// Sizes that cannot describe a segment.
    BadGeometry(String),
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated => f.write_str("segment header truncated"),
            HeaderError::BadMagic => f.write_str("not a segment file (bad magic)"),
            HeaderError::BadChecksum => f.write_str("segment header checksum mismatch"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            HeaderError::BadGeometry(why) => write!(f, "segment header geometry invalid: {why}"),
        }
    }
}

/// Parses and checks a segment header from the first bytes of a segment file (at least
/// [`SEGMENT_HEADER_LEN`] of them; more are ignored), and returns it with the layout it
/// describes.
///
/// It does not compare the header with the file: a caller that has the file checks that its
/// length equals `segment_size` and that its name carries `segment_id`, as the crate does.
///
/// # Errors
///
/// [`HeaderError::Truncated`] for fewer than 64 bytes, [`HeaderError::BadMagic`] if the file does
/// not start with [`SEGMENT_MAGIC`], [`HeaderError::BadChecksum`],
/// [`HeaderError::UnsupportedVersion`] for a version other than [`FORMAT_VERSION`], and
/// [`HeaderError::BadGeometry`] for a header length other than 64, a base sequence of 0, or a
/// size and interval that [`Layout::new`] refuses. The checks run in that order.
pub fn decode_segment_header(bytes: &[u8]) -> Result<(SegmentHeader, Layout), HeaderError> {
    let (h, _) = SegmentHeader::read_from_prefix(bytes).map_err(|_| HeaderError::Truncated)?;
    if h.magic != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    if crc32fast::hash(covered(h.as_bytes(), SEGMENT_HEADER_CRC_COVERS)) != h.crc.get() {
        return Err(HeaderError::BadChecksum);
    }
    if h.version.get() != FORMAT_VERSION {
        return Err(HeaderError::UnsupportedVersion(h.version.get()));
    }
    if u64::from(h.header_len.get()) != SEGMENT_HEADER_LEN {
        return Err(HeaderError::BadGeometry(format!(
            "header length {}",
            h.header_len.get()
        )));
    }
    if h.base_seq.get() == 0 {
        return Err(HeaderError::BadGeometry("base sequence 0".into()));
    }
    let layout = Layout::new(h.segment_size.get(), h.index_interval.get())
        .map_err(|e| HeaderError::BadGeometry(e.to_string()))?;
    Ok((h, layout))
}

/// Builds the header of a record, checksum included. The caller writes it followed by the payload;
/// the padding after the payload is not covered by the checksum.
///
/// `binding` is the log and segment the record goes into (the checksum covers them, so the
/// record is valid only there). `record_type` must not be 0 and `flags` only
/// [`FLAG_BATCH_CONTINUES`], or [`locate_record`] will refuse the record; `unsynced_before` is
/// described on [`RecordHeader`]. The payload is at most `u32::MAX` bytes (the length field's
/// size).
#[must_use]
pub fn encode_record_header(
    binding: Binding,
    seq: u64,
    timestamp: u64,
    record_type: u8,
    flags: u8,
    unsynced_before: u32,
    payload: &[u8],
) -> RecordHeader {
    let mut h = RecordHeader {
        crc: U32::new(0),
        len: U32::new(payload.len() as u32),
        seq: U64::new(seq),
        timestamp: U64::new(timestamp),
        record_type,
        flags,
        reserved: [0; 2],
        unsynced_before: U32::new(unsynced_before),
    };
    let mut hasher = binding.hasher();
    hasher.update(covered(h.as_bytes(), RECORD_HEADER_CRC_COVERS));
    hasher.update(payload);
    h.crc = U32::new(hasher.finalize());
    h
}

/// Why the bytes at an offset are not a valid record ([`locate_record`], [`verify_record`],
/// [`decode_record`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The header is all zero bytes: the end of the written data in a preallocated segment.
    Zero,
    /// The header or payload would extend past the end of the region.
    Truncated,
    /// Type code 0, unknown flag bits, non-zero reserved bytes or sequence number 0.
    BadHeader,
    /// The checksum does not match the bytes.
    BadChecksum,
}

impl std::error::Error for HeaderError {}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordError::Zero => "zero bytes where a record header was expected",
            RecordError::Truncated => "record extends past the end of the data region",
            RecordError::BadHeader => "record header has invalid fields",
            RecordError::BadChecksum => "record checksum mismatch",
        })
    }
}

impl std::error::Error for RecordError {}

/// A record header whose structure was checked, and where its payload lies. Made by
/// [`locate_record`] (or [`decode_record`]).
#[derive(Clone, Copy, Debug)]
pub struct Located {
    /// The header as stored.
    pub header: RecordHeader,
    /// Offset of the payload.
    pub payload_offset: u64,
    /// Offset of the next record (after padding).
    pub next: u64,
}

impl Located {
    /// Payload length.
    #[must_use]
    pub fn len(&self) -> u64 {
        u64::from(self.header.len.get())
    }

    /// True for an empty payload.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the record header at `offset` of `region` and checks its structure (type code, flags,
/// reserved bytes, sequence number, payload within `limit`), without checking the checksum.
///
/// `region` is the segment's bytes from offset 0 (the whole file or a prefix of it), so offsets
/// are file offsets; `limit` is the end of the bytes that may hold records (the layout's
/// `data_limit`, or less), and is capped at the region's length.
///
/// # Errors
///
/// [`RecordError::Zero`] for an all-zero header (the end of the records in a preallocated
/// segment), [`RecordError::Truncated`] if the header or the payload would reach past `limit`,
/// and [`RecordError::BadHeader`] for a type code 0, unknown flags, non-zero
/// reserved bytes or a sequence number 0.
pub fn locate_record(region: &[u8], offset: u64, limit: u64) -> Result<Located, RecordError> {
    let limit = limit.min(region.len() as u64);
    let header_end = offset
        .checked_add(RECORD_HEADER_LEN)
        .ok_or(RecordError::Truncated)?;
    if header_end > limit {
        return Err(RecordError::Truncated);
    }
    let Some(bytes) = usize::try_from(offset)
        .ok()
        .zip(usize::try_from(header_end).ok())
        .and_then(|(start, end)| region.get(start..end))
    else {
        return Err(RecordError::Truncated);
    };
    if bytes.iter().all(|&b| b == 0) {
        return Err(RecordError::Zero);
    }
    let header = RecordHeader::read_from_bytes(bytes).map_err(|_| RecordError::Truncated)?;
    if !is_valid_type_code(header.record_type)
        || header.flags & !KNOWN_FLAGS != 0
        || header.reserved != [0; 2]
        || header.seq.get() == 0
    {
        return Err(RecordError::BadHeader);
    }
    let len = u64::from(header.len.get());
    let next = offset
        .checked_add(record_size(len))
        .ok_or(RecordError::Truncated)?;
    if header_end + len > limit || next > limit.div_ceil(RECORD_ALIGN) * RECORD_ALIGN {
        return Err(RecordError::Truncated);
    }
    Ok(Located {
        header,
        payload_offset: header_end,
        next,
    })
}

/// The payload bytes of a located record. `region` must be the slice `loc` was located in;
/// if the payload does not lie inside `region`, the result is empty.
#[must_use]
pub fn payload<'a>(region: &'a [u8], loc: &Located) -> &'a [u8] {
    let start = usize::try_from(loc.payload_offset).unwrap_or(usize::MAX);
    let len = usize::try_from(loc.len()).unwrap_or(usize::MAX);
    start
        .checked_add(len)
        .and_then(|end| region.get(start..end))
        .unwrap_or(&[])
}

/// Checks a located record's checksum over `binding`, its header and `payload` (which
/// [`payload`] gives).
///
/// # Errors
///
/// [`RecordError::Truncated`] if `payload` is not as long as the header says,
/// [`RecordError::BadChecksum`] if the checksum does not match (a damaged record, or one that
/// belongs to another log or segment).
pub fn verify_record(binding: Binding, loc: &Located, payload: &[u8]) -> Result<(), RecordError> {
    if payload.len() as u64 != loc.len() {
        return Err(RecordError::Truncated);
    }
    let mut hasher = binding.hasher();
    hasher.update(covered(loc.header.as_bytes(), RECORD_HEADER_CRC_COVERS));
    hasher.update(payload);
    if hasher.finalize() == loc.header.crc.get() {
        Ok(())
    } else {
        Err(RecordError::BadChecksum)
    }
}

/// [`locate_record`] followed by [`verify_record`]: the record at `offset`, checked, with its
/// payload. The next record starts at the returned [`Located::next`].
///
/// # Errors
///
/// As those two functions.
pub fn decode_record(
    region: &[u8],
    offset: u64,
    limit: u64,
    binding: Binding,
) -> Result<(Located, &[u8]), RecordError> {
    let loc = locate_record(region, offset, limit)?;
    let body = payload(region, &loc);
    verify_record(binding, &loc, body)?;
    Ok((loc, body))
}

/// Builds the seal footer for a segment whose records `first_seq..=last_seq` end at `data_end`.
///
/// The footer holds the checksum of `index`, not the entries: the caller writes those at the
/// layout's [`index_offset`](Layout::index_offset).
#[must_use]
pub fn encode_footer(
    binding: Binding,
    first_seq: u64,
    last_seq: u64,
    data_end: u64,
    index: &[IndexEntry],
) -> SealFooter {
    let mut index_hasher = binding.hasher();
    index_hasher.update(index.as_bytes());
    let mut f = SealFooter {
        magic: FOOTER_MAGIC,
        first_seq: U64::new(first_seq),
        last_seq: U64::new(last_seq),
        data_end: U64::new(data_end),
        index_count: U64::new(index.len() as u64),
        index_crc: U32::new(index_hasher.finalize()),
        reserved: [0; 16],
        crc: U32::new(0),
    };
    let mut hasher = binding.hasher();
    hasher.update(covered(f.as_bytes(), FOOTER_CRC_COVERS));
    f.crc = U32::new(hasher.finalize());
    f
}

/// What a valid seal footer says about its segment. Returned by [`decode_footer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    /// First sequence number in the segment.
    pub first_seq: u64,
    /// Last sequence number in the segment.
    pub last_seq: u64,
    /// End of the records.
    pub data_end: u64,
    /// Number of persisted index entries.
    pub index_count: u64,
    /// Checksum of the persisted index.
    pub index_crc: u32,
}

/// Reads the seal footer of a segment whose bytes are `segment` (the whole file). `Ok(None)` when
/// the segment is not sealed (no footer magic); `Err` when a footer is there but wrong.
///
/// # Errors
///
/// A description (as a `String`) when `segment` is shorter than the layout's size, the footer's
/// checksum does not match `binding`, or its fields do not fit the layout: a first sequence
/// number 0, a last one below the first, an end of records outside the record region, no index
/// entry or more than the segment has room for, or more records than the region can hold.
pub fn decode_footer(
    segment: &[u8],
    layout: &Layout,
    binding: Binding,
) -> Result<Option<Seal>, String> {
    let Some(bytes) = segment.get(layout.footer_offset as usize..layout.size as usize) else {
        return Err("segment file shorter than its header says".into());
    };
    decode_footer_bytes(bytes, layout, binding)
}

/// Like [`decode_footer`], given only the [`FOOTER_LEN`] bytes of the footer (those at
/// `layout.footer_offset`), for a reader that does not hold the whole segment.
///
/// # Errors
///
/// As [`decode_footer`]; also if `footer` is not [`FOOTER_LEN`] bytes long.
pub fn decode_footer_bytes(
    footer: &[u8],
    layout: &Layout,
    binding: Binding,
) -> Result<Option<Seal>, String> {
    let Ok(f) = SealFooter::read_from_bytes(footer) else {
        return Err("footer truncated".into());
    };
    if f.magic != FOOTER_MAGIC {
        return Ok(None);
    }
    let mut hasher = binding.hasher();
    hasher.update(covered(f.as_bytes(), FOOTER_CRC_COVERS));
    if hasher.finalize() != f.crc.get() {
        return Err("seal footer checksum mismatch".into());
    }
    let seal = Seal {
        first_seq: f.first_seq.get(),
        last_seq: f.last_seq.get(),
        data_end: f.data_end.get(),
        index_count: f.index_count.get(),
        index_crc: f.index_crc.get(),
    };
    if seal.first_seq == 0
        || seal.last_seq < seal.first_seq
        || seal.data_end <= layout.data_start()
        || seal.data_end > layout.data_limit
        || seal.index_count == 0
        || seal.index_count > layout.max_index_entries
        || seal.last_seq - seal.first_seq >= seal.data_end / RECORD_HEADER_LEN
    {
        return Err(format!("seal footer fields inconsistent: {seal:?}"));
    }
    Ok(Some(seal))
}

/// Reads and checks the persisted index of a sealed segment.
///
/// The checks: its checksum, entries strictly increasing in sequence and offset, inside the
/// segment's sequence and data range. `seal` is what [`decode_footer`] returned for the same
/// segment.
///
/// The index is a cache of what the records say: the crate rebuilds it from the records when
/// this fails, so a damaged index alone loses nothing.
///
/// # Errors
///
/// A description (as a `String`) of the first inconsistency: the index region lies outside
/// `segment`, its checksum does not match, an entry is out of order, outside the seal's range or
/// not 8-byte aligned, or the first entry is not the segment's first record.
pub fn decode_index(
    segment: &[u8],
    layout: &Layout,
    binding: Binding,
    seal: &Seal,
) -> Result<Vec<IndexEntry>, String> {
    let bytes = index_len(seal)
        .and_then(|len| {
            Some((
                layout.index_offset(),
                layout.index_offset().checked_add(len)?,
            ))
        })
        .and_then(|(start, end)| {
            segment.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
        });
    let Some(bytes) = bytes else {
        return Err("index region outside the segment".into());
    };
    decode_index_bytes(bytes, layout, binding, seal)
}

/// Bytes of the persisted index `seal` describes, unless that overflows.
fn index_len(seal: &Seal) -> Option<u64> {
    seal.index_count.checked_mul(INDEX_ENTRY_LEN)
}

/// Like [`decode_index`], given only the `seal.index_count * INDEX_ENTRY_LEN` bytes of the index
/// (those at `layout.index_offset()`), for a reader that does not hold the whole segment.
///
/// # Errors
///
/// As [`decode_index`]; also if `index` does not have exactly that length.
pub fn decode_index_bytes(
    index: &[u8],
    layout: &Layout,
    binding: Binding,
    seal: &Seal,
) -> Result<Vec<IndexEntry>, String> {
    if index_len(seal) != Some(index.len() as u64) {
        return Err("persisted index length does not match the seal".into());
    }
    let bytes = index;
    let mut hasher = binding.hasher();
    hasher.update(bytes);
    if hasher.finalize() != seal.index_crc {
        return Err("persisted index checksum mismatch".into());
    }
    let Ok(entries) = <[IndexEntry]>::ref_from_bytes(bytes) else {
        return Err("persisted index has a partial entry".into());
    };
    let mut prev: Option<&IndexEntry> = None;
    for e in entries {
        let (seq, off) = (e.seq.get(), e.offset.get());
        let in_range = (seal.first_seq..=seal.last_seq).contains(&seq)
            && (layout.data_start()..seal.data_end).contains(&off)
            && off.is_multiple_of(RECORD_ALIGN);
        let increasing = prev.is_none_or(|p| seq > p.seq.get() && off > p.offset.get());
        if !in_range || !increasing {
            return Err(format!("persisted index entry ({seq}, {off}) out of order"));
        }
        prev = Some(e);
    }
    match entries.first() {
        Some(e) if e.seq.get() == seal.first_seq && e.offset.get() == layout.data_start() => {
            Ok(entries.to_vec())
        }
        _ => Err("persisted index does not start at the first record".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Binding = Binding {
        log_id: 0xfeed,
        segment_id: 3,
    };

    fn segment_with(records: &[(u64, &[u8])]) -> (Vec<u8>, Layout) {
        let layout = Layout::new(8192, 256).unwrap();
        let mut seg = vec![0u8; 8192];
        let h = encode_segment_header(&layout, B.log_id, B.segment_id, 1);
        seg[..64].copy_from_slice(h.as_bytes());
        let mut off = layout.data_start() as usize;
        for &(seq, p) in records {
            let h = encode_record_header(B, seq, 42, 1, 0, 0, p);
            seg[off..off + 32].copy_from_slice(h.as_bytes());
            seg[off + 32..off + 32 + p.len()].copy_from_slice(p);
            off += record_size(p.len() as u64) as usize;
        }
        (seg, layout)
    }

    #[test]
    fn record_round_trip_and_padding() {
        let (seg, layout) = segment_with(&[(1, b"hello"), (2, b""), (3, b"12345678")]);
        let mut off = layout.data_start();
        for (seq, want) in [(1, &b"hello"[..]), (2, b""), (3, b"12345678")] {
            let (loc, p) = decode_record(&seg, off, layout.data_limit, B).unwrap();
            assert_eq!(loc.header.seq.get(), seq);
            assert_eq!(p, want);
            assert_eq!(loc.next % RECORD_ALIGN, 0);
            off = loc.next;
        }
        assert_eq!(off, 64 + 40 + 32 + 40);
        assert_eq!(
            locate_record(&seg, off, layout.data_limit).unwrap_err(),
            RecordError::Zero
        );
    }

    #[test]
    fn checksum_binds_segment_and_every_header_byte() {
        let (seg, layout) = segment_with(&[(1, b"payload")]);
        let other = Binding { segment_id: 4, ..B };
        let start = layout.data_start();
        assert_eq!(
            decode_record(&seg, start, layout.data_limit, other).unwrap_err(),
            RecordError::BadChecksum
        );
        for byte in 64..64 + 39 {
            for bit in 0..8 {
                let mut bad = seg.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_record(&bad, start, layout.data_limit, B).is_err(),
                    "flip at {byte}:{bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn segment_header_round_trip_and_every_bit_flip_detected() {
        let layout = Layout::new(1 << 20, 4096).unwrap();
        let h = encode_segment_header(&layout, 9, 2, 100);
        let (back, l2) = decode_segment_header(h.as_bytes()).unwrap();
        assert_eq!(l2, layout);
        assert_eq!(back.base_seq.get(), 100);
        for byte in 0..64 {
            for bit in 0..8 {
                let mut bad = h.as_bytes().to_vec();
                bad[byte] ^= 1 << bit;
                assert!(decode_segment_header(&bad).is_err(), "{byte}:{bit}");
            }
        }
        assert_eq!(
            decode_segment_header(&h.as_bytes()[..63]).unwrap_err(),
            HeaderError::Truncated
        );
    }

    #[test]
    fn footer_and_index_round_trip() {
        let layout = Layout::new(8192, 256).unwrap();
        let mut seg = vec![0u8; 8192];
        let index = [
            IndexEntry {
                seq: U64::new(5),
                offset: U64::new(64),
            },
            IndexEntry {
                seq: U64::new(9),
                offset: U64::new(320),
            },
        ];
        let io = layout.index_offset() as usize;
        seg[io..io + 32].copy_from_slice(index.as_bytes());
        let f = encode_footer(B, 5, 12, 600, &index);
        let fo = layout.footer_offset as usize;
        assert_eq!(decode_footer(&seg, &layout, B), Ok(None));
        seg[fo..].copy_from_slice(f.as_bytes());
        let seal = decode_footer(&seg, &layout, B).unwrap().unwrap();
        assert_eq!((seal.first_seq, seal.last_seq, seal.data_end), (5, 12, 600));
        assert_eq!(
            decode_index(&seg, &layout, B, &seal).unwrap(),
            index.to_vec()
        );
        seg[io + 3] ^= 1;
        assert!(decode_index(&seg, &layout, B, &seal).is_err());
    }

    #[test]
    fn layout_reserves_room_for_every_index_entry() {
        for (size, interval) in [(8192, 64), (8192, 8192), (64 << 20, 4096), (1 << 30, 100)] {
            let l = Layout::new(size, interval).unwrap();
            let entries_needed = l.capacity() / interval + 1;
            assert!(entries_needed <= l.max_index_entries);
            assert!(l.data_limit + l.max_index_entries * INDEX_ENTRY_LEN <= l.footer_offset);
            assert_eq!(l.data_limit % RECORD_ALIGN, 0);
        }
    }

    #[test]
    fn decoders_never_panic_on_short_or_odd_input() {
        let layout = Layout::new(8192, 256).unwrap();
        for len in [0usize, 1, 31, 32, 63, 64, 100] {
            let junk = vec![0xa5u8; len];
            let _ = decode_segment_header(&junk);
            let _ = locate_record(&junk, 0, u64::MAX);
            let _ = locate_record(&junk, u64::MAX - 3, u64::MAX);
            let _ = decode_footer(&junk, &layout, B);
        }
    }
}

#[cfg(test)]
mod extreme_arguments {
    use super::*;

    /// The codec's promise: a value for every argument, never a panic or a wrapped number.
    #[test]
    fn extreme_arguments_give_values_not_panics() {
        assert_eq!(record_size(u64::MAX), u64::MAX);
        assert_eq!(record_size(5), 40);
        let tiny = Layout {
            size: 0,
            index_interval: 1,
            data_limit: 10,
            max_index_entries: 0,
            footer_offset: 0,
        };
        assert_eq!((tiny.capacity(), tiny.max_payload()), (0, 0));
        let layout = Layout::new(16 << 10, 256).unwrap();
        let binding = Binding {
            log_id: 1,
            segment_id: 1,
        };
        let huge = Seal {
            first_seq: 1,
            last_seq: 1,
            data_end: 100,
            index_count: u64::MAX / 4,
            index_crc: 0,
        };
        let segment = vec![0u8; 16 << 10];
        assert!(decode_index(&segment, &layout, binding, &huge).is_err());
        assert!(decode_index_bytes(&[], &layout, binding, &huge).is_err());
        assert!(decode_footer_bytes(&[0; 3], &layout, binding).is_err());
        let mut header = RecordHeader::read_from_bytes(&[0u8; 32][..]).unwrap();
        header.len = U32::new(100);
        let loc = Located {
            header,
            payload_offset: u64::MAX - 10,
            next: 0,
        };
        assert!(payload(&segment, &loc).is_empty());
    }
}
