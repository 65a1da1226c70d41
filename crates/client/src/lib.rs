//! A client for Keyward's native API ([`Client`]), and a tower layer
//! ([`layer::KeywardLayer`]) that verifies the API key of every request to your service
//! through Keyward, with a short local cache whose entries are dropped as soon as
//! Keyward announces a change of their key (`GET /v0/changes`).
//!
//! ```no_run
//! # async fn run() -> Result<(), keyward_client::Error> {
//! let keyward = keyward_client::Client::new("http://127.0.0.1:8080", Some("kw_...".into()));
//! let key = keyward.create_key(&serde_json::json!({"name": "billing", "permissions": ["invoices.read"]})).await?;
//! let verdict = keyward.verify_key(&key.api_key, Some("invoices.read")).await?;
//! assert!(verdict.valid);
//! # Ok(()) }
//! ```

pub mod layer;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

/// A refusal answered by Keyward (`{message, error_code, details}`), or a failure to
/// reach it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{status} {error_code}: {message}")]
    Refused {
        status: u16,
        error_code: String,
        message: String,
        details: Option<Value>,
        retry_after: Option<u64>,
    },
    #[error("Keyward could not be reached: {0}")]
    Transport(#[from] reqwest::Error),
}

impl Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Refused { status, .. } => Some(*status),
            Error::Transport(_) => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct RateLimit {
    pub name: String,
    pub limit: u64,
    pub duration_seconds: u64,
    #[serde(default)]
    pub auto_apply: Option<bool>,
}

/// A key as Keyward shows it (never its secret).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub start: String,
    pub owner_id: String,
    pub permissions: Vec<String>,
    pub metadata: Value,
    pub enabled: bool,
    /// active, disabled, expired or revoked.
    pub state: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    pub ip_allowlist: Vec<String>,
    pub credits: Option<Value>,
}

/// A key with its secret: shown once, by create and rotate.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IssuedKey {
    #[serde(flatten)]
    pub key: Key,
    pub api_key: String,
    pub previous_expires_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
}

/// A verification's answer. A refused key is `valid: false` with its `code`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Verification {
    pub valid: bool,
    /// VALID, NOT_FOUND, EXPIRED, REVOKED, INSUFFICIENT_PERMISSIONS, RATE_LIMITED, ...
    pub code: String,
    pub key_id: Option<String>,
    pub name: Option<String>,
    pub owner_id: Option<String>,
    pub permissions: Option<Vec<String>>,
    pub expires_at: Option<String>,
    pub metadata: Option<Value>,
    #[serde(default)]
    pub ratelimits: Vec<Value>,
    pub credits: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Session {
    pub token: String,
    pub expires_at: String,
}

/// The native API. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client acting with `token` (an API key or a session token).
    pub fn new(base_url: &str, token: Option<String>) -> Client {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a default HTTP client builds");
        Client {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            token,
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let bytes = response.bytes().await?;
        if status < 400 {
            return serde_json::from_slice(&bytes).map_err(|e| Error::Refused {
                status,
                error_code: "UnreadableAnswer".into(),
                message: e.to_string(),
                details: None,
                retry_after: None,
            });
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(Error::Refused {
            status,
            error_code: body["error_code"].as_str().unwrap_or("Error").to_string(),
            message: body["message"].as_str().unwrap_or_default().to_string(),
            details: Some(body["details"].clone()).filter(|d| !d.is_null()),
            retry_after,
        })
    }

    /// Logs in and returns a client acting with the session.
    pub async fn login(&self, email: &str, password: &str) -> Result<Client> {
        let session: Session = self
            .send(
                self.request(reqwest::Method::POST, "/v0/auth/login")
                    .json(&json!({"email": email, "password": password})),
            )
            .await?;
        Ok(Client {
            token: Some(session.token),
            ..self.clone()
        })
    }

    pub async fn me(&self) -> Result<Value> {
        self.send(self.request(reqwest::Method::GET, "/v0/me"))
            .await
    }

    /// Creates a key from the native request body (`name`, `permissions`, `ratelimits`,
    /// `credits`, ...); the answer's `api_key` is its secret, shown this once.
    pub async fn create_key(&self, body: &Value) -> Result<IssuedKey> {
        self.send(
            self.request(reqwest::Method::POST, "/v0/api_keys")
                .json(body),
        )
        .await
    }

    pub async fn list_keys(&self, query: &[(&str, &str)]) -> Result<Page<Key>> {
        self.send(
            self.request(reqwest::Method::GET, "/v0/api_keys")
                .query(query),
        )
        .await
    }

    pub async fn get_key(&self, id: &str) -> Result<Key> {
        self.send(self.request(reqwest::Method::GET, &format!("/v0/api_keys/{id}")))
            .await
    }

    pub async fn update_key(&self, id: &str, changes: &Value) -> Result<Key> {
        let path = format!("/v0/api_keys/{id}");
        self.send(self.request(reqwest::Method::PATCH, &path).json(changes))
            .await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<Key> {
        let path = format!("/v0/api_keys/{id}");
        self.send(self.request(reqwest::Method::DELETE, &path))
            .await
    }

    pub async fn rotate_key(&self, id: &str, grace_seconds: u64) -> Result<IssuedKey> {
        let path = format!("/v0/api_keys/{id}/rotate");
        let body = json!({ "grace_seconds": grace_seconds });
        self.send(self.request(reqwest::Method::POST, &path).json(&body))
            .await
    }

    /// `op` is set, increment or decrement; answers the credits left.
    pub async fn change_credits(&self, id: &str, op: &str, value: u64) -> Result<u64> {
        let path = format!("/v0/api_keys/{id}/credits");
        let body = json!({ "op": op, "value": value });
        let left: Value = self
            .send(self.request(reqwest::Method::POST, &path).json(&body))
            .await?;
        Ok(left["remaining"].as_u64().unwrap_or(0))
    }

    /// Verifies a key presented to your service, optionally against a permission query.
    pub async fn verify_key(&self, key: &str, permissions: Option<&str>) -> Result<Verification> {
        let mut body = json!({ "key": key });
        if let Some(query) = permissions {
            body["permissions"] = Value::String(query.to_string());
        }
        self.send(
            self.request(reqwest::Method::POST, "/v0/keys/verify")
                .json(&body),
        )
        .await
    }

    /// Any other operation of the native API (users, audit, analytics), by path.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let request = self.request(method, path);
        let request = match body {
            Some(body) => request.json(body),
            None => request,
        };
        self.send(request).await
    }
}
