//! Writing and reading the small Parquet files of the remote tier (segment indexes and manifest
//! chunks): whole files in memory, since they are put and fetched with one request each.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

/// Rows per row group and per data page: a reader that prunes with row-group statistics and the
/// page index (column and offset indexes, written for every column) decodes at most this many
/// rows per page it keeps.
pub const ROW_GROUP_ROWS: usize = 8192;
pub const PAGE_ROWS: usize = 512;

/// A column of an all-int64 (plus strings) table.
pub enum Column {
    I64(&'static str, Vec<i64>),
    Str(&'static str, Vec<String>),
}

/// Encodes `columns` (equal lengths) as one Parquet file with sorted-friendly settings.
pub fn write(columns: Vec<Column>) -> Result<Bytes, String> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for c in columns {
        match c {
            Column::I64(name, v) => {
                fields.push(Field::new(name, DataType::Int64, false));
                arrays.push(Arc::new(Int64Array::from(v)));
            }
            Column::Str(name, v) => {
                fields.push(Field::new(name, DataType::Utf8, false));
                arrays.push(Arc::new(StringArray::from(v)));
            }
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).map_err(|e| e.to_string())?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by("tierlog".into())
        .build();
    let mut out = Vec::with_capacity(4096 + batch.num_rows() * 16);
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(|e| e.to_string())?;
    w.write(&batch).map_err(|e| e.to_string())?;
    w.close().map_err(|e| e.to_string())?;
    Ok(Bytes::from(out))
}

/// Decoded columns of a file, by name.
pub struct Table {
    batches: Vec<RecordBatch>,
}

impl Table {
    pub fn read(bytes: Bytes) -> Result<Self, String> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.with_batch_size(ROW_GROUP_ROWS).build())
            .map_err(|e| e.to_string())?;
        let batches = reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
        Ok(Self { batches })
    }

    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }

    /// Whether the table has a column `name`.
    pub fn has(&self, name: &str) -> bool {
        self.batches.first().is_some_and(|b| b.column_by_name(name).is_some())
    }

    pub fn i64(&self, name: &str) -> Result<Vec<i64>, String> {
        let mut out = Vec::with_capacity(self.rows());
        for b in &self.batches {
            let col = b.column_by_name(name).ok_or_else(|| format!("column {name} is missing"))?;
            let col = col.as_any().downcast_ref::<Int64Array>().ok_or_else(|| format!("column {name} is not int64"))?;
            if col.null_count() > 0 {
                return Err(format!("column {name} has nulls"));
            }
            out.extend_from_slice(col.values());
        }
        Ok(out)
    }

    pub fn str(&self, name: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(self.rows());
        for b in &self.batches {
            let col = b.column_by_name(name).ok_or_else(|| format!("column {name} is missing"))?;
            let col = col.as_any().downcast_ref::<StringArray>().ok_or_else(|| format!("column {name} is not utf8"))?;
            if col.null_count() > 0 {
                return Err(format!("column {name} has nulls"));
            }
            out.extend(col.iter().map(|s| s.unwrap_or_default().to_owned()));
        }
        Ok(out)
    }
}
