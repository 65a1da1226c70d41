//! The W3IPFS door (AIOZ's Pinata-style pinning service): key management under
//! `/api/apiKeys`, authentication by the `pinning_api_key` + `pinning_secret_key` pair
//! or a session's `Authorization: Bearer <JWT>`, and the pinning and NFT routes that
//! the scopes guard. Bodies are `{"data": ..., "status": "success"}`; errors are
//! `{"status": "error", "message": ...}` (see [`render`]).

mod data;
mod keys;
pub mod scopes;

use crate::door::{Also, DoorShape};
use crate::error::Failure;
use crate::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use keyward_core::Door;
use serde_json::json;

pub fn routes() -> Router<AppState> {
    let router = Router::new();
    let router = both_slashes(router, "/api/apiKeys", post(keys::create));
    let router = both_slashes(router, "/api/pinning", post(data::pin_file));
    let router = both_slashes(router, "/api/pinning/pins", get(data::list_pins));
    let router = both_slashes(router, "/api/nft", post(data::create_nft));
    let router = both_slashes(router, "/api/nft/nfts", get(data::list_nfts));
    router
        .route("/api/apiKeys/list", get(keys::list))
        .route("/api/apiKeys/{id}", delete(keys::delete))
        .route("/api/apiKeys/testAuthentication", get(keys::test))
        .route("/api/testAuthentication", get(keys::test))
        .route("/api/pinning/pinByHash", post(data::pin_by_hash))
        .route("/api/pinning/{pin_id}", get(data::get_pin))
        .route("/api/pinning/unpin/{pin_id}", delete(data::unpin))
        .route(
            "/api/nft/{nft_id}",
            get(data::get_nft).delete(data::unpin_nft),
        )
        .method_not_allowed_fallback(method_not_allowed)
}

/// W3IPFS documents paths with a trailing slash and clients call them without it too.
fn both_slashes(
    router: Router<AppState>,
    path: &str,
    handler: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, handler.clone())
        .route(&format!("{path}/"), handler)
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route".into(),
    )
}

/// A failure in W3IPFS's error shape.
#[derive(Debug)]
pub struct W3Error(pub Failure);

impl<E: Into<Failure>> From<E> for W3Error {
    fn from(err: E) -> Self {
        W3Error(err.into())
    }
}

impl IntoResponse for W3Error {
    fn into_response(self) -> Response {
        render(self.0)
    }
}

pub type W3Result<T> = Result<T, W3Error>;

/// Every failure's W3IPFS rendering: `{"status": "error", "message"}` with the status
/// code. W3IPFS documents no error body; this one mirrors its success envelope, and
/// validation failures are 400 (not the native 422) as W3IPFS answers them.
pub fn render(failure: Failure) -> Response {
    failure.log();
    let status = match &failure {
        Failure::Validation { .. } => StatusCode::BAD_REQUEST,
        other => other.status(),
    };
    failure.with_retry_after(error_response(status, failure.message()))
}

fn error_response(status: StatusCode, message: String) -> Response {
    let body = json!({ "status": "error", "message": message });
    (status, Json(body)).into_response()
}

/// The W3IPFS door: the key + secret pair when the request sends one, else a session
/// or key in `Authorization`; errors in W3IPFS's shape.
pub struct W3;

impl DoorShape for W3 {
    const DOOR: Door = Door::W3ipfs;
    type Error = W3Error;
    const NO_CREDENTIAL: &'static str = "authentication required: send the pinning_api_key and \
         pinning_secret_key headers, or Authorization: Bearer <JWT>";
    const ALSO: Also = Also::PairFirst;
}
