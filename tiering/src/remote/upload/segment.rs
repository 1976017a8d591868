//! Uploading one sealed segment: one PUT or a multipart upload of parts read through the
//! partition's filesystem, every batch CRC-checked on the way, then its Parquet index.

use super::*;

/// `len` bytes at `pos` of the sealed local segment at `base`, through the partition's filesystem,
/// on the blocking pool.
pub(super) async fn read_part(local: &Arc<Partition>, base: i64, pos: u64, len: usize) -> Result<Bytes> {
    let local = local.clone();
    tokio::task::spawn_blocking(move || local.read_segment_bytes(base, pos, len))
        .await
        .map_err(|e| Error::Closed { reason: Some(format!("upload reader task failed: {e}")) })?
}

pub(super) async fn upload_segment(
    inner: &Arc<Inner>,
    log: &RemoteLog,
    pin: &InFlight<'_>,
    s: &SegmentInfo,
) -> Result<SegmentEntry> {
    let started = std::time::Instant::now();
    let keys = log.manifest().keys().clone();
    let id = keys::new_id();
    let key = keys.segment(s.base_offset, log.epoch, &id);
    pin.add(&key);
    let config = &inner.config;
    let corrupt = |(position, reason): (u64, String)| Error::Corrupt { path: s.path.clone(), position, reason };
    let kind;
    let index: SegmentIndex = if s.size <= config.single_put_max_bytes {
        kind = "put";
        let _permit = inner.permits.acquire().await.map_err(|_| Error::Closed { reason: None })?;
        let data = read_part(log.local(), s.base_offset, 0, s.size as usize).await?;
        let scan = data.clone();
        // The scan (every batch's CRC) runs on the blocking pool while the PUT is on the wire;
        // a bad batch fails the upload before the commit, so nothing damaged is ever referenced.
        let scan = tokio::task::spawn_blocking(move || crate::remote::index::scan_segment(&scan));
        let put = retry(config, "upload segment", &key, || inner.store.put(&key, PutPayload::from(data.clone())));
        let (scanned, put) = tokio::join!(scan, put);
        let index =
            scanned.map_err(|e| Error::Closed { reason: Some(format!("index task failed: {e}")) })?.map_err(corrupt)?;
        put?;
        index
    } else {
        kind = "multipart";
        let mut attempt = 0;
        loop {
            attempt += 1;
            match upload_multipart(inner, log, &key, s).await {
                Ok(index) => break index,
                Err(e @ Error::Corrupt { .. }) => return Err(e),
                Err(e) if attempt < config.upload_attempts => {
                    tracing::debug!(%key, attempt, error = %e, "multipart upload failed; retrying");
                    metrics::counter!(stats::UPLOAD_RETRIES, "op" => "multipart upload").increment(1);
                    crate::remote::retry::pause(config.retry_base_ms, config.retry_max_ms, attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    };
    let bounds = (s.base_offset, s.next_offset);
    let entry = put_index(inner, log, pin, &id, bounds, s.size, &index).await.map_err(|e| match e {
        Error::Corrupt { position, reason, .. } => corrupt((position, reason)),
        e => e,
    })?;
    metrics::counter!(stats::UPLOADED_SEGMENTS, "kind" => kind).increment(1);
    metrics::histogram!(stats::UPLOAD_SEGMENT_SECONDS).record(started.elapsed().as_secs_f64());
    tracing::debug!(partition = %log.local.name(), base = s.base_offset, size = s.size, kind, "segment uploaded");
    Ok(entry)
}

/// Checks that a segment object's index covers exactly `base..next`, PUTs the index, and returns
/// the segment's manifest entry (the segment object itself is already written).
pub(super) async fn put_index(
    inner: &Arc<Inner>,
    log: &RemoteLog,
    pin: &InFlight<'_>,
    id: &str,
    (base, next): (i64, i64),
    size: u64,
    index: &SegmentIndex,
) -> Result<SegmentEntry> {
    let keys = log.manifest().keys();
    let key = keys.segment(base, log.epoch, id);
    let corrupt = |reason: String| Error::Corrupt { path: key.to_string().into(), position: 0, reason };
    let last = index.rows.last().ok_or_else(|| corrupt("segment has no batches".into()))?;
    if index.rows[0].base_offset != base || last.last_offset + 1 != next {
        return Err(corrupt(format!(
            "segment holds {}..={}, not {base}..{next}",
            index.rows[0].base_offset, last.last_offset
        )));
    }
    let index_key = keys.index(base, log.epoch, id);
    pin.add(&index_key);
    let encoded = index.encode().map_err(|e| corrupt(format!("encode index: {e}")))?;
    retry(&inner.config, "upload index", &index_key, || inner.store.put(&index_key, PutPayload::from(encoded.clone())))
        .await?;
    Ok(SegmentEntry {
        base_offset: base,
        next_offset: next,
        min_timestamp: index.first_timestamp(),
        max_timestamp: index.max_timestamp(),
        size,
        index_size: encoded.len() as u64,
        index_crc32c: Some(crc32c::crc32c(&encoded)),
        records: index.records(),
        batches: index.rows.len() as u64,
        epoch: log.epoch,
        id: id.to_owned(),
        uploaded_ms: inner.clock.now_ms(),
    })
}

/// One multipart upload attempt: parts read from the file one at a time, at most two in flight,
/// each under an upload permit, and each scanned for the index (CRCs) on the blocking pool while
/// it is on the wire. Aborted on any failure.
pub(super) async fn upload_multipart(
    inner: &Arc<Inner>,
    log: &RemoteLog,
    key: &Path,
    s: &SegmentInfo,
) -> Result<SegmentIndex> {
    let mut upload = inner.store.put_multipart(key).await.map_err(remote("start multipart upload", key))?;
    let part = inner.config.part_bytes;
    let mut scanner = Some(Scanner::default());
    let scan_error = |(p, r)| Error::Corrupt { path: s.path.clone(), position: p, reason: r };
    let mut in_flight = FuturesUnordered::new();
    let mut pos = 0u64;
    let result: Result<()> = async {
        while pos < s.size {
            let len = part.min(s.size - pos) as usize;
            let permit = inner.permits.clone().acquire_owned().await.map_err(|_| Error::Closed { reason: None })?;
            let data = read_part(log.local(), s.base_offset, pos, len).await?;
            let fut = upload.put_part(PutPayload::from(data.clone()));
            // A task of its own: the part progresses (and frees its permit) while this loop waits
            // for the next permit.
            in_flight.push(tokio::spawn(async move {
                let r = fut.await;
                drop(permit);
                r
            }));
            let mut sc = scanner.take().expect("invariant: the scanner is returned after each part");
            let (sc, fed) = tokio::task::spawn_blocking(move || {
                let fed = sc.feed(&data);
                (sc, fed)
            })
            .await
            .map_err(|e| Error::Closed { reason: Some(format!("index task failed: {e}")) })?;
            scanner = Some(sc);
            fed.map_err(scan_error)?;
            pos += len as u64;
            while in_flight.len() >= 2 {
                if let Some(r) = in_flight.next().await {
                    part_result(r).map_err(remote("upload part", key))?;
                }
            }
        }
        while let Some(r) = in_flight.next().await {
            part_result(r).map_err(remote("upload part", key))?;
        }
        Ok(())
    }
    .await;
    drop(in_flight);
    match result {
        Ok(()) => {
            let index =
                scanner.expect("invariant: the scanner is returned after each part").finish().map_err(scan_error)?;
            upload.complete().await.map_err(remote("complete multipart upload", key))?;
            Ok(index)
        }
        Err(e) => {
            if let Err(abort) = upload.abort().await {
                tracing::debug!(%key, error = %abort, "abort of a failed multipart upload failed; the sweep will remove it");
            }
            Err(e)
        }
    }
}

pub(super) fn part_result(
    r: std::result::Result<object_store::Result<()>, tokio::task::JoinError>,
) -> object_store::Result<()> {
    r.unwrap_or_else(|e| Err(object_store::Error::Generic { store: "upload", source: Box::new(e) }))
}
