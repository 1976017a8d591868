//! Manifest chunks: immutable Parquet files of older segment entries, written create-only when the
//! head overflows, and read (and cached) on demand.

use super::*;

/// Checks an object's bytes against the size and CRC-32C its reference recorded (either may be
/// absent in references written before they were recorded).
pub fn check_object(bytes: &[u8], size: Option<u64>, crc: Option<u32>) -> Result<(), String> {
    if let Some(size) = size
        && bytes.len() as u64 != size
    {
        return Err(format!("object holds {} bytes, the manifest says {size}", bytes.len()));
    }
    if let Some(crc) = crc {
        let got = crc32c::crc32c(bytes);
        if got != crc {
            return Err(format!("object CRC-32C is {got:08x}, the manifest says {crc:08x}"));
        }
    }
    Ok(())
}

pub(super) fn encode_chunk(entries: &[SegmentEntry]) -> Result<Bytes, String> {
    let i64s = |name, f: &dyn Fn(&SegmentEntry) -> i64| Column::I64(name, entries.iter().map(f).collect());
    parquet_io::write(vec![
        i64s("base_offset", &|e| e.base_offset),
        i64s("next_offset", &|e| e.next_offset),
        i64s("min_timestamp", &|e| e.min_timestamp),
        i64s("max_timestamp", &|e| e.max_timestamp),
        i64s("size", &|e| e.size as i64),
        i64s("index_size", &|e| e.index_size as i64),
        // -1: not recorded (an entry from before index checksums).
        i64s("index_crc32c", &|e| e.index_crc32c.map_or(-1, i64::from)),
        i64s("records", &|e| e.records as i64),
        i64s("batches", &|e| e.batches as i64),
        i64s("epoch", &|e| e.epoch as i64),
        Column::Str("id", entries.iter().map(|e| e.id.clone()).collect()),
        i64s("uploaded_ms", &|e| e.uploaded_ms),
    ])
}

pub(super) fn decode_chunk(bytes: Bytes, r: &ChunkRef) -> Result<Vec<SegmentEntry>, String> {
    let t = Table::read(bytes)?;
    let names = [
        "base_offset",
        "next_offset",
        "min_timestamp",
        "max_timestamp",
        "size",
        "index_size",
        "records",
        "batches",
        "epoch",
        "uploaded_ms",
    ];
    let c: Vec<Vec<i64>> = names.iter().map(|n| t.i64(n)).collect::<Result<_, _>>()?;
    let ids = t.str("id")?;
    // Chunks written before index checksums have no such column.
    let crcs = if t.has("index_crc32c") { t.i64("index_crc32c")? } else { vec![-1; t.rows()] };
    let entries: Vec<SegmentEntry> = (0..t.rows())
        .map(|i| SegmentEntry {
            base_offset: c[0][i],
            next_offset: c[1][i],
            min_timestamp: c[2][i],
            max_timestamp: c[3][i],
            size: c[4][i] as u64,
            index_size: c[5][i] as u64,
            index_crc32c: u32::try_from(crcs[i]).ok(),
            records: c[6][i] as u64,
            batches: c[7][i] as u64,
            epoch: c[8][i] as u64,
            id: ids[i].clone(),
            uploaded_ms: c[9][i],
        })
        .collect();
    let contiguous = entries.windows(2).all(|w| w[0].next_offset == w[1].base_offset);
    let bounds = entries.first().map(|e| e.base_offset) == Some(r.base_offset)
        && entries.last().map(|e| e.next_offset) == Some(r.next_offset)
        && entries.len() as u64 == r.segments;
    if !contiguous || !bounds {
        return Err("chunk entries do not match the head's reference".into());
    }
    Ok(entries)
}

impl Manifest {
    pub(super) async fn write_chunk(&self, epoch: u64, entries: &[SegmentEntry], level: u8) -> Result<ChunkRef> {
        let first = entries.first().expect("invariant: a chunk has entries");
        let last = entries.last().expect("invariant: a chunk has entries");
        let r = ChunkRef {
            level,
            base_offset: first.base_offset,
            next_offset: last.next_offset,
            min_timestamp: entries.iter().map(|e| e.min_timestamp).min().unwrap_or(-1),
            max_timestamp: entries.iter().map(|e| e.max_timestamp).max().unwrap_or(-1),
            segments: entries.len() as u64,
            bytes: entries.iter().map(|e| e.size).sum(),
            records: entries.iter().map(|e| e.records).sum(),
            epoch,
            id: keys::new_id(),
            object_bytes: None,
            crc32c: None,
        };
        let key = r.key(&self.keys);
        let bytes = encode_chunk(entries).map_err(|e| corrupt(&key, e))?;
        let r = ChunkRef { object_bytes: Some(bytes.len() as u64), crc32c: Some(crc32c::crc32c(&bytes)), ..r };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let put = self.store.put_opts(&key, PutPayload::from(bytes.clone()), PutOptions::from(PutMode::Create));
            match put.await {
                // The key has a fresh id: if it exists, an earlier attempt of ours wrote it.
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => break,
                Err(e) if attempt < COMMIT_ATTEMPTS => {
                    tracing::debug!(%key, attempt, error = %e, "manifest chunk write failed; retrying");
                    backoff(attempt).await;
                }
                Err(e) => return Err(remote("write manifest chunk", &key)(e)),
            }
        }
        self.chunks
            .lock()
            .expect("invariant: manifest lock not poisoned")
            .insert(r.id.clone(), Arc::new(entries.to_vec()));
        Ok(r)
    }

    /// The entries of chunk `r` (one GET the first time, then from memory).
    pub async fn chunk(&self, r: &ChunkRef) -> Result<Arc<Vec<SegmentEntry>>> {
        if let Some(c) = self.chunks.lock().expect("invariant: manifest lock not poisoned").get(&r.id) {
            return Ok(c.clone());
        }
        let key = r.key(&self.keys);
        let bytes = self.store.get(&key).await.map_err(remote("read manifest chunk", &key))?;
        let bytes = bytes.bytes().await.map_err(remote("read manifest chunk", &key))?;
        check_object(&bytes, r.object_bytes, r.crc32c).map_err(|e| corrupt(&key, e))?;
        let entries = Arc::new(decode_chunk(bytes, r).map_err(|e| corrupt(&key, e))?);
        let mut cache = self.chunks.lock().expect("invariant: manifest lock not poisoned");
        if cache.len() >= CHUNK_CACHE {
            cache.clear();
        }
        cache.insert(r.id.clone(), entries.clone());
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: i64, crc: Option<u32>) -> SegmentEntry {
        SegmentEntry {
            base_offset: i * 10,
            next_offset: i * 10 + 10,
            min_timestamp: i,
            max_timestamp: i,
            size: 100,
            index_size: 50,
            index_crc32c: crc,
            records: 10,
            batches: 1,
            epoch: 1,
            id: format!("{i:016x}"),
            uploaded_ms: 0,
        }
    }

    fn reference(n: i64) -> ChunkRef {
        ChunkRef {
            level: 0,
            base_offset: 0,
            next_offset: n * 10,
            min_timestamp: 0,
            max_timestamp: n,
            segments: n as u64,
            bytes: 100 * n as u64,
            records: 10 * n as u64,
            epoch: 1,
            id: "c".into(),
            object_bytes: None,
            crc32c: None,
        }
    }

    /// Index checksums round-trip through a chunk; chunks and heads written before them (no
    /// column, no fields) still read, with the checksums absent.
    #[test]
    fn index_checksums_round_trip_and_older_chunks_and_heads_still_read() {
        let entries = vec![entry(0, Some(7)), entry(1, Some(u32::MAX)), entry(2, None)];
        assert_eq!(decode_chunk(encode_chunk(&entries).unwrap(), &reference(3)).unwrap(), entries);

        let i64s = |name, f: &dyn Fn(&SegmentEntry) -> i64| Column::I64(name, entries.iter().map(f).collect());
        let old = parquet_io::write(vec![
            i64s("base_offset", &|e| e.base_offset),
            i64s("next_offset", &|e| e.next_offset),
            i64s("min_timestamp", &|e| e.min_timestamp),
            i64s("max_timestamp", &|e| e.max_timestamp),
            i64s("size", &|e| e.size as i64),
            i64s("index_size", &|e| e.index_size as i64),
            i64s("records", &|e| e.records as i64),
            i64s("batches", &|e| e.batches as i64),
            i64s("epoch", &|e| e.epoch as i64),
            Column::Str("id", entries.iter().map(|e| e.id.clone()).collect()),
            i64s("uploaded_ms", &|e| e.uploaded_ms),
        ])
        .unwrap();
        let read = decode_chunk(old, &reference(3)).unwrap();
        assert!(read.iter().all(|e| e.index_crc32c.is_none()));

        let json = r#"{"level":0,"base_offset":0,"next_offset":30,"min_timestamp":0,"max_timestamp":3,
            "segments":3,"bytes":300,"records":30,"epoch":1,"id":"c"}"#;
        let r: ChunkRef = serde_json::from_str(json).unwrap();
        assert_eq!((r.object_bytes, r.crc32c), (None, None));
        assert!(check_object(b"abc", r.object_bytes, r.crc32c).is_ok());
        assert!(check_object(b"abc", Some(3), Some(crc32c::crc32c(b"abd"))).is_err());
        assert!(check_object(b"abc", Some(4), None).is_err());
    }
}
