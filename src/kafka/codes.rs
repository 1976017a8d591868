//! tierlog's errors as Kafka error codes, and the count of every code answered.

use kafka_protocol::ResponseError as K;

use crate::error::BatchError;
use crate::error::Error;

/// The Kafka error for `e`, as a client should act on it: retriable codes for what passes
/// (storage, a partition this node does not write now), fatal ones for a bad request.
pub(super) fn of(e: &Error) -> K {
    match e {
        Error::InvalidBatch { reason, .. } => of_batch(reason),
        Error::UnknownTopic { .. } | Error::UnknownPartition { .. } => K::UnknownTopicOrPartition,
        Error::InvalidTopicName { .. } => K::InvalidTopicException,
        Error::TopicExists { .. } => K::TopicAlreadyExists,
        Error::OffsetOutOfRange { .. } => K::OffsetOutOfRange,
        Error::InvalidConfig { .. } => K::InvalidConfig,
        Error::OutOfOrderSequence { .. } => K::OutOfOrderSequenceNumber,
        Error::InvalidProducerEpoch { .. } => K::InvalidProducerEpoch,
        Error::PartitionUnavailable { .. } | Error::Fenced { .. } | Error::ReadOnly { .. } => K::NotLeaderOrFollower,
        Error::Corrupt { .. } | Error::CorruptBatch { .. } | Error::Io { .. } | Error::Closed { .. } => {
            K::KafkaStorageError
        }
        Error::Remote { .. } | Error::Conflict { .. } | Error::DataDirLocked { .. } => K::KafkaStorageError,
    }
}

/// The Kafka error for a batch the append path refused.
pub(super) fn of_batch(e: &BatchError) -> K {
    match e {
        BatchError::TooLarge { .. } => K::MessageTooLarge,
        BatchError::CrcMismatch { .. } | BatchError::TooShort { .. } | BatchError::LengthMismatch { .. } => {
            K::CorruptMessage
        }
        _ => K::InvalidRecord,
    }
}

/// Counts an error code answered by `api` (0 is not counted) and gives it back.
pub(super) fn count(api: &'static str, code: i16) -> i16 {
    if code != 0 {
        metrics::counter!(super::ERRORS, "api" => api, "code" => code.to_string()).increment(1);
    }
    code
}
