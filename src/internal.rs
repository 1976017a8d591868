//! Topics tierlog keeps for itself (today `__consumer_offsets`, the group coordinator's
//! committed offsets): clients read them but never write, create or delete them.

use crate::error::{Error, Result};

/// The internal topic of committed consumer-group offsets (Kafka's name).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether `name` is a topic tierlog keeps for itself: clients read it but never write, create or
/// delete it, and listings leave it out.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC
}

pub(crate) fn refuse_internal(name: &str, reason: &'static str) -> Result<()> {
    if is_internal_topic(name) {
        return Err(Error::InvalidTopicName { name: name.to_owned(), reason });
    }
    Ok(())
}
