use softadastra_wal::{RecordType, WalReader, WalStore};

use crate::common::{collect, small_config, tempdir};

#[test]
fn append_rotate_reopen_replay() {
    let dir = tempdir();
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        for i in 0..500u64 {
            let payload = vec![(i % 251) as u8; (i * 37 % 700) as usize];
            let seq = w
                .append_with_timestamp(RecordType::Put, i, &payload)
                .unwrap();
            assert_eq!(seq, i + 1);
            expected.push((seq, payload));
        }
        let r = store.reader();
        assert_eq!(r.first_seq(), Some(1));
        assert_eq!(r.last_seq(), Some(500));
        for (seq, payload) in &expected {
            assert_eq!(r.get(*seq).unwrap().unwrap().payload(), &payload[..]);
        }
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let got = collect(&store.reader());
    assert_eq!(got.len(), 500);
    for (rec, (seq, payload)) in got.iter().zip(&expected) {
        assert_eq!(rec.seq, *seq);
        assert_eq!(&rec.payload, payload);
        assert_eq!(rec.timestamp, seq - 1);
    }
    assert_eq!(store.writer().append(RecordType::Noop, b"").unwrap(), 501);
    let ro = WalReader::open(dir.path()).unwrap();
    assert_eq!(ro.last_seq(), Some(501));
    let from = ro
        .iter_from(250)
        .map(|r| r.unwrap().seq())
        .collect::<Vec<_>>();
    assert_eq!(from, (250..=501).collect::<Vec<_>>());
}
