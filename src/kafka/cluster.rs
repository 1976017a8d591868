//! The cluster id clients see: configured, or generated once and kept both in the data dir and in
//! the bucket (`catalog/kafka-cluster-id`, created with a conditional put so that two nodes racing
//! agree), so a node restored from the bucket alone answers with the same id.

use std::path::Path;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::object_store::{self, ObjectStoreExt, PutMode, PutOptions, PutPayload};

const FILE: &str = "kafka-cluster-id";
const KEY: &str = "catalog/kafka-cluster-id";

pub(super) async fn cluster_id(engine: &Engine, configured: Option<&str>) -> Result<String> {
    if let Some(id) = configured {
        return Ok(id.to_owned());
    }
    let file = engine.config().data_dir.join(FILE);
    if let Some(id) = read_file(&file)? {
        return Ok(id);
    }
    let store = engine.object_store();
    let key = object_store::path::Path::from(KEY);
    let remote = |op: &'static str| move |error| Error::Remote { op, key: KEY.to_owned(), error };
    let id = match store.get(&key).await {
        Ok(r) => parse(&r.bytes().await.map_err(remote("read cluster id"))?)?,
        Err(object_store::Error::NotFound { .. }) => {
            let fresh = generate();
            if engine.config().read_only {
                // A replica writes nothing to the bucket; the writer will create the id.
                tracing::warn!(cluster_id = %fresh, "the bucket has no Kafka cluster id yet; using a temporary one");
                return Ok(fresh);
            }
            let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
            match store.put_opts(&key, PutPayload::from(fresh.clone().into_bytes()), opts).await {
                Ok(_) => fresh,
                // Another node created it first: use theirs.
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                    let r = store.get(&key).await.map_err(remote("read cluster id"))?;
                    parse(&r.bytes().await.map_err(remote("read cluster id"))?)?
                }
                Err(e) => return Err(remote("create cluster id")(e)),
            }
        }
        Err(e) => return Err(remote("read cluster id")(e)),
    };
    if !engine.config().read_only {
        write_file(&file, &id)?;
    }
    Ok(id)
}

fn parse(bytes: &[u8]) -> Result<String> {
    let id = std::str::from_utf8(bytes).map(str::trim).unwrap_or_default();
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Corrupt {
            path: KEY.into(),
            position: 0,
            reason: "the stored Kafka cluster id is not 1..=64 characters of [A-Za-z0-9_-]".into(),
        });
    }
    Ok(id.to_owned())
}

fn read_file(path: &Path) -> Result<Option<String>> {
    match std::fs::read(path) {
        Ok(b) => parse(&b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::Io { op: "read cluster id", path: path.to_owned(), error }),
    }
}

fn write_file(path: &Path, id: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |op| move |error| Error::Io { op, path: path.to_owned(), error };
    std::fs::write(&tmp, id).map_err(io("write cluster id"))?;
    std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io("fsync cluster id"))?;
    std::fs::rename(&tmp, path).map_err(io("rename cluster id"))
}

/// 22 characters of URL-safe base64 over 16 random bytes, as Kafka's cluster ids.
fn generate() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
