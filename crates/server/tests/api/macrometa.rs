//! The Macrometa door, driven by the real pyC8 client and by Macrometa's own documented
//! scripts (copied verbatim under tests/macrometa/, with only the URL, email, password
//! and key substituted at run time), plus bad input in Macrometa's error shape.

use crate::support::{TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub(crate) const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/macrometa");
/// The host the seed scripts are pointed at; pyC8 turns `keyward.test` into it.
pub(crate) const TLS_HOST: &str = "api-keyward.test";

// ---- Running Python ----

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_PYTHON is not set: run ./scripts/test, which installs pyC8 \
             (scripts/setup.d/macrometa.sh) and sets it"
        )
    })
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs Python code with `env`, where every proxy variable is ours alone: requests
/// would otherwise bypass the proxy for hosts listed in NO_PROXY.
async fn run_python(code: String, args: &[&str], env: Vec<(String, String)>) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(python());
        command.arg("-c").arg(code).args(args);
        for var in [
            "NO_PROXY",
            "no_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
        ] {
            command.env_remove(var);
        }
        command.env_remove("https_proxy").env_remove("ALL_PROXY");
        command.envs(env).output().expect("python runs")
    })
    .await
    .expect("python task");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn script(name: &str) -> String {
    std::fs::read_to_string(Path::new(SCRIPTS).join(name)).expect("script file")
}

/// A seed script with its placeholder values replaced; each must occur.
fn seed(name: &str, values: &[(&str, &str)]) -> String {
    let mut text = script(name);
    for (from, to) in values {
        assert!(text.contains(from), "{name} has no {from}");
        text = text.replace(from, to);
    }
    text
}

fn pair(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_string(), value.into())
}

fn port(server: &TestServer) -> u16 {
    server.running.as_ref().expect("running").addr.port()
}

/// pyC8 always calls `http://api-<host>:80`; as an HTTP proxy, Keyward receives those
/// requests in absolute form and routes them by path.
fn http_proxy_env(server: &TestServer) -> Vec<(String, String)> {
    let proxy = format!("http://127.0.0.1:{}", port(server));
    vec![
        pair("HTTP_PROXY", proxy.clone()),
        pair("http_proxy", proxy),
        pair("KW_PORT", port(server).to_string()),
        pair("KW_EMAIL", ADMIN_EMAIL),
        pair("KW_PASSWORD", ADMIN_PASSWORD),
    ]
}

fn assert_ran(run: &Run, what: &str) {
    assert!(
        run.ok,
        "{what} failed\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
}

// ---- A TLS-terminating CONNECT proxy, for the scripts that insist on https ----

pub(crate) struct TlsProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) ca_file: PathBuf,
}

/// How the TLS listener is reached: as an HTTP `CONNECT` proxy (Python's clients), or
/// directly as the server (jsc8, which knows no proxy).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Front {
    Connect,
    Direct,
}

fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={TLS_HOST}")])
        .args(["-addext", &format!("subjectAltName=DNS:{TLS_HOST}")])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

pub(crate) async fn start_tls_proxy(server: SocketAddr, dir: &Path, front: Front) -> TlsProxy {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_file, key_file) = self_signed_cert(dir);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .expect("cert file")
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(&key_file).expect("key");
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(tunnel(stream, acceptor.clone(), server, front));
        }
    });
    TlsProxy {
        addr,
        ca_file: cert_file,
    }
}

/// Answers one `CONNECT` (unless reached directly), terminates TLS, and relays the
/// plain HTTP to Keyward.
async fn tunnel(
    mut stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    server: SocketAddr,
    front: Front,
) {
    if front == Front::Connect && !answer_connect(&mut stream).await {
        return;
    }
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    let Ok(mut upstream) = TcpStream::connect(server).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
}

/// Reads a `CONNECT` request and answers that the tunnel is open.
async fn answer_connect(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return false;
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"CONNECT ") {
        return false;
    }
    let reply = b"HTTP/1.1 200 Connection established\r\n\r\n";
    stream.write_all(reply).await.is_ok()
}

fn https_proxy_env(proxy: &TlsProxy) -> Vec<(String, String)> {
    let url = format!("http://{}", proxy.addr);
    let ca = proxy.ca_file.display().to_string();
    vec![
        pair("HTTPS_PROXY", url.clone()),
        pair("https_proxy", url),
        pair("REQUESTS_CA_BUNDLE", ca),
    ]
}

// ---- Macrometa REST from the Rust side ----

async fn mm(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: &str,
    body: Option<Value>,
) -> crate::support::Reply {
    let mut request = server
        .http
        .request(method, format!("{}{}", server.url, path))
        .header("Authorization", auth);
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    TestServer::reply(request.send().await.expect("request sent")).await
}

async fn mm_jwt(server: &TestServer) -> String {
    let reply = server
        .send(
            Method::POST,
            "/_open/auth",
            &[],
            Some(
                json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    format!("bearer {}", reply.body["jwt"].as_str().expect("jwt"))
}

/// Checks Macrometa's error body exactly: `{error: true, code, errorNum, errorMessage}`.
#[track_caller]
fn assert_mm_error(reply: &crate::support::Reply, status: StatusCode, error_num: u64) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let object = reply.body.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["code", "error", "errorMessage", "errorNum"],
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"], true);
    assert_eq!(reply.body["code"], status.as_u16());
    assert_eq!(reply.body["errorNum"], error_num, "{}", reply.text);
    assert!(!reply.body["errorMessage"].as_str().unwrap().is_empty());
}

// ---- Tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyc8_manages_keys_levels_and_attributes() {
    let server = TestServer::start().await;
    let run = run_python(script("pyc8_e2e.py"), &[], http_proxy_env(&server)).await;
    assert_ran(&run, "pyc8_e2e.py");
    assert!(run.stdout.contains("STAGE key-allowed"), "{}", run.stdout);
    assert!(run.stdout.contains("STAGE key-refused"), "{}", run.stdout);
    let secret = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("KEY "))
        .expect("the script printed the key")
        .to_string();

    // The native door sees the same key with the same grants and attributes.
    let admin = server.admin_token().await;
    let verdict = server.verify(&admin, &secret, None).await;
    assert_eq!(verdict["code"], "VALID", "{verdict}");
    assert_eq!(verdict["name"], "e2eKey");
    let permissions: Vec<&str> = verdict["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for expected in [
        "fabric/_system:rw",
        "fabric/_system/collection/users:ro",
        "fabric/_system/collection/secret:none",
        "fabric/_system/stream/c8globals.orders:rw",
        "fabric/_system/stream/c8locals.events:none",
        "billing:rw",
    ] {
        assert!(
            permissions.contains(&expected),
            "{expected} in {permissions:?}"
        );
    }
    assert!(!permissions.iter().any(|p| p.contains("collection/*")));
    assert_eq!(verdict["metadata"], json!({"team": "ops"}));
    let allowed = server
        .verify(
            &admin,
            &secret,
            Some(json!("fabric/_system/collection/users:ro")),
        )
        .await;
    assert_eq!(allowed["code"], "VALID", "{allowed}");
    let denied = server
        .verify(
            &admin,
            &secret,
            Some(json!("fabric/_system/collection/secret:ro")),
        )
        .await;
    assert_ne!(denied["code"], "VALID", "{denied}");

    let mut env = http_proxy_env(&server);
    env.push(pair("KW_KEY", secret.clone()));
    let run = run_python(script("pyc8_e2e.py"), &["remove"], env).await;
    assert_ran(&run, "pyc8_e2e.py remove");
    assert!(run.stdout.contains("STAGE removed"), "{}", run.stdout);
    assert_eq!(server.verify_code(&admin, &secret, None).await, "REVOKED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scripts_run_unchanged() {
    let server = TestServer::start().await;
    let proxy = start_tls_proxy(
        server.running.as_ref().unwrap().addr,
        server.data_dir.path(),
        Front::Connect,
    )
    .await;
    let env = https_proxy_env(&proxy);
    let login = [
        ("\"gdn.paas.macrometa.io\"", "\"keyward.test\""),
        ("'nemo@nautilus.com'", &format!("'{ADMIN_EMAIL}'") as &str),
        ("'xxxxx'", &format!("'{ADMIN_PASSWORD}'")),
    ];

    let first = run_python(seed("seed_create_api_key.py", &login), &[], env.clone()).await;
    assert_ran(&first, "create-api-key seed");
    assert!(
        first.stdout.contains("Create API Key: "),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("'keyid': 'myNewKey'"),
        "{}",
        first.stdout
    );
    let secret = first
        .stdout
        .split("'key': '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the seed printed the key")
        .to_string();

    let again = run_python(seed("seed_create_api_key.py", &login), &[], env.clone()).await;
    assert_ran(&again, "create-api-key seed, second run");
    assert!(
        again
            .stdout
            .contains("Can't create an already existing key"),
        "{}",
        again.stdout
    );

    // Give the key a collection to see, through the Macrometa door.
    let jwt = mm_jwt(&server).await;
    let granted = mm(
        &server,
        Method::PUT,
        "/_api/key/myNewKey/database/_system/collection/orders",
        &jwt,
        Some(json!({"grant": "ro"})),
    )
    .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);

    let client = seed(
        "seed_apikey_client.py",
        &[
            ("\"play.paas.macrometa.io\"", "\"keyward.test\""),
            ("\"my API key\"", &format!("\"{secret}\"")),
        ],
    );
    let client_code = format!(
        "{client}\nprint('TENANT', client._tenant.name if hasattr(client._tenant, 'name') else '')\n\
         print('COLLECTIONS', [c['name'] for c in client.get_collections()])"
    );
    let run = run_python(client_code, &[], env.clone()).await;
    assert_ran(&run, "api-key-authentication seed (pyC8)");
    assert!(
        run.stdout.contains("--- Connecting to C8"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("COLLECTIONS ['orders']"),
        "{}",
        run.stdout
    );

    let rest = |key: &str| {
        seed(
            "seed_rest_apikey.py",
            &[
                ("\"api-play.paas.macrometa.io\"", &format!("\"{TLS_HOST}\"")),
                ("\"XXXXX\"", &format!("\"{key}\"")),
            ],
        )
    };
    let run = run_python(rest(&secret), &[], env.clone()).await;
    assert_ran(&run, "api-key-authentication seed (REST)");
    let body: Value = serde_json::from_str(run.stdout.trim()).expect("the seed printed JSON");
    assert_eq!(body["error"], false, "{body}");
    assert_eq!(body["result"][0]["name"], "orders", "{body}");

    // Without access to the fabric, the same call is refused in Macrometa's shape.
    let refused = mm(
        &server,
        Method::PUT,
        "/_api/key/myNewKey/database/_system",
        &jwt,
        Some(json!({"grant": "none"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.text);
    let run = run_python(rest(&secret), &[], env).await;
    assert_ran(&run, "api-key-authentication seed (REST), refused");
    let body: Value = serde_json::from_str(run.stdout.trim()).expect("the seed printed JSON");
    assert_eq!(body["error"], true, "{body}");
    assert_eq!(body["code"], 403, "{body}");
    assert_eq!(body["errorNum"], 11, "{body}");
}

#[tokio::test]
async fn bad_input_gets_macrometa_errors() {
    let server = TestServer::start().await;
    let jwt = mm_jwt(&server).await;
    let created = mm(
        &server,
        Method::POST,
        "/_api/key",
        &jwt,
        Some(json!({"keyid": "k1"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.body.get("errorNum").is_none());

    let cases: Vec<(Method, &str, Option<&str>, StatusCode, u64)> = vec![
        (
            Method::POST,
            "/_api/key",
            Some(r#"{"keyid": "k1"}"#),
            StatusCode::CONFLICT,
            1702,
        ),
        (
            Method::POST,
            "/_api/key",
            Some(r#"{"keyid": "1bad"}"#),
            StatusCode::BAD_REQUEST,
            100020,
        ),
        (
            Method::POST,
            "/_api/key",
            Some(r#"{"keyid": 7}"#),
            StatusCode::BAD_REQUEST,
            600,
        ),
        (
            Method::POST,
            "/_api/key",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            600,
        ),
        (
            Method::POST,
            "/_api/key",
            None,
            StatusCode::BAD_REQUEST,
            600,
        ),
        (
            Method::GET,
            "/_api/key/nope",
            None,
            StatusCode::NOT_FOUND,
            100015,
        ),
        (
            Method::DELETE,
            "/_api/key/nope",
            None,
            StatusCode::NOT_FOUND,
            100015,
        ),
        (
            Method::GET,
            "/_api/key/nope/billing",
            None,
            StatusCode::NOT_FOUND,
            100015,
        ),
        (
            Method::PUT,
            "/_api/key/k1/database/_system",
            Some(r#"{"grant": "admin"}"#),
            StatusCode::BAD_REQUEST,
            10,
        ),
        (
            Method::PUT,
            "/_api/key/k1/billing",
            Some(r#"{"grant": "wo"}"#),
            StatusCode::BAD_REQUEST,
            10,
        ),
        (
            Method::PUT,
            "/_api/key/k1/database/_system",
            Some(r#"{"level": "rw"}"#),
            StatusCode::BAD_REQUEST,
            600,
        ),
        (
            Method::GET,
            "/_api/key/k1/database/nofabric",
            None,
            StatusCode::NOT_FOUND,
            1228,
        ),
        (
            Method::PUT,
            "/_api/key/k1/database/nofabric/collection/c",
            Some(r#"{"grant": "ro"}"#),
            StatusCode::NOT_FOUND,
            1228,
        ),
        (
            Method::PUT,
            "/_api/key/k1/database/_system/collection/a%20b",
            Some(r#"{"grant": "ro"}"#),
            StatusCode::BAD_REQUEST,
            10,
        ),
        (
            Method::GET,
            "/_api/key/k1/database/_system/table",
            None,
            StatusCode::NOT_FOUND,
            404,
        ),
        (
            Method::PUT,
            "/_api/key/k1/attributes",
            Some(r#"["a"]"#),
            StatusCode::BAD_REQUEST,
            10,
        ),
        (
            Method::PUT,
            "/_api/key/k1/attributes",
            Some(r#"{"a": {"b": 1}}"#),
            StatusCode::BAD_REQUEST,
            10,
        ),
        (
            Method::GET,
            "/_fabric/nofabric/_api/collection",
            None,
            StatusCode::NOT_FOUND,
            1228,
        ),
        (
            Method::POST,
            "/_fabric/_system/_api/database",
            Some(r#"{"name": "_system"}"#),
            StatusCode::CONFLICT,
            1207,
        ),
        (
            Method::PATCH,
            "/_api/key",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            405,
        ),
        (
            Method::GET,
            "/_api/nothing/here",
            None,
            StatusCode::NOT_FOUND,
            404,
        ),
    ];
    for (method, path, body, status, number) in cases {
        let mut request = server
            .http
            .request(method.clone(), format!("{}{}", server.url, path))
            .header("Authorization", &jwt);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let reply = TestServer::reply(request.send().await.unwrap()).await;
        println!("{method} {path} -> {}", reply.text);
        assert_mm_error(&reply, status, number);
    }

    // Credentials: none, garbage, an unknown key, a bad password.
    let none = server.send(Method::GET, "/_api/key", &[], None).await;
    assert_mm_error(&none, StatusCode::UNAUTHORIZED, 11);
    let garbage = mm(
        &server,
        Method::GET,
        "/_api/key",
        "apikey kw_nonsense",
        None,
    )
    .await;
    assert_mm_error(&garbage, StatusCode::UNAUTHORIZED, 11);
    let scheme = mm(&server, Method::GET, "/_api/key", "Basic abc", None).await;
    assert_mm_error(&scheme, StatusCode::UNAUTHORIZED, 11);
    let wrong = server
        .send(
            Method::POST,
            "/_open/auth",
            &[],
            Some(br#"{"email": "admin@example.com", "password": "nope-nope"}"#.to_vec()),
        )
        .await;
    assert_mm_error(&wrong, StatusCode::UNAUTHORIZED, 11);
    let half = server
        .send(
            Method::POST,
            "/_open/auth",
            &[],
            Some(br#"{"password": "x"}"#.to_vec()),
        )
        .await;
    assert_mm_error(&half, StatusCode::BAD_REQUEST, 10);

    // `{tenant, username}` login works too, with the same answer shape.
    let by_name = server
        .send(
            Method::POST,
            "/_open/auth",
            &[],
            Some(
                json!({"tenant": "default", "username": "root", "password": ADMIN_PASSWORD})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await;
    assert_eq!(by_name.status, StatusCode::OK, "{}", by_name.text);
    assert_eq!(by_name.body["tenant"], "default");
    assert_eq!(by_name.body["username"], "root");
}

#[tokio::test]
async fn key_access_follows_the_fabric_in_the_path() {
    let server = TestServer::start().await;
    let jwt = mm_jwt(&server).await;
    let made = mm(
        &server,
        Method::POST,
        "/_fabric/_system/_api/database",
        &jwt,
        Some(json!({"name": "f2"})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let created = mm(
        &server,
        Method::POST,
        "/_api/key",
        &jwt,
        Some(json!({"keyid": "scoped"})),
    )
    .await;
    let key = format!("APIKEY {}", created.body["key"].as_str().unwrap());
    // Created after f2: the key copied the creator's rw on both fabrics.
    let levels = mm(
        &server,
        Method::GET,
        "/_api/key/scoped/database",
        &jwt,
        None,
    )
    .await;
    assert_eq!(
        levels.body["result"],
        json!({"_system": "rw", "Default": "rw", "f2": "rw"})
    );
    mm(
        &server,
        Method::PUT,
        "/_api/key/scoped/database/f2",
        &jwt,
        Some(json!({"grant": "none"})),
    )
    .await;
    let ok = mm(
        &server,
        Method::GET,
        "/_fabric/_system/_api/collection",
        &key,
        None,
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let refused = mm(
        &server,
        Method::GET,
        "/_fabric/f2/_api/collection",
        &key,
        None,
    )
    .await;
    assert_mm_error(&refused, StatusCode::FORBIDDEN, 11);
    let listed = mm(
        &server,
        Method::GET,
        "/_fabric/_system/_api/database",
        &key,
        None,
    )
    .await;
    assert_eq!(
        listed.body["result"],
        json!(["Default", "_system"]),
        "{}",
        listed.text
    );
    // A fabric made after the key starts at none for it.
    mm(
        &server,
        Method::POST,
        "/_fabric/_system/_api/database",
        &jwt,
        Some(json!({"name": "f3"})),
    )
    .await;
    let later = mm(
        &server,
        Method::GET,
        "/_api/key/scoped/database/f3",
        &jwt,
        None,
    )
    .await;
    assert_eq!(later.body["result"], "none", "{}", later.text);
    // Only from _system, and only an administrator, may create fabrics.
    let elsewhere = mm(
        &server,
        Method::POST,
        "/_fabric/f2/_api/database",
        &jwt,
        Some(json!({"name": "f4"})),
    )
    .await;
    assert_mm_error(&elsewhere, StatusCode::FORBIDDEN, 11);
}
