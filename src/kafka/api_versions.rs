//! ApiVersions: the APIs and version ranges this broker serves (and nothing it does not).

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use super::dispatch::{Ctx, Reply, SUPPORTED};

fn versions() -> Vec<ApiVersion> {
    let mut keys: Vec<ApiVersion> = SUPPORTED
        .iter()
        .map(|&(k, lo, hi)| ApiVersion::default().with_api_key(k as i16).with_min_version(lo).with_max_version(hi))
        .collect();
    keys.sort_by_key(|v| v.api_key);
    keys
}

pub(super) fn handle(ctx: Ctx) -> Reply {
    let resp = ApiVersionsResponse::default().with_api_keys(versions());
    ctx.respond(&resp)
}

/// The v0 answer to a version this broker does not know.
pub(super) fn unsupported() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(kafka_protocol::ResponseError::UnsupportedVersion.code())
        .with_api_keys(versions())
}
