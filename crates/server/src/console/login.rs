//! Logging in and out of the console.

use super::layout::{csrf_field, notice};
use super::session::{
    clear_cookie, cookie, refuse_cross_site, same_token, set_cookie, Fields, SignedForm,
    LOGIN_COOKIE, SESSION_COOKIE,
};
use super::{respond, Page, Shown};
use crate::auth::origin;
use crate::error::Failure;
use crate::AppState;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keyward_core::Door;
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    expired: Option<String>,
    signed_out: Option<String>,
    password_changed: Option<String>,
}

/// How long a login form may sit in a browser before it must be reloaded.
const LOGIN_FORM_SECONDS: i64 = 3600;

pub async fn form_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let (error, news) = if query.expired.is_some() {
        (Some("Your session has ended. Log in again."), None)
    } else if query.password_changed.is_some() {
        (
            None,
            Some("Your password was changed. Log in with the new one."),
        )
    } else if query.signed_out.is_some() {
        (None, Some("You are logged out."))
    } else {
        (None, None)
    };
    form(&app, &headers, StatusCode::OK, "", error, news)
}

/// The login form with a fresh token, which the browser also keeps in a cookie.
fn form(
    app: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
    news: Option<&str>,
) -> Response {
    let mut token = [0u8; 32];
    keyward_core::random::fill(&mut token);
    let token = URL_SAFE_NO_PAD.encode(token);
    let body = html! {
        div.narrow {
            h1 { "Log in to Keyward" }
            (notice(error, news))
            form.stack method="post" action="/console/login" {
                (csrf_field(&token))
                label for="email" { "Email" }
                input #email type="email" name="email" value=(email) required autocomplete="username" autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" required autocomplete="current-password";
                details {
                    summary { "Several organisations?" }
                    label for="tenant" { "Tenant (only if your email has accounts in several)" }
                    input #tenant type="text" name="tenant" autocomplete="organization";
                }
                button type="submit" { "Log in" }
            }
        }
    };
    let mut response = respond(status, super::layout::page("Log in", None, body));
    set_cookie(
        &mut response,
        LOGIN_COOKIE,
        &token,
        LOGIN_FORM_SECONDS,
        headers,
        app,
    );
    response
}

pub async fn log_in(State(app): State<AppState>, request: Request) -> Page {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    refuse_cross_site(&headers)?;
    let fields = Fields::read(body).await?;
    let email = fields.text("email");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if !same_token(fields.text(super::session::CSRF_FIELD), expected) {
        let message = "This login form has expired. Enter your email and password again.";
        return Ok(form(
            &app,
            &headers,
            StatusCode::FORBIDDEN,
            email,
            Some(message),
            None,
        ));
    }
    let attempt = app
        .login(
            origin(&app, &headers, Door::Console),
            fields.optional("tenant"),
            email,
            fields.text("password"),
        )
        .await;
    let session = match attempt.map_err(Failure::from) {
        Ok(session) => session,
        Err(
            failure @ Failure::Throttled {
                retry_after_seconds,
            },
        ) => {
            let message = format!(
                "Too many failed logins. Try again in {}.",
                seconds_in_words(retry_after_seconds)
            );
            let response = form(
                &app,
                &headers,
                failure.status(),
                email,
                Some(&message),
                None,
            );
            return Ok(failure.with_retry_after(response));
        }
        Err(Failure::Unauthorized(_)) => {
            let message = "Wrong email or password.";
            return Ok(form(
                &app,
                &headers,
                StatusCode::UNAUTHORIZED,
                email,
                Some(message),
                None,
            ));
        }
        Err(failure @ Failure::Validation { .. }) => {
            let message = failure.message();
            return Ok(form(
                &app,
                &headers,
                failure.status(),
                email,
                Some(&message),
                None,
            ));
        }
        Err(other) => return Err(Shown::from(other)),
    };
    let lifetime = (session.expires_at - time::OffsetDateTime::now_utc()).whole_seconds();
    let mut response = Redirect::to("/console/keys").into_response();
    set_cookie(
        &mut response,
        SESSION_COOKIE,
        &session.token,
        lifetime.max(1),
        &headers,
        &app,
    );
    clear_cookie(&mut response, LOGIN_COOKIE, &headers, &app);
    Ok(response)
}

/// Ends every session of the user (as the API's logout does), then forgets the cookie.
pub async fn log_out(State(app): State<AppState>, headers: HeaderMap, form: SignedForm) -> Page {
    app.logout(&form.signed.caller).await?;
    let mut response = Redirect::to("/console/login?signed_out=1").into_response();
    clear_cookie(&mut response, SESSION_COOKIE, &headers, &app);
    Ok(response)
}

fn seconds_in_words(seconds: u32) -> String {
    match seconds {
        0..=1 => "a second".into(),
        2..=119 => format!("{seconds} seconds"),
        _ => format!("{} minutes", seconds.div_ceil(60)),
    }
}
