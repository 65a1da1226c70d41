//! The real `keyward` binary: `serve` on a random port with a fresh data directory, and
//! the client commands run against it as a person or a script would.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use tempfile::TempDir;

/// A fresh PostgreSQL database per test (shared with the server's tests).
#[path = "../../server/tests/api/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

const BIN: &str = env!("CARGO_BIN_EXE_keyward");
const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct-horse-battery";

/// A `keyward serve` process; killed when dropped.
struct Node {
    child: Child,
    url: String,
    stdout: Vec<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `keyward serve` with extra arguments and environment, and waits for the line
/// that says where it listens.
fn serve(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Node {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .env_remove("KEYWARD_ADMIN_EMAIL")
        .env_remove("KEYWARD_ADMIN_PASSWORD")
        .env("KEYWARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut node = Node {
        child: command.spawn().expect("keyward serve starts"),
        url: String::new(),
        stdout: Vec::new(),
    };
    let mut lines = BufReader::new(node.child.stdout.take().unwrap()).lines();
    while node.url.is_empty() {
        let line = lines
            .next()
            .expect("keyward serve printed where it listens")
            .unwrap();
        if let Some(url) = line.strip_prefix("Keyward listening on ") {
            node.url = url.to_string();
        }
        node.stdout.push(line);
    }
    node
}

fn serve_with_admin(data_dir: &Path) -> Node {
    serve(
        data_dir,
        &[],
        &[
            ("KEYWARD_ADMIN_EMAIL", EMAIL),
            ("KEYWARD_ADMIN_PASSWORD", PASSWORD),
        ],
    )
}

/// A person at a terminal: their own client session file in a temp folder.
struct User {
    home: TempDir,
}

impl User {
    fn new() -> User {
        User {
            home: TempDir::new().unwrap(),
        }
    }

    fn session_file(&self) -> PathBuf {
        self.home.path().join("keyward").join("client.toml")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("KEYWARD_CLIENT_CONFIG", self.session_file())
            .env_remove("KEYWARD_URL")
            .env_remove("KEYWARD_TOKEN")
            .env_remove("KEYWARD_PASSWORD")
            .stdin(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().expect("keyward runs")
    }

    /// Runs a command that must succeed, and returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, &[]);
        assert!(
            out.status.success(),
            "keyward {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        serde_json::from_str(&self.ok(&with_json)).expect("--json prints JSON")
    }

    /// Runs a command that must fail with one line on standard error; returns the line.
    fn fails(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(!out.status.success(), "keyward {args:?} should have failed");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line of error: {stderr:?}");
        assert!(stderr.starts_with("keyward: error: "), "{stderr}");
        stderr
    }

    fn login(&self, url: &str, email: &str, password: &str) {
        let out = self.run(
            &["login", "--url", url, "--email", email],
            &[("KEYWARD_PASSWORD", password)],
        );
        assert!(
            out.status.success(),
            "login failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn key_lifecycle_from_the_command_line() {
    let data = TempDir::new().unwrap();
    let node = serve_with_admin(data.path());
    let me = User::new();
    me.login(&node.url, EMAIL, PASSWORD);
    assert_eq!(
        mode(&me.session_file()),
        0o600,
        "the session file is private"
    );

    let created = me.json(&[
        "keys",
        "create",
        "--name",
        "ci",
        "--permission",
        "keyward.keys.read",
        "--expires-in",
        "30d",
        "--metadata",
        r#"{"team": "build"}"#,
    ]);
    let secret = created["api_key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kw_"));
    assert_eq!(created["metadata"]["team"], "build");
    assert!(created["expires_at"].is_string());

    let table = me.ok(&["keys", "list"]);
    assert!(table.starts_with("ID  "), "{table}");
    assert!(table.contains("ci") && table.contains(&id), "{table}");
    assert!(!table.contains(&secret), "a listing never shows a secret");
    let card = me.ok(&["keys", "get", &id]);
    assert!(card.contains("keyward.keys.read") && !card.contains(&secret));

    assert!(me.ok(&["keys", "verify", &secret]).starts_with("VALID"));
    let checked = me.run(
        &["keys", "verify", &secret, "--permissions", "keyward.admin"],
        &[],
    );
    assert_eq!(
        checked.status.code(),
        Some(1),
        "lacking a permission is not valid"
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("INSUFFICIENT_PERMISSIONS"));

    let rotated = me.json(&["keys", "rotate", &id]);
    let new_secret = rotated["api_key"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert_eq!(
        me.run(&["keys", "verify", &secret], &[]).status.code(),
        Some(1)
    );
    assert!(me.ok(&["keys", "verify", &new_secret]).starts_with("VALID"));

    assert!(me.ok(&["keys", "revoke", &id]).starts_with("revoked ci"));
    let refused = me.run(&["keys", "verify", &new_secret], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("REVOKED"));
    assert!(
        !me.ok(&["keys", "list"]).contains(&id),
        "revoked keys are hidden"
    );
    assert!(me.ok(&["keys", "list", "--all"]).contains(&id));
}

#[test]
fn an_api_key_can_stand_in_for_a_login() {
    let data = TempDir::new().unwrap();
    let node = serve_with_admin(data.path());
    let admin = User::new();
    admin.login(&node.url, EMAIL, PASSWORD);
    let key = admin.json(&["keys", "create", "--name", "script"])["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let script = User::new();
    let out = script.run(
        &["me"],
        &[("KEYWARD_URL", &node.url), ("KEYWARD_TOKEN", &key)],
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(EMAIL) && text.contains("via key: script"),
        "{text}"
    );
}

#[test]
fn users_are_created_and_listed_by_admins_only() {
    let data = TempDir::new().unwrap();
    let node = serve_with_admin(data.path());
    let admin = User::new();
    admin.login(&node.url, EMAIL, PASSWORD);
    let out = admin.ok(&[
        "users",
        "create",
        "--email",
        "member@example.com",
        "--password",
        "member-password-1",
    ]);
    assert!(
        out.starts_with("created member member@example.com"),
        "{out}"
    );
    let listing = admin.json(&["users", "list"]);
    assert_eq!(listing["total"], 2);

    let member = User::new();
    member.login(&node.url, "member@example.com", "member-password-1");
    let error = member.fails(&["users", "list"], &[]);
    assert!(error.contains("HTTP 403"), "{error}");
    member.ok(&["keys", "create", "--name", "mine"]);
    assert_eq!(member.json(&["keys", "list"])["total"], 1);
}

#[test]
fn errors_are_one_line_and_a_failing_exit() {
    let data = TempDir::new().unwrap();
    let node = serve_with_admin(data.path());
    let me = User::new();

    let error = me.fails(&["keys", "list"], &[]);
    assert!(error.contains("not logged in"), "{error}");
    let error = me.fails(
        &["login", "--url", &node.url, "--email", EMAIL],
        &[("KEYWARD_PASSWORD", "wrong-password")],
    );
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!me.session_file().exists(), "a failed login stores nothing");
    let error = me.fails(
        &["login", "--url", "not a url", "--email", EMAIL],
        &[("KEYWARD_PASSWORD", "x")],
    );
    assert!(error.contains("not a URL"), "{error}");

    me.login(&node.url, EMAIL, PASSWORD);
    me.ok(&["keys", "create", "--name", "twice"]);
    let error = me.fails(&["keys", "create", "--name", "twice"], &[]);
    assert!(error.contains("HTTP 409, DuplicateName"), "{error}");
    let error = me.fails(
        &["keys", "create", "--name", "x", "--expires-in", "soon"],
        &[],
    );
    assert!(error.contains("not a duration"), "{error}");
    let error = me.fails(
        &["keys", "create", "--name", "x", "--metadata", "{oops"],
        &[],
    );
    assert!(error.contains("not JSON"), "{error}");
    let error = me.fails(&["keys", "get", "../users"], &[]);
    assert!(error.contains("not an id"), "{error}");
    let error = me.fails(
        &["keys", "get", "0193a2b4-7c1d-7e00-8000-000000000000"],
        &[],
    );
    assert!(error.contains("HTTP 404"), "{error}");

    drop(node);
    let error = me.fails(&["keys", "list"], &[]);
    assert!(error.contains("cannot reach"), "{error}");
}

#[test]
fn first_start_prints_a_generated_password_once_and_keeps_the_secret_private() {
    let data = TempDir::new().unwrap();
    let node = serve(data.path(), &[], &[]);
    let banner = node.stdout.join("\n");
    let password = banner
        .split("and password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("a generated password is printed: {banner}"))
        .to_string();
    assert_eq!(mode(&data.path().join("secret")), 0o600);
    let me = User::new();
    me.login(&node.url, "admin@keyward.local", &password);
    drop(node);

    let again = serve(data.path(), &[], &[]);
    assert!(
        !again.stdout.join("\n").contains(&password),
        "the password is shown on first start only"
    );
    me.login(&again.url, "admin@keyward.local", &password);
}

#[test]
fn settings_come_from_flags_then_environment_then_file() {
    let data = TempDir::new().unwrap();
    let file = data.path().join("keyward.toml");
    std::fs::write(
        &file,
        "admin_email = \"file@example.com\"\nadmin_password = \"from-the-file-1\"\nsession_ttl_seconds = 60\n",
    )
    .unwrap();
    let node = serve(
        &data.path().join("data"),
        &[
            "--config",
            file.to_str().unwrap(),
            "--admin-password",
            "from-the-flag-1",
        ],
        &[],
    );
    let me = User::new();
    me.login(&node.url, "file@example.com", "from-the-flag-1");
    let session = std::fs::read_to_string(me.session_file()).unwrap();
    assert!(session.contains("expires_at"), "{session}");

    std::fs::write(&file, "admin_emial = \"typo@example.com\"\n").unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            file.to_str().unwrap(),
        ])
        .arg("--data-dir")
        .arg(data.path().join("other"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin_emial"),
        "an unknown setting is named: {stderr}"
    );
}

#[test]
fn migrate_and_tenant_create_work_on_a_store_without_a_server() {
    let data = TempDir::new().unwrap();
    let admin = User::new();
    let data_dir = data.path().to_str().unwrap();
    assert!(admin
        .ok(&["migrate", "--data-dir", data_dir])
        .contains("migrations applied"));
    let created = admin.run(
        &[
            "tenant",
            "create",
            "--data-dir",
            data_dir,
            "--name",
            "acme",
            "--tenant-admin-email",
            "boss@acme.example",
        ],
        &[("KEYWARD_TENANT_ADMIN_PASSWORD", "acme-password-1")],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let error = admin.fails(
        &[
            "tenant",
            "create",
            "--data-dir",
            data_dir,
            "--name",
            "acme",
            "--tenant-admin-email",
            "other@acme.example",
        ],
        &[("KEYWARD_TENANT_ADMIN_PASSWORD", "acme-password-1")],
    );
    assert!(
        error.contains("acme") || error.contains("exists"),
        "{error}"
    );

    let node = serve(data.path(), &[], &[]);
    assert!(
        !node.stdout.join("\n").contains("password"),
        "a store with a tenant is not bootstrapped again"
    );
    admin.login(&node.url, "boss@acme.example", "acme-password-1");
    let me = admin.ok(&["me"]);
    assert!(me.contains("acme"), "{me}");
}

#[test]
fn migrate_store_copies_a_sqlite_deployment_into_postgresql_keeping_every_key_valid() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(postgres::PgDatabase::create());
    let data = TempDir::new().unwrap();
    let me = User::new();
    let mut valid = Vec::new();
    let (revoked, in_grace);
    {
        let node = serve_with_admin(data.path());
        me.login(&node.url, EMAIL, PASSWORD);
        for name in ["web", "ci", "batch"] {
            let created = me.json(&[
                "keys",
                "create",
                "--name",
                name,
                "--permission",
                "data.read",
            ]);
            valid.push(created["api_key"].as_str().unwrap().to_string());
        }
        let gone = me.json(&["keys", "create", "--name", "gone"]);
        revoked = gone["api_key"].as_str().unwrap().to_string();
        me.ok(&["keys", "revoke", gone["id"].as_str().unwrap()]);
        let turned = me.json(&["keys", "create", "--name", "turned"]);
        in_grace = turned["api_key"].as_str().unwrap().to_string();
        let id = turned["id"].as_str().unwrap();
        let rotated = me.json(&["keys", "rotate", id, "--grace-seconds", "3600"]);
        valid.push(rotated["api_key"].as_str().unwrap().to_string());
        valid.push(in_grace.clone());
    }

    let from = format!("sqlite://{}", data.path().join("keyward.db").display());
    let copied = me.ok(&["migrate-store", "--from", &from, "--to", &db.url]);
    assert!(copied.contains("api_keys: 5 rows copied"), "{copied}");
    assert!(copied.contains("key_secrets: 6 rows copied"), "{copied}");
    let again = me.fails(&["migrate-store", "--from", &from, "--to", &db.url], &[]);
    assert!(
        again.contains("empty"),
        "a non-empty target is refused: {again}"
    );

    let secret = std::fs::read_to_string(data.path().join("secret")).unwrap();
    let pg_dir = TempDir::new().unwrap();
    let node = serve(
        pg_dir.path(),
        &["--database-url", &db.url],
        &[("KEYWARD_SECRET", secret.trim())],
    );
    me.login(&node.url, EMAIL, PASSWORD);
    for key in &valid {
        assert!(
            me.ok(&["keys", "verify", key]).starts_with("VALID"),
            "{key}"
        );
    }
    let refused = me.run(&["keys", "verify", &revoked], &[]);
    assert!(String::from_utf8_lossy(&refused.stdout).contains("REVOKED"));
    // New rows continue after the copied ones rather than colliding with them.
    let fresh = me.json(&["keys", "create", "--name", "after-the-move"]);
    assert!(me
        .ok(&["keys", "verify", fresh["api_key"].as_str().unwrap()])
        .starts_with("VALID"));
    me.ok(&[
        "users",
        "create",
        "--email",
        "new@example.com",
        "--password",
        "new-password-1",
    ]);
}

/// The revoke's audit event is committed with the revoke: a node killed (SIGKILL) right
/// after the revoke's answer has it after a restart, and `keyward audit` shows it.
#[test]
fn a_revoke_answered_before_kill_9_is_in_the_audit_log_after_restart() {
    let data = TempDir::new().unwrap();
    let mut node = serve_with_admin(data.path());
    let me = User::new();
    me.login(&node.url, EMAIL, PASSWORD);
    let created = me.json(&["keys", "create", "--name", "doomed"]);
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["api_key"].as_str().unwrap().to_string();
    assert!(me
        .ok(&["keys", "revoke", &id])
        .starts_with("revoked doomed"));
    node.child.kill().expect("SIGKILL");
    node.child.wait().unwrap();

    let node = serve_with_admin(data.path());
    me.login(&node.url, EMAIL, PASSWORD);
    let page = me.json(&["audit", "--target-id", &id]);
    let actions: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.revoked", "key.created"], "{page}");
    let revoked = &page["events"][0];
    assert_eq!(revoked["door"], "native");
    assert_eq!(revoked["actor"]["type"], "user");
    assert_eq!(revoked["target"]["id"], id.as_str());
    assert!(revoked["changes"]["revoked_at"]["to"].is_string());
    assert!(!page.to_string().contains(&secret), "no secret in the log");

    let table = me.ok(&["audit", "--action", "key.revoked"]);
    assert!(table.starts_with("TIME"), "{table}");
    assert!(
        table.contains("key.revoked") && table.contains(&id),
        "{table}"
    );
    let refused = me.fails(&["audit", "--limit", "5000"], &[]);
    assert!(refused.contains("limit"), "{refused}");
}

/// Uses `secret` as a credential `times` times (one credit each).
fn spend(node: &Node, secret: &str, times: usize) -> usize {
    let request =
        format!("GET /v0/me HTTP/1.1\r\nHost: k\r\nAuthorization: Bearer {secret}\r\nConnection: close\r\n\r\n");
    (0..times)
        .filter(|_| exchange(node, request.as_bytes()).starts_with("HTTP/1.1 200"))
        .count()
}

/// Limits set from the command line; consumed credits reach the store in the batched
/// flush and survive a kill -9, which loses at most what was spent since the last one.
#[test]
fn limits_from_the_command_line_and_credits_survive_kill_9() {
    let data = TempDir::new().unwrap();
    let admin = [
        ("KEYWARD_ADMIN_EMAIL", EMAIL),
        ("KEYWARD_ADMIN_PASSWORD", PASSWORD),
    ];
    let flush = ["--usage-flush-seconds", "1"];
    let mut node = serve(data.path(), &flush, &admin);
    let me = User::new();
    me.login(&node.url, EMAIL, PASSWORD);
    let created = me.json(&[
        "keys",
        "create",
        "--name",
        "metered",
        "--ratelimit",
        "requests=1000/60s",
        "--credits",
        "1000",
        "--refill",
        "monthly:1000:15",
        "--allow-ip",
        "127.0.0.0/8",
    ]);
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["api_key"].as_str().unwrap().to_string();
    assert_eq!(created["ratelimits"][0]["limit"], 1000, "{created}");
    assert_eq!(created["ratelimits"][0]["duration_seconds"], 60);
    assert_eq!(created["credits"]["remaining"], 1000);
    assert_eq!(created["credits"]["refill"]["day"], 15);
    assert_eq!(created["ip_allowlist"], serde_json::json!(["127.0.0.0/8"]));

    assert_eq!(spend(&node, &secret, 300), 300);
    // Until a flush has written all 300 (within a second or so; longer on a busy
    // machine, so it is waited for rather than assumed).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let key = me.json(&["keys", "get", &id]);
        if key["credits"]["remaining"] == 700 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never flushed: {key}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Spent after the last flush: these may be lost to the kill.
    assert_eq!(spend(&node, &secret, 50), 50);
    node.child.kill().expect("SIGKILL");
    node.child.wait().unwrap();

    let node = serve(data.path(), &flush, &admin);
    me.login(&node.url, EMAIL, PASSWORD);
    let key = me.json(&["keys", "get", &id]);
    let left = key["credits"]["remaining"].as_u64().unwrap();
    println!(
        "after kill -9: {left} credits left of 1000 - 350 spent ({} lost)",
        left - 650
    );
    assert!((650..=700).contains(&left), "{key}");
    // Counts and credits are written by the same flush, in one transaction: the
    // verifications counted are exactly the credits spent, lost or not.
    let usage = me.json(&[
        "keys",
        "usage",
        &id,
        "--since",
        "30m",
        "--granularity",
        "minute",
    ]);
    let valid: u64 = usage["series"][0]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["valid"].as_u64().unwrap())
        .sum();
    assert_eq!(valid, 1000 - left, "{usage}");
    assert_eq!(key["use_count"], valid, "{key}");
    let table = me.ok(&["keys", "usage", &id, "--since", "2h"]);
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains(&format!("{valid}")), "{table}");
    assert!(me
        .fails(&["keys", "usage", &id, "--since", "later"], &[])
        .contains("since"));
    assert_eq!(
        me.ok(&["keys", "credits", &id, "set", "10"]).trim(),
        "credits left: 10"
    );
    assert_eq!(
        me.ok(&["keys", "credits", &id, "add", "5"]).trim(),
        "credits left: 15"
    );
    assert_eq!(
        me.ok(&["keys", "credits", &id, "sub", "20"]).trim(),
        "credits left: 0"
    );
    let refused = me.fails(
        &["keys", "create", "--name", "x", "--ratelimit", "lots"],
        &[],
    );
    assert!(refused.contains("--ratelimit"), "{refused}");
    let refused = me.fails(
        &[
            "keys",
            "create",
            "--name",
            "x",
            "--credits",
            "5",
            "--refill",
            "weekly:5",
        ],
        &[],
    );
    assert!(refused.contains("--refill"), "{refused}");
}

// ---- Hardening: what one client can make a node hold ----

/// A raw HTTP/1.1 exchange on a fresh connection: writes `request`, reads until the
/// server closes (every request here says `Connection: close`, or is cut off).
fn exchange(node: &Node, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(node.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn healthz_answers(node: &Node) -> bool {
    exchange(
        node,
        b"GET /healthz HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\r\n",
    )
    .starts_with("HTTP/1.1 200")
}

/// A field of /proc/PID/status, in KiB (`VmRSS`, `VmHWM` for the peak).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn a_storm_of_wrong_passwords_stays_small_and_is_told_when_to_retry() {
    let data = TempDir::new().unwrap();
    // Throttling would refuse most of the storm before any password is checked: this
    // test is about what checking them costs.
    let node = serve(
        data.path(),
        &[
            "--login-failures-per-account",
            "1000",
            "--login-failures-per-address",
            "1000",
        ],
        &[
            ("KEYWARD_ADMIN_EMAIL", EMAIL),
            ("KEYWARD_ADMIN_PASSWORD", PASSWORD),
        ],
    );
    let pid = node.child.id();
    let before = memory_kib(pid, "VmRSS");
    let body = format!(r#"{{"email": "{EMAIL}", "password": "not-the-password"}}"#);
    let request = format!(
        "POST /v0/auth/login HTTP/1.1\r\nHost: k\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let start = std::sync::Arc::new(std::sync::Barrier::new(100));
    let node = std::sync::Arc::new(node);
    let logins: Vec<_> = (0..100)
        .map(|_| {
            let (node, start, request) = (node.clone(), start.clone(), request.clone());
            std::thread::spawn(move || {
                start.wait();
                exchange(&node, request.as_bytes())
            })
        })
        .collect();
    assert!(healthz_answers(&node), "/healthz answers during the storm");
    let answers: Vec<String> = logins.into_iter().map(|t| t.join().unwrap()).collect();
    let peak = memory_kib(pid, "VmHWM");
    let after = memory_kib(pid, "VmRSS");
    println!("RSS before {before} KiB, peak {peak} KiB, after {after} KiB (100 logins)");
    let refused = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 401"))
        .count();
    let busy: Vec<&String> = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .collect();
    assert_eq!(
        refused + busy.len(),
        100,
        "only 401s and 503s: {:?}",
        &answers[..3]
    );
    assert!(!busy.is_empty(), "a queue this full is refused, not grown");
    for answer in &busy {
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("\r\nretry-after: 1\r\n"),
            "{answer}"
        );
        assert!(answer.contains(r#""error_code":"Busy""#), "{answer}");
    }
    assert!(
        peak < 300 * 1024,
        "peak RSS {peak} KiB under 100 concurrent logins"
    );
    let me = User::new();
    me.login(&node.url, EMAIL, PASSWORD);
}

#[test]
fn slow_idle_and_oversized_clients_are_cut_off_and_healthz_answers() {
    use std::io::{Read, Write};
    let data = TempDir::new().unwrap();
    let node = serve(
        data.path(),
        &[
            "--header-read-timeout-seconds",
            "1",
            "--idle-timeout-seconds",
            "4",
            "--body-read-timeout-seconds",
            "1",
            "--max-connections",
            "16",
        ],
        &[
            ("KEYWARD_ADMIN_EMAIL", EMAIL),
            ("KEYWARD_ADMIN_PASSWORD", PASSWORD),
        ],
    );
    let address = node.url.trim_start_matches("http://").to_string();
    let closed_within = |mut stream: std::net::TcpStream, what: &str| {
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(15)))
            .unwrap();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            read.is_ok(),
            "{what}: the server closed the connection ({read:?})"
        );
        String::from_utf8_lossy(&rest).into_owned()
    };
    // Nothing sent at all; half a head; a head then nothing of its body; a request
    // answered and the connection then left idle.
    let silent = std::net::TcpStream::connect(&address).unwrap();
    closed_within(silent, "a silent connection");
    let mut half = std::net::TcpStream::connect(&address).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\nX-Slow: ")
        .unwrap();
    closed_within(half, "half a head");
    let mut no_body = std::net::TcpStream::connect(&address).unwrap();
    no_body
        .write_all(b"POST /v0/auth/login HTTP/1.1\r\nHost: k\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let answer = closed_within(no_body, "a body that never comes");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
    // An idle kept-alive connection outlives the header-read timeout (it is bounded by
    // the idle timeout instead): a second request two seconds later is answered.
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n")
        .unwrap();
    let answer = closed_within(idle, "an idle kept-alive connection");
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 2, "{answer}");
    // A head trickled a byte at a time does not extend its deadline: the connection is
    // closed long before the idle timeout, however steadily the bytes come.
    let mut trickle = std::net::TcpStream::connect(&address).unwrap();
    let started = std::time::Instant::now();
    // 32 bytes at 100 ms each: 3.2 s, less than the idle timeout.
    let head = b"GET /healthz HTTP/1.1\r\nX-Slow: a";
    let cut_after = head.iter().position(|byte| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        trickle.write_all(&[*byte]).is_err()
    });
    println!(
        "trickled head cut off after {:?} ({:?} bytes)",
        started.elapsed(),
        cut_after
    );
    assert!(cut_after.is_some(), "the trickled head was never cut off");

    // A head past the limit is refused, not buffered.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: k\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = exchange(&node, big.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.60}");

    // Holding every connection the node allows: new ones wait, and are served once the
    // held ones time out.
    let held: Vec<_> = (0..16)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(&address).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: k\r\n")
                .unwrap();
            s
        })
        .collect();
    assert!(
        healthz_answers(&node),
        "/healthz answers with every slot held"
    );
    drop(held);
}

#[test]
fn a_stop_with_a_request_hanging_ends_at_the_deadline() {
    use std::io::Write;
    let data = TempDir::new().unwrap();
    let mut node = serve(
        data.path(),
        &[
            "--shutdown-timeout-seconds",
            "1",
            "--header-read-timeout-seconds",
            "600",
            "--body-read-timeout-seconds",
            "600",
        ],
        &[],
    );
    let address = node.url.trim_start_matches("http://").to_string();
    let mut hanging = std::net::TcpStream::connect(&address).unwrap();
    hanging
        .write_all(b"POST /v0/auth/login HTTP/1.1\r\nHost: k\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = node.child.id().to_string();
    let signalled = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
    let mut exited = None;
    for _ in 0..150 {
        if let Some(status) = node.child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = exited.expect("the process exits after SIGTERM despite the hanging request");
    assert!(status.success(), "{status}");
    drop(hanging);
}

#[test]
fn the_data_directory_and_its_files_are_private() {
    let data = TempDir::new().unwrap();
    let dir = data.path().join("fresh");
    let node = serve_with_admin(&dir);
    let me = User::new();
    me.login(&node.url, EMAIL, PASSWORD);
    me.json(&["keys", "create", "--name", "written"]);
    assert_eq!(mode(&dir), 0o700, "the data directory");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(
        dir.join("keyward.db-wal").exists(),
        "SQLite's WAL was checked too"
    );
}
