//! The client side: a session file that only its owner can read, and calls to a running
//! server that turn its error bodies into one readable line.

use crate::ClientArgs;
use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// What `keyward login` keeps between commands.
#[derive(Serialize, Deserialize, Default)]
pub struct Session {
    pub url: String,
    pub email: String,
    pub token: String,
    pub expires_at: String,
}

pub fn session_path(args: &ClientArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.client_config {
        return Ok(path.clone());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("HOME is not set; pass --client-config"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("keyward").join("client.toml"))
}

pub fn load_session(path: &Path) -> anyhow::Result<Option<Session>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .with_context(|| format!("the session file {} is damaged", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replaces the session file atomically; it is created readable by its owner only.
pub fn save_session(path: &Path, session: &Session) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temporary = path.with_extension("toml.new");
    let _ = std::fs::remove_file(&temporary);
    keyward_server::server::write_private_file(&temporary, &toml::to_string(session)?)?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A server to talk to, with the credential to use.
pub struct Client {
    http: reqwest::Client,
    url: String,
    credential: Option<String>,
}

impl Client {
    pub fn anonymous(url: &str) -> anyhow::Result<Client> {
        let url = url.trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("'{url}' is not a URL: use http://HOST:PORT");
        }
        Ok(Client {
            http: reqwest::Client::builder()
                .user_agent(concat!("keyward-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
            url,
            credential: None,
        })
    }

    /// The server and credential from the flags, else from the stored session.
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Client> {
        let session = load_session(&session_path(args)?)?;
        let url = args
            .url
            .clone()
            .or_else(|| session.as_ref().map(|s| s.url.clone()))
            .ok_or_else(|| anyhow!("not logged in: run `keyward login --url URL --email EMAIL`"))?;
        let credential = args
            .token
            .clone()
            .or_else(|| session.map(|s| s.token))
            .ok_or_else(|| {
                anyhow!("not logged in: run `keyward login --url {url} --email EMAIL`")
            })?;
        let mut client = Client::anonymous(&url)?;
        client.credential = Some(credential);
        Ok(client)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(credential) = &self.credential {
            request = request.bearer_auth(credential);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach {}: {}", self.url, root_cause(&e)))?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(body)
        } else {
            Err(server_error(status, &body))
        }
    }
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `message (HTTP 409, DuplicateName)` from the native error body.
fn server_error(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let message = body["message"]
        .as_str()
        .or(body.as_str())
        .unwrap_or("the server gave no reason");
    match body["error_code"].as_str() {
        Some(code) => anyhow!("{message} (HTTP {}, {code})", status.as_u16()),
        None => anyhow!("{message} (HTTP {})", status.as_u16()),
    }
}
