//! Topic names become path and object-key components, so they follow Kafka's rule exactly:
//! `[a-zA-Z0-9._-]`, 1..=249 characters, and neither `.` nor `..`.

use crate::error::{Error, Result};

/// The longest topic name Kafka (and so tierlog) accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name; the error says which rule it broke.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let fail = |reason| Err(Error::InvalidTopicName { name: name.to_owned(), reason });
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return fail("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return fail("`.` and `..` are not allowed");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return fail("only ASCII letters, digits, `.`, `_` and `-` are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rule() {
        for ok in ["orders", "a", "a.b_c-d", "A1", &"x".repeat(249), "..."] {
            assert!(validate_topic_name(ok).is_ok(), "{ok:?} should be valid");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a b", "é", &"x".repeat(250), "a\0"] {
            assert!(
                matches!(validate_topic_name(bad), Err(Error::InvalidTopicName { .. })),
                "{bad:?} should be rejected"
            );
        }
    }
}
