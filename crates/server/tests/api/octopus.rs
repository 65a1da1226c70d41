//! The Octopus Deploy door, driven by Octopus's own scripts and clients: the seed's
//! Python script (unchanged but for its four settings), the seed's PowerShell REST calls
//! reproduced with curl, and the npm client `@octopusdeploy/api-client` 1.4.0.

use crate::support::{curl, in_seconds, sleep_past, Reply, TestServer, MEMBER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SEED_PYTHON: &str = include_str!("octopus/create_api_key.py");
const NODE_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/octopus/api_client.js"
);

// ---- Helpers ----

/// A request as Octopus clients send it: the key in `X-Octopus-ApiKey`, JSON bodies.
async fn octo(
    server: &TestServer,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> Reply {
    let body = body.map(|b| b.to_string().into_bytes());
    server
        .send(method, path, &[("X-Octopus-ApiKey", key.as_bytes())], body)
        .await
}

async fn octo_get(server: &TestServer, path: &str, key: &str) -> Reply {
    octo(server, Method::GET, path, key, None).await
}

/// Checks Octopus's error body and returns its text (message and every error).
fn assert_octopus_error(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(
        reply.status, status,
        "expected {status}, got: {}",
        reply.text
    );
    let message = reply.body["ErrorMessage"]
        .as_str()
        .unwrap_or_else(|| panic!("no ErrorMessage: {}", reply.text));
    assert!(
        !message.trim().is_empty(),
        "empty ErrorMessage: {}",
        reply.text
    );
    let errors = reply.body["Errors"]
        .as_array()
        .unwrap_or_else(|| panic!("Errors is not an array: {}", reply.text));
    let mut text = message.to_string();
    for error in errors {
        text.push('\n');
        text.push_str(error.as_str().expect("errors are strings"));
    }
    text
}

fn is_octopus_key(key: &str) -> bool {
    key.strip_prefix("API-").is_some_and(|body| {
        body.len() == 26
            && body
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    })
}

/// Creates a user through the native API; returns a session for them.
async fn user(server: &TestServer, admin: &str, username: &str, role: &str) -> String {
    let email = format!("{username}@example.com");
    let body =
        json!({"email": email, "password": MEMBER_PASSWORD, "username": username, "role": role});
    let reply = server
        .call(Method::POST, "/v0/users", Some(admin), Some(body))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "create user: {}",
        reply.text
    );
    server.login(&email, MEMBER_PASSWORD).await
}

/// A native (`kw_...`) key for a session's user.
async fn native_key(server: &TestServer, session: &str, name: &str) -> String {
    server.create_key(session, json!({ "name": name })).await.1
}

/// The user's Octopus id (`Users-<n>`), as `/api/users/me` gives it.
async fn octopus_id(server: &TestServer, key: &str) -> String {
    let me = octo_get(server, "/api/users/me", key).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    me.body["Id"].as_str().expect("Id").to_string()
}

async fn create_octopus_key(server: &TestServer, key: &str, user_id: &str, body: Value) -> Value {
    let path = format!("/api/users/{user_id}/apikeys");
    let reply = octo(server, Method::POST, &path, key, Some(body)).await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "create key: {}",
        reply.text
    );
    reply.body
}

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run ./scripts/test, which installs the Octopus test clients")
    })
}

/// A Python string literal for `value`.
fn py(value: &str) -> String {
    serde_json::to_string(value).expect("a JSON string is a Python string")
}

/// Runs the seed's Python script with its four settings replaced, and returns the
/// variables it left: the space and user it found, and the create response.
fn run_python_seed(url: &str, key: &str, user_name: &str, purpose: &str) -> Value {
    let settings = [
        (
            "octopus_server_uri = 'https://your-octopus-url'",
            format!("octopus_server_uri = {}", py(url)),
        ),
        (
            "octopus_api_key = 'API-YOUR-KEY'",
            format!("octopus_api_key = {}", py(key)),
        ),
        (
            "user_name = 'MyUser'",
            format!("user_name = {}", py(user_name)),
        ),
        (
            "purpose = 'Descriptive purpose'",
            format!("purpose = {}", py(purpose)),
        ),
    ];
    let mut script = SEED_PYTHON.to_string();
    for (line, replacement) in settings {
        assert_eq!(
            script.matches(line).count(),
            1,
            "the seed has `{line}` once"
        );
        script = script.replace(line, &replacement);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("create_api_key.py");
    std::fs::write(&path, script).expect("script written");
    // The seed prints nothing; its module globals hold what it found and got back.
    let report = "import json, runpy, sys\n\
        g = runpy.run_path(sys.argv[1])\n\
        print(json.dumps({'space': g['space'], 'user': g['user'], \
        'status': g['response'].status_code, 'body': g['response'].json()}))";
    let output = Command::new(tool("KEYWARD_TEST_PYTHON"))
        .args(["-c", report])
        .arg(&path)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "the seed script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

// ---- The seed's scripts and the real client ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_python_script_creates_a_key_that_works_everywhere() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    // More users than one page (30), so the script has to walk to a second page.
    for i in 0..31 {
        user(&server, &admin, &format!("filler-{i:02}"), "member").await;
    }
    let ops = user(&server, &admin, "octo-ops", "admin").await;
    let native = native_key(&server, &ops, "bootstrap").await;

    // A native key authenticates through X-Octopus-ApiKey too.
    let url = server.url.clone();
    let first = tokio::task::spawn_blocking({
        let (url, native) = (url.clone(), native.clone());
        move || run_python_seed(&url, &native, "octo-ops", "Descriptive purpose")
    })
    .await
    .unwrap();
    assert_eq!(first["space"]["Name"], "Default", "{first}");
    assert_eq!(first["user"]["Username"], "octo-ops", "{first}");
    assert_eq!(first["status"], 201, "{first}");
    let body = &first["body"];
    assert_eq!(body["Purpose"], "Descriptive purpose");
    assert_eq!(body["UserId"], first["user"]["Id"]);
    let new_key = body["ApiKey"]
        .as_str()
        .expect("ApiKey is the secret")
        .to_string();
    assert!(is_octopus_key(&new_key), "{new_key}");

    // The new key acts as its owner through this door, the native one, and verify.
    let me = octo_get(&server, "/api/users/me", &new_key).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["Username"], "octo-ops");
    assert_eq!(me.body["IsRequestor"], true);
    let native_me = server.get("/v0/me", &new_key).await;
    assert_eq!(
        native_me.body["user"]["username"], "octo-ops",
        "{}",
        native_me.text
    );
    assert_eq!(native_me.body["key"]["door"], "octopus");
    assert_eq!(server.verify_code(&admin, &new_key, None).await, "VALID");

    // Run again with the new key and the same Purpose: Octopus allows that.
    let second = tokio::task::spawn_blocking({
        let new_key = new_key.clone();
        move || run_python_seed(&url, &new_key, "octo-ops", "Descriptive purpose")
    })
    .await
    .unwrap();
    assert_eq!(second["status"], 201, "{second}");
    assert_ne!(second["body"]["Id"], body["Id"]);

    let path = format!("/api/users/{}/apikeys", body["UserId"].as_str().unwrap());
    let list = octo_get(&server, &path, &new_key).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body["ItemType"], "ApiKey");
    assert_eq!(list.body["TotalResults"], 3, "{}", list.text);
    let purposes: Vec<&Value> = list.body["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["Purpose"])
        .collect();
    assert_eq!(
        purposes,
        [
            &json!("Descriptive purpose"),
            &json!("Descriptive purpose"),
            &json!("bootstrap")
        ]
    );
    for item in list.body["Items"].as_array().unwrap() {
        assert_eq!(
            item["ApiKey"],
            json!({"HasValue": true, "NewValue": null, "Hint": null})
        );
    }
    crate::support::assert_secret_absent(list.text.as_bytes(), &new_key, "the key list");
}

#[tokio::test]
async fn seed_powershell_requests_work_through_curl() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = native_key(&server, &admin, "powershell").await;
    let header = format!("X-Octopus-ApiKey: {key}");

    // Invoke-WebRequest "$OctopusURL/api/users/all" -Headers $header -Method Get
    let all = curl(vec![
        "-H".into(),
        header.clone(),
        format!("{}/api/users/all", server.url),
    ])
    .await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let users = all.body.as_array().expect("users/all is an array");
    // Where-Object { $_.username -eq $UserName } (PowerShell ignores the case of names)
    let user = users
        .iter()
        .find(|u| u["Username"] == "root")
        .expect("the user is listed");
    let id = user["Id"].as_str().expect("Id");

    // ConvertTo-Json output, posted without a JSON Content-Type (PowerShell's default
    // for POST is application/x-www-form-urlencoded, as is curl's for --data).
    let body = "{\r\n    \"Purpose\":  \"Created from PowerShell\"\r\n}";
    let created = curl(vec![
        "-X".into(),
        "POST".into(),
        "-H".into(),
        header,
        "--data-binary".into(),
        body.into(),
        format!("{}/api/users/{id}/apikeys", server.url),
    ])
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["ApiKey"]
        .as_str()
        .expect("$CreateAPIKeyResponse.apikey");
    assert!(is_octopus_key(secret), "{secret}");
    assert_eq!(created.body["Purpose"], "Created from PowerShell");
    let me = octo_get(&server, "/api/users/me", secret).await;
    assert_eq!(me.body["Username"], "root", "{}", me.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_api_client_runs_the_whole_key_lifecycle() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = native_key(&server, &admin, "node").await;
    let node_path = tool("KEYWARD_TEST_NODE_PATH");
    assert!(
        Path::new(&node_path)
            .join("@octopusdeploy/api-client")
            .exists(),
        "{node_path}"
    );
    let url = server.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(NODE_SCRIPT)
            .args([url.as_str(), key.as_str(), "from node"])
            .env("NODE_PATH", node_path)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the node script failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON report in: {stdout}"));
    assert_eq!(report["me"]["Username"], "root", "{report}");
    let created = &report["created"];
    assert!(
        is_octopus_key(created["ApiKey"].as_str().unwrap()),
        "{report}"
    );
    assert_eq!(created["Purpose"], "from node");
    let listed = report["listed"]["Items"].as_array().expect("items");
    assert!(listed.iter().any(|k| k["Id"] == created["Id"]), "{report}");
    assert_eq!(report["meWithNewKey"]["Id"], report["me"]["Id"]);
    assert_eq!(report["afterRevoke"]["StatusCode"], 401, "{report}");
    assert_eq!(report["noPurpose"]["StatusCode"], 400, "{report}");
    let message = report["noPurpose"]["ErrorMessage"].as_str().unwrap();
    assert!(message.contains("Purpose"), "{message}");
}

// ---- Rules ----

#[tokio::test]
async fn expired_keys_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = native_key(&server, &admin, "maker").await;
    let id = octopus_id(&server, &key).await;
    let expires = in_seconds(1);
    let created = create_octopus_key(
        &server,
        &key,
        &id,
        json!({"Purpose": "short", "Expires": expires}),
    )
    .await;
    let short = created["ApiKey"].as_str().unwrap();
    assert_eq!(
        crate::support::parse_time(&created["Expires"]),
        crate::support::parse_time(&json!(expires))
    );
    assert_eq!(
        octo_get(&server, "/api/users/me", short).await.status,
        StatusCode::OK
    );
    sleep_past(&created["Expires"], Duration::from_millis(200)).await;
    let refused = octo_get(&server, "/api/users/me", short).await;
    let text = assert_octopus_error(&refused, StatusCode::UNAUTHORIZED);
    assert!(text.contains("expired"), "{text}");
    assert_eq!(server.verify_code(&admin, short, None).await, "EXPIRED");
}

#[tokio::test]
async fn users_reach_only_their_own_keys() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let a = user(&server, &admin, "alice", "member").await;
    let b = user(&server, &admin, "bob", "member").await;
    let a_key = native_key(&server, &a, "alice").await;
    let b_key = native_key(&server, &b, "bob").await;
    let admin_key = native_key(&server, &admin, "admin").await;
    let a_id = octopus_id(&server, &a_key).await;
    let b_id = octopus_id(&server, &b_key).await;

    let b_keys = format!("/api/users/{b_id}/apikeys");
    let create = octo(
        &server,
        Method::POST,
        &b_keys,
        &a_key,
        Some(json!({"Purpose": "x"})),
    )
    .await;
    assert_octopus_error(&create, StatusCode::FORBIDDEN);
    assert_octopus_error(
        &octo_get(&server, &b_keys, &a_key).await,
        StatusCode::FORBIDDEN,
    );
    assert_octopus_error(
        &octo_get(&server, &format!("/api/users/{b_id}"), &a_key).await,
        StatusCode::FORBIDDEN,
    );
    assert_octopus_error(
        &octo_get(&server, "/api/users", &a_key).await,
        StatusCode::FORBIDDEN,
    );
    // Octopus lets nobody make keys for another user, administrators included.
    let by_admin = octo(
        &server,
        Method::POST,
        &b_keys,
        &admin_key,
        Some(json!({"Purpose": "x"})),
    )
    .await;
    let text = assert_octopus_error(&by_admin, StatusCode::FORBIDDEN);
    assert!(text.contains("your own"), "{text}");

    // Alice's own key, invisible and untouchable for Bob.
    let mine = create_octopus_key(&server, &a_key, &a_id, json!({"Purpose": "mine"})).await;
    let self_link = mine["Links"]["Self"].as_str().unwrap();
    assert_octopus_error(
        &octo_get(&server, self_link, &b_key).await,
        StatusCode::FORBIDDEN,
    );
    let delete = octo(&server, Method::DELETE, self_link, &b_key, None).await;
    assert_octopus_error(&delete, StatusCode::FORBIDDEN);
    // Bob naming Alice's key under his own user finds nothing.
    let key_id = mine["Id"].as_str().unwrap();
    let crossed = octo_get(&server, &format!("{b_keys}/{key_id}"), &b_key).await;
    assert_octopus_error(&crossed, StatusCode::NOT_FOUND);
    // The administrator sees Bob's keys, as in Octopus.
    let listed = octo_get(&server, &b_keys, &admin_key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["TotalResults"], 1);

    // Alice revokes her key; it stops working at once and leaves her list.
    let got = octo_get(&server, self_link, &a_key).await;
    assert_eq!(got.body["Purpose"], "mine", "{}", got.text);
    let revoked = octo(&server, Method::DELETE, self_link, &a_key, None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let secret = mine["ApiKey"].as_str().unwrap();
    assert_octopus_error(
        &octo_get(&server, "/api/users/me", secret).await,
        StatusCode::UNAUTHORIZED,
    );
    let a_list = octo_get(&server, &format!("/api/users/{a_id}/apikeys"), &a_key).await;
    assert_eq!(a_list.body["TotalResults"], 1, "{}", a_list.text);
}

#[tokio::test]
async fn bad_input_gets_octopus_errors() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = native_key(&server, &admin, "k").await;
    let id = octopus_id(&server, &key).await;
    let keys = format!("/api/users/{id}/apikeys");

    let cases: [(&str, &[u8], &str); 9] = [
        ("no Purpose", b"{}", "Purpose"),
        ("null Purpose", br#"{"Purpose": null}"#, "Purpose"),
        ("blank Purpose", br#"{"Purpose": "  "}"#, "Purpose"),
        (
            "bad Expires",
            br#"{"Purpose": "p", "Expires": "tomorrow"}"#,
            "Expires",
        ),
        (
            "past Expires",
            br#"{"Purpose": "p", "Expires": "2001-01-01T00:00:00+00:00"}"#,
            "Expires",
        ),
        (
            "Expires past year 9999 in UTC",
            br#"{"Purpose": "p", "Expires": "9999-12-31T23:59:59-23:59"}"#,
            "Expires",
        ),
        (
            "Expires of the wrong type",
            br#"{"Purpose": "p", "Expires": 5}"#,
            "invalid",
        ),
        ("malformed JSON", br#"{"Purpose": "#, "JSON"),
        ("empty body", b"", "empty"),
    ];
    for (label, body, needle) in cases {
        let reply = server
            .send(
                Method::POST,
                &keys,
                &[("X-Octopus-ApiKey", key.as_bytes())],
                Some(body.to_vec()),
            )
            .await;
        let text = assert_octopus_error(&reply, StatusCode::BAD_REQUEST);
        assert!(text.contains(needle), "{label}: {text}");
    }

    let unknown = octo(
        &server,
        Method::POST,
        "/api/users/Users-9999/apikeys",
        &key,
        Some(json!({"Purpose": "p"})),
    )
    .await;
    assert_octopus_error(&unknown, StatusCode::NOT_FOUND);
    for path in [
        "/api/users/Users-9999",
        "/api/users/bob",
        "/api/users/Users-0/apikeys",
        &format!("{keys}/APIKeys-9999"),
        &format!("{keys}/nonsense"),
        "/api/spaces/Spaces-9999",
        "/api/Spaces-x",
    ] {
        assert_octopus_error(&octo_get(&server, path, &key).await, StatusCode::NOT_FOUND);
    }
    let bad_take = octo_get(&server, "/api/users?take=-1", &key).await;
    assert_octopus_error(&bad_take, StatusCode::BAD_REQUEST);

    let credentials: [&[(&str, &[u8])]; 4] = [
        &[],
        &[("X-Octopus-ApiKey", b"")],
        &[("X-Octopus-ApiKey", b"API-NOTAREALKEY")],
        &[("X-Octopus-ApiKey", b"API-AAAAAAAAAAAAAAAAAAAAAAAAAA")],
    ];
    for headers in credentials {
        let reply = server
            .send(Method::GET, "/api/users/me", headers, None)
            .await;
        assert_octopus_error(&reply, StatusCode::UNAUTHORIZED);
    }
    let put = octo(&server, Method::PUT, "/api/users/me", &key, Some(json!({}))).await;
    assert_octopus_error(&put, StatusCode::METHOD_NOT_ALLOWED);
}

// ---- Shapes ----

#[tokio::test]
async fn root_spaces_and_paged_users_have_octopus_shapes() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for name in ["carol", "dave", "erin"] {
        user(&server, &admin, name, "member").await;
    }
    let key = native_key(&server, &admin, "k").await;

    // The root document needs no key.
    let root = server.send(Method::GET, "/api", &[], None).await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.text);
    assert_eq!(root.body["ApiVersion"], "3.0.0");
    assert!(root.body["InstallationId"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .is_ok());
    assert_eq!(root.body["Links"]["CurrentUser"], "/api/users/me");

    let spaces = octo_get(&server, "/api/spaces?skip=0", &key).await;
    assert_eq!(spaces.body["ItemType"], "Space", "{}", spaces.text);
    let space = &spaces.body["Items"][0];
    assert_eq!(space["Name"], "Default");
    assert_eq!(space["IsDefault"], true);
    let home = octo_get(&server, space["Links"]["SpaceHome"].as_str().unwrap(), &key).await;
    assert_eq!(home.body["Id"], space["Id"], "{}", home.text);
    let one = octo_get(&server, space["Links"]["Self"].as_str().unwrap(), &key).await;
    assert_eq!(one.body["Name"], "Default", "{}", one.text);
    let partial = octo_get(
        &server,
        "/api/spaces?partialName=defa&skip=0&take=2147483647",
        &key,
    )
    .await;
    assert_eq!(partial.body["TotalResults"], 1, "{}", partial.text);
    let none = octo_get(&server, "/api/spaces?partialName=zzz", &key).await;
    assert_eq!(none.body["TotalResults"], 0, "{}", none.text);

    // Four users, two a page: the second page is the last and has no Page.Next.
    let first = octo_get(&server, "/api/users?skip=0&take=2", &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    for (field, value) in [
        ("ItemType", json!("User")),
        ("TotalResults", json!(4)),
        ("ItemsPerPage", json!(2)),
        ("NumberOfPages", json!(2)),
        ("LastPageNumber", json!(1)),
    ] {
        assert_eq!(first.body[field], value, "{field}: {}", first.text);
    }
    let next = first.body["Links"]["Page.Next"]
        .as_str()
        .expect("Page.Next on the first page");
    let last = octo_get(&server, next, &key).await;
    assert_eq!(
        last.body["Items"].as_array().unwrap().len(),
        2,
        "{}",
        last.text
    );
    assert!(
        last.body["Links"].get("Page.Next").is_none(),
        "{}",
        last.text
    );
    let all = octo_get(&server, "/api/users?take=2147483647", &key).await;
    assert_eq!(
        all.body["Items"].as_array().unwrap().len(),
        4,
        "{}",
        all.text
    );

    let filtered = octo_get(&server, "/api/users?filter=DAV", &key).await;
    assert_eq!(filtered.body["TotalResults"], 1, "{}", filtered.text);
    let dave = &filtered.body["Items"][0];
    assert_eq!(dave["Username"], "dave");
    assert_eq!(dave["IsRequestor"], false);
    assert_eq!(
        dave["Links"]["ApiKeys"],
        format!(
            "/api/users/{}/apikeys{{/id}}{{?skip,take}}",
            dave["Id"].as_str().unwrap()
        )
    );
    let by_id = octo_get(
        &server,
        &format!("/api/users?ids={}", dave["Id"].as_str().unwrap()),
        &key,
    )
    .await;
    assert_eq!(by_id.body["Items"][0]["Username"], "dave", "{}", by_id.text);
    // Ids are matched without regard to case, as Octopus does.
    let lower = dave["Id"].as_str().unwrap().to_lowercase();
    let got = octo_get(&server, &format!("/api/users/{lower}"), &key).await;
    assert_eq!(got.body["Username"], "dave", "{}", got.text);
}

// ---- Keys in the query string ----

#[tokio::test]
async fn query_string_keys_work_and_never_reach_the_log() {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Buffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The process-wide subscriber, not a thread-scoped one: callsites first hit on another
    // test's thread would otherwise cache "not interested" and drop this test's request
    // lines. Other tests of this file then log here too, which only widens the check.
    tracing::subscriber::set_global_default(subscriber).expect("only this test sets it");

    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let key = native_key(&server, &admin, "k").await;
    let id = octopus_id(&server, &key).await;
    let created = create_octopus_key(&server, &key, &id, json!({"Purpose": "query"})).await;
    let secret = created["ApiKey"].as_str().unwrap();
    for query in ["apikey", "ApiKey", "api-key"] {
        let path = format!("/api/users/me?{query}={secret}");
        let me = server.send(Method::GET, &path, &[], None).await;
        assert_eq!(me.status, StatusCode::OK, "{query}: {}", me.text);
        assert_eq!(me.body["Id"], id.as_str());
    }
    let wrong = server
        .send(Method::GET, "/api/users/me?apikey=API-WRONG", &[], None)
        .await;
    assert_octopus_error(&wrong, StatusCode::UNAUTHORIZED);

    let log = log.0.lock().unwrap().clone();
    assert!(
        crate::support::bytes_contain(&log, "/api/users/me"),
        "requests are logged: {}",
        String::from_utf8_lossy(&log)
    );
    crate::support::assert_secret_absent(&log, secret, "the request log");
    assert!(
        !crate::support::bytes_contain(&log, "API-WRONG"),
        "the request log has a query key"
    );
}
