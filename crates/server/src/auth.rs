//! Who is calling: the one place that reads credentials from a request.
//!
//! Accepted everywhere: `Authorization: Bearer <jwt or key>`, `Authorization: apikey
//! <key>` (any case), `X-API-Key: <key>`, `X-Octopus-ApiKey: <key>`. Every door asks
//! [`caller`], which reads them ([`credential_from_headers`]) and remembers a key in
//! `Authorization` on the connection. Doors whose vendor also takes a key in the query
//! string (Octopus's `?apikey=`) fall back to [`credential_from_query`]; the W3IPFS door
//! reads its key + secret pair ([`pair_from_headers`]) before anything else.

use crate::connection;
use crate::error::Failure;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, Uri};
use keyward_app::sessions::looks_like_jwt;
use keyward_app::{Caller, Credential, Keyward, Origin, Verdict};
use keyward_core::Door;
use keyward_core::Principal;
use std::borrow::Cow;
use std::net::IpAddr;

/// The credential a request carries, if any. A header that is present but unreadable
/// is an error, not "no credential".
pub fn credential_from_headers(headers: &HeaderMap) -> Result<Option<Credential<'_>>, Failure> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let text = value.to_str().map_err(|_| {
            Failure::Unauthorized("the Authorization header is not readable text".into())
        })?;
        return parse_authorization(text).map(Some);
    }
    for name in ["X-API-Key", "X-Octopus-ApiKey"] {
        if let Some(key) = key_header(headers, name)? {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// A header that carries a bare key. Blank counts as absent: Octopus's npm client sends
/// an empty `X-Octopus-ApiKey` when it has no key.
fn key_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<Credential<'a>>, Failure> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Failure::Unauthorized(format!("the {name} header is not readable text")))?;
    let key = text.trim();
    Ok((!key.is_empty()).then_some(Credential::Key(Cow::Borrowed(key))))
}

/// A key in the query string as `apikey=` (any case, so Octopus's `ApiKey=` too) or
/// `api-key=`. Only for doors whose vendor documents it: a URL ends up in more logs
/// than a header does.
pub fn credential_from_query(uri: &Uri) -> Option<Credential<'static>> {
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| {
            name.eq_ignore_ascii_case("apikey") || name.eq_ignore_ascii_case("api-key")
        })
        .map(|(_, value)| value.trim().to_string())
        .filter(|key| !key.is_empty())
        .map(|key| Credential::Key(Cow::Owned(key)))
}

/// The header names of a key + secret pair: W3IPFS's, then the hyphenated spellings
/// that some toolkits send (and that proxies dropping `_` headers let through).
const PAIR_KEY_HEADERS: [&str; 2] = ["pinning_api_key", "pinning-api-key"];
const PAIR_SECRET_HEADERS: [&str; 2] = ["pinning_secret_key", "pinning-secret-key"];

/// A key + secret pair (`pinning_api_key` + `pinning_secret_key`), if the request sends
/// one. Both halves are required: one without the other is refused, not ignored.
pub fn pair_from_headers(headers: &HeaderMap) -> Result<Option<Credential<'_>>, Failure> {
    let public_id = first_header(headers, &PAIR_KEY_HEADERS)?;
    let secret = first_header(headers, &PAIR_SECRET_HEADERS)?;
    match (public_id, secret) {
        (None, None) => Ok(None),
        (Some(public_id), Some(secret)) => Ok(Some(Credential::Pair {
            public_id: Cow::Borrowed(public_id),
            secret: Cow::Borrowed(secret),
        })),
        (Some(_), None) => Err(Failure::Unauthorized(
            "pinning_api_key was sent without pinning_secret_key: send both headers".into(),
        )),
        (None, Some(_)) => Err(Failure::Unauthorized(
            "pinning_secret_key was sent without pinning_api_key: send both headers".into(),
        )),
    }
}

/// The trimmed value of the first of `names` that is present and not blank.
fn first_header<'a>(headers: &'a HeaderMap, names: &[&str]) -> Result<Option<&'a str>, Failure> {
    for name in names {
        let Some(value) = headers.get(*name) else {
            continue;
        };
        let text = value
            .to_str()
            .map_err(|_| Failure::Unauthorized(format!("the {name} header is not readable text")))?
            .trim();
        if !text.is_empty() {
            return Ok(Some(text));
        }
    }
    Ok(None)
}

/// Splits `Authorization: <scheme> <value>`; the scheme is case-insensitive. The text is
/// a header's, so ASCII (`HeaderValue::to_str`), and its whitespace is spaces and tabs:
/// this runs on every authenticated request, so it works on bytes.
pub fn parse_authorization(text: &str) -> Result<Credential<'_>, Failure> {
    let text = text.trim_ascii();
    let (scheme, value) = text
        .bytes()
        .position(|b| b == b' ' || b == b'\t')
        .map(|at| text.split_at(at))
        .ok_or_else(|| {
            Failure::Unauthorized("the Authorization header needs a scheme and a credential".into())
        })?;
    let value = value.trim_ascii_start();
    if value.is_empty() {
        return Err(Failure::Unauthorized(
            "the Authorization header has no credential".into(),
        ));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(if looks_like_jwt(value) {
            Credential::Session(Cow::Borrowed(value))
        } else {
            Credential::Key(Cow::Borrowed(value))
        })
    } else if scheme.eq_ignore_ascii_case("apikey") {
        Ok(Credential::Key(Cow::Borrowed(value)))
    } else {
        Err(Failure::Unauthorized(format!(
            "unsupported Authorization scheme '{scheme}': use Bearer or apikey"
        )))
    }
}

/// Who the request's headers say is calling (see [`credential_from_headers`]); `None`
/// when they carry no credential. A key in `Authorization` goes through the
/// connection's memory: the same header as the connection's last request, with nothing
/// invalidated since, skips parsing, hashing and the cache (`connection.rs`).
pub async fn caller(app: &Keyward, headers: &HeaderMap) -> Result<Option<Principal>, Failure> {
    let client = || client_address(app, headers);
    let authorization = headers.get(AUTHORIZATION);
    if let Some(verdict) =
        authorization.and_then(|h| connection::recall(app.verifier(), h.as_bytes(), &client))
    {
        return admitted(app, &verdict).await;
    }
    let generation = app.verifier().generation();
    let Some(credential) = credential_from_headers(headers)? else {
        return Ok(None);
    };
    // A header that is present is where the credential came from.
    let remembered_as = authorization.and_then(|h| h.to_str().ok());
    match (credential, remembered_as) {
        (Credential::Key(key), Some(header)) => {
            let verdict = app.verify_credential(&key, &client).await?;
            connection::remember(app.verifier(), header, &verdict, generation);
            admitted(app, &verdict).await
        }
        // Sessions, query keys and pairs: boxed, so that the hot path's future stays small.
        (credential, _) => Box::pin(app.authenticate(credential, &client))
            .await
            .map(Some)
            .map_err(Into::into),
    }
}

/// The principal of a key's verdict once its limits are charged; a key without limits
/// (the common case) is not charged at all, and the call stays off the hot path.
async fn admitted(app: &Keyward, verdict: &Verdict) -> Result<Option<Principal>, Failure> {
    if let Some(admitted) = app.admit_unlimited(verdict) {
        return admitted.map(Some).map_err(Into::into);
    }
    Box::pin(app.admit_key(verdict))
        .await
        .map(Some)
        .map_err(Into::into)
}

/// Where the request came from: the connection's peer, or the client a trusted proxy
/// names in `X-Forwarded-For`.
pub fn client_address(app: &Keyward, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = connection::peer_ip();
    // Every authenticated request asks: without trusted proxies, skip the header.
    if !app.trusts_proxies() {
        return peer;
    }
    let forwarded = headers.get("x-forwarded-for").and_then(|h| h.to_str().ok());
    app.client_address(peer, forwarded)
}

/// The request's caller through `door`, from where the request came.
pub fn through(app: &Keyward, headers: &HeaderMap, door: Door, principal: Principal) -> Caller {
    Caller {
        principal,
        door,
        remote_ip: client_address(app, headers),
    }
}

/// An unauthenticated request (a login) through `door`.
pub fn origin(app: &Keyward, headers: &HeaderMap, door: Door) -> Origin {
    Origin {
        door,
        remote_ip: client_address(app, headers),
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

    fn query_key(uri: &str) -> Option<String> {
        match credential_from_query(&uri.parse().unwrap()) {
            Some(Credential::Key(key)) => Some(key.into_owned()),
            Some(Credential::Session(_) | Credential::Pair { .. }) => {
                panic!("a query key is only ever a key")
            }
            None => None,
        }
    }

    #[test]
    fn query_keys() {
        assert_eq!(
            query_key("/api/users/me?apikey=API-X").as_deref(),
            Some("API-X")
        );
        assert_eq!(
            query_key("/api?skip=0&ApiKey=API-Y").as_deref(),
            Some("API-Y")
        );
        assert_eq!(query_key("/api?api-key=API%2DZ").as_deref(), Some("API-Z"));
        assert_eq!(query_key("/api?apikey="), None);
        assert_eq!(query_key("/api?key=API-X"), None);
        assert_eq!(query_key("/api"), None);
    }

    #[test]
    fn blank_octopus_header_is_no_credential() {
        let mut headers = HeaderMap::new();
        headers.insert("x-octopus-apikey", "".parse().unwrap());
        assert!(matches!(credential_from_headers(&headers), Ok(None)));
        headers.insert("x-octopus-apikey", " API-K ".parse().unwrap());
        assert!(matches!(
            credential_from_headers(&headers),
            Ok(Some(Credential::Key(k))) if k == "API-K"
        ));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn pairs_need_both_halves() {
        let both = headers(&[("pinning_api_key", "abc"), ("pinning_secret_key", " s ")]);
        assert!(matches!(
            pair_from_headers(&both),
            Ok(Some(Credential::Pair { public_id, secret })) if public_id == "abc" && secret == "s"
        ));
        let hyphens = headers(&[("pinning-api-key", "abc"), ("pinning-secret-key", "s")]);
        assert!(matches!(
            pair_from_headers(&hyphens),
            Ok(Some(Credential::Pair { .. }))
        ));
        let half = headers(&[("pinning_api_key", "abc")]);
        let err = pair_from_headers(&half)
            .err()
            .expect("a half pair is refused");
        assert!(err.message().contains("pinning_secret_key"), "{err:?}");
        let other_half = headers(&[("pinning_secret_key", "s"), ("pinning_api_key", "  ")]);
        let err = pair_from_headers(&other_half).err().expect("refused");
        assert!(err.message().contains("pinning_api_key"), "{err:?}");
        assert!(matches!(pair_from_headers(&HeaderMap::new()), Ok(None)));
    }
}
