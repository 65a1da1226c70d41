//! The OpenAPI contract: what the server serves is what docs/openapi.json holds, and it
//! validates; schemathesis then calls every operation with generated input, as an
//! administrator and as a member's key, and checks every answer against it.

use crate::support::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON is not set: run ./scripts/test, which makes the virtualenv")
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("the command runs"))
        .await
        .expect("the command finishes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_contract_is_the_committed_one_and_it_validates() {
    let server = TestServer::start().await;
    let served = server
        .http
        .get(format!("{}/v0/openapi.json", server.url))
        .send()
        .await
        .expect("the contract is served without a credential");
    assert_eq!(served.status(), 200);
    let served = served.text().await.unwrap();
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    if served != committed {
        if std::env::var_os("KEYWARD_UPDATE_OPENAPI").is_some() {
            std::fs::write(committed_path(), &served).expect("docs/openapi.json written");
        } else {
            panic!(
                "docs/openapi.json differs from what the server serves: refresh it with \
                 KEYWARD_UPDATE_OPENAPI=1 cargo test -p keyward-server --test api openapi"
            );
        }
    }
    let mut validate = Command::new(python());
    validate
        .args(["-m", "openapi_spec_validator"])
        .arg(committed_path());
    let output = run(validate).await;
    assert!(
        output.status.success(),
        "the contract does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// schemathesis over every operation with `credential`: no server error, no answer that
/// breaks the contract (status codes, content types, bodies, headers).
async fn schemathesis(server: &TestServer, credential: &str, examples: u32) {
    let mut command = Command::new(python());
    command
        .args(["-m", "schemathesis.cli", "run"])
        .arg(format!("{}/v0/openapi.json", server.url))
        // Every check but one: a request the schema allows may still be refused with
        // 422 for what a schema cannot say (an IP allow-list entry must parse, a name
        // be unique), and 422 is in the contract. Logging out ends the session the run
        // uses, so it is left to the API tests; the change stream never ends, and has
        // its own tests (client_layer.rs).
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args([
            "--exclude-path",
            "/v0/auth/logout",
            "--exclude-path",
            "/v0/changes",
        ])
        .arg("--max-examples")
        .arg(examples.to_string())
        .args(["--generation-deterministic", "--no-color"])
        .args(["-H", &format!("Authorization: Bearer {credential}")])
        // It keeps a cache where it runs: not in the source tree.
        .current_dir(std::env::temp_dir())
        .env("PYTHONIOENCODING", "utf-8");
    let output = run(command).await;
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "schemathesis found answers that break the contract:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_keeps_the_contract_for_an_administrator_and_a_members_key() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    schemathesis(&server, &admin, 25).await;
    let member = server
        .member(
            &admin,
            "member@example.com",
            Some(json!(["keyward.keys.*"])),
        )
        .await;
    let (_, key) = server
        .create_key(&member, json!({"name": "member's key"}))
        .await;
    schemathesis(&server, &key, 10).await;
}
