//! Topic configurations in the bucket (`catalog/topics/<topic>.json`), written when a topic is
//! created, so a node with an empty disk can rebuild its topic list from the bucket alone. The
//! content is the caller's JSON; this module only stores and lists it.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::keys;
use crate::error::{Result, remote};

/// Writes (or overwrites) `topic`'s entry.
pub async fn put(store: &Arc<dyn ObjectStore>, topic: &str, json: Bytes) -> Result<()> {
    let key = keys::catalog_topic(topic);
    store.put(&key, PutPayload::from(json)).await.map_err(remote("write topic catalog", &key))?;
    Ok(())
}

/// `topic`'s entry, if the bucket has one.
pub async fn get(store: &Arc<dyn ObjectStore>, topic: &str) -> Result<Option<Bytes>> {
    let key = keys::catalog_topic(topic);
    match store.get(&key).await {
        Ok(r) => Ok(Some(r.bytes().await.map_err(remote("read topic catalog", &key))?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(remote("read topic catalog", &key)(e)),
    }
}

/// The names of every topic in the catalog.
pub async fn list(store: &Arc<dyn ObjectStore>) -> Result<Vec<String>> {
    let dir = keys::catalog_dir();
    let mut out = Vec::new();
    let mut listing = store.list(Some(&dir));
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(remote("list topic catalog", &dir))?;
        if let Some(name) = meta.location.filename().and_then(|f| f.strip_suffix(".json")) {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}
