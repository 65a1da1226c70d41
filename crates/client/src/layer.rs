//! A tower layer that verifies the API key of every request through Keyward, with a
//! short local cache: a verification served from the cache costs a hash and a map
//! lookup, and is dropped as soon as Keyward announces a change of its key or owner.
//!
//! Correctness before speed:
//! - Nothing is cached unless the change stream (`GET /v0/changes`) is live: it is
//!   followed from its `ready` event; when it breaks, or says changes were `lost`, the
//!   whole cache is dropped and every request is verified by Keyward until it is back.
//! - Keys with rate limits or credits are never cached: each use must be charged.
//! - An entry lives at most `ttl`, and never past its key's expiry.
//!
//! The verdict of an admitted request is in its extensions as `Arc<Verification>`.

use crate::{Client, Verification};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

/// What the layer asks of a key, and how long it remembers answers.
#[derive(Clone, Debug)]
pub struct LayerOptions {
    /// A permission query every key must satisfy (`invoices.read AND invoices.write`).
    pub permissions: Option<String>,
    /// The longest an answer is reused without asking Keyward again.
    pub ttl: Duration,
    /// The most answers kept; beyond it, new ones are not cached.
    pub max_entries: usize,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            permissions: None,
            ttl: Duration::from_secs(30),
            max_entries: 10_000,
        }
    }
}

struct Entry {
    verdict: Arc<Verification>,
    until: Instant,
}

struct Shared {
    client: Client,
    options: LayerOptions,
    /// By SHA-256 of the presented key: the cache holds no secrets.
    cache: RwLock<HashMap<[u8; 32], Entry>>,
    /// Whether the change stream is live; nothing is cached while it is not.
    following: AtomicBool,
}

/// The layer. Make it inside a Tokio runtime: it starts following Keyward's changes.
#[derive(Clone)]
pub struct KeywardLayer {
    shared: Arc<Shared>,
}

impl KeywardLayer {
    /// `client` acts with a credential that may verify keys (`keyward.keys.verify`).
    pub fn new(client: Client, options: LayerOptions) -> KeywardLayer {
        let shared = Arc::new(Shared {
            client,
            options,
            cache: RwLock::new(HashMap::new()),
            following: AtomicBool::new(false),
        });
        tokio::spawn(follow_changes(Arc::downgrade(&shared)));
        KeywardLayer { shared }
    }

    /// Whether answers are being cached (the change stream is live).
    pub fn is_following(&self) -> bool {
        self.shared.following.load(Ordering::Acquire)
    }

    /// The cached answer for the key these headers present, if there is a fresh one:
    /// the whole cost of a cached verification.
    pub fn cached(&self, headers: &HeaderMap) -> Option<Arc<Verification>> {
        self.shared.cached(&digest(presented_key(headers)?))
    }

    /// Verifies the key these headers present: from the cache, or by asking Keyward.
    pub async fn verify(&self, headers: &HeaderMap) -> Result<Arc<Verification>, Response<String>> {
        let key =
            presented_key(headers).ok_or_else(|| refusal(StatusCode::UNAUTHORIZED, "MISSING"))?;
        let id = digest(key);
        if let Some(verdict) = self.shared.cached(&id) {
            return Ok(verdict);
        }
        let verdict = self
            .shared
            .client
            .verify_key(key, self.shared.options.permissions.as_deref())
            .await
            .map_err(|err| {
                tracing::warn!(%err, "Keyward did not verify a key");
                refusal(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE")
            })?;
        let verdict = Arc::new(verdict);
        self.shared.remember(id, &verdict);
        Ok(verdict)
    }
}

impl Shared {
    fn cached(&self, id: &[u8; 32]) -> Option<Arc<Verification>> {
        let cache = self.cache.read().expect("cache lock");
        let entry = cache.get(id)?;
        (entry.until > Instant::now()).then(|| entry.verdict.clone())
    }

    fn remember(&self, id: [u8; 32], verdict: &Arc<Verification>) {
        let charged = !verdict.ratelimits.is_empty()
            || verdict.credits.is_some()
            || matches!(verdict.code.as_str(), "RATE_LIMITED" | "USAGE_EXCEEDED");
        if charged || !self.following.load(Ordering::Acquire) {
            return;
        }
        let mut until = Instant::now() + self.options.ttl;
        if let Some(left) = verdict.expires_at.as_deref().and_then(time_left) {
            until = until.min(Instant::now() + left);
        }
        let mut cache = self.cache.write().expect("cache lock");
        // Checked again under the lock: a stream that broke meanwhile cleared the cache.
        if self.following.load(Ordering::Acquire)
            && (cache.len() < self.options.max_entries || cache.contains_key(&id))
        {
            cache.insert(
                id,
                Entry {
                    verdict: verdict.clone(),
                    until,
                },
            );
        }
    }

    fn forget(&self, matches: impl Fn(&Verification) -> bool) {
        self.cache
            .write()
            .expect("cache lock")
            .retain(|_, entry| !matches(&entry.verdict));
    }

    fn stop_caching(&self) {
        self.following.store(false, Ordering::Release);
        self.cache.write().expect("cache lock").clear();
    }
}

/// How long until an RFC 3339 time, or `None` if it cannot be read (then the `ttl`
/// alone bounds the entry) or is past (zero).
fn time_left(rfc3339: &str) -> Option<Duration> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let at: SystemTime = at.into();
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The key a request presents: `Authorization: Bearer|apikey <key>` or `X-API-Key`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let (scheme, key) = value.to_str().ok()?.trim().split_once(' ')?;
        let known = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("apikey");
        return Some(key.trim()).filter(|k| known && !k.is_empty());
    }
    let key = headers.get("x-api-key")?.to_str().ok()?.trim();
    (!key.is_empty()).then_some(key)
}

/// 429 for spent limits or credits, 403 for permissions or address, else 401.
fn refusal_status(verdict: &Verification) -> StatusCode {
    match verdict.code.as_str() {
        "RATE_LIMITED" | "USAGE_EXCEEDED" => StatusCode::TOO_MANY_REQUESTS,
        "INSUFFICIENT_PERMISSIONS" | "FORBIDDEN" => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    }
}

fn refusal(status: StatusCode, code: &str) -> Response<String> {
    let mut response = Response::new(format!(
        "{{\"error\":\"the API key was refused\",\"code\":\"{code}\"}}"
    ));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"api\""),
        );
    }
    response
}

/// Follows `GET /v0/changes` while the layer lives, reconnecting with back-off.
async fn follow_changes(shared: Weak<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(client) = shared.upgrade().map(|s| s.client.clone()) else {
            return;
        };
        let response = client
            .request(reqwest::Method::GET, "/v0/changes")
            .header(http::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(365 * 86_400))
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                backoff = Duration::from_millis(100);
                read_events(&shared, response).await;
            }
            Ok(response) => {
                tracing::warn!(status = %response.status(), "Keyward refused the change stream")
            }
            Err(err) => tracing::warn!(%err, "the change stream could not be opened"),
        }
        let Some(live) = shared.upgrade() else { return };
        live.stop_caching();
        drop(live);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Applies the stream's events until it ends, breaks or stays silent too long (the
/// server sends a keep-alive every 15 s).
async fn read_events(shared: &Weak<Shared>, response: reqwest::Response) {
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    loop {
        let chunk = match tokio::time::timeout(Duration::from_secs(45), bytes.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            _ => return,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let Some(shared) = shared.upgrade() else {
                return;
            };
            apply(&shared, &block);
        }
    }
}

fn apply(shared: &Shared, block: &str) {
    let mut event = "message";
    let mut data = "";
    for line in block.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim();
        } else if let Some(value) = line.strip_prefix("data:") {
            data = value.trim();
        }
    }
    let id = |field: &str| -> Option<String> {
        serde_json::from_str::<serde_json::Value>(data).ok()?[field]
            .as_str()
            .map(str::to_string)
    };
    match event {
        "ready" => shared.following.store(true, Ordering::Release),
        "key" => match id("key_id") {
            Some(key) => shared.forget(|v| v.key_id.as_deref() == Some(key.as_str())),
            None => shared.stop_caching(),
        },
        "owner" => match id("owner_id") {
            Some(owner) => shared.forget(|v| v.owner_id.as_deref() == Some(owner.as_str())),
            None => shared.stop_caching(),
        },
        // Changes may have been missed: start again from an empty cache.
        "lost" => shared.stop_caching(),
        "resumed" => {
            shared.cache.write().expect("cache lock").clear();
            shared.following.store(true, Ordering::Release);
        }
        _ => {}
    }
}

impl<S> tower::Layer<S> for KeywardLayer {
    type Service = KeywardService<S>;

    fn layer(&self, inner: S) -> KeywardService<S> {
        KeywardService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`KeywardLayer`] makes: admits a request only with a valid key.
#[derive(Clone)]
pub struct KeywardService<S> {
    inner: S,
    layer: KeywardLayer,
}

impl<S, B, R> tower::Service<Request<B>> for KeywardService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service polled ready is the one that serves; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let verdict = match layer.verify(request.headers()).await {
                Ok(verdict) if verdict.valid => verdict,
                Ok(verdict) => {
                    return Ok(refusal(refusal_status(&verdict), &verdict.code).map(R::from))
                }
                Err(refused) => return Ok(refused.map(R::from)),
            };
            request.extensions_mut().insert(verdict);
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn keys_are_read_from_the_usual_places() {
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer kw_a")])),
            Some("kw_a")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "apikey  kw_b ")])),
            Some("kw_b")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "kw_c")])),
            Some("kw_c")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer")])),
            None
        );
        assert_eq!(presented_key(&headers(&[])), None);
    }

    #[test]
    fn expiry_bounds_an_entry() {
        assert_eq!(time_left("2000-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert!(time_left("2999-01-01T00:00:00Z").unwrap() > Duration::from_secs(86_400));
        assert_eq!(time_left("soon"), None);
    }
}
