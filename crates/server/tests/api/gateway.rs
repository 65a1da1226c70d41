//! Forward-auth through the real proxies from Debian's packages (nginx, Caddy), each
//! started on a random loopback port with the configuration from docs/gateway/ in
//! front of an upstream that echoes the headers it received; the policy file and its
//! reloads; refusals of bad forward-auth requests; revocation on one PostgreSQL node
//! refused through a proxy pointing at the other within a second.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLICY: &str = r#"
[defaults]
key_from = ["authorization", "header:X-API-Key", "query:api_key"]

[[route]]
path = "/invoices/**"
methods = ["POST", "PUT", "DELETE"]
permissions = "invoices.write"

[[route]]
path = "/invoices/**"
permissions = "invoices.read"
metadata_headers = ["plan"]

[[route]]
path = "/public/**"
key_required = false
"#;

/// An upstream that answers every request with the headers it received, as JSON.
async fn echo_upstream() -> SocketAddr {
    use axum::http::HeaderMap;
    async fn echo(headers: HeaderMap) -> axum::Json<Value> {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), json!(v.to_str().unwrap_or("?"))))
            .collect();
        axum::Json(Value::Object(seen))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn docs(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/gateway")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A proxy process, stopped when dropped.
struct Proxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// nginx with docs/gateway/nginx.conf.
    async fn nginx(keyward: &str, upstream: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = docs("nginx.conf")
            .replace("__LISTEN__", &format!("127.0.0.1:{port}"))
            .replace("__KEYWARD__", keyward.trim_start_matches("http://"))
            .replace("__UPSTREAM__", &upstream.to_string())
            .replace("__DIR__", dir.path().to_str().unwrap());
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(binary("nginx"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx starts");
        Proxy::up(child, port, dir).await
    }

    /// Caddy with docs/gateway/Caddyfile.
    async fn caddy(keyward: &str, upstream: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = docs("Caddyfile")
            .replace("__LISTEN__", &format!("127.0.0.1:{port}"))
            .replace("__KEYWARD__", keyward.trim_start_matches("http://"))
            .replace("__UPSTREAM__", &upstream.to_string());
        let file = dir.path().join("Caddyfile");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(binary("caddy"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy starts");
        Proxy::up(child, port, dir).await
    }

    /// HAProxy with docs/gateway/haproxy.cfg and its Lua action, docs/gateway/keyward.lua.
    async fn haproxy(keyward: &str, upstream: SocketAddr) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(dir.path().join("keyward.lua"), docs("keyward.lua")).unwrap();
        let conf = docs("haproxy.cfg")
            .replace("__LISTEN__", &format!("127.0.0.1:{port}"))
            .replace("__KEYWARD__", keyward.trim_start_matches("http://"))
            .replace("__UPSTREAM__", &upstream.to_string())
            .replace("__DIR__", dir.path().to_str().unwrap());
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(binary("haproxy"))
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haproxy starts");
        Proxy::up(child, port, dir).await
    }

    async fn up(mut child: Child, port: u16, dir: tempfile::TempDir) -> Proxy {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    stderr.read_to_string(&mut err).ok();
                }
                panic!("the proxy exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "the proxy never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Proxy {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = reqwest::Client::new().request(method, format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("through the proxy");
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let www = response.headers().get("www-authenticate").is_some();
        let mut reply = TestServer::reply(response).await;
        if let Value::Object(map) = &mut reply.body {
            map.insert("_retry_after".into(), json!(retry_after));
            map.insert("_www_authenticate".into(), json!(www));
        } else {
            reply.body = json!({"_retry_after": retry_after, "_www_authenticate": www});
        }
        reply
    }
}

/// The proxy's binary: on PATH, or where Debian installs it.
fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!("{name} is not installed: run ./scripts/test, which installs it from Debian")
}

/// A server with the test policy, and its administrator's session.
async fn gateway_server() -> (TestServer, String) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("gateway.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let server = TestServer::start_configured(dir, move |config| {
        config.gateway_config = Some(policy);
    })
    .await;
    let admin = server.admin_token().await;
    (server, admin)
}

/// Everything the issue asks of one proxy: identity upstream and not the key; each
/// refusal with its status; permissions per route; a limit's 429 and Retry-After.
async fn through(proxy: &Proxy, server: &TestServer, admin: &str) {
    let (id, key) = server
        .create_key(
            admin,
            json!({"name": "reader", "permissions": ["invoices.read"], "metadata": {"plan": "gold"}}),
        )
        .await;
    let bearer = format!("Bearer {key}");
    let ok = proxy
        .send(Method::GET, "/invoices/7", &[("Authorization", &bearer)])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["x-keyward-key-id"], id.as_str(), "{}", ok.text);
    assert_eq!(ok.body["x-keyward-permissions"], "invoices.read");
    assert!(ok.body["x-keyward-tenant"].is_string());
    assert!(
        ok.body.get("authorization").is_none(),
        "the key reached the upstream"
    );
    let by_header = proxy
        .send(Method::GET, "/invoices/7", &[("X-API-Key", &key)])
        .await;
    assert_eq!(by_header.status, StatusCode::OK, "{}", by_header.text);
    assert!(
        by_header.body.get("x-api-key").is_none(),
        "the key reached the upstream"
    );
    let by_query = proxy
        .send(Method::GET, &format!("/invoices/7?api_key={key}"), &[])
        .await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text);

    let missing = proxy.send(Method::GET, "/invoices/7", &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{}", missing.text);
    assert_eq!(missing.body["_www_authenticate"], true);
    let malformed = proxy
        .send(
            Method::GET,
            "/invoices/7",
            &[("Authorization", "Bearer kw_nope")],
        )
        .await;
    assert_eq!(malformed.status, StatusCode::UNAUTHORIZED);
    let public = proxy.send(Method::GET, "/public/readme", &[]).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.text);

    let write = proxy
        .send(Method::POST, "/invoices/7", &[("Authorization", &bearer)])
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN, "{}", write.text);

    let (gone_id, gone) = server.create_key(admin, json!({"name": "gone"})).await;
    let revoked = server
        .call(Method::DELETE, &key_path(&gone_id), Some(admin), None)
        .await;
    assert!(revoked.status.is_success());
    let refused = proxy
        .send(Method::GET, "/invoices/1", &[("X-API-Key", &gone)])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);

    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, expiring) = server
        .create_key(admin, json!({"name": "brief", "expires_at": soon}))
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let expired = proxy
        .send(Method::GET, "/invoices/1", &[("X-API-Key", &expiring)])
        .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED, "{}", expired.text);

    let (_, limited) = server
        .create_key(
            admin,
            json!({"name": "limited", "ratelimits": [
                {"name": "requests", "limit": 2, "duration_seconds": 3600}
            ]}),
        )
        .await;
    for _ in 0..2 {
        let passed = proxy
            .send(Method::GET, "/any", &[("X-API-Key", &limited)])
            .await;
        assert_eq!(passed.status, StatusCode::OK, "{}", passed.text);
    }
    let spent = proxy
        .send(Method::GET, "/any", &[("X-API-Key", &limited)])
        .await;
    assert_eq!(
        spent.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        spent.text
    );
    let retry: u64 = spent.body["_retry_after"]
        .as_str()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
}

#[tokio::test]
async fn nginx_auth_request_through_keyward() {
    let (server, admin) = gateway_server().await;
    let proxy = Proxy::nginx(&server.url, echo_upstream().await).await;
    through(&proxy, &server, &admin).await;
}

#[tokio::test]
async fn caddy_forward_auth_through_keyward() {
    let (server, admin) = gateway_server().await;
    let proxy = Proxy::caddy(&server.url, echo_upstream().await).await;
    through(&proxy, &server, &admin).await;
}

#[tokio::test]
async fn haproxy_lua_action_through_keyward() {
    let (server, admin) = gateway_server().await;
    let proxy = Proxy::haproxy(&server.url, echo_upstream().await).await;
    through(&proxy, &server, &admin).await;
}

async fn forward(server: &TestServer, headers: &[(&str, &str)]) -> Reply {
    let mut request = server.http.get(format!("{}/v0/forward-auth", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    TestServer::reply(request.send().await.unwrap()).await
}

#[tokio::test]
async fn traefik_headers_and_bad_forward_auth_requests() {
    let (server, admin) = gateway_server().await;
    let (id, key) = server
        .create_key(
            &admin,
            json!({"name": "t", "permissions": ["invoices.read"]}),
        )
        .await;
    // Traefik's documented contract: X-Forwarded-Method, -Uri, -Host, and the
    // original request's headers.
    let ok = forward(
        &server,
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/invoices/3?x=1"),
            ("X-Forwarded-Host", "api.example.com"),
            ("Authorization", &format!("apikey {key}")),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.text, "",
        "a pass has no body, so proxies keep the connection"
    );
    // Spent credits that refill daily: 429 with Retry-After, until UTC midnight.
    let (_, metered) = server
        .create_key(
            &admin,
            json!({"name": "metered", "credits": {"remaining": 1, "refill": {"amount": 1, "interval": "daily"}}}),
        )
        .await;
    let ask = [
        ("X-Original-URI", "/x"),
        ("X-Original-Method", "GET"),
        ("X-API-Key", metered.as_str()),
    ];
    assert_eq!(forward(&server, &ask).await.status, StatusCode::OK);
    let mut request = server.http.get(format!("{}/v0/forward-auth", server.url));
    for (name, value) in ask {
        request = request.header(name, value);
    }
    let spent = request.send().await.unwrap();
    assert_eq!(spent.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = spent.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let nothing = forward(&server, &[("Authorization", &format!("Bearer {key}"))]).await;
    assert_eq!(nothing.status, StatusCode::BAD_REQUEST, "{}", nothing.text);
    assert!(nothing.body["message"]
        .as_str()
        .unwrap()
        .contains("X-Original-URI"));
    let long = format!("/{}", "a".repeat(9_000));
    let too_long = forward(
        &server,
        &[("X-Original-URI", &long), ("X-Original-Method", "GET")],
    )
    .await;
    assert_eq!(
        too_long.status,
        StatusCode::URI_TOO_LONG,
        "{}",
        too_long.text
    );
    let long_key = "k".repeat(20_000);
    let refused = forward(
        &server,
        &[
            ("X-Original-URI", "/"),
            ("X-Original-Method", "GET"),
            ("X-API-Key", &long_key),
        ],
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "not a key's shape"
    );
    let huge = "k".repeat(100_000);
    let oversized = forward(
        &server,
        &[
            ("X-Original-URI", "/"),
            ("X-Original-Method", "GET"),
            ("X-API-Key", &huge),
        ],
    )
    .await;
    assert_eq!(
        oversized.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let relative = forward(
        &server,
        &[("X-Original-URI", "invoices"), ("X-Original-Method", "GET")],
    )
    .await;
    assert_eq!(
        relative.status,
        StatusCode::BAD_REQUEST,
        "{}",
        relative.text
    );
    let scheme = forward(
        &server,
        &[
            ("X-Original-URI", "/"),
            ("X-Original-Method", "GET"),
            ("Authorization", "Basic abc"),
        ],
    )
    .await;
    assert_eq!(scheme.status, StatusCode::UNAUTHORIZED, "{}", scheme.text);
    // Counted like every verification.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server
            .call(
                Method::GET,
                &format!("/v0/analytics/verifications?key_id={id}&granularity=minute&since=5m"),
                Some(&admin),
                None,
            )
            .await;
        let valid: u64 = reply.body["series"][0]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["valid"].as_u64().unwrap())
            .sum();
        if valid == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bad_policy_is_refused_at_start_and_at_reload_keeping_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("gateway.toml");
    std::fs::write(&policy, "[[route]]\npath = \"/a\"\n\ncolour = \"red\"\n").unwrap();
    let mut config =
        keyward_server::ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    config.gateway_config = Some(policy.clone());
    let refused = keyward_server::start(config).await.err().expect("refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains("line 4") && message.contains("colour"),
        "{message}"
    );

    std::fs::write(&policy, POLICY).unwrap();
    let (server, admin) = {
        let policy = policy.clone();
        let server = TestServer::start_configured(tempfile::tempdir().unwrap(), move |c| {
            c.gateway_config = Some(policy);
        })
        .await;
        let admin = server.admin_token().await;
        (server, admin)
    };
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "r", "permissions": ["invoices.read"]}),
        )
        .await;
    let ask = |path: &'static str| {
        let key = key.clone();
        let server = &server;
        async move {
            forward(
                server,
                &[
                    ("X-Original-URI", path),
                    ("X-Original-Method", "GET"),
                    ("X-API-Key", &key),
                ],
            )
            .await
            .status
        }
    };
    assert_eq!(ask("/admin/x").await, StatusCode::OK);
    // A bad file is refused at reload; the last good policy stays.
    std::fs::write(
        &policy,
        "[[route]]\npath = \"/admin/**\"\npermissions = \"a AND (\"\n",
    )
    .unwrap();
    let reload = server.running.as_ref().unwrap().reload_gateway();
    let message = format!("{:#}", reload.expect_err("refused"));
    assert!(
        message.contains("line 3") && message.contains("permissions"),
        "{message}"
    );
    assert_eq!(ask("/admin/x").await, StatusCode::OK);
    // A good one replaces it, picked up from the file's change without a signal.
    std::fs::write(
        &policy,
        "[[route]]\npath = \"/admin/**\"\npermissions = \"admin.all\"\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask("/admin/x").await != StatusCode::FORBIDDEN {
        assert!(Instant::now() < deadline, "the changed file was never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_revoke_on_one_node_is_refused_through_a_proxy_in_front_of_the_other() {
    let cluster = crate::nodes::cluster().await;
    let upstream = echo_upstream().await;
    let proxy = Proxy::nginx(&cluster.b.url, upstream).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let (id, key) = cluster.key(&format!("k{i}"), json!([])).await;
        let warm = proxy.send(Method::GET, "/x", &[("X-API-Key", &key)]).await;
        assert_eq!(warm.status, StatusCode::OK, "{}", warm.text);
        let revoked = cluster
            .a
            .call(Method::DELETE, &key_path(&id), Some(&cluster.admin), None)
            .await;
        assert!(revoked.status.is_success());
        let started = Instant::now();
        loop {
            let reply = proxy.send(Method::GET, "/x", &[("X-API-Key", &key)]).await;
            if reply.status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never refused");
        }
        worst = worst.max(started.elapsed());
    }
    println!("revoke on A refused through nginx in front of B: worst of 20 {worst:?}");
    assert!(worst < Duration::from_secs(1), "worst of 20: {worst:?}");
}
