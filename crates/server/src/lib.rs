//! Keyward's HTTP layer: the native API and one module per vendor dialect (the doors),
//! which parse requests into calls on the application layer (`keyward-app`) and render
//! its answers, and the server that runs them.

pub mod analytics;
pub mod audit;
pub mod auth;
pub mod body;
pub mod bulk;
pub mod changes;
pub mod config;
pub mod connection;
pub mod console;
pub mod dialects;
pub mod door;
pub mod error;
pub mod gateway;
pub mod limits_wire;
pub mod metrics;
pub mod native;
pub mod openapi;
pub mod server;
pub mod views;
pub mod watchdog;

pub use config::{ConnectionLimits, ServeConfig};
pub use keyward_app::Keyward;
pub use server::{create_tenant, serve, start, RunningServer};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use keyward_core::Door;
use std::sync::Arc;

pub type AppState = Arc<Keyward>;

/// Every door's routes over one application, each door's counted in the metrics
/// under its name; `/metrics` among them unless it has an address of its own.
pub fn router(
    app: AppState,
    metrics: Arc<metrics::Metrics>,
    gateway: Arc<gateway::GatewayPolicy>,
    with_metrics: bool,
) -> Router {
    let counted = |routes: Router<AppState>, door: Door| {
        routes.layer(metrics::CountRequests::new(metrics.clone(), door))
    };
    let native = native::routes()
        .merge(openapi::routes())
        .merge(changes::routes())
        .merge(audit::routes())
        .merge(analytics::routes());
    let mut router = Router::new()
        .merge(counted(native, Door::Native))
        .merge(counted(dialects::octopus::routes(), Door::Octopus))
        .merge(counted(dialects::w3ipfs::routes(), Door::W3ipfs))
        .merge(counted(dialects::macrometa::routes(), Door::Macrometa))
        .merge(counted(gateway::routes(gateway), Door::Gateway))
        .merge(counted(console::routes(), Door::Console));
    if with_metrics {
        router = router.route("/metrics", metrics::route(metrics.clone()));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(app)
}

/// A router with `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(app: AppState, metrics: Arc<metrics::Metrics>) -> Router {
    Router::new()
        .route("/metrics", metrics::route(metrics))
        .fallback(not_found)
        .with_state(app)
}

/// The request's span: method and path only. The default span records the whole URI,
/// and some vendors' clients put an API key in the query string (Octopus's `?apikey=`).
///
/// At DEBUG, like tower-http's own request and response events: an enabled span is
/// allocated and its fields formatted on every request, which at the default `info`
/// cost /healthz a fifth of its throughput. The events worth keeping at `info` (a key
/// created, revoked, rotated) name the key themselves.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        version = ?request.version(),
    )
}

async fn not_found() -> error::ApiError {
    error::ApiError(error::Failure::NoSuch("route".into()))
}

async fn method_not_allowed() -> impl IntoResponse {
    let body = serde_json::json!({
        "message": "method not allowed on this route",
        "error_code": "MethodNotAllowed",
        "details": null,
    });
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body))
}

/// A panic is a bug; the client still gets a well-formed answer and the node lives on.
fn panic_response(_: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    tracing::error!("a request handler panicked");
    error::ApiError(error::Failure::Internal("panic".into())).into_response()
}

#[cfg(test)]
mod tests {
    use super::request_span;
    use tracing_subscriber::{fmt, prelude::*, EnvFilter};

    fn span_enabled_at(filter: &str) -> bool {
        let subscriber = tracing_subscriber::registry()
            .with(fmt::layer().with_writer(std::io::sink))
            .with(EnvFilter::new(filter));
        tracing::subscriber::with_default(subscriber, || {
            let request = axum::http::Request::get("/healthz").body(()).unwrap();
            !request_span(&request).is_disabled()
        })
    }

    #[test]
    fn the_request_span_costs_nothing_at_the_default_level() {
        assert!(
            !span_enabled_at("info"),
            "the per-request span is on at info"
        );
        assert!(!span_enabled_at("warn"));
        assert!(
            span_enabled_at("debug"),
            "KEYWARD_LOG=debug must still show requests"
        );
    }
}
