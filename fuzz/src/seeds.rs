//! The seed corpus: small valid inputs for each target, built deterministically (fixed log id,
//! fixed payloads), so that `gen_corpus` rewrites the same files every time and the replay test
//! can check that they are all in `corpus/`.

use softadastra_wal::format::{self, Binding, FLAG_BATCH_CONTINUES, Layout};
use zerocopy::IntoBytes;

use crate::build::{File, LOG_ID, Rec, SegmentImage, build_log};
use crate::input::Output;
use crate::{segment_tag, temp_tag};

/// One seed: the target it is for, its file name in `corpus/<target>/`, its bytes.
#[derive(Clone, Debug)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: &str, bytes: Vec<u8>) -> Seed {
    Seed {
        target,
        name: format!("seed-{name}"),
        bytes,
    }
}

/// Every seed of every target.
#[must_use]
pub fn all() -> Vec<Seed> {
    let mut v = record_seeds();
    v.extend(segment_seeds());
    v.extend(recovery_seeds());
    v
}

/// Deterministic payload bytes.
fn payload(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

fn layout(size: u64, interval: u64) -> Layout {
    Layout::new(size, interval).expect("a valid seed layout")
}

// --- record_decoder ---------------------------------------------------------------------------

/// The bytes of `recs` written back to back from offset 0 under `binding`, as in a segment.
fn record_region(binding: Binding, recs: &[Rec]) -> Vec<u8> {
    let mut region = Vec::new();
    for r in recs {
        let h = format::encode_record_header(
            binding,
            r.seq,
            r.timestamp,
            r.code,
            r.flags,
            r.unsynced_before,
            &r.payload,
        );
        region.extend_from_slice(h.as_bytes());
        region.extend_from_slice(&r.payload);
        region.resize(region.len().div_ceil(8) * 8, 0);
    }
    region.resize(region.len() + 32, 0); // the end: an all-zero header
    region
}

fn decode_input(binding: Binding, offset: u16, region: &[u8]) -> Vec<u8> {
    let mut out = Output::new();
    out.u8(0).u8(0).u64(binding.log_id).u64(binding.segment_id);
    out.u16(offset).u16(region.len() as u16).bytes(region);
    out.bytes
}

#[allow(clippy::too_many_arguments)]
fn round_trip_input(seq: u64, ts: u64, code: u8, flags: u8, unsynced: u32, p: &[u8]) -> Vec<u8> {
    let mut out = Output::new();
    out.u8(1)
        .u64(LOG_ID)
        .u64(3)
        .u64(seq)
        .u64(ts)
        .u8(code)
        .u8(flags);
    out.u32(unsynced).u8(1).u16(77).bytes(p);
    out.bytes
}

fn record_seeds() -> Vec<Seed> {
    let b = Binding {
        log_id: LOG_ID,
        segment_id: 1,
    };
    let mut recs = vec![
        Rec::single(1, 1, b"title=Hello"),
        Rec::single(2, 3, b"draft"),
        Rec::single(3, 42, b""),
    ];
    recs.extend(Rec::batch(
        4,
        &[b"batch one", b"batch two", &payload(100, 9)],
    ));
    let region = record_region(b, &recs);
    let second = format::record_size(11) as u16;
    vec![
        seed(
            "record_decoder",
            "records-at-0",
            decode_input(b, 0, &region),
        ),
        seed(
            "record_decoder",
            "records-at-1",
            decode_input(b, second, &region),
        ),
        seed(
            "record_decoder",
            "round-trip-put",
            round_trip_input(1, 1_700_000_000_000, 1, 0, 0, b"title=Hello"),
        ),
        seed(
            "record_decoder",
            "round-trip-batch",
            round_trip_input(9, 5, 42, FLAG_BATCH_CONTINUES, 3, &payload(40, 1)),
        ),
        seed(
            "record_decoder",
            "round-trip-type-0",
            round_trip_input(2, 0, 0, 0, 0, b"x"),
        ),
    ]
}

// --- segment_loader ---------------------------------------------------------------------------

/// Single appends 1..=n with payloads of varied lengths up to `max`.
fn singles(n: u64, max: usize) -> Vec<Vec<Rec>> {
    (1..=n)
        .map(|seq| {
            let len = (seq as usize * 13) % (max + 1);
            vec![Rec::single(
                seq,
                1 + (seq % 5) as u8,
                &payload(len, seq as u8),
            )]
        })
        .collect()
}

fn segment_seeds() -> Vec<Seed> {
    let small = layout(512, 64);
    let sealed = build_log(small, 1, &singles(12, 40));
    let big = build_log(layout(4096, 256), 1, &singles(80, 60));
    let mut torn = SegmentImage::new(small, LOG_ID, 1, 1);
    for group in singles(3, 30) {
        torn.push(&group[0], false);
    }
    let partial = record_region(torn.binding, &[Rec::single(4, 1, &payload(60, 4))]);
    let at = torn.end as usize;
    torn.write(at, &partial[..50]);
    let mut unfinished = SegmentImage::new(layout(1024, 128), LOG_ID, 2, 10);
    for rec in Rec::batch(10, &[b"first", b"second", b"third"]) {
        unfinished.push(&rec, false);
    }
    // Then the first record of a batch whose last record never came.
    let last_of_batch = Rec::batch(13, &[b"open", b"never closed"]);
    unfinished.push(&last_of_batch[0], false);
    vec![
        seed("segment_loader", "sealed-512", sealed[0].1.clone()),
        seed(
            "segment_loader",
            "active-512",
            sealed[sealed.len() - 1].1.clone(),
        ),
        seed("segment_loader", "sealed-4096", big[0].1.clone()),
        seed(
            "segment_loader",
            "empty-256",
            SegmentImage::new(layout(256, 64), LOG_ID, 1, 1).bytes,
        ),
        seed("segment_loader", "torn-tail-512", torn.bytes),
        seed("segment_loader", "unfinished-batch-1024", unfinished.bytes),
    ]
}

// --- recovery ---------------------------------------------------------------------------------

/// A `recovery` input of raw files: (tag, bytes) each.
fn raw_input(files: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Output::new();
    out.u8(0).u8(files.len() as u8 - 1);
    for (tag, bytes) in files {
        out.u8(*tag).u16(bytes.len() as u16).bytes(bytes);
    }
    out.bytes
}

/// Tags the segment files of a log (named by number, 1 to 4) for [`raw_input`].
fn tagged(files: &[File]) -> Vec<(u8, Vec<u8>)> {
    files
        .iter()
        .map(|(name, bytes)| {
            let id: u64 = name[..20].parse().expect("a segment name");
            assert!(
                (1..=4).contains(&id),
                "raw inputs name segments 1 to 4 only"
            );
            (segment_tag(id), bytes.clone())
        })
        .collect()
}

/// Offset just past the last valid record of a segment file.
fn records_end(bytes: &[u8]) -> usize {
    let (h, l) = format::decode_segment_header(bytes).expect("a valid seed header");
    let binding = Binding {
        log_id: h.log_id.get(),
        segment_id: h.segment_id.get(),
    };
    let mut end = l.data_start();
    while let Ok((loc, _)) = format::decode_record(bytes, end, l.data_limit, binding) {
        end = loc.next;
    }
    end as usize
}

/// Deterministic program bytes for the constructed-log mode.
fn program(len: usize, salt: u64) -> Vec<u8> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![1u8];
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(x as u8);
    }
    out
}

fn recovery_seeds() -> Vec<Seed> {
    let small = layout(512, 64);
    let three = build_log(small, 1, &singles(12, 40));
    let mut groups = singles(3, 20);
    groups.push(Rec::batch(4, &[b"one", b"two", b"three", b"four"]));
    let with_batch = build_log(layout(1024, 128), 1, &groups);

    // A crash right after a rotation created segment 2: segment 1 unsealed, 2 empty.
    let mut unsealed = build_log(small, 1, &singles(4, 30));
    let next = SegmentImage::new(small, LOG_ID, 2, 5);
    unsealed.push(next.into_file());

    // A torn tail: half a record after the last one of the newest segment.
    let mut torn = three.clone();
    if let Some((_, bytes)) = torn.last_mut() {
        let end = records_end(bytes);
        bytes[end..end + 20].fill(0xA5);
    }

    // A log truncated to segments 3 and 4 (its first records gone).
    let mut late = singles(20, 40);
    late.drain(..8);
    let truncated = build_log(small, 3, &late);

    let mut with_temp = tagged(&with_batch);
    with_temp.push((temp_tag(2), vec![7u8; 100]));

    let mut v = vec![
        seed("recovery", "raw-three-segments", raw_input(&tagged(&three))),
        seed("recovery", "raw-batch-and-temp", raw_input(&with_temp)),
        seed("recovery", "raw-unsealed", raw_input(&tagged(&unsealed))),
        seed("recovery", "raw-torn-tail", raw_input(&tagged(&torn))),
        seed(
            "recovery",
            "raw-truncated-start",
            raw_input(&tagged(&truncated[..2.min(truncated.len())])),
        ),
    ];
    for salt in 1..=6 {
        v.push(seed(
            "recovery",
            &format!("program-{salt}"),
            program(48 + 40 * salt as usize, salt),
        ));
    }
    v
}
