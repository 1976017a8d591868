//! The segment index is a plain Parquet file: pyarrow and DuckDB (independent readers, installed in
//! the test venv by scripts/test.sh) read what tierlog writes, see the schema and every row, find
//! the row-group statistics and the page index a reader prunes with, and answer the offset and
//! time lookups tierlog answers, with SQL.

mod common;

use bytes::BytesMut;
use tiering::batch::{BatchBuilder, Compression, Record};
use tiering::remote::index::{SegmentIndex, scan_segment};

use common::{golden_dir, test_python};

const BATCHES: i64 = 20_000;

/// A segment of `BATCHES` batches of 1-3 records each, timestamps rising by batch, every fifth
/// batch from an idempotent producer, and mixed codecs.
fn segment() -> (BytesMut, i64) {
    let mut seg = BytesMut::new();
    let mut next = 5_000i64;
    for b in 0..BATCHES {
        let codec = if b % 7 == 0 { Compression::Zstd } else { Compression::None };
        let mut builder = BatchBuilder::new(codec).base_offset(next);
        if b % 5 == 0 {
            builder = builder.producer(900 + b % 3, 1, b as i32);
        }
        let n = 1 + b % 3;
        for r in 0..n {
            builder.push(&Record {
                key: Some(format!("k{}", b % 50).into_bytes().into()),
                value: Some(vec![b as u8; 20 + r as usize].into()),
                headers: vec![],
                timestamp: 1_700_000_000_000 + b * 10 + r,
            });
        }
        seg.extend_from_slice(&builder.build());
        next += n;
    }
    (seg, next)
}

#[test]
fn pyarrow_and_duckdb_read_the_segment_index() {
    let (seg, next) = segment();
    let index = scan_segment(&seg).expect("scan");
    assert_eq!(index.rows.len(), BATCHES as usize);
    let bytes = index.encode().unwrap();
    // Tierlog reads back what it wrote, checking that the rows tile the segment.
    let back = SegmentIndex::decode(bytes.clone(), 5_000, seg.len() as u64).unwrap();
    assert_eq!(back.rows, index.rows);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000005000-1-abc.index.parquet");
    std::fs::write(&path, &bytes).unwrap();
    // A lookup in the middle of the third row group, by offset and by time.
    let probe = index.rows[17_777].base_offset + 1;
    let ts = index.rows[12_345].first_timestamp + 1;
    let out = std::process::Command::new(test_python())
        .arg(golden_dir().join("parquet_index_check.py"))
        .arg(&path)
        .arg(probe.to_string())
        .arg(ts.to_string())
        .output()
        .expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // pyarrow: the schema, every row, and what a pruning reader needs.
    let pa = &v["pyarrow"];
    let names: Vec<&str> = pa["schema"].as_array().unwrap().iter().map(|f| f[0].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "base_offset",
            "last_offset",
            "first_timestamp",
            "max_timestamp",
            "position",
            "size",
            "record_count",
            "crc",
            "producer_id",
            "producer_epoch",
            "base_sequence",
            "attributes"
        ]
    );
    for f in pa["schema"].as_array().unwrap() {
        assert_eq!((f[1].as_str().unwrap(), f[2].as_bool().unwrap()), ("int64", false), "{f}");
    }
    assert_eq!(pa["rows"].as_i64().unwrap(), BATCHES);
    let bases: Vec<i64> = pa["base_offset"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(bases, index.rows.iter().map(|r| r.base_offset).collect::<Vec<_>>());
    let crcs: Vec<i64> = pa["crc"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(crcs, index.rows.iter().map(|r| r.crc as i64).collect::<Vec<_>>());
    let groups = pa["row_groups"].as_i64().unwrap();
    assert_eq!(groups, (BATCHES as u64).div_ceil(8192) as i64, "row groups of 8192 rows");
    let chunks = pa["chunks"].as_array().unwrap();
    assert_eq!(chunks.len() as i64, groups * 12);
    for c in chunks {
        assert!(c["column_index"].as_bool().unwrap() && c["offset_index"].as_bool().unwrap(), "page index: {c}");
        assert!(!c["min"].is_null() && !c["max"].is_null(), "statistics: {c}");
    }
    // The row-group statistics on offsets and times match the rows they cover.
    for c in chunks.iter().filter(|c| c["column"] == "base_offset" || c["column"] == "max_timestamp") {
        let g = c["row_group"].as_u64().unwrap() as usize;
        let rows = &index.rows[g * 8192..((g + 1) * 8192).min(index.rows.len())];
        let col = |r: &tiering::remote::index::IndexRow| {
            if c["column"] == "base_offset" { r.base_offset } else { r.max_timestamp }
        };
        assert_eq!(c["min"].as_i64().unwrap(), rows.iter().map(col).min().unwrap(), "{c}");
        assert_eq!(c["max"].as_i64().unwrap(), rows.iter().map(col).max().unwrap(), "{c}");
    }

    // DuckDB: aggregates, and the same lookups tierlog makes, in SQL.
    let db = &v["duckdb"];
    let agg: Vec<i64> = db["aggregate"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(
        agg,
        [BATCHES, 5_000, next - 1, next - 5_000, seg.len() as i64, index.first_timestamp(), index.max_timestamp()]
    );
    let row_json = |i: usize| {
        let r = &index.rows[i];
        serde_json::json!([r.base_offset, r.last_offset, r.position, r.size, r.crc, r.producer_id, r.record_count])
    };
    let by_offset = index.find_offset(probe).unwrap();
    assert_eq!(by_offset, 17_777);
    assert_eq!(db["by_offset"], serde_json::json!([row_json(by_offset)]));
    let by_time = index.find_time(ts).unwrap();
    assert_eq!(db["by_time"], serde_json::json!([row_json(by_time)]));
    // A producer's batches are in the index as written.
    assert_eq!(index.rows[5].producer_id, 900 + 5 % 3);
    assert_eq!(index.rows[6].producer_id, -1);
}
