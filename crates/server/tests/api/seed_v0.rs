//! The seed page v0-create-api-key.md, run as written: its curl command and its
//! JavaScript `fetch` sample, with only the URL, the token and the key name filled in,
//! once with a login token (JWT) and once with an API key as the Bearer token. The
//! clients run as blocking child processes, so the server needs a thread of its own.

use crate::support::TestServer;
use serde_json::{json, Value};
use std::process::Command;

/// The seed's curl command: `curl -X POST URL -H 'Authorization: Bearer TOKEN'
/// -H 'Content-Type: application/json' -d BODY`, plus `-w` to see the status.
fn seed_curl(url: &str, token: &str, body: &str) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-X", "POST"])
        .arg(format!("{url}/v0/api_keys"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args(["-d", body])
        .output()
        .expect("curl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap())
}

/// The seed's JavaScript sample, run by Node's built-in `fetch`.
fn seed_fetch(url: &str, token: &str, body: Value) -> Value {
    let script = format!(
        r#"
const response = await fetch('{url}/v0/api_keys', {{
method: 'POST',
headers: {{
'Content-Type': 'application/json',
'Authorization': 'Bearer {token}'
}},
body: JSON.stringify({body})
}});
const data = await response.json();
console.log(JSON.stringify({{status: response.status, data}}));
"#
    );
    let out = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_created(status: u16, body: &Value, name: &str) {
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], name);
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert!(body["api_key"].as_str().unwrap().starts_with("kw_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_curl_flow_works_with_a_jwt_and_with_an_api_key() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;

    let (status, created) = seed_curl(&server.url, &jwt, r#"{"name": "seed-key"}"#);
    assert_created(status, &created, "seed-key");

    let (status, duplicate) = seed_curl(&server.url, &jwt, r#"{"name": "seed-key"}"#);
    assert_eq!(status, 409);
    assert_eq!(
        duplicate,
        json!({
            "message": "An entity with this name already exists",
            "error_code": "DuplicateName",
            "details": null
        })
    );

    // The page's literal example body `{}` lacks the required name: a body that does not
    // fit the request's shape is a 400, like malformed JSON.
    let (status, missing) = seed_curl(&server.url, &jwt, "{}");
    assert_eq!(status, 400, "{missing}");
    assert!(
        missing["message"].as_str().unwrap().contains("name"),
        "{missing}"
    );

    let key = created["api_key"].as_str().unwrap();
    let (status, via_key) = seed_curl(&server.url, key, r#"{"name": "made-by-a-key"}"#);
    assert_created(status, &via_key, "made-by-a-key");

    let (status, bad) = seed_curl(&server.url, "kw_notARealKey", r#"{"name": "x"}"#);
    assert_eq!(status, 401, "{bad}");
    assert!(bad["error_code"].is_string() && bad["message"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_fetch_sample_works_with_a_jwt_and_with_an_api_key() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;

    let answer = seed_fetch(&server.url, &jwt, json!({"name": "from-node"}));
    assert_created(
        answer["status"].as_u64().unwrap() as u16,
        &answer["data"],
        "from-node",
    );
    let key = answer["data"]["api_key"].as_str().unwrap().to_string();

    let answer = seed_fetch(&server.url, &key, json!({"name": "from-node-by-key"}));
    assert_created(
        answer["status"].as_u64().unwrap() as u16,
        &answer["data"],
        "from-node-by-key",
    );

    let answer = seed_fetch(&server.url, &key, json!({"name": "from-node"}));
    assert_eq!(answer["status"], 409);
    assert_eq!(answer["data"]["error_code"], "DuplicateName");
}
