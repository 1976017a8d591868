//! RecordBatch v2 against independent implementations, in both directions:
//! - golden bytes made by kafka-python (see golden/kafka_python_golden.py) decode in tierlog, and
//!   tierlog encodes the same records to the same bytes;
//! - the kafka-protocol crate decodes tierlog's batches and tierlog decodes its batches (proptest);
//! - kafka-python itself decodes freshly made tierlog batches of every codec (live, via the venv
//!   that scripts/test.sh installs).
//!
//! Plus proptests of the codec and the append path's validation of bad input.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tiering::BatchError;
use tiering::batch::records::decode_batch;
use tiering::batch::{BatchBuilder, Compression, Header, Record, ValidatedBatch};

use common::{golden_dir, test_python};

fn opt_b64(v: &serde_json::Value) -> Option<Bytes> {
    v.as_str().map(|s| Bytes::from(B64.decode(s).unwrap()))
}

/// The records of golden/records.json.
fn golden_records() -> Vec<(i64, Record)> {
    let text = std::fs::read_to_string(golden_dir().join("records.json")).unwrap();
    let v: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    v.iter()
        .map(|r| {
            let headers = r["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| Header { key: h[0].as_str().unwrap().to_owned(), value: opt_b64(&h[1]) })
                .collect();
            let rec = Record {
                key: opt_b64(&r["key"]),
                value: opt_b64(&r["value"]),
                headers,
                timestamp: r["timestamp"].as_i64().unwrap(),
            };
            (r["offset"].as_i64().unwrap(), rec)
        })
        .collect()
}

#[test]
fn kafka_python_golden_batches_decode() {
    let expected = golden_records();
    for c in Compression::ALL {
        let bytes = Bytes::from(std::fs::read(golden_dir().join(format!("kafka-python-{}.bin", c.name()))).unwrap());
        // The append path accepts it, and the records are exactly the ones kafka-python encoded.
        let v = ValidatedBatch::validate(bytes.clone(), 1 << 20).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        assert_eq!(v.header().compression().unwrap(), c);
        let (h, records) = decode_batch(&bytes).unwrap();
        assert_eq!(h.record_count as usize, expected.len());
        for (got, (offset, want)) in records.iter().zip(&expected) {
            assert_eq!(got.offset, *offset, "{}", c.name());
            assert_eq!(Record::from(got.clone()), *want, "{} offset {offset}", c.name());
        }
    }
}

#[test]
fn tierlog_encodes_the_golden_bytes_exactly() {
    let records: Vec<Record> = golden_records().into_iter().map(|(_, r)| r).collect();
    // kafka-python writes partition leader epoch 0 (the broker owns it); everything else is the
    // Kafka default tierlog's builder uses too.
    let mut b = BatchBuilder::new(Compression::None).partition_leader_epoch(0);
    for r in &records {
        b.push(r);
    }
    let ours = b.build();
    let theirs = std::fs::read(golden_dir().join("kafka-python-none.bin")).unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert!(ours[..] == theirs[..], "uncompressed encoding differs from kafka-python's");
}

fn kp_compression(c: Compression) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression as K;
    match c {
        Compression::None => K::None,
        Compression::Gzip => K::Gzip,
        Compression::Snappy => K::Snappy,
        Compression::Lz4 => K::Lz4,
        Compression::Zstd => K::Zstd,
    }
}

fn arb_record() -> impl Strategy<Value = Record> {
    let bytes = || proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from));
    let headers = proptest::collection::btree_map("[a-z]{1,6}", bytes(), 0..4)
        .prop_map(|m| m.into_iter().map(|(key, value)| Header { key, value }).collect::<Vec<_>>());
    (bytes(), bytes(), headers, 1_600_000_000_000i64..1_800_000_000_000)
        .prop_map(|(key, value, headers, timestamp)| Record { key, value, headers, timestamp })
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_gives_back_the_records(records in proptest::collection::vec(arb_record(), 1..40), c in arb_compression()) {
        let batch = BatchBuilder::from_records(c, &records);
        let v = ValidatedBatch::validate(batch.clone(), 16 << 20).unwrap();
        prop_assert_eq!(v.header().record_count as usize, records.len());
        let (_, decoded) = decode_batch(&batch).unwrap();
        let back: Vec<Record> = decoded.into_iter().map(Record::from).collect();
        prop_assert_eq!(back, records);
    }

    #[test]
    fn kafka_protocol_decodes_tierlog_batches(records in proptest::collection::vec(arb_record(), 1..30), c in arb_compression()) {
        let batch = BatchBuilder::from_records(c, &records);
        let mut buf = batch.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        prop_assert_eq!(set.records.len(), records.len());
        for (i, (k, r)) in set.records.iter().zip(&records).enumerate() {
            prop_assert_eq!(k.offset, i as i64);
            prop_assert_eq!(k.timestamp, r.timestamp);
            prop_assert_eq!(&k.key, &r.key);
            prop_assert_eq!(&k.value, &r.value);
            let hk: Vec<(String, Option<Bytes>)> = k.headers.iter().map(|(a, b)| (a.as_str().to_owned(), b.clone())).collect();
            let hr: Vec<(String, Option<Bytes>)> = r.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
            prop_assert_eq!(hk, hr);
        }
    }

    #[test]
    fn tierlog_decodes_kafka_protocol_batches(records in proptest::collection::vec(arb_record(), 1..30), c in arb_compression()) {
        use kafka_protocol::records as kr;
        let krecs: Vec<kr::Record> = records.iter().enumerate().map(|(i, r)| kr::Record {
            transactional: false, control: false, delete_horizon: false,
            partition_leader_epoch: -1, producer_id: -1, producer_epoch: -1,
            timestamp_type: kr::TimestampType::Creation, offset: i as i64, sequence: -1,
            timestamp: r.timestamp, key: r.key.clone(), value: r.value.clone(),
            headers: r.headers.iter().map(|h| (kafka_protocol::protocol::StrBytes::from_string(h.key.clone()), h.value.clone())).collect(),
        }).collect();
        let mut buf = BytesMut::new();
        kr::RecordBatchEncoder::encode(&mut buf, &krecs, &kr::RecordEncodeOptions { version: 2, compression: kp_compression(c) }).unwrap();
        // kafka-protocol may split the records over several consecutive batches.
        let buf = buf.freeze();
        let mut back = Vec::new();
        let mut consumed = 0;
        for (_, batch) in tiering::batch::batches_in(&buf) {
            consumed += batch.len();
            ValidatedBatch::validate(batch.clone(), 16 << 20).unwrap();
            let (h, decoded) = decode_batch(&batch).unwrap();
            prop_assert_eq!(h.base_offset, back.len() as i64);
            back.extend(decoded.into_iter().map(Record::from));
        }
        prop_assert_eq!(consumed, buf.len());
        prop_assert_eq!(back, records);
    }

    /// Arbitrary bytes never panic any decoder, and the append path rejects them.
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let b = Bytes::from(data);
        let _ = decode_batch(&b);
        let _ = tiering::batch::batches_in(&b).count();
        let _ = tiering::batch::BatchHeader::parse(&b);
        let _ = ValidatedBatch::validate(b, 1 << 20);
    }

    /// Arbitrary bytes behind a well-formed header with a correct CRC: the records section is
    /// garbage that passes the CRC, so only the record walk can catch it. Never panics.
    #[test]
    fn garbage_records_with_a_valid_crc_never_panic(section in proptest::collection::vec(any::<u8>(), 0..500), count in 1i32..20, attrs in 0i16..5) {
        let mut b = BatchBuilder::from_records(Compression::None, &[Record::default()]).to_vec();
        b.truncate(61);
        b.extend_from_slice(&section);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&attrs.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        b[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c_of(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let b = Bytes::from(b);
        let _ = ValidatedBatch::validate(b.clone(), 1 << 20);
        let _ = decode_batch(&b);
    }

    /// Flipping any byte covered by the CRC makes the append path reject the batch.
    #[test]
    fn any_flipped_byte_under_the_crc_is_rejected(records in proptest::collection::vec(arb_record(), 1..5), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let batch = BatchBuilder::from_records(Compression::None, &records).to_vec();
        let i = 17 + at.index(batch.len() - 17); // magic excluded: its own error; crc..end covered
        let mut bad = batch.clone();
        bad[i] ^= 1 << bit;
        prop_assert!(ValidatedBatch::validate(Bytes::from(bad), 1 << 20).is_err());
    }
}

/// CRC-32C (Castagnoli, reflected), bit by bit from its definition: independent of the crate
/// tierlog uses, so these tests also check that tierlog's CRC is the one Kafka specifies.
fn crc32c_of(b: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in b {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

fn sample_batch() -> Vec<u8> {
    let recs: Vec<Record> = (0..5)
        .map(|i| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![i as u8; 100])),
            headers: vec![],
            timestamp: 1_000 + i,
        })
        .collect();
    BatchBuilder::from_records(Compression::None, &recs).to_vec()
}

fn refix_crc(b: &mut [u8]) {
    let crc = crc32c_of(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn validate(b: Vec<u8>) -> Result<ValidatedBatch, BatchError> {
    ValidatedBatch::validate(Bytes::from(b), 1 << 20)
}

#[test]
fn bad_batches_get_precise_errors() {
    assert!(validate(sample_batch()).is_ok());

    let mut b = sample_batch();
    b[70] ^= 0xff;
    assert!(matches!(validate(b), Err(BatchError::CrcMismatch { .. })));

    let b = sample_batch();
    assert!(matches!(validate(b[..b.len() - 3].to_vec()), Err(BatchError::LengthMismatch { .. })));
    assert!(matches!(validate(b[..40].to_vec()), Err(BatchError::TooShort { len: 40, .. })));
    assert!(matches!(validate(Vec::new()), Err(BatchError::TooShort { len: 0, .. })));

    let mut b = sample_batch();
    b[16] = 1;
    assert!(matches!(validate(b), Err(BatchError::BadMagic { magic: 1 })));

    // Length field lies (larger and smaller than the bytes).
    for delta in [1i32, -1, 1_000_000, -1_000] {
        let mut b = sample_batch();
        let len = i32::from_be_bytes(b[8..12].try_into().unwrap()) + delta;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(validate(b), Err(BatchError::LengthMismatch { .. })), "delta {delta}");
    }

    // Record count that does not match the records, with a correct CRC.
    for count in [4i32, 6, 0] {
        let mut b = sample_batch();
        b[57..61].copy_from_slice(&count.to_be_bytes());
        b[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        refix_crc(&mut b);
        let err = validate(b).unwrap_err();
        assert!(
            matches!(err, BatchError::RecordCountMismatch { .. } | BatchError::BadRecordCount { .. }),
            "count {count}: {err}"
        );
    }

    // lastOffsetDelta that disagrees with the count.
    let mut b = sample_batch();
    b[23..27].copy_from_slice(&7i32.to_be_bytes());
    refix_crc(&mut b);
    assert!(matches!(validate(b), Err(BatchError::BadLastOffsetDelta { .. })));

    // A record length that runs past the batch.
    let mut b = sample_batch();
    b[61] = 0x7e; // first record length: 63, then the next lengths no longer tile the section
    refix_crc(&mut b);
    assert!(matches!(validate(b), Err(BatchError::BadRecord { .. } | BatchError::RecordCountMismatch { .. })));

    // Unknown codec, and too large.
    let mut b = sample_batch();
    b[22] |= 0x07;
    refix_crc(&mut b);
    assert!(matches!(validate(b), Err(BatchError::UnknownCompression { code: 7 })));
    assert!(matches!(ValidatedBatch::validate(Bytes::from(sample_batch()), 100), Err(BatchError::TooLarge { .. })));

    // A compressed batch whose compressed bytes are garbage (CRC fixed up).
    let recs = [Record { value: Some(Bytes::from(vec![7u8; 1000])), ..Default::default() }];
    let mut b = BatchBuilder::from_records(Compression::Zstd, &recs).to_vec();
    let n = b.len();
    b[n - 5] ^= 0x55;
    refix_crc(&mut b);
    assert!(matches!(validate(b), Err(BatchError::Decompress { codec: "zstd", .. })));
}

#[test]
fn kafka_python_decodes_tierlog_batches() {
    let python = test_python();
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Record> = golden_records().into_iter().map(|(_, r)| r).collect();
    let mut files = Vec::new();
    for c in Compression::ALL {
        // Two batches per file: the second with different records and an idempotent producer.
        let mut data = BatchBuilder::from_records(c, &records).to_vec();
        let mut b2 = BatchBuilder::new(c).base_offset(records.len() as i64).producer(42, 3, 100);
        for r in records.iter().rev().take(7) {
            b2.push(r);
        }
        data.extend_from_slice(&b2.build());
        let path = dir.path().join(format!("tierlog-{}.bin", c.name()));
        std::fs::write(&path, &data).unwrap();
        files.push((c, path));
    }
    let script = golden_dir().join("kafka_python_golden.py");
    for (c, path) in files {
        let out =
            std::process::Command::new(&python).arg(&script).arg("verify").arg(&path).output().expect("run python");
        assert!(out.status.success(), "{}: {}", c.name(), String::from_utf8_lossy(&out.stderr));
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let expected: Vec<&Record> = records.iter().chain(records.iter().rev().take(7)).collect();
        assert_eq!(lines.len(), expected.len(), "{}", c.name());
        for (i, (got, want)) in lines.iter().zip(expected).enumerate() {
            assert_eq!(got["offset"].as_i64().unwrap(), i as i64);
            assert_eq!(got["compression"].as_i64().unwrap(), c.attribute_bits() as i64);
            assert_eq!(got["timestamp"].as_i64().unwrap(), want.timestamp);
            assert_eq!(opt_b64(&got["key"]), want.key);
            assert_eq!(opt_b64(&got["value"]), want.value);
            let headers: Vec<Header> = got["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| Header { key: h[0].as_str().unwrap().into(), value: opt_b64(&h[1]) })
                .collect();
            assert_eq!(headers, want.headers);
        }
    }
}

/// A batch whose records carry the given offset deltas, with `lastOffsetDelta` = count - 1 and a
/// sound CRC: only the record-level walk can tell it is wrong.
fn batch_with_deltas(compression: Compression, deltas: &[i32]) -> Vec<u8> {
    let mut b = BatchBuilder::new(compression);
    for (i, &d) in deltas.iter().enumerate() {
        let r = Record { value: Some(Bytes::from(format!("v{i}"))), timestamp: 1_000 + i as i64, ..Default::default() };
        b.push_at(&r, d);
    }
    b.set_span(deltas.len() as i32 - 1, 1_000 + deltas.len() as i64 - 1);
    b.build().to_vec()
}

#[test]
fn append_validation_decodes_every_record_offset_delta_and_timestamp() {
    for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
        assert!(validate(batch_with_deltas(codec, &[0, 1, 2])).is_ok(), "{codec:?}");
        for deltas in [[0, 0, 0], [0, 5, 2], [1, 2, 3], [0, 2, 1]] {
            let err = validate(batch_with_deltas(codec, &deltas)).unwrap_err();
            assert!(
                matches!(err, BatchError::BadRecord { reason: "offset deltas must run 0, 1, 2, ... in order", .. }),
                "{codec:?} {deltas:?}: {err}"
            );
        }
    }
    // A record timestamp above the header's maxTimestamp (create time): time lookups would skip it.
    let mut b = sample_batch();
    let max = i64::from_be_bytes(b[35..43].try_into().unwrap());
    b[35..43].copy_from_slice(&(max - 1).to_be_bytes());
    refix_crc(&mut b);
    let err = validate(b).unwrap_err();
    assert!(
        matches!(err, BatchError::BadRecord { reason: "timestamp is above the batch's maxTimestamp", .. }),
        "{err}"
    );
}
