//! The one retry policy of requests to the object store: which errors are worth retrying, and
//! exponential backoff with full jitter between attempts.
//!
//! Two layers retry, and they are kept from multiplying: object_store's S3 client retries
//! transport errors, 5xx and 429 inside one call (`object_store.max_retries`, its own backoff
//! from 100 ms to 5 s, at most 60 s per call); this layer retries a whole call (a PUT, a part, a
//! manifest CAS) only after the client gave up, so one call costs at most
//! `(max_retries + 1) * attempts` requests. Errors that no retry can fix (a failed precondition,
//! an existing object, bad credentials) end both at once. See docs/ARCHITECTURE.md.

use crate::clock::real_sleep;

/// Whether an object-store error is final: retrying the same request cannot succeed.
pub fn is_permanent(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::NotFound { .. }
    )
}

/// Backoff between attempts: full jitter under a cap that doubles from `base_ms` per attempt
/// (`attempt` counts from 1) up to `max_ms`. Returns the chosen wait in ms.
pub fn backoff_ms(base_ms: u64, max_ms: u64, attempt: u32) -> u64 {
    let cap = base_ms.saturating_mul(1u64 << attempt.min(20)).min(max_ms);
    rand::random_range(0..=cap)
}

/// Waits the backoff before attempt `attempt + 1` (real time: it waits for the store).
pub async fn pause(base_ms: u64, max_ms: u64, attempt: u32) -> u64 {
    let ms = backoff_ms(base_ms, max_ms, attempt);
    real_sleep(ms).await;
    ms
}

/// Runs `f` up to `attempts` times, pausing between attempts, until it succeeds or fails with a
/// permanent error. Returns the last error.
pub async fn retry<T, F, Fut>(
    attempts: u32,
    (base_ms, max_ms): (u64, u64),
    mut on_retry: impl FnMut(u32, &object_store::Error, u64),
    mut f: F,
) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = object_store::Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                attempt += 1;
                if is_permanent(&e) || attempt >= attempts {
                    return Err(e);
                }
                let ms = backoff_ms(base_ms, max_ms, attempt);
                on_retry(attempt, &e, ms);
                real_sleep(ms).await;
            }
        }
    }
}
