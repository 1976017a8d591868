//! Deleted topics in the bucket. Deleting a topic writes a record
//! (`catalog/deleted/t<crc32c of the name>-<nanos>.json`) that lists every object the topic's partitions hold,
//! then removes the partitions' manifest heads and the topic's catalog entry at once, so the
//! name is free again and a restore no longer sees the topic. The listed objects (segments,
//! indexes, manifest chunks, snapshots) are deleted once the record's grace period has passed, so
//! a reader still on an old manifest can finish its reads. Only listed keys are deleted: every
//! data key carries a fresh id, so a topic created again under the same name never loses an
//! object to the old one's deletion.
//!
//! A topic created again under the name while the old one's objects wait keeps its orphan sweep
//! off them ([`pending_keys`]).

use std::sync::Arc;

use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::keys::{self, PartitionKeys};
use crate::error::{Error, Result, remote};

const DIR: &str = "catalog/deleted";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    topic: String,
    deleted_at_ms: i64,
    delete_after_ms: i64,
    objects: Vec<String>,
}

/// Records `topic` (of `partitions` partitions) as deleted at `now` and removes its heads and
/// catalog entry; its objects are deleted by [`sweep`] once `grace_ms` passed. Returns how many
/// objects wait for deletion.
pub async fn delete_topic(
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    partitions: u32,
    now: i64,
    grace_ms: u64,
) -> Result<usize> {
    let mut objects = Vec::new();
    for p in 0..partitions {
        let keys = PartitionKeys::new(topic, p);
        let (root, head) = (keys.root(), keys.head());
        let mut listing = store.list(Some(&root));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(remote("list a deleted topic's objects", &root))?;
            // The head is deleted now, below; its key is the same for a topic created again
            // under the name, so the record must not hold it.
            if meta.location != head {
                objects.push(meta.location.to_string());
            }
        }
    }
    let record = Record {
        topic: topic.to_owned(),
        deleted_at_ms: now,
        delete_after_ms: now.saturating_add(grace_ms as i64),
        objects,
    };
    let key = Path::from(format!("{DIR}/{}-{}.json", record_prefix(topic), crate::clock::wall_clock_nanos()));
    let json = serde_json::to_vec(&record).expect("invariant: a deletion record serialises");
    store.put(&key, PutPayload::from(json)).await.map_err(remote("write deletion record", &key))?;
    for p in 0..partitions {
        let head = PartitionKeys::new(topic, p).head();
        match store.delete(&head).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote("delete manifest head", &head)(e)),
        }
    }
    let entry = keys::catalog_topic(topic);
    match store.delete(&entry).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(remote("delete topic catalog entry", &entry)(e)),
    }
    Ok(record.objects.len())
}

/// The name prefix of `topic`'s deletion records: a hash of the name, as the name itself with a
/// timestamp would not fit in a file name of the local bucket (a topic name has up to 249
/// characters). Records hold the name; readers check it.
fn record_prefix(topic: &str) -> String {
    format!("t{:08x}", crc32c::crc32c(topic.as_bytes()))
}

/// The keys that deletion records of `topic` still hold: a topic created again under the name
/// leaves them to the deletion (its orphan sweep skips them), so they stay for their grace period.
pub async fn pending_keys(store: &Arc<dyn ObjectStore>, topic: &str) -> Result<std::collections::HashSet<String>> {
    let dir = Path::from(DIR);
    let mut out = std::collections::HashSet::new();
    let mut listing = store.list(Some(&dir));
    let mut records = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(remote("list deletion records", &dir))?;
        // Records of earlier versions are named `<topic>-<nanos>.json`.
        let (new, old) = (format!("{}-", record_prefix(topic)), format!("{topic}-"));
        if meta.location.filename().is_some_and(|f| f.starts_with(&new) || f.starts_with(&old)) {
            records.push(meta.location);
        }
    }
    for key in records {
        let Some(record) = read(store, &key).await? else { continue };
        if record.topic == topic {
            out.extend(record.objects);
        }
    }
    Ok(out)
}

async fn read(store: &Arc<dyn ObjectStore>, key: &Path) -> Result<Option<Record>> {
    let bytes = match store.get(key).await {
        Ok(r) => r.bytes().await.map_err(remote("read deletion record", key))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(remote("read deletion record", key)(e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Corrupt {
        path: key.as_ref().into(),
        position: 0,
        reason: format!("deletion record: {e}"),
    })
}

/// Deletes the objects of every deleted topic whose grace period ended by `now`, then its record.
/// Returns how many deletes it sent (a store answers a delete of a missing key as done, so an
/// object another sweep removed first may count twice).
pub async fn sweep(store: &Arc<dyn ObjectStore>, now: i64) -> Result<u64> {
    let dir = Path::from(DIR);
    let mut records = Vec::new();
    let mut listing = store.list(Some(&dir));
    while let Some(meta) = listing.next().await {
        records.push(meta.map_err(remote("list deletion records", &dir))?.location);
    }
    let mut deleted = 0;
    for key in records {
        let Some(record) = read(store, &key).await? else { continue };
        if record.delete_after_ms > now {
            continue;
        }
        // Records of earlier versions list the heads too, which were deleted with the topic: the
        // head there now is a new topic's of the same name.
        for object in record.objects.iter().filter(|o| !o.ends_with("/manifest/head.json")) {
            let path = Path::from(object.as_str());
            match store.delete(&path).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote("delete a deleted topic's object", &path)(e)),
            }
        }
        match store.delete(&key).await {
            // Another sweep (another node, or the background one) finished it first.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote("delete deletion record", &key)(e)),
        }
        tracing::info!(topic = %record.topic, objects = record.objects.len(), "deleted topic's objects removed from the bucket");
    }
    Ok(deleted)
}
