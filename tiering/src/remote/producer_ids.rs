//! Producer ids for idempotent producers (Kafka's InitProducerId), never handed out twice: not
//! across restarts, not by a node restored from the bucket, not by two nodes on one bucket.
//!
//! The bucket holds `catalog/producer-ids.json`, `{"next": N}`: ids below `N` are taken. A node
//! reserves a block `[N, N + BLOCK)` by a conditional write (compare-and-swap on the object's
//! ETag, or create-only when it is missing) and hands ids out of it from memory. Ids of a block
//! not used before a restart are skipped, never reused: a few thousand ids lost per restart, out
//! of 2^63. One write per `BLOCK` ids.

use std::sync::Arc;

use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::keys;
use crate::error::{Error, Result, remote};

/// Ids reserved per conditional write.
pub const BLOCK: i64 = 1000;

/// Attempts at the compare-and-swap before giving up (other nodes racing for blocks).
const ATTEMPTS: u32 = 16;

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    next: i64,
}

/// The allocator of an engine.
#[derive(Debug)]
pub struct ProducerIds {
    store: Arc<dyn ObjectStore>,
    /// The ids left in the reserved block: `[next, end)`.
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store, block: Mutex::new((0, 0)) }
    }

    /// The next producer id, reserving a new block from the bucket when this one is used up.
    pub async fn next(&self) -> Result<i64> {
        let mut block = self.block.lock().await;
        if block.0 >= block.1 {
            *block = self.reserve().await?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    async fn reserve(&self) -> Result<(i64, i64)> {
        let key = keys::producer_ids();
        for attempt in 1..=ATTEMPTS {
            let (next, mode) = match self.store.get(&key).await {
                Ok(r) => {
                    let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
                    let bytes = r.bytes().await.map_err(remote("read producer ids", &key))?;
                    let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                        path: key.as_ref().into(),
                        position: 0,
                        reason: format!("producer id block: {e}"),
                    })?;
                    (stored.next, PutMode::Update(version))
                }
                Err(object_store::Error::NotFound { .. }) => (0, PutMode::Create),
                Err(e) => return Err(remote("read producer ids", &key)(e)),
            };
            let end = next.checked_add(BLOCK).ok_or_else(|| Error::Corrupt {
                path: key.as_ref().into(),
                position: 0,
                reason: "producer ids exhausted".into(),
            })?;
            let body = serde_json::to_vec(&Stored { next: end }).expect("invariant: serialises");
            match self.store.put_opts(&key, PutPayload::from(body), PutOptions::from(mode)).await {
                Ok(_) => {
                    tracing::debug!(from = next, to = end, "reserved a block of producer ids");
                    return Ok((next, end));
                }
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                    super::retry::pause(10, 500, attempt).await;
                }
                Err(e) => return Err(remote("reserve producer ids", &key)(e)),
            }
        }
        Err(Error::Conflict { reason: format!("lost the producer-id block race {ATTEMPTS} times") })
    }
}
