//! Who is calling: the one place that reads credentials from a request.
//!
//! Accepted everywhere: `Authorization: Bearer <jwt or key>`, `Authorization: apikey
//! <key>` (any case), `X-API-Key: <key>`. Dialects add their vendor's own headers on top
//! of [`credential_from_headers`].

use crate::error::{ApiError, Failure};
use crate::jwt::looks_like_jwt;
use crate::service::Credential;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use keyward_core::Principal;

/// The credential a request carries, if any. A header that is present but unreadable
/// is an error, not "no credential".
pub fn credential_from_headers(headers: &HeaderMap) -> Result<Option<Credential>, Failure> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let text = value.to_str().map_err(|_| {
            Failure::Unauthorized("the Authorization header is not readable text".into())
        })?;
        return parse_authorization(text).map(Some);
    }
    if let Some(value) = headers.get("x-api-key") {
        let text = value.to_str().map_err(|_| {
            Failure::Unauthorized("the X-API-Key header is not readable text".into())
        })?;
        let key = text.trim();
        if !key.is_empty() {
            return Ok(Some(Credential::Key(key.to_string())));
        }
    }
    Ok(None)
}

/// Splits `Authorization: <scheme> <value>`; the scheme is case-insensitive.
pub fn parse_authorization(text: &str) -> Result<Credential, Failure> {
    let (scheme, value) = text.trim().split_once(char::is_whitespace).ok_or_else(|| {
        Failure::Unauthorized("the Authorization header needs a scheme and a credential".into())
    })?;
    let value = value.trim();
    if value.is_empty() {
        return Err(Failure::Unauthorized(
            "the Authorization header has no credential".into(),
        ));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(if looks_like_jwt(value) {
            Credential::Session(value.to_string())
        } else {
            Credential::Key(value.to_string())
        })
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Credential::Key(value.to_string()))
    } else {
        Err(Failure::Unauthorized(format!(
            "unsupported Authorization scheme '{scheme}': use Bearer or apikey"
        )))
    }
}

/// An authenticated caller of the native API.
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credential = credential_from_headers(&parts.headers)?.ok_or_else(|| {
            Failure::Unauthorized(
                "authentication required: send Authorization: Bearer <token or API key>".into(),
            )
        })?;
        Ok(Auth(state.authenticate(credential).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(matches!(
            parse_authorization("Bearer kw_x"),
            Ok(Credential::Key(_))
        ));
        assert!(matches!(
            parse_authorization("bearer eyJa.b.c"),
            Ok(Credential::Session(_))
        ));
        assert!(matches!(
            parse_authorization("APIKEY kw_x"),
            Ok(Credential::Key(_))
        ));
        assert!(parse_authorization("Basic abc").is_err());
        assert!(parse_authorization("Bearer").is_err());
        assert!(parse_authorization("Bearer    ").is_err());
    }
}
