//! Macrometa's JavaScript client, the real `jsc8` from npm, unchanged: the seeds'
//! JavaScript tabs and every jsc8 method about keys, their levels and attributes, and
//! the listings. jsc8 takes only `https://` URLs and calls `api-<host>`, so the tests
//! reach Keyward through a local TLS front (a certificate made here, trusted through
//! NODE_EXTRA_CA_CERTS) at `api-keyward.test`, which scripts/setup.d/macrometa.sh makes
//! resolve to loopback.

use crate::macrometa::{start_tls_proxy, Front, TlsProxy, SCRIPTS, TLS_HOST};
use crate::support::{node_path, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::Value;
use std::net::ToSocketAddrs;
use std::path::Path;

/// A TLS front for the server, and the URL to give jsc8 (which adds `api-`).
async fn front(server: &TestServer) -> (TlsProxy, String) {
    let resolved = (TLS_HOST, 443)
        .to_socket_addrs()
        .map(|mut a| a.any(|a| a.ip().is_loopback()));
    assert!(
        matches!(resolved, Ok(true)),
        "{TLS_HOST} must resolve to loopback for jsc8: scripts/setup.d/macrometa.sh adds \
         it to /etc/hosts ({resolved:?})"
    );
    let addr = server.running.as_ref().unwrap().addr;
    let proxy = start_tls_proxy(addr, server.data_dir.path(), Front::Direct).await;
    let url = format!("https://keyward.test:{}", proxy.addr.port());
    (proxy, url)
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs JavaScript with the installed jsc8, trusting the front's certificate.
async fn node(source: String, proxy: &TlsProxy, env: Vec<(&'static str, String)>) -> Run {
    let node_path = node_path();
    let ca = proxy.ca_file.clone();
    let output = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("script.js");
        std::fs::write(&file, source).expect("script written");
        std::process::Command::new("node")
            .arg(&file)
            .env("NODE_PATH", node_path)
            .env("NODE_EXTRA_CA_CERTS", ca)
            .envs(env)
            .output()
            .expect("node runs")
    })
    .await
    .expect("node task");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn seed(name: &str, values: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(Path::new(SCRIPTS).join(name)).expect("seed");
    for (from, to) in values {
        assert!(text.contains(from), "{name} has no {from}");
        text = text.replace(from, to);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_api_key_seed_runs_unchanged_and_a_second_run_is_a_duplicate() {
    let server = TestServer::start().await;
    let (proxy, url) = front(&server).await;
    let script = seed(
        "seed_create_api_key.js",
        &[
            ("https://gdn.paas.macrometa.io", &url),
            ("nemo@nautilus.com", ADMIN_EMAIL),
            ("\"xxxxxx\"", &format!("\"{ADMIN_PASSWORD}\"")),
        ],
    );
    let first = node(script.clone(), &proxy, vec![]).await;
    assert!(first.ok, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains("1. User authentication done!"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("keyid: 'id1'"), "{}", first.stdout);
    let secret = first
        .stdout
        .split("key: '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the new key is printed");
    assert_eq!(
        server
            .verify_code(&server.admin_token().await, secret, None)
            .await,
        "VALID"
    );

    let second = node(script, &proxy, vec![]).await;
    assert!(second.ok, "{}", second.stderr);
    assert!(
        second.stdout.contains("'StatusCode ': 409"),
        "{}",
        second.stdout
    );
    assert!(
        second.stdout.contains("'ErrorNum ': 1702"),
        "{}",
        second.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_seed_client_makes_authenticated_calls() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (proxy, url) = front(&server).await;
    let (_, secret) = server
        .create_key(&admin, serde_json::json!({"name": "seeded"}))
        .await;
    // The seed only builds the client; the calls after it are the test's.
    let script = seed(
        "seed_apikey_client.js",
        &[
            ("https://play.paas.macrometa.io", &url),
            ("\"XXXX\"", &format!("\"{secret}\"")),
        ],
    ) + r#"
client.listCollections()
  .then((list) => console.log(JSON.stringify({ ok: list })))
  .catch((e) => console.log(JSON.stringify({ err: { status: e.statusCode, num: e.errorNum } })));
"#;
    let run = node(script, &proxy, vec![]).await;
    assert!(run.ok, "{}", run.stderr);
    let answer: Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    assert!(answer["ok"].is_array(), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jsc8_key_level_attribute_and_listing_method_answers_as_macrometa() {
    let server = TestServer::start().await;
    let (proxy, url) = front(&server).await;
    let tour = std::fs::read_to_string(Path::new(SCRIPTS).join("jsc8_tour.js")).unwrap();
    let env = vec![
        ("KW_URL", url),
        ("KW_EMAIL", ADMIN_EMAIL.to_string()),
        ("KW_PASSWORD", ADMIN_PASSWORD.to_string()),
    ];
    let run = node(tour, &proxy, env).await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let out: Value = serde_json::from_str(run.stdout.trim()).expect(&run.stdout);
    let ok = |step: &str| -> &Value {
        let value = &out[step]["ok"];
        assert!(
            !value.is_null() || out[step].get("ok").is_some(),
            "{step} failed: {}",
            out[step]
        );
        value
    };
    let err = |step: &str, status: u64, num: u64| {
        let e = &out[step]["err"];
        assert_eq!(
            (e["status"].as_u64(), e["num"].as_u64()),
            (Some(status), Some(num)),
            "{step}: {}",
            out[step]
        );
    };

    assert!(ok("login")["jwt"].is_string());
    let created = ok("create");
    assert_eq!(
        (created["error"].as_bool(), created["keyid"].as_str()),
        (Some(false), Some("tour"))
    );
    err("duplicate", 409, 1702);
    err("bad_keyid", 400, 100020);
    let listed = ok("list")["result"].as_array().unwrap().clone();
    assert!(listed.iter().any(|k| k["keyid"] == "tour"), "{listed:?}");
    assert_eq!(ok("get")["user"], "tour");
    err("get_unknown", 404, 100015);

    assert!(ok("databases")["result"]["_system"].is_string());
    assert!(ok("databases_full")["result"].is_object());
    assert_eq!(ok("set_database")["result"], "ro");
    assert_eq!(ok("get_database")["result"], "ro");
    // A level on `_system` is not a level on `Default`.
    assert_ne!(ok("get_other_database")["result"], "ro");
    err("bad_grant", 400, 10);
    err("unknown_database", 404, 1228);
    assert_eq!(ok("clear_database")["error"], false);

    assert_eq!(ok("set_collection")["result"], "rw");
    assert_eq!(ok("get_collection")["result"], "rw");
    assert_eq!(ok("collections")["result"]["orders"], "rw");
    assert_eq!(ok("clear_collection")["error"], false);
    assert_eq!(ok("set_stream")["result"], "ro");
    assert_eq!(ok("get_stream")["result"], "ro");
    assert_eq!(ok("streams")["result"]["c8globals.s1"], "ro");
    assert_eq!(ok("clear_stream")["error"], false);

    assert_eq!(ok("set_billing")["result"], "ro");
    assert_eq!(ok("get_billing")["result"]["billing"], "ro");
    assert_eq!(ok("clear_billing")["error"], false);

    assert_eq!(
        ok("attributes")["result"],
        serde_json::json!({"team": "blue", "env": "prod"})
    );
    assert_eq!(ok("attribute_removed")["error"], false);
    assert_eq!(
        ok("attributes_after")["result"],
        serde_json::json!({"env": "prod"})
    );

    let collections = ok("list_collections").as_array().unwrap().clone();
    assert!(
        collections.iter().any(|c| c["name"] == "orders"),
        "{collections:?}"
    );
    assert!(ok("fabrics")
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "_system"));
    assert!(ok("user_fabrics").as_array().is_some());
    assert_eq!(ok("current_fabric")["name"], "_system");

    assert!(ok("key_lists_collections").is_array());

    let users = ok("users")["result"].as_array().unwrap().clone();
    assert!(users.iter().any(|u| u["email"] == ADMIN_EMAIL), "{users:?}");
    let created = ok("create_user");
    assert_eq!(
        (created["code"].as_u64(), created["user"].as_str()),
        (Some(201), Some("ana"))
    );
    err("create_user_again", 409, 1702);
    err("create_user_short_password", 400, 1701);
    assert_eq!(ok("has_user"), &Value::Bool(true));
    assert_eq!(ok("has_nobody"), &Value::Bool(false));
    assert_eq!(ok("get_user")["email"], "ana@example.com");
    assert_eq!(ok("update_user")["active"], false);
    assert_eq!(ok("replace_user")["active"], true);
    assert!(ok("user_permissions")["result"]["_system"].is_string());
    assert_eq!(ok("user_set_permission")["result"], "ro");
    assert_eq!(ok("user_permission")["result"], "ro");
    assert_eq!(ok("user_set_collection")["result"], "rw");
    assert_eq!(ok("user_collection")["result"], "rw");
    assert_eq!(ok("user_reset_collection")["error"], false);
    assert_eq!(
        ok("user_collection_after")["result"],
        "ro",
        "falls back to the fabric's level"
    );
    assert_eq!(ok("user_reset")["error"], false);
    err("user_attributes", 501, 501);
    assert_eq!(ok("delete_user")["error"], false);
    assert_eq!(
        ok("deleted_user")["active"],
        false,
        "removing a user deactivates it"
    );
    let validated = ok("key_validates_itself");
    assert_eq!(validated["result"]["keyid"], "tour");
    assert_eq!(validated["result"]["tenant"], "default");
    assert!(
        out["login_with_api_key"].get("ok").is_some(),
        "{}",
        out["login_with_api_key"]
    );
    err("validate_garbage", 401, 11);
    assert_eq!(ok("remove")["error"], false);
    err("key_after_remove", 401, 11);
    err("remove_again", 404, 100015);
}
