//! FORMAT.md's worked example, decoded with the crate's own codec.
//!
//! The test reads FORMAT.md itself, takes the hex dumps of its "Worked example" section and
//! decodes them with `softadastra_wal::format`: the bytes must be what the codec accepts, and the
//! values the prose states (sequence numbers, offsets, payloads, CRCs, the layout) must be the
//! ones it decodes. A byte of a dump edited without the prose, or the prose without the dump,
//! fails here.

use softadastra_wal::format::{self, Binding, RecordError};

const SPEC: &str = include_str!("../../FORMAT.md");

/// The "Worked example" section of `spec`, up to the next `## ` heading.
fn worked_example(spec: &str) -> &str {
    let start = spec
        .find("\n## Worked example\n")
        .expect("FORMAT.md has a \"Worked example\" section");
    let rest = &spec[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

/// The contents of the code blocks fenced as `text` in `section`, in order.
fn text_blocks(section: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(open) = rest.find("```text\n") {
        let body = &rest[open + "```text\n".len()..];
        let close = body.find("```").expect("a ```text block is closed");
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

/// The lines of `xxd` output in `block` (others are skipped): the offset of the first byte and
/// the bytes. The lines must follow each other without a gap; where a line has xxd's character
/// column, it must match the bytes.
fn xxd(block: &str) -> (usize, Vec<u8>) {
    let mut start = None;
    let mut bytes = Vec::new();
    for line in block.lines() {
        let Some((offset, rest)) = line.split_once(": ") else {
            continue;
        };
        let Ok(offset) = usize::from_str_radix(offset, 16) else {
            continue;
        };
        assert_eq!(
            offset.checked_sub(bytes.len()),
            Some(*start.get_or_insert(offset)),
            "{line}"
        );
        // Eight groups of four hex digits (39 characters), two spaces, then the characters.
        let (hex, tail) = rest.split_at(39);
        let line_bytes = hex_bytes(&hex.replace(' ', ""));
        assert_eq!(line_bytes.len(), 16, "{line}");
        let chars = tail.strip_prefix("  ").unwrap_or(tail);
        if chars.len() == 16 {
            let printable: String = line_bytes
                .iter()
                .map(|&b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            assert_eq!(chars, printable, "character column of: {line}");
        }
        bytes.extend(line_bytes);
    }
    (start.expect("the block has xxd lines"), bytes)
}

/// Bytes of a string of hex digit pairs.
fn hex_bytes(hex: &str) -> Vec<u8> {
    assert!(
        hex.len().is_multiple_of(2),
        "odd number of hex digits: {hex}"
    );
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// The leading whitespace-separated two-digit hex tokens of `text` ("00 x 32" is 32 zeros).
fn leading_bytes(text: &str) -> Vec<u8> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    if let [byte, "x", count, ..] = tokens[..]
        && let (Ok(byte), Ok(count)) = (u8::from_str_radix(byte, 16), count.parse())
    {
        return vec![byte; count];
    }
    tokens
        .iter()
        .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|t| u8::from_str_radix(t, 16).expect("hex digits"))
        .collect()
}

/// `value` as the prose writes a CRC or identifier: `0x` and zero-padded lowercase hex digits.
fn hex32(value: u32) -> String {
    format!("{value:#010x}")
}

/// What the worked example says its three records are: sequence number, offset, type code,
/// timestamp, payload.
const RECORDS: [(u64, u64, u8, u64, &[u8]); 3] = [
    (1, 64, 1, 1_700_000_000_000, b"title=Hello"),
    (2, 112, 3, 1_700_000_000_001, b"draft"),
    (3, 152, 42, 1_700_000_000_002, b""),
];

#[test]
fn worked_example_decodes_as_its_prose_says() {
    check_worked_example(SPEC);
}

/// Panics unless the worked example of `spec` decodes as its prose says.
fn check_worked_example(spec: &str) {
    let example = worked_example(spec);
    let blocks = text_blocks(example);
    assert_eq!(
        blocks.len(),
        5,
        "FORMAT.md's worked example has five text blocks: the segment start, the fields, the \
         CRC input of record 1, the index and the footer"
    );
    let (start, segment) = xxd(blocks[0]);
    assert_eq!(start, 0);
    assert_eq!(segment.len(), 224);

    // The segment header, and the layout it describes.
    let (header, layout) =
        format::decode_segment_header(&segment).expect("the example's segment header is valid");
    assert_eq!(header.magic, *b"SAWALSEG");
    assert_eq!(header.version.get(), 1);
    assert_eq!(header.header_len.get(), 64);
    assert_eq!(header.segment_size.get(), 8192);
    assert_eq!(header.segment_id.get(), 1);
    assert_eq!(header.base_seq.get(), 1);
    assert_eq!(header.index_interval.get(), 256);
    assert!(example.contains(&format!("log_id          {:#018x}", header.log_id.get())));
    assert!(example.contains(&format!(
        "crc             {} = CRC-32(bytes 0..60)",
        hex32(header.crc.get())
    )));
    assert_eq!(layout.data_start(), 64);
    assert_eq!(layout.max_index_entries, 33);
    assert_eq!(layout.data_limit, 7600);
    assert_eq!(layout.index_offset(), 7600);
    assert_eq!(layout.footer_offset, 8128);
    let binding = Binding {
        log_id: header.log_id.get(),
        segment_id: header.segment_id.get(),
    };

    // The three records, each checked (CRC included) as a reader checks it.
    let mut offset = layout.data_start();
    for (seq, at, code, timestamp, payload) in RECORDS {
        assert_eq!(
            offset, at,
            "record {seq} starts where the previous one ends"
        );
        let (found, body) = format::decode_record(&segment, offset, layout.data_limit, binding)
            .unwrap_or_else(|e| panic!("record {seq} at offset {offset}: {e}"));
        assert_eq!(found.header.seq.get(), seq);
        assert_eq!(found.header.record_type, code);
        assert_eq!(found.header.timestamp.get(), timestamp);
        assert_eq!(found.header.flags, 0);
        assert_eq!(found.header.unsynced_before.get(), 0);
        assert_eq!(body, payload);
        assert_eq!(found.next, at + format::record_size(payload.len() as u64));
        assert!(example.contains(&format!("record seq {seq} at offset {at} ")));
        assert!(
            example.contains(&format!(
                "crc             {}",
                hex32(found.header.crc.get())
            )),
            "the prose states record {seq}'s CRC"
        );
        offset = found.next;
    }
    // Then the all-zero header that ends the data.
    assert_eq!(offset, 184);
    assert_eq!(
        format::locate_record(&segment, offset, layout.data_limit).unwrap_err(),
        RecordError::Zero
    );

    // The field-by-field listing shows the dump's bytes, from offset 0 to the end marker.
    let mut listed_to = 0;
    for line in blocks[1].lines() {
        let Some(Ok(at)) = line.split_whitespace().next().map(str::parse::<usize>) else {
            continue;
        };
        let rest = line.trim_start()[at.to_string().len()..].trim_start();
        let bytes = leading_bytes(rest);
        assert!(!bytes.is_empty(), "no bytes listed in: {line}");
        assert_eq!(
            at, listed_to,
            "the listing skips or repeats bytes before: {line}"
        );
        assert_eq!(bytes, segment[at..at + bytes.len()], "{line}");
        listed_to = at + bytes.len();
    }
    assert_eq!(listed_to, 184 + 32);

    // The CRC input of record 1, spelled out: the binding, header bytes 4..32, the payload.
    let crc_input: Vec<u8> = blocks[2].lines().flat_map(leading_bytes).collect();
    assert_eq!(crc_input.len(), 16 + 28 + 11);
    let mut expected = Vec::new();
    expected.extend(binding.log_id.to_le_bytes());
    expected.extend(binding.segment_id.to_le_bytes());
    expected.extend(&segment[68..96]);
    expected.extend(b"title=Hello");
    assert_eq!(crc_input, expected);
    let crc = crc32fast::hash(&crc_input);
    assert_eq!(crc.to_le_bytes(), segment[64..68]);
    assert!(example.contains(&format!("which is `{}`", hex32(crc))));

    // After sealing: records 4 to 57 of 136 bytes each follow record 3; the index holds the
    // records that the indexing rule picks, and its first entries are the ones shown.
    assert_eq!(format::record_size(100), 136);
    let offsets: Vec<(u64, u64)> = RECORDS
        .iter()
        .map(|&(seq, at, ..)| (seq, at))
        .chain((4..=57).map(|seq| (seq, 184 + (seq - 4) * 136)))
        .collect();
    let data_end = 184 + 54 * 136;
    assert_eq!(data_end, 7528);
    assert!(data_end + 136 > layout.data_limit, "record 58 must not fit");
    let mut index = Vec::new();
    let mut next_index_at = layout.data_start();
    for &(seq, at) in &offsets {
        if at >= next_index_at {
            index.push((seq, at));
            next_index_at = 64 + ((at - 64) / layout.index_interval + 1) * layout.index_interval;
        }
    }
    assert_eq!(index.len(), 29);
    let (index_at, shown) = xxd(blocks[3]);
    assert_eq!(index_at as u64, layout.index_offset());
    let shown: Vec<(u64, u64)> = shown
        .chunks(16)
        .map(|e| {
            let seq = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
            let at = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
            (seq, at)
        })
        .collect();
    assert_eq!(shown, [(1, 64), (5, 320), (7, 592)]);
    assert_eq!(shown[..], index[..3]);

    // The footer: valid for this segment, and vouching for exactly that index.
    let (footer_at, footer) = xxd(blocks[4]);
    assert_eq!(footer_at as u64, layout.footer_offset);
    let seal = format::decode_footer_bytes(&footer, &layout, binding)
        .expect("the example's footer is valid")
        .expect("the example's footer is present");
    assert_eq!(seal.first_seq, 1);
    assert_eq!(seal.last_seq, 57);
    assert_eq!(seal.data_end, data_end);
    assert_eq!(seal.index_count, 29);
    let index_bytes: Vec<u8> = index
        .iter()
        .flat_map(|&(seq, at)| [seq.to_le_bytes(), at.to_le_bytes()])
        .flatten()
        .collect();
    let entries = format::decode_index_bytes(&index_bytes, &layout, binding, &seal)
        .expect("the index the rule gives matches the footer's index CRC");
    assert_eq!(entries.len(), 29);
    assert!(example.contains(&format!("index_crc {} = CRC-32", hex32(seal.index_crc))));
    let footer_crc = u32::from_le_bytes(footer[60..].try_into().expect("4 bytes"));
    assert!(example.contains(&format!("crc {} = CRC-32", hex32(footer_crc))));
}

/// The check must be able to fail: a copy of FORMAT.md with one byte of a dump, or one number
/// of the prose, changed is refused.
#[test]
fn a_changed_byte_or_number_is_caught() {
    let edits = [
        // A bit of record 1's CRC in the dump (0xb793e3f0 -> 0xb793e3f1).
        ("00000040: f0e3 93b7", "00000040: f1e3 93b7"),
        // Record 2's payload in the dump ("draft" -> "drafu"), character column included.
        (
            "6472 6166 7400 0000 4728 818d 0000 0000  draft...G(",
            "6472 6166 7500 0000 4728 818d 0000 0000  drafu...G(",
        ),
        // The sequence number the footer states (last_seq 57 -> 58).
        ("00001fd0: 3900", "00001fd0: 3a00"),
        // A CRC the prose states, but not the dump.
        ("which is `0xb793e3f0`", "which is `0xb793e3f1`"),
        // An index entry the dump shows (seq 7 at 592 -> 593).
        ("0700 0000 0000 0000 5002", "0700 0000 0000 0000 5102"),
    ];
    for (from, to) in edits {
        assert_eq!(
            SPEC.matches(from).count(),
            1,
            "FORMAT.md holds {from:?} once"
        );
        let edited = SPEC.replacen(from, to, 1);
        let outcome = std::panic::catch_unwind(|| check_worked_example(&edited));
        assert!(
            outcome.is_err(),
            "editing {from:?} into {to:?} went unnoticed"
        );
    }
}
