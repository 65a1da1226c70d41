//! The web console in a real browser (Debian's Chromium through playwright-core, with
//! axe-core on every page): console/browser.js walks every page as an administrator and
//! as a member against this server; the test sets the people up and checks afterwards,
//! through the API, what the pages did.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const MEMBER_EMAIL: &str = "member@example.com";
const THROTTLED_EMAIL: &str = "locked@example.com";
const MEMBER_KEY: &str = "member key";
const ADMIN_KEY: &str = "admin key";

/// Where screenshots go: `KEYWARD_CONSOLE_SCREENSHOTS` (docs/console when refreshing the
/// committed ones), else target/console-screenshots.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("KEYWARD_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots")
        })
}

/// Runs one of this folder's browser scripts with `vars` and returns its last line.
async fn browser_script(script: &str, vars: Vec<(&'static str, String)>) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/console")
        .join(script);
    let node_path = node_path();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(file)
            .env("NODE_PATH", node_path)
            .envs(vars)
            .output()
            .expect("node runs")
    })
    .await
    .expect("the browser script finishes");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().last().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_manages_keys_and_people_in_a_real_browser() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server
        .member(
            &admin,
            MEMBER_EMAIL,
            Some(json!(["keyward.keys.*", "invoices.read"])),
        )
        .await;
    server
        .create_key(&member, json!({"name": MEMBER_KEY}))
        .await;
    server.create_key(&admin, json!({"name": ADMIN_KEY})).await;
    // An account that has had as many failed logins as the throttle allows.
    server.member(&admin, THROTTLED_EMAIL, None).await;
    for _ in 0..10 {
        let reply = server
            .call(
                Method::POST,
                "/v0/auth/login",
                None,
                Some(json!({"email": THROTTLED_EMAIL, "password": "wrong-password-0"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }

    browser_script(
        "browser.js",
        vec![
            ("KEYWARD_URL", server.url.clone()),
            ("ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("MEMBER_EMAIL", MEMBER_EMAIL.into()),
            ("MEMBER_PASSWORD", MEMBER_PASSWORD.into()),
            ("THROTTLED_EMAIL", THROTTLED_EMAIL.into()),
            ("MEMBER_KEY_NAME", MEMBER_KEY.into()),
            ("ADMIN_KEY_NAME", ADMIN_KEY.into()),
            ("SCREENSHOT_DIR", screenshot_dir().display().to_string()),
        ],
    )
    .await;

    // What the pages did is in the audit log, made through the console door.
    let events = server.get("/v0/audit?limit=1000", &admin).await;
    let through_console = |action: &str| {
        events.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["door"] == "console")
            .count()
    };
    for action in [
        "key.created",
        "key.updated",
        "key.rotated",
        "key.revoked",
        "user.created",
    ] {
        assert_eq!(through_console(action), 1, "{action} through the console");
    }
    assert!(through_console("login.failed") >= 1);
    assert_eq!(through_console("user.password_changed"), 1);
    // The key made in the browser kept its limits and credits.
    let keys = server
        .get("/v0/api_keys?include_revoked=true&limit=100", &admin)
        .await;
    let made: &Value = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "browser key (renamed)")
        .expect("the browser's key");
    assert_eq!(made["ratelimits"][0]["limit"], 100);
    // 50, less three valid verifications: one before the rotation, two after.
    assert_eq!(made["credits"]["remaining"], 47);
    assert_eq!(made["metadata"], json!({"team": "web"}));
    assert_eq!(made["permissions"], json!(["keyward.keys.read"]));
    assert_eq!(made["state"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_list_of_100k_keys_renders_about_as_fast_as_the_api_answers() {
    let server = TestServer::start().await;
    let mut config = keyward_server::ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        server.data_dir.path().to_path_buf(),
    );
    config.admin_email = Some(ADMIN_EMAIL.into());
    config.admin_password = Some(ADMIN_PASSWORD.into());
    config.database_url = Some(server.database_url.clone());
    keyward_server::bulk::load_keys(&config, 100_000, 1, "load")
        .await
        .expect("100k keys load");
    let line = browser_script(
        "list_timing.js",
        vec![
            ("KEYWARD_URL", server.url.clone()),
            ("ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ],
    )
    .await;
    let figures: Value = serde_json::from_str(&line).expect("figures as JSON");
    assert_eq!(
        figures["rows"], 50,
        "the first page of 100k keys: {figures}"
    );
    assert_eq!(figures["total"], 100_000, "{figures}");
    // A figure to read, not a timing to assert (tests assert no timings).
    println!(
        "console key list at 100k keys: page {} ms (server {} ms), API call {} ms; budget API + 50 ms = {} ms",
        figures["page_ms"], figures["page_server_ms"], figures["api_ms"],
        figures["api_ms"].as_f64().unwrap_or(0.0) + 50.0
    );
}

/// The session cookie as a browser behind a TLS-terminating proxy gets it, and the
/// headers every console answer carries, read without a browser.
#[tokio::test]
async fn console_answers_carry_their_protections_and_cookies_are_secure_behind_tls() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(dir, |config| {
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/console/login", server.url))
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cache-control"), "no-store");
    let cookie = header("set-cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console", "Secure"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    // Without the proxy's word, the cookie is not marked Secure (plain HTTP).
    let plain = http
        .get(format!("{}/console/login", server.url))
        .send()
        .await
        .unwrap();
    let cookie = plain.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    // Pages need a session; assets do not, and may be cached.
    let keys = http
        .get(format!("{}/console/keys", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(keys.status(), StatusCode::SEE_OTHER);
    assert_eq!(keys.headers()["location"], "/console/login");
    let css = http
        .get(format!("{}/console/assets/console.css", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age"));
    let missing = http
        .get(format!("{}/console/assets/../keyward.db", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Bad input to the console's forms: a login without its token, oversized fields.
    let forged = http
        .post(format!("{}/console/login", server.url))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let huge = "x".repeat(2 * 1024 * 1024);
    let too_big = http
        .post(format!("{}/console/login", server.url))
        .form(&[("email", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bad_query = http
        .get(format!(
            "{}/console/login?expired=1&nonsense=%FF",
            server.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad_query.status(),
        StatusCode::OK,
        "unknown login notices are ignored"
    );
}
