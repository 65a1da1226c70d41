//! Shared helpers for the server's integration tests: a real server on a random
//! loopback port with a fresh SQLite file, and a small client for it.
#![allow(dead_code)]

pub mod postgres;

use keyward_server::{RunningServer, ServeConfig};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const MEMBER_PASSWORD: &str = "member-password-1";
/// The second tenant that [`TestServer::other_tenant`] creates.
pub const OTHER_TENANT: &str = "other";
pub const OTHER_ADMIN_EMAIL: &str = "boss@other.example";
pub const OTHER_ADMIN_PASSWORD: &str = "other-password-1";

pub struct TestServer {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub running: Option<RunningServer>,
    pub http: reqwest::Client,
    /// The PostgreSQL database this server created, when the suite runs on PostgreSQL.
    pub database: Option<postgres::PgDatabase>,
    /// The store's URL, for fixtures a test makes outside the server (a second tenant,
    /// as `keyward tenant create` makes one).
    pub database_url: String,
}

/// Set by ./scripts/test for its second pass: the HTTP suite runs on PostgreSQL.
const BACKEND_VAR: &str = "KEYWARD_TEST_BACKEND";
/// Where a data directory remembers its PostgreSQL database, so that a server started
/// again in the same directory finds the same data, as with SQLite.
const DATABASE_URL_FILE: &str = "test-database-url";

/// With `KEYWARD_TEST_BACKEND=postgres`, the database of a data directory: the one it
/// remembers, or a fresh one (returned, to be dropped with the server that made it).
async fn test_database(
    data_dir: &std::path::Path,
) -> (Option<String>, Option<postgres::PgDatabase>) {
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("postgres") => {}
        Ok("sqlite") | Err(_) => return (None, None),
        Ok(other) => panic!("{BACKEND_VAR}={other}: use sqlite or postgres"),
    }
    let remembered = data_dir.join(DATABASE_URL_FILE);
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return (Some(url), None);
    }
    let database = postgres::PgDatabase::create().await;
    std::fs::write(&remembered, &database.url).expect("remember the database");
    (Some(database.url.clone()), Some(database))
}

/// An answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(data_dir).await
    }

    pub async fn start_in(data_dir: tempfile::TempDir) -> TestServer {
        Self::start_configured(data_dir, |_| {}).await
    }

    /// Starts a node after `adjust` has had its say on the configuration (a shared
    /// database, a shared secret).
    pub async fn start_configured(
        data_dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> TestServer {
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            data_dir.path().to_path_buf(),
        );
        config.admin_email = Some(ADMIN_EMAIL.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.usage_flush_interval = std::time::Duration::from_millis(200);
        let (database_url, database) = test_database(data_dir.path()).await;
        config.database_url = database_url;
        adjust(&mut config);
        let database_url = config.effective_database_url();
        let running = keyward_server::start(config).await.expect("server starts");
        TestServer {
            url: format!("http://{}", running.addr),
            data_dir,
            running: Some(running),
            http: reqwest::Client::new(),
            database,
            database_url,
        }
    }

    /// Everything the store holds, raw: the SQLite files, or every PostgreSQL row as
    /// text (hashes as hex), for searching for what must never be stored.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        let url = std::fs::read_to_string(self.data_dir.path().join(DATABASE_URL_FILE));
        let stored = match url {
            Ok(url) => postgres::all_rows(&url).await,
            Err(_) => ["", "-wal", "-shm"]
                .iter()
                .filter_map(|suffix| {
                    std::fs::read(format!("{}{suffix}", self.db_path().display())).ok()
                })
                .flatten()
                .collect(),
        };
        assert!(!stored.is_empty(), "nothing stored for {}", self.url);
        stored
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.path().join("keyward.db")
    }

    /// Stops the server gracefully, keeping the data directory.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(auth) = auth {
            request = request.header("Authorization", format!("Bearer {auth}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .call(
                Method::POST,
                "/v0/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "login failed: {}", reply.text);
        reply.body["token"].as_str().expect("token").to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Creates a key and returns (id, secret).
    pub async fn create_key(&self, auth: &str, body: Value) -> (String, String) {
        let reply = self
            .call(Method::POST, "/v0/api_keys", Some(auth), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create key failed: {}",
            reply.text
        );
        (
            reply.body["id"].as_str().unwrap().to_string(),
            reply.body["api_key"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a member and returns a session token for them.
    pub async fn member(&self, admin: &str, email: &str, permissions: Option<Value>) -> String {
        self.member_with_id(admin, email, permissions).await.1
    }

    /// Creates a member and returns (user id, session token).
    pub async fn member_with_id(
        &self,
        admin: &str,
        email: &str,
        permissions: Option<Value>,
    ) -> (String, String) {
        let mut body = json!({"email": email, "password": MEMBER_PASSWORD});
        if let Some(p) = permissions {
            body["permissions"] = p;
        }
        let reply = self
            .call(Method::POST, "/v0/users", Some(admin), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::CREATED,
            "create user failed: {}",
            reply.text
        );
        let id = reply.body["id"].as_str().expect("user id").to_string();
        (id, self.login(email, MEMBER_PASSWORD).await)
    }

    /// The id of the user a credential acts as (from `/v0/me`).
    pub async fn user_id(&self, auth: &str) -> String {
        let me = self.call(Method::GET, "/v0/me", Some(auth), None).await;
        assert_eq!(me.status, StatusCode::OK, "/v0/me failed: {}", me.text);
        me.body["user"]["id"].as_str().expect("user id").to_string()
    }

    /// Creates the second tenant ([`OTHER_TENANT`]) and returns a session of its admin.
    pub async fn other_tenant(&self) -> String {
        let store = keyward_store::open(&self.database_url)
            .await
            .expect("the server's store opens");
        keyward_server::create_tenant(
            &store,
            OTHER_TENANT,
            OTHER_ADMIN_EMAIL,
            OTHER_ADMIN_PASSWORD,
        )
        .await
        .expect("second tenant created");
        store.close().await;
        self.login(OTHER_ADMIN_EMAIL, OTHER_ADMIN_PASSWORD).await
    }

    pub async fn get(&self, path: &str, auth: &str) -> Reply {
        self.call(Method::GET, path, Some(auth), None).await
    }

    /// A request with raw headers and a raw body: no JSON encoding, no Content-Type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &[u8])],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
            let value = HeaderValue::from_bytes(value).expect("header value");
            request = request.header(name, value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    /// The `code` `/v0/keys/verify` gives for a key.
    pub async fn verify_code(&self, auth: &str, key: &str, permissions: Option<Value>) -> String {
        self.verify(auth, key, permissions).await["code"]
            .as_str()
            .expect("verification code")
            .to_string()
    }

    /// Reads a key until `done` holds for it or `timeout` passes; returns the last view.
    pub async fn poll_key(
        &self,
        auth: &str,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reply = self.get(&key_path(id), auth).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "get key failed: {}",
                reply.text
            );
            if done(&reply.body) || tokio::time::Instant::now() >= deadline {
                return reply.body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn verify(&self, auth: &str, key: &str, permissions: Option<Value>) -> Value {
        let mut body = json!({ "key": key });
        if let Some(p) = permissions {
            body["permissions"] = p;
        }
        let reply = self
            .call(Method::POST, "/v0/keys/verify", Some(auth), Some(body))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "verify failed: {}",
            reply.text
        );
        reply.body
    }
}

pub fn key_path(id: &str) -> String {
    format!("/v0/api_keys/{id}")
}

/// The names of a listing's items, in order.
pub fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|k| k["name"].as_str().expect("name").to_string())
        .collect()
}

/// Checks a native error: the status, and exactly `{message, error_code, details}` with
/// a non-empty message and `details` null or an object. Returns the message.
pub fn assert_error<'a>(reply: &'a Reply, status: StatusCode, code: &str) -> &'a str {
    assert_eq!(
        reply.status, status,
        "expected {status} {code}, got: {}",
        reply.text
    );
    let object = reply
        .body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {:?}", reply.text));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["details", "error_code", "message"],
        "error shape: {}",
        reply.text
    );
    assert_eq!(reply.body["error_code"], code, "error code: {}", reply.text);
    assert!(
        reply.body["details"].is_null() || reply.body["details"].is_object(),
        "details: {}",
        reply.text
    );
    let message = reply.body["message"].as_str().expect("message is a string");
    assert!(!message.trim().is_empty(), "empty message: {}", reply.text);
    message
}

/// A well-formed native key (right shape and checksum) that no server issued.
pub fn forged_key() -> String {
    keyward_core::KeyShape::Native
        .generate()
        .expose()
        .to_string()
}

/// Now plus `seconds`, rounded up to a whole second, as an RFC 3339 string.
pub fn in_seconds(seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(seconds + 1))
        .replace_nanosecond(0)
        .expect("zero nanoseconds")
        .format(&Rfc3339)
        .expect("format time")
}

pub fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("not RFC 3339: {text}: {e}"))
}

/// Sleeps until the time in `value` is `margin` in the past.
pub async fn sleep_past(value: &Value, margin: Duration) {
    let left = parse_time(value) - OffsetDateTime::now_utc();
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
    tokio::time::sleep(margin).await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that neither a secret nor its first 12 characters appear in `haystack`.
pub fn assert_secret_absent(haystack: &[u8], secret: &str, context: &str) {
    assert!(secret.len() > 12, "not a secret: {secret}");
    assert!(
        !contains(haystack, secret.as_bytes()),
        "{context} contains the secret"
    );
    assert!(
        !contains(haystack, &secret.as_bytes()[..12]),
        "{context} contains the secret's first 12 characters"
    );
}

pub fn bytes_contain(haystack: &[u8], needle: &str) -> bool {
    contains(haystack, needle.as_bytes())
}

/// Runs the real `curl` binary with `args` after `-sS`, and returns its answer.
pub async fn curl(args: Vec<String>) -> Reply {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
            .args(&args)
            .output()
            .expect("curl runs")
    })
    .await
    .expect("curl task");
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("curl output is UTF-8");
    let (text, code) = stdout
        .rsplit_once('\n')
        .expect("curl wrote the status code");
    let status =
        StatusCode::from_u16(code.trim().parse().expect("numeric status")).expect("status");
    let body = serde_json::from_str(text).unwrap_or(Value::Null);
    Reply {
        status,
        body,
        text: text.to_string(),
    }
}

/// Where `scripts/test` installed the Node.js packages of the dialects' real clients.
pub fn node_path() -> String {
    std::env::var("KEYWARD_TEST_NODE_PATH").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_NODE_PATH is not set: run ./scripts/test, which installs the \
             Node.js clients (or install them yourself and export the variable)"
        )
    })
}

/// Runs a Node.js script (written to a temporary file) with the packages from
/// [`node_path`], and returns its standard output. The script must exit cleanly.
pub async fn node_script(source: String) -> String {
    let node_path = node_path();
    run_script("script.js", source, move |file| {
        let mut command = std::process::Command::new("node");
        command.arg(file).env("NODE_PATH", &node_path);
        command
    })
    .await
}

/// Runs a shell script (a vendor's curl sample, say) with `bash` and returns its
/// standard output. The script must exit cleanly.
pub async fn shell_script(source: String) -> String {
    run_script("script.sh", source, |file| {
        let mut command = std::process::Command::new("bash");
        command.arg(file);
        command
    })
    .await
}

async fn run_script(
    name: &'static str,
    source: String,
    command: impl FnOnce(&std::path::Path) -> std::process::Command + Send + 'static,
) -> String {
    let output = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join(name);
        std::fs::write(&file, source).expect("script written");
        command(&file).output().expect("script runs")
    })
    .await
    .expect("script task");
    assert!(
        output.status.success(),
        "{name} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("script output is UTF-8")
}

/// `text` with `from` replaced by `to`, which must occur exactly once: a sample whose
/// text changed under a test fails loudly instead of running unchanged.
pub fn substitute_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "expected exactly one '{from}' in the sample"
    );
    text.replacen(from, to, 1)
}

/// One keep-alive HTTP/1.1 connection written by hand: requests known to share it, and
/// bodies sent in pieces or chunks.
pub struct RawConnection {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
}

impl RawConnection {
    pub async fn open(server: &TestServer) -> RawConnection {
        let address = server.url.trim_start_matches("http://");
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        RawConnection {
            stream: tokio::io::BufReader::new(stream),
        }
    }

    /// Sends one request with `Authorization: <authorization>` and a JSON body (its
    /// length in `Content-Length`); returns the status and the JSON answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        authorization: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: keyward\r\nAuthorization: {authorization}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.send_pieces(&[request.into_bytes()]).await
    }

    pub async fn me(&mut self, key: &str) -> (u16, Value) {
        self.send("GET", "/v0/me", &format!("Bearer {key}"), None)
            .await
    }

    /// Writes a request in `pieces`, pausing between them so that the server reads
    /// each on its own; returns the status and the JSON answer.
    pub async fn send_pieces(&mut self, pieces: &[Vec<u8>]) -> (u16, Value) {
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            self.write(piece).await;
        }
        self.answer().await
    }

    /// Writes bytes as they are, reading nothing.
    pub async fn write(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await.expect("send");
        stream.flush().await.expect("flush");
    }

    /// Closes the sending side (a TCP half-close), as a client does that has said all
    /// it will say; answers can still be read.
    pub async fn close_sending(&mut self) {
        use tokio::io::AsyncWriteExt;
        self.stream.get_mut().shutdown().await.expect("half-close");
    }

    /// Reads the next answer: the status and the JSON body.
    pub async fn answer(&mut self) -> (u16, Value) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content length");
                }
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}
