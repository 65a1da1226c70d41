//! The native API's contract, OpenAPI 3.1, generated from the handlers' annotations and
//! the wire types' derives (utoipa), so that it cannot drift from the code. Served at
//! `GET /v0/openapi.json`; committed as docs/openapi.json, which a test keeps equal.

use crate::error::ErrorBody;
use crate::AppState;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keyward",
        description = "API-key management and authentication: issue keys to people and programs, \
            scope them, verify them, limit and meter their use, rotate and revoke them, and see \
            who did what. Errors are `{message, error_code, details}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        crate::native::healthz,
        crate::native::readyz,
        crate::native::login,
        crate::native::logout,
        crate::native::me,
        crate::native::create_user,
        crate::native::list_users,
        crate::native::get_user,
        crate::native::update_user,
        crate::native::create_key,
        crate::native::list_keys,
        crate::native::get_key,
        crate::native::update_key,
        crate::native::revoke_key,
        crate::native::rotate_key,
        crate::native::change_credits,
        crate::native::verify_key,
        crate::changes::changes,
        crate::audit::list_events,
        crate::analytics::verifications,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Credentials),
    tags(
        (name = "keys", description = "Create, list, change, rotate and revoke keys"),
        (name = "verification", description = "Check a key presented to your service"),
        (name = "users", description = "People and their permissions"),
        (name = "sessions", description = "Logging in, and who a credential is"),
        (name = "audit", description = "Who did what"),
        (name = "analytics", description = "Verifications over time"),
        (name = "health", description = "For load balancers and orchestrators"),
    )
)]
pub struct ApiDoc;

/// The credentials every authenticated operation takes.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A session token from POST /v0/auth/login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (kw_...) as `Authorization: Bearer <key>`; \
                         `Authorization: apikey <key>` is accepted too",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "x_api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Refusals any operation may answer, all with [`ErrorBody`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// Malformed: a bad id, query string or header.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No credential, or one that is not valid.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The credential may not do this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such record (or one the caller may not see).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A name already taken.
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// `If-Match` names a version that is no longer current.
    #[response(status = 412)]
    PreconditionFailed(ErrorBody),
    /// A body over 1 MiB.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// A field's value is refused; `details.field` names it.
    #[response(status = 422)]
    ValidationError(ErrorBody),
    /// A rate limit, the credits, or the login throttle: see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody),
    /// The store does not answer, or the server is busy: retry.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The document as served: built once.
pub fn document() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    })
}

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/v0/openapi.json",
        get(|| async {
            ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
        }),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_names_every_native_route() {
        let document: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        for path in [
            "/v0/api_keys",
            "/v0/api_keys/{id}",
            "/v0/keys/verify",
            "/v0/audit",
        ] {
            assert!(paths.contains_key(path), "{path} is missing");
        }
    }
}
