//! Who may write a partition: the decision a node makes when it opens a partition that it has a
//! local log of, before it takes the partition over in the bucket.
//!
//! The bucket's manifest is the history of record, and its head names the writer that holds the
//! partition: `<node id>/<pid>@<data dir>`, where the node id is a random id kept in the data dir
//! (see [`node_id`]). When a node opens a partition it compares the head's writer with itself:
//!
//! - the head names this node: nobody wrote since, this node's log continues the bucket's;
//! - the head names another node: another writer took the partition over meanwhile, and from the
//!   offset where this node's upload stopped the bucket may hold other records than this node's
//!   disk. Taking the partition back silently would serve, and acknowledge, a second history. So
//!   the node refuses the partition (its bucket history stays readable) unless it is told to take
//!   it back, and then it drops its local log and continues from the bucket's end.
//!
//! Whatever the writer, a local log that ends before the bucket's log (a lost local tail) is cut
//! back to the bucket's end too, and a local log that starts after it (a gap nothing can fill)
//! is refused.

use std::path::Path;

use super::manifest::Head;
use crate::error::{Error, Result};
use crate::local::fs::StdFs;
use crate::local::segment::{sync_dir, write_durable};

/// The file in a data dir that holds its node id.
pub const NODE_ID_FILE: &str = "node-id";

/// The data dir's node id (16 hex digits), created durably on first use. It outlives restarts and
/// changes only with a new data dir.
pub fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() == 16 && text.trim().chars().all(|c| c.is_ascii_hexdigit()) => {
            return Ok(text.trim().to_owned());
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "node id file is malformed; writing a new node id");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("read node id", &path)(e)),
    }
    let id = format!("{:016x}", rand::random::<u64>());
    write_durable(&StdFs, &path, format!("{id}\n").as_bytes())?;
    sync_dir(&StdFs, data_dir)?;
    Ok(id)
}

/// The writer name a node puts in the heads it takes over.
pub fn writer_name(node_id: &str, data_dir: &Path) -> String {
    format!("{node_id}/{}@{}", std::process::id(), data_dir.display())
}

/// `(node id, data dir)` of a writer name; the node id is `None` in names written before node ids
/// (`<pid>@<data dir>`).
fn parse_writer(writer: &str) -> (Option<&str>, Option<&str>) {
    let (who, dir) = match writer.split_once('@') {
        Some((w, d)) => (w, Some(d)),
        None => (writer, None),
    };
    (who.split_once('/').map(|(node, _)| node), dir)
}

/// What a node may do with its local log of a partition, given the bucket's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The local log continues the bucket's: take the partition over and append.
    Continue,
    /// Drop the local log and continue, empty, at the bucket's end (`next_offset`): why.
    Reset { next_offset: i64, reason: String },
    /// Do not write this partition: why, and what to do about it.
    Refuse { reason: String },
}

/// The facts [`decide`] weighs.
#[derive(Debug, Clone)]
pub struct LocalLog<'a> {
    /// `<topic>-<partition>`.
    pub name: &'a str,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// This node's writer name ([`writer_name`]).
    pub writer: &'a str,
    /// The local log was just created for a restore from the bucket: taking over is what the
    /// operator asked for.
    pub restoring: bool,
    /// The operator allows taking the partition back from a newer writer (`take_over`).
    pub take_over: bool,
}

/// Decides what the node may do with its local log of a partition whose bucket head is `head`.
pub fn decide(local: &LocalLog<'_>, head: &Head) -> Ownership {
    if head.epoch == 0 {
        // The bucket has never had a writer of this partition.
        return Ownership::Continue;
    }
    let (their_node, their_dir) = parse_writer(&head.writer);
    let (our_node, our_dir) = parse_writer(local.writer);
    let ours = match their_node {
        Some(node) => Some(node) == our_node,
        // Written before node ids: the head names the data dir of its writer.
        None => their_dir.is_some() && their_dir == our_dir,
    };
    if !ours && !local.restoring {
        let reason = format!(
            "{} was taken over in the bucket by writer {:?} (epoch {}) after this node ({}) held it; from the \
             offset where this node's uploads stopped the bucket may hold other records than this node's local \
             log [{}, {})",
            local.name, head.writer, head.epoch, local.writer, local.log_start_offset, local.log_end_offset
        );
        if !local.take_over {
            return Ownership::Refuse {
                reason: format!(
                    "{reason}. Its bucket history stays readable here. To write it from this node, restore into an \
                     empty data dir (`tierlog restore`), or set `take_over = true` (`--take-over`) to drop this \
                     node's local copy and continue from the bucket's end"
                ),
            };
        }
        return Ownership::Reset {
            next_offset: head.next_offset,
            reason: format!("{reason}; take_over is set: the local log is dropped"),
        };
    }
    if local.log_end_offset < head.next_offset {
        return Ownership::Reset {
            next_offset: head.next_offset,
            reason: format!(
                "the local log of {} ends at {} but the bucket holds it up to {}: appending here would reuse \
                 offsets the bucket holds; the local log is dropped and continues from the bucket's end",
                local.name, local.log_end_offset, head.next_offset
            ),
        };
    }
    if !head.is_empty() && local.log_start_offset > head.next_offset {
        return Ownership::Refuse {
            reason: format!(
                "the local log of {} starts at {} but the bucket's ends at {}: offsets [{}, {}) are nowhere. Check \
                 that this node points at the right bucket, or restore into an empty data dir",
                local.name, local.log_start_offset, head.next_offset, head.next_offset, local.log_start_offset
            ),
        };
    }
    Ownership::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(epoch: u64, writer: &str, next: i64) -> Head {
        let mut h = Head::empty("t", 0);
        h.epoch = epoch;
        h.writer = writer.to_owned();
        h.next_offset = next;
        h
    }

    fn local(start: i64, end: i64) -> LocalLog<'static> {
        LocalLog {
            name: "t-0",
            log_start_offset: start,
            log_end_offset: end,
            writer: "aaaa/1@/data",
            restoring: false,
            take_over: false,
        }
    }

    #[test]
    fn node_ids_are_kept() {
        let d = tempfile::tempdir().unwrap();
        let id = node_id(d.path()).unwrap();
        assert_eq!(id.len(), 16);
        assert_eq!(node_id(d.path()).unwrap(), id);
        std::fs::write(d.path().join(NODE_ID_FILE), "garbage").unwrap();
        assert_ne!(node_id(d.path()).unwrap(), id);
    }

    #[test]
    fn decisions() {
        // No writer yet.
        assert_eq!(decide(&local(0, 10), &Head::empty("t", 0)), Ownership::Continue);
        // The same node (another pid), or a legacy head of the same data dir, is ours.
        assert_eq!(decide(&local(0, 10), &head(3, "aaaa/99@/elsewhere", 0)), Ownership::Continue);
        assert_eq!(decide(&local(0, 10), &head(3, "99@/data", 0)), Ownership::Continue);
        // Another node, or a legacy head of another dir, is not.
        for other in ["bbbb/1@/data", "99@/other"] {
            let refused = decide(&local(0, 10), &head(4, other, 5));
            assert!(matches!(&refused, Ownership::Refuse { reason } if reason.contains("take_over")), "{refused:?}");
        }
        let l = LocalLog { take_over: true, ..local(0, 10) };
        assert!(matches!(decide(&l, &head(4, "bbbb/1@/data", 5)), Ownership::Reset { next_offset: 5, .. }));
        let l = LocalLog { restoring: true, ..local(5, 5) };
        assert_eq!(decide(&l, &head(4, "bbbb/1@/data", 5)), Ownership::Continue);
        // Ours, but the local log is behind the bucket, or starts after a gap.
        assert!(matches!(decide(&local(0, 4), &head(3, "aaaa/2@/data", 9)), Ownership::Reset { next_offset: 9, .. }));
        let mut h = head(3, "aaaa/2@/data", 9);
        h.totals.segments = 1;
        assert!(matches!(decide(&local(12, 20), &h), Ownership::Refuse { .. }));
        assert_eq!(decide(&local(3, 20), &h), Ownership::Continue);
    }
}
