//! State snapshots: the state of one partition (the latest value of every live key) as of an
//! offset, as a plain Parquet file with columns `key` and `value` (binary), `offset`, `timestamp`
//! (int64) and `partition` (int32), sorted by key. Deleted keys are absent: a snapshot stands for
//! the whole log up to its offset, so `state_at` can start from it and replay only what follows.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

/// Rows per record batch and row group written.
const BATCH_ROWS: usize = 64 * 1024;

/// One key's state in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub key: Bytes,
    pub value: Bytes,
    pub offset: i64,
    pub timestamp: i64,
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("timestamp", DataType::Int64, false),
        Field::new("partition", DataType::Int32, false),
    ]))
}

/// Writes rows (in key order) as one Parquet file, a row group per 64k rows.
pub struct SnapshotWriter {
    partition: u32,
    rows: Vec<SnapshotRow>,
    writer: ArrowWriter<Vec<u8>>,
    written: u64,
}

impl SnapshotWriter {
    pub fn new(partition: u32) -> Result<Self, String> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| e.to_string())?))
            .set_max_row_group_row_count(Some(BATCH_ROWS))
            .set_created_by("tierlog".into())
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema(), Some(props)).map_err(|e| e.to_string())?;
        Ok(Self { partition, rows: Vec::with_capacity(BATCH_ROWS), writer, written: 0 })
    }

    pub fn push(&mut self, row: SnapshotRow) -> Result<(), String> {
        self.rows.push(row);
        if self.rows.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.key.as_ref()))),
            Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.value.as_ref()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.offset))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.timestamp))),
            Arc::new(Int32Array::from(vec![self.partition as i32; n])),
        ];
        let batch = RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())?;
        self.writer.write(&batch).map_err(|e| e.to_string())?;
        self.written += n as u64;
        self.rows = Vec::with_capacity(BATCH_ROWS);
        Ok(())
    }

    /// The file's bytes and its row count.
    pub fn finish(mut self) -> Result<(Bytes, u64), String> {
        self.flush()?;
        let written = self.written;
        let bytes = self.writer.into_inner().map_err(|e| e.to_string())?;
        Ok((Bytes::from(bytes), written))
    }
}

/// Reads a snapshot file back, checking its schema and that keys are strictly increasing.
pub fn decode(bytes: Bytes) -> Result<Vec<SnapshotRow>, String> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| e.to_string())?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut out: Vec<SnapshotRow> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let col = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("snapshot has no column `{name}`"));
        let bin = |name: &str| -> Result<BinaryArray, String> {
            col(name)?.as_any().downcast_ref::<BinaryArray>().cloned().ok_or_else(|| format!("`{name}` is not binary"))
        };
        let int = |name: &str| -> Result<Int64Array, String> {
            col(name)?.as_any().downcast_ref::<Int64Array>().cloned().ok_or_else(|| format!("`{name}` is not int64"))
        };
        let (keys, values, offsets, times) = (bin("key")?, bin("value")?, int("offset")?, int("timestamp")?);
        if keys.null_count() + values.null_count() > 0 {
            return Err("snapshot has null keys or values".into());
        }
        for i in 0..batch.num_rows() {
            let key = Bytes::copy_from_slice(keys.value(i));
            if out.last().is_some_and(|r| r.key >= key) {
                return Err(format!("snapshot keys are not in order at row {}", out.len()));
            }
            out.push(SnapshotRow {
                key,
                value: Bytes::copy_from_slice(values.value(i)),
                offset: offsets.value(i),
                timestamp: times.value(i),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_reject_garbage() {
        let rows: Vec<SnapshotRow> = (0..150_000u32)
            .map(|i| SnapshotRow {
                key: Bytes::from(format!("key-{i:08}")),
                value: Bytes::from(vec![(i % 251) as u8; (i % 40) as usize]),
                offset: i as i64 * 3,
                timestamp: 1_000 + i as i64,
            })
            .collect();
        let mut w = SnapshotWriter::new(7).unwrap();
        for r in &rows {
            w.push(r.clone()).unwrap();
        }
        let (bytes, n) = w.finish().unwrap();
        assert_eq!(n, 150_000);
        assert_eq!(decode(bytes.clone()).unwrap(), rows);
        let mut bad = bytes.to_vec();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        bad.truncate(bad.len() - 10);
        assert!(decode(Bytes::from(bad)).is_err());
        // Out of order keys are refused.
        let mut w = SnapshotWriter::new(0).unwrap();
        for k in ["b", "a"] {
            w.push(SnapshotRow { key: Bytes::from(k), value: Bytes::new(), offset: 0, timestamp: 0 }).unwrap();
        }
        assert!(decode(w.finish().unwrap().0).unwrap_err().contains("order"));
    }
}
