//! The console's two static files, compiled into the binary: nothing is fetched from
//! elsewhere, so the console works on a machine with no network.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The version in the address lets browsers keep the files until the next release.
pub const STYLESHEET: &str = concat!("/console/assets/console.css?v=", env!("CARGO_PKG_VERSION"));
pub const SCRIPT: &str = concat!("/console/assets/console.js?v=", env!("CARGO_PKG_VERSION"));

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}
