//! Request bodies: JSON whatever the `Content-Type` (several vendors' clients send none),
//! bounded in size, with the parser's own reason on failure.

use crate::error::Failure;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// The largest body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Failure::InvalidJson(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| Failure::InvalidJson(format!("invalid JSON: {e}")))
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read_body(request: Request) -> Result<Bytes, Failure> {
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|_| Failure::PayloadTooLarge)
}

/// A JSON body for the native door; dialects use [`read_body`] and [`parse_json`] and
/// render failures in their own shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = crate::error::ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}
