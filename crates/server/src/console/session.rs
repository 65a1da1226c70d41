//! Who is signed in to the console, and proof that a form came from the console.
//!
//! The session is the API's own login token (a JWT), kept in an `HttpOnly`,
//! `SameSite=Strict` cookie scoped to `/console`, so page scripts never see it and other
//! sites' pages cannot send it. Every form that changes something carries a CSRF token
//! derived from the session with the deployment's secret (`Keyward::session_proof`),
//! checked in constant time; the login form, which has no session yet, carries a random
//! token that must match a cookie set with the form.

use super::layout::Nav;
use super::Shown;
use crate::auth::{client_address, through};
use crate::body::read_body;
use crate::error::Failure;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keyward_app::{AppError, Caller, Credential, Keyward};
use keyward_core::Door;
use std::borrow::Cow;
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "kw_session";
pub const LOGIN_COOKIE: &str = "kw_login";
/// The form field every state-changing form carries.
pub const CSRF_FIELD: &str = "csrf";

/// A signed-in person: the caller every page acts as, and the token its forms carry.
pub struct Signed {
    pub caller: Caller,
    pub csrf: String,
}

impl Signed {
    pub fn nav(&self, section: &'static str) -> Nav<'_> {
        Nav {
            user: &self.caller.user,
            admin: self.caller.acts_as_admin(),
            csrf: &self.csrf,
            section,
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/console/login").into_response());
        };
        let client = || client_address(app, &parts.headers);
        let credential = Credential::Session(Cow::Borrowed(token));
        match app.authenticate(credential, &client).await {
            Ok(principal) => Ok(Signed {
                caller: through(app, &parts.headers, Door::Console, principal),
                csrf: csrf_token(app, token),
            }),
            // Expired, signed out elsewhere, password changed, user deactivated.
            Err(AppError::Unauthenticated(_)) => {
                let mut to_login = Redirect::to("/console/login?expired=1").into_response();
                clear_cookie(&mut to_login, SESSION_COOKIE, &parts.headers, app);
                Err(to_login)
            }
            Err(other) => Err(Shown::from(Failure::from(other)).into_response()),
        }
    }
}

/// A submitted form and the signed-in person who submitted it, with its CSRF token
/// checked: every POST handler of the console takes one, so none can forget.
pub struct SignedForm {
    pub signed: Signed,
    pub fields: Fields,
}

impl FromRequest<AppState> for SignedForm {
    type Rejection = Response;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        refuse_cross_site(&parts.headers).map_err(|f| Shown::from(f).into_response())?;
        let signed = Signed::from_request_parts(&mut parts, app).await?;
        let fields = Fields::read(body)
            .await
            .map_err(|f| Shown::from(f).into_response())?;
        if !same_token(fields.text(CSRF_FIELD), &signed.csrf) {
            return Err(Shown::from(csrf_refusal()).into_response());
        }
        Ok(SignedForm { signed, fields })
    }
}

pub fn csrf_refusal() -> Failure {
    Failure::Forbidden(
        "this form did not come from this console (its security token is missing or \
         wrong): reload the page and send it again"
            .into(),
    )
}

/// A browser says where a request comes from in `Origin` and `Sec-Fetch-Site`; a
/// request another site's page made is refused before anything else is read.
pub fn refuse_cross_site(headers: &HeaderMap) -> Result<(), Failure> {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(site, Some("cross-site" | "same-site")) {
        return Err(csrf_refusal());
    }
    // Pages sent with `Referrer-Policy: no-referrer` make browsers send `Origin: null`:
    // it says nothing, and the token decides.
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| *origin != "null");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) if origin_host(origin) != Some(host) => Err(csrf_refusal()),
        _ => Ok(()),
    }
}

fn origin_host(origin: &str) -> Option<&str> {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
}

pub fn csrf_token(app: &Keyward, session_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(app.session_proof(session_token))
}

pub fn same_token(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|text| text.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Sets a console cookie: only for `/console`, unreadable by scripts, never sent by
/// other sites, and `Secure` when the browser reached us over TLS through a trusted
/// proxy.
pub fn set_cookie(
    response: &mut Response,
    name: &str,
    value: &str,
    max_age_seconds: i64,
    headers: &HeaderMap,
    app: &Keyward,
) {
    let secure = if over_tls(headers, app) {
        "; Secure"
    } else {
        ""
    };
    let text = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

pub fn clear_cookie(response: &mut Response, name: &str, headers: &HeaderMap, app: &Keyward) {
    set_cookie(response, name, "", 0, headers, app);
}

/// Keyward serves plain HTTP; a browser is on TLS when a trusted proxy says so.
fn over_tls(headers: &HeaderMap, app: &Keyward) -> bool {
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok());
    proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
        && crate::connection::peer_ip().is_some_and(|peer| app.is_trusted_proxy(peer))
}

/// A form's fields (`application/x-www-form-urlencoded`), in order, repeated names kept
/// (a checkbox list).
#[derive(Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub async fn read(body: axum::body::Body) -> Result<Fields, Failure> {
        let bytes = read_body(body).await?;
        Ok(Fields::parse(&bytes))
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Fields {
        Fields(pairs)
    }

    pub fn parse(bytes: &[u8]) -> Fields {
        Fields(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of a field, trimmed; "" when absent.
    pub fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The value of a field, or `None` when absent or blank.
    pub fn optional(&self, name: &str) -> Option<&str> {
        Some(self.text(name)).filter(|t| !t.is_empty())
    }

    /// Every value of a repeated field, blanks left out.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "a=1; kw_session=tok.en.x".parse().unwrap());
        headers.append(header::COOKIE, "kw_login=abc".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok.en.x"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "kw"), None);
        headers.append(header::COOKIE, "empty=".parse().unwrap());
        assert_eq!(cookie(&headers, "empty"), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        assert!(refuse_cross_site(&headers(&[("host", "k:8080")])).is_ok());
        assert!(
            refuse_cross_site(&headers(&[("host", "k:8080"), ("origin", "http://k:8080")])).is_ok()
        );
        assert!(refuse_cross_site(&headers(&[
            ("host", "k:8080"),
            ("origin", "http://evil.example")
        ]))
        .is_err());
        assert!(refuse_cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(refuse_cross_site(&headers(&[("host", "k:8080"), ("origin", "null")])).is_ok());
        assert!(refuse_cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("ab", "abc"));
        assert!(!same_token("", ""));
        let fields = Fields::parse(b"p=a&p=+b+&p=&x=1&csrf=t%2Bk");
        assert_eq!(fields.all("p").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(fields.text(CSRF_FIELD), "t+k");
        assert!(fields.checked("x") && !fields.checked("y"));
    }
}
