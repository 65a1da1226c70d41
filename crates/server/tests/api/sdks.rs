//! The first-party SDKs (sdks/python, sdks/typescript) run their own tests against this
//! server; a client generated from docs/openapi.json by an independent generator makes a
//! round trip; and the README's "Use it from your code" examples run exactly as printed.

use crate::support::*;
use std::path::PathBuf;
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON is not set: run ./scripts/test, which makes the virtualenv")
}

/// Runs `command` with the server's address and administrator in its environment, and
/// fails with its output unless it succeeds.
async fn passes(server: &TestServer, mut command: Command, what: &str) -> String {
    command
        .env("KEYWARD_URL", &server.url)
        .env("KEYWARD_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("KEYWARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("KEYWARD_TEST_NODE_PATH", node_path());
    let output = tokio::task::spawn_blocking(move || command.output().expect("the command runs"))
        .await
        .expect("the command finishes");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_passes_its_tests_against_the_server() {
    let server = TestServer::start().await;
    let mut pytest = Command::new(python());
    pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .current_dir(repo("sdks/python"));
    passes(&server, pytest, "the Python SDK's tests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_passes_its_tests_against_the_server() {
    let server = TestServer::start().await;
    let mut node = Command::new("node");
    node.args(["--test", "test/"])
        .current_dir(repo("sdks/typescript"));
    passes(&server, node, "the TypeScript SDK's tests").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_contract_makes_a_round_trip() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut generate = Command::new(python());
    generate
        .args([
            "-m",
            "openapi_python_client",
            "generate",
            "--meta",
            "none",
            "--path",
        ])
        .arg(repo("docs/openapi.json"))
        .arg("--output-path")
        .arg(work.path().join("generated_keyward"))
        .current_dir(work.path());
    passes(&server, generate, "openapi-python-client").await;
    let mut round_trip = Command::new(python());
    round_trip
        .arg(repo("crates/server/tests/api/sdks/generated_round_trip.py"))
        .env("PYTHONPATH", work.path());
    let said = passes(&server, round_trip, "the generated client's round trip").await;
    assert!(
        said.contains("created, verified, revoked, refused"),
        "{said}"
    );
}

/// The fenced block after `<!-- example: {name} -->` in the README.
fn readme_example(name: &str) -> String {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let marker = format!("<!-- example: {name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("{marker} is missing"))..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

/// A service's credential for the examples: an administrator's key.
async fn service_token(server: &TestServer) -> String {
    let admin = server.admin_token().await;
    server
        .create_key(&admin, serde_json::json!({"name": "examples"}))
        .await
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_as_printed() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    let work = tempfile::tempdir().unwrap();

    let python_file = work.path().join("example.py");
    std::fs::write(&python_file, readme_example("python")).unwrap();
    let mut python_run = Command::new(python());
    python_run.arg(&python_file).env("KEYWARD_TOKEN", &token);
    let said = passes(&server, python_run, "the README's Python example").await;
    assert!(said.contains("secret, shown once: kw_"), "{said}");

    // The TypeScript example imports "@keyward/sdk": the package, by its name.
    let modules = work.path().join("node_modules/@keyward");
    std::fs::create_dir_all(&modules).unwrap();
    std::os::unix::fs::symlink(repo("sdks/typescript"), modules.join("sdk")).unwrap();
    let js_file = work.path().join("example.mjs");
    std::fs::write(&js_file, readme_example("typescript")).unwrap();
    let mut node_run = Command::new("node");
    node_run
        .arg(&js_file)
        .env("KEYWARD_TOKEN", &token)
        .current_dir(work.path());
    let said = passes(&server, node_run, "the README's TypeScript example").await;
    assert!(said.contains("verified"), "{said}");
}
