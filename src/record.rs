//! Record types and the two ways a record is handed out: borrowed ([`RecordRef`]) and owned
//! ([`WalRecord`]).

use crate::error::{Error, Result};

/// What a record means to the application.
///
/// The named variants are the C++ original's codes 1 to 5; [`RecordType::Custom`] carries an
/// application code from 6 to 255. Code 0 is never a record (it is what zero-filled space reads
/// as).
///
/// The log gives no meaning to the type: it stores the code in the record header and hands it
/// back, so an application can filter or dispatch without decoding payloads.
///
/// ```
/// use softadastra_wal::RecordType;
///
/// assert_eq!(RecordType::Checkpoint.code(), 4);
/// assert_eq!(RecordType::from_code(4), Some(RecordType::Checkpoint));
/// assert_eq!(RecordType::from_code(42), Some(RecordType::Custom(42)));
/// assert_eq!(RecordType::from_code(0), None);
///
/// // A reserved code in `Custom` is stored as that code but refused by every append, so it
/// // never reaches the log; `from_code` never returns one.
/// assert_eq!(RecordType::Custom(3).code(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// Code 1: a value was created.
    Put,
    /// Code 2: a value was changed.
    Update,
    /// Code 3: a value was removed.
    Delete,
    /// Code 4: the application's state up to here is persisted elsewhere.
    Checkpoint,
    /// Code 5: no operation (heartbeats, markers, tests).
    Noop,
    /// An application code, 6 to 255. Codes 0 to 5 are refused with
    /// [`Error::InvalidRecordType`] when appended (nothing is written).
    Custom(u8),
}

impl RecordType {
    /// The code stored on disk: 1 to 5 for the named variants, the carried code for `Custom`.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            RecordType::Put => 1,
            RecordType::Update => 2,
            RecordType::Delete => 3,
            RecordType::Checkpoint => 4,
            RecordType::Noop => 5,
            RecordType::Custom(c) => c,
        }
    }

    /// The record type a stored code stands for: the named variant for 1 to 5, `Custom(code)`
    /// for 6 to 255, `None` for 0 (never a record).
    #[must_use]
    pub fn from_code(code: u8) -> Option<RecordType> {
        Some(match code {
            0 => return None,
            1 => RecordType::Put,
            2 => RecordType::Update,
            3 => RecordType::Delete,
            4 => RecordType::Checkpoint,
            5 => RecordType::Noop,
            c => RecordType::Custom(c),
        })
    }

    /// The code to store, refusing custom codes that collide with the reserved ones.
    pub(crate) fn checked_code(self) -> Result<u8> {
        match self {
            RecordType::Custom(c) if c <= 5 => Err(Error::InvalidRecordType { code: c }),
            t => Ok(t.code()),
        }
    }
}

/// A record read from the log, borrowed from the segment's mapping: the payload is not copied.
/// Its checksum was verified when it was handed out.
///
/// It borrows the [`WalReader`](crate::WalReader) it came from, so it cannot outlive it; the
/// bytes it points to stay valid and unchanged for that long, whatever the writer does meanwhile
/// (appending, rotating, truncating), provided no other program changes the files (see
/// "Safety" in the crate documentation). To keep a record longer, make an owned copy with
/// [`to_record`](Self::to_record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub(crate) seq: u64,
    pub(crate) record_type: RecordType,
    pub(crate) timestamp: u64,
    pub(crate) payload: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record's sequence number: 1 for the first record of a log, then one more per record.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The record's type.
    #[must_use]
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// The record's timestamp (milliseconds since the Unix epoch unless the application chose
    /// otherwise with [`append_with_timestamp`](crate::WalWriter::append_with_timestamp)).
    #[must_use]
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The payload, pointing into the mapped segment file (valid as long as the reader is
    /// borrowed). Empty payloads are allowed.
    #[must_use]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// An owned copy of the record (the payload is copied into a `Vec`).
    #[must_use]
    pub fn to_record(&self) -> WalRecord {
        WalRecord {
            seq: self.seq,
            record_type: self.record_type,
            timestamp: self.timestamp,
            payload: self.payload.to_vec(),
        }
    }
}

/// An owned record, made by [`RecordRef::to_record`]: the same fields as a [`RecordRef`], with
/// the payload copied, so it can be kept after the reader is gone or sent to another thread.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WalRecord {
    /// Sequence number, as [`RecordRef::seq`].
    pub seq: u64,
    /// Record type, as [`RecordRef::record_type`].
    pub record_type: RecordType,
    /// Timestamp, as [`RecordRef::timestamp`].
    pub timestamp: u64,
    /// Payload bytes, a copy of [`RecordRef::payload`].
    pub payload: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 1..=255u8 {
            let t = RecordType::from_code(code).unwrap();
            assert_eq!(t.code(), code);
            assert_eq!(t.checked_code().unwrap(), code);
        }
        assert_eq!(RecordType::from_code(0), None);
        for reserved in 0..=5 {
            assert!(matches!(
                RecordType::Custom(reserved).checked_code(),
                Err(Error::InvalidRecordType { .. })
            ));
        }
    }
}
