//! The web console: pages for people in a browser, served by the same binary under
//! `/console` (`/` leads there). Like every door it only parses and renders: each page
//! calls the application layer as the signed-in user, so a person sees and may do in
//! the console exactly what the API lets them, by the same checks.
//!
//! Pages are HTML rendered on the server (maud) with one stylesheet and one small
//! script embedded in the binary; docs/console.md says why.

mod assets;
mod audit;
mod chart;
mod keys;
mod layout;
mod login;
mod session;
mod users;

use crate::error::Failure;
use crate::AppState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/login", get(login::form_page).post(login::log_in))
        .route("/console/logout", post(login::log_out))
        .route("/console/keys", get(keys::list).post(keys::create))
        .route("/console/keys/new", get(keys::new))
        .route("/console/keys/{id}", get(keys::show).post(keys::edit))
        .route("/console/keys/{id}/rotate", post(keys::rotate))
        .route(
            "/console/keys/{id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke),
        )
        .route("/console/users", get(users::list).post(users::create))
        .route("/console/users/{id}", get(users::show).post(users::edit))
        .route("/console/profile", get(users::profile))
        .route("/console/profile/password", post(users::change_password))
        .route("/console/audit", get(audit::list))
        .route("/console/assets/{file}", get(assets::serve))
        .layer(axum::middleware::map_response(protect))
}

async fn home() -> Redirect {
    Redirect::to("/console/keys")
}

/// What every console answer carries: no script but our own file may run (no inline
/// script, so an injected one cannot), no other site may frame or receive a referrer,
/// and pages, which show keys, users and once a secret, are never cached.
async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page as an answer.
fn respond(status: StatusCode, page: Markup) -> Response {
    (status, Html(page.into_string())).into_response()
}

/// A refusal or failure, shown as a page with its status, what went wrong, and a way
/// back.
pub struct Shown(Failure);

impl From<Failure> for Shown {
    fn from(failure: Failure) -> Self {
        Shown(failure)
    }
}

impl From<keyward_app::AppError> for Shown {
    fn from(error: keyward_app::AppError) -> Self {
        Shown(error.into())
    }
}

impl IntoResponse for Shown {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let message = match &self.0 {
            Failure::Internal(_) => {
                "Something went wrong on the server; it has been logged.".into()
            }
            other => other.message(),
        };
        let body = html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            (layout::notice(Some(&message), None))
            p { a href="/console/keys" { "Back to keys" } }
        };
        let response = respond(status, layout::page("Error", None, body));
        self.0.with_retry_after(response)
    }
}

type Page = Result<Response, Shown>;
