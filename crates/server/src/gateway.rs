//! The forward-auth door: `/v0/forward-auth`, the authentication step of the reverse
//! proxies people run (nginx `auth_request`, Caddy `forward_auth`, Traefik
//! `ForwardAuth`). It reads which request the proxy is asking about from the proxy's
//! headers, picks the policy's rule for it, finds the key where the rule says, and
//! answers from the same verification path as every door: `200` with identity headers
//! for the proxy to copy upstream, `401`, `403` or `429`, each with a small JSON body.
//! Configurations for each proxy are in docs/gateway/.

use crate::auth::client_address;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Json, Router};
use keyward_app::limiter::{Charged, RateState};
use keyward_core::gateway::{Identity, KeySource, Policy, Rule};
use keyward_core::{Query, VerifyCode};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The longest original URI accepted (nginx's default large buffer is 8 KiB).
const MAX_URI_BYTES: usize = 8 * 1024;

/// The policy in force, replaced whole on a reload.
pub struct GatewayPolicy {
    current: RwLock<Arc<Policy>>,
    /// The file it is read from (`--gateway-config`), if any.
    pub path: Option<PathBuf>,
}

impl GatewayPolicy {
    /// The policy of `path`, or the default one (a key required, from `Authorization`
    /// or `X-API-Key`, auto-applied limits, one credit) without a file.
    pub fn load(path: Option<PathBuf>) -> anyhow::Result<Self> {
        let policy = match &path {
            Some(path) => read_policy(path)?,
            None => Policy::default(),
        };
        Ok(GatewayPolicy {
            current: RwLock::new(Arc::new(policy)),
            path,
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.read().expect("policy lock").clone()
    }

    /// Reads the file again: the new policy replaces the old one only if it parses.
    pub fn reload(&self) -> anyhow::Result<usize> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let policy = read_policy(path)?;
        let routes = policy.routes();
        *self.current.write().expect("policy lock") = Arc::new(policy);
        Ok(routes)
    }
}

fn read_policy(path: &std::path::Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn routes(policy: Arc<GatewayPolicy>) -> Router<AppState> {
    Router::new()
        .route("/v0/forward-auth", any(forward_auth))
        .layer(Extension(policy))
}

/// The request the proxy asks about.
struct Original<'a> {
    method: &'a str,
    uri: &'a str,
    host: Option<&'a str>,
}

impl<'a> Original<'a> {
    /// nginx's `X-Original-*` (set by its configuration), else the `X-Forwarded-*`
    /// that Caddy and Traefik send.
    fn from_headers(headers: &'a HeaderMap) -> Result<Self, Answer> {
        let uri = first(headers, &["x-original-uri", "x-forwarded-uri"])?.ok_or_else(|| {
            Answer::bad_request(
                "forward-auth needs the original request: X-Original-URI and \
                 X-Original-Method (nginx) or X-Forwarded-Uri and X-Forwarded-Method \
                 (Caddy, Traefik)",
            )
        })?;
        if uri.len() > MAX_URI_BYTES {
            return Err(Answer::new(
                StatusCode::URI_TOO_LONG,
                "URI_TOO_LONG",
                format!("the original URI is longer than {MAX_URI_BYTES} bytes"),
            ));
        }
        if !uri.starts_with('/') {
            return Err(Answer::bad_request("the original URI must start with /"));
        }
        let method =
            first(headers, &["x-original-method", "x-forwarded-method"])?.ok_or_else(|| {
                Answer::bad_request(
                    "forward-auth needs the original method: X-Original-Method (nginx) or \
                     X-Forwarded-Method (Caddy, Traefik)",
                )
            })?;
        let host = first(headers, &["x-original-host", "x-forwarded-host", "host"])?;
        Ok(Original { method, uri, host })
    }

    fn path(&self) -> &str {
        self.uri.split(['?', '#']).next().unwrap_or(self.uri)
    }

    fn query(&self) -> Option<&str> {
        let rest = self.uri.split_once('?')?.1;
        Some(rest.split('#').next().unwrap_or(rest))
    }
}

/// The first of `names` present, as text.
fn first<'a>(headers: &'a HeaderMap, names: &[&str]) -> Result<Option<&'a str>, Answer> {
    for name in names {
        if let Some(value) = headers.get(*name) {
            let text = value
                .to_str()
                .map_err(|_| Answer::bad_request(format!("the {name} header is not text")))?;
            return Ok(Some(text.trim()));
        }
    }
    Ok(None)
}

/// Where the rule says the key is, in its order; `None` when it is nowhere.
fn presented_key<'a>(
    rule: &Rule,
    headers: &'a HeaderMap,
    original: &Original<'a>,
) -> Result<Option<std::borrow::Cow<'a, str>>, Answer> {
    for source in &rule.key_from {
        let found = match source {
            KeySource::Authorization => match first(headers, &["authorization"])? {
                Some(text) => Some(bearer_or_apikey(text)?),
                None => None,
            },
            KeySource::Header(name) => first(headers, &[name.as_str()])?
                .filter(|v| !v.is_empty())
                .map(std::borrow::Cow::Borrowed),
            KeySource::Query(name) => original.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(n, _)| n == name.as_str())
                    .map(|(_, v)| std::borrow::Cow::<'a, str>::Owned(v.into_owned()))
                    .filter(|v| !v.is_empty())
            }),
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

fn bearer_or_apikey(text: &str) -> Result<std::borrow::Cow<'_, str>, Answer> {
    let (scheme, value) = text.split_once([' ', '\t']).ok_or_else(|| {
        Answer::unauthorized(
            "MALFORMED",
            "the Authorization header needs a scheme and a key",
        )
    })?;
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey")) {
        return Err(Answer::unauthorized(
            "MALFORMED",
            format!("unsupported Authorization scheme '{scheme}': use Bearer or apikey"),
        ));
    }
    Ok(std::borrow::Cow::Borrowed(value.trim()))
}

async fn forward_auth(
    State(app): State<AppState>,
    Extension(gateway): Extension<Arc<GatewayPolicy>>,
    headers: HeaderMap,
) -> Response {
    match decide(&app, &gateway, &headers).await {
        Ok(answer) | Err(answer) => answer.into_response(),
    }
}

async fn decide(
    app: &keyward_app::Keyward,
    gateway: &GatewayPolicy,
    headers: &HeaderMap,
) -> Result<Answer, Answer> {
    let original = Original::from_headers(headers)?;
    let policy = gateway.current();
    let rule = policy.rule_for(original.host, original.path(), original.method);
    let Some(key) = presented_key(rule, headers, &original)? else {
        if rule.key_required {
            return Err(Answer::unauthorized(
                "MISSING_KEY",
                "an API key is required",
            ));
        }
        return Ok(Answer::new(
            StatusCode::OK,
            "ANONYMOUS",
            "no key; this route allows that",
        )
        .with_header(
            HeaderName::from_static("x-keyward-anonymous"),
            HeaderValue::from_static("true"),
        ));
    };
    let asked = asked_permissions(rule, headers)?;
    let query = match (&rule.permissions, &asked) {
        (_, Some(asked)) => Some(asked),
        (Some(required), None) => Some(required),
        (None, None) => None,
    };
    let client = || client_address(app, headers);
    let (verdict, checked) = app
        .verify_forwarded(&key, query, &rule.ask, &client)
        .await
        .map_err(|e| Answer::from_app(e.into()))?;
    let code = checked.code;
    if !code.is_valid() {
        let refill = keyward_app::limits::refill_wait(&verdict, time::OffsetDateTime::now_utc());
        return Err(Answer::refused(code, checked.charged.as_ref(), refill));
    }
    let matched = verdict.matched().expect("a valid verdict has its key");
    let key = &matched.key;
    let mut answer = Answer::new(StatusCode::OK, "VALID", "the key is valid");
    for identity in &rule.identity_headers {
        let value = match identity {
            Identity::KeyId => key.id.to_string(),
            Identity::OwnerId => key.owner_id.to_string(),
            Identity::Tenant => key.tenant_id.to_string(),
            Identity::Permissions => key.grants.to_strings().join(","),
        };
        answer = answer.with_text(identity.header(), &value);
    }
    for field in &rule.metadata_headers {
        if let Some(value) = key.metadata.get(field) {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            answer = answer.with_text(&format!("x-keyward-meta-{}", field.to_lowercase()), &text);
        }
    }
    if let Some(charged) = &checked.charged {
        answer = answer.with_limits(charged, false);
    }
    Ok(answer)
}

/// The rule's permissions and those the proxy asks for with `X-Keyward-Permissions`
/// (where the rule allows it), both required; `None` when the proxy asks for none.
fn asked_permissions(rule: &Rule, headers: &HeaderMap) -> Result<Option<Query>, Answer> {
    if !rule.permissions_from_header {
        return Ok(None);
    }
    let Some(text) = first(headers, &["x-keyward-permissions"])? else {
        return Ok(None);
    };
    let combined = match &rule.permissions_text {
        Some(required) => format!("({required}) AND ({text})"),
        None => text.to_string(),
    };
    Query::parse(&combined).map(Some).map_err(|e| {
        Answer::bad_request(format!(
            "X-Keyward-Permissions '{text}' is not a permission query: {e}"
        ))
    })
}

/// An answer to the proxy: status, a small JSON body with the Keyward code, headers.
/// Refusals are `Err` on the way up, and the one `Ok` is a pass.
pub struct Answer {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Answer {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message).with_header(
            axum::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"keyward\""),
        )
    }

    /// A verification's refusal: 401 for a key that does not verify, 403 for one that
    /// may not do this (permissions, address), 429 for a spent limit or credits.
    fn refused(code: VerifyCode, charged: Option<&Charged>, refill_wait: Option<u64>) -> Self {
        let message = keyward_app::auth::refusal_message(code);
        match code {
            VerifyCode::Forbidden | VerifyCode::InsufficientPermissions => {
                Self::new(StatusCode::FORBIDDEN, code.as_str(), message)
            }
            VerifyCode::UsageExceeded => {
                let answer = Self::new(StatusCode::TOO_MANY_REQUESTS, code.as_str(), message);
                match refill_wait {
                    Some(seconds) => answer
                        .with_header(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds)),
                    None => answer,
                }
            }
            VerifyCode::RateLimited => {
                let answer = Self::new(StatusCode::TOO_MANY_REQUESTS, code.as_str(), message);
                match charged {
                    Some(charged) => answer.with_limits(charged, true),
                    None => answer,
                }
            }
            _ => Self::unauthorized(code.as_str(), message),
        }
    }

    fn from_app(failure: crate::error::Failure) -> Self {
        failure.log();
        let status = failure.status();
        Self::new(status, failure.native_code(), failure.message())
    }

    fn with_header(mut self, name: impl Into<HeaderName>, value: HeaderValue) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// A header of free text (ids, permissions, metadata); one a header cannot carry
    /// (control characters, non-ASCII) is left out rather than mangled.
    fn with_text(self, name: &str, text: &str) -> Self {
        match (HeaderName::try_from(name), HeaderValue::from_str(text)) {
            (Ok(name), Ok(value)) => self.with_header(name, value),
            _ => self,
        }
    }

    /// `RateLimit-Limit`, `-Remaining`, `-Reset` of the most spent limit, and (when
    /// refused) `Retry-After`.
    fn with_limits(self, charged: &Charged, refused: bool) -> Self {
        let binding = charged
            .rates
            .iter()
            .filter(|r| !refused || r.exceeded)
            .min_by_key(|r| r.remaining);
        let mut answer = self;
        if let Some(rate) = binding {
            answer = answer.with_rate(rate, refused);
        }
        answer
    }

    fn with_rate(mut self, rate: &RateState, refused: bool) -> Self {
        self.headers
            .extend(crate::error::rate_limit_headers(rate, refused));
        self
    }
}

impl IntoResponse for Answer {
    /// A pass has no body: nginx does not read the body of an `auth_request` answer,
    /// and an upstream connection whose answer had one cannot be kept alive, so every
    /// request would open a new connection to Keyward. Refusals carry the JSON that
    /// Caddy and Traefik show the client. Every answer names its code in a header.
    fn into_response(self) -> Response {
        let mut response = if self.status.is_success() {
            self.status.into_response()
        } else {
            let body = json!({"code": self.code, "message": self.message});
            (self.status, Json(body)).into_response()
        };
        if let Ok(code) = HeaderValue::from_str(self.code) {
            response.headers_mut().insert("x-keyward-code", code);
        }
        response.headers_mut().extend(self.headers);
        response.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        response
    }
}
