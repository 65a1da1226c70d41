//! Limits across nodes: two nodes on one PostgreSQL database share rate limits and
//! credits through Redis exactly; without Redis each counts alone (the over-admission
//! is measured and printed); and a node whose Redis goes away keeps answering (open for
//! rate limits, closed for credits, by default) and recovers by itself.
//!
//! Needs `KEYWARD_TEST_POSTGRES_URL` and `KEYWARD_TEST_REDIS_URL` (set by ./scripts/test),
//! and `redis-server` for the outage test.

use crate::support::postgres::PgDatabase;
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn redis_url() -> String {
    std::env::var("KEYWARD_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!("KEYWARD_TEST_REDIS_URL is not set: run ./scripts/test, or export it")
    })
}

/// Two nodes on one fresh database with one secret, both with `redis` (or none).
async fn two_nodes(redis: Option<String>) -> (Arc<TestServer>, Arc<TestServer>, PgDatabase) {
    let db = PgDatabase::create().await;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let node = |url: String, secret: String, redis: Option<String>| async move {
        TestServer::start_configured(tempfile::tempdir().unwrap(), move |config| {
            config.database_url = Some(url);
            config.secret_hex = Some(secret);
            config.redis_url = redis;
        })
        .await
    };
    let a = node(db.url.clone(), secret.clone(), redis.clone()).await;
    let b = node(db.url.clone(), secret, redis).await;
    (Arc::new(a), Arc::new(b), db)
}

/// 16 clients on each node verify `key` `each` times; answers how many were VALID.
async fn both_nodes_verify(
    nodes: [&Arc<TestServer>; 2],
    admin: &str,
    key: &str,
    each: usize,
) -> usize {
    let mut tasks = Vec::new();
    for node in nodes {
        for _ in 0..16 {
            let (node, admin, key) = (node.clone(), admin.to_string(), key.to_string());
            tasks.push(tokio::spawn(async move {
                let mut valid = 0;
                for _ in 0..each {
                    let reply = node
                        .call(
                            Method::POST,
                            "/v0/keys/verify",
                            Some(&admin),
                            Some(json!({ "key": key })),
                        )
                        .await;
                    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
                    if reply.body["valid"] == true {
                        valid += 1;
                    }
                }
                valid
            }));
        }
    }
    let mut valid = 0;
    for task in tasks {
        valid += task.await.unwrap();
    }
    valid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sharing_redis_admit_exactly_the_limit_and_the_credits() {
    let (a, b, _db) = two_nodes(Some(redis_url())).await;
    let admin = a.admin_token().await;
    let (_, limited) = a
        .create_key(
            &admin,
            json!({"name": "shared limit", "ratelimits": [
                {"name": "requests", "limit": 100, "duration_seconds": 3600}
            ]}),
        )
        .await;
    let valid = both_nodes_verify([&a, &b], &admin, &limited, 10).await;
    assert_eq!(valid, 100, "320 tries against a limit of 100");

    let (id, metered) = a
        .create_key(
            &admin,
            json!({"name": "shared credits", "credits": {"remaining": 500}}),
        )
        .await;
    let valid = both_nodes_verify([&a, &b], &admin, &metered, 20).await;
    assert_eq!(valid, 500, "640 tries against 500 credits");
    // Both nodes' flushes reach the store.
    let stored = a
        .poll_key(&admin, &id, Duration::from_secs(30), |k| {
            k["credits"]["remaining"] == 0
        })
        .await;
    assert_eq!(stored["credits"]["remaining"], 0, "{stored}");
    // A change through the API reaches the live balance that both nodes spend from.
    let topped = b
        .call(
            Method::POST,
            &format!("{}/credits", key_path(&id)),
            Some(&admin),
            Some(json!({"op": "increment", "value": 7})),
        )
        .await;
    assert_eq!(topped.status, StatusCode::OK, "{}", topped.text);
    let valid = both_nodes_verify([&a, &b], &admin, &metered, 1).await;
    assert_eq!(valid, 7, "32 tries against 7 credits added on node B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_redis_each_node_counts_alone() {
    let (a, b, _db) = two_nodes(None).await;
    let admin = a.admin_token().await;
    let (_, limited) = a
        .create_key(
            &admin,
            json!({"name": "per node", "ratelimits": [
                {"name": "requests", "limit": 100, "duration_seconds": 3600}
            ]}),
        )
        .await;
    let valid = both_nodes_verify([&a, &b], &admin, &limited, 10).await;
    println!("without Redis, 2 nodes admitted {valid} of 320 against a limit of 100");
    assert_eq!(valid, 200, "each node admits the limit");
}

/// A Redis of the test's own, on a port of its own, that it can stop and start.
struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    fn start() -> OwnRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = OwnRedis {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.up();
        redis
    }

    fn up(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start");
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.down();
    }
}

async fn code(server: &TestServer, admin: &str, key: &str) -> Value {
    let reply = server
        .call(
            Method::POST,
            "/v0/keys/verify",
            Some(admin),
            Some(json!({ "key": key })),
        )
        .await;
    json!({"status": reply.status.as_u16(), "code": reply.body["code"]})
}

#[tokio::test]
async fn a_node_whose_redis_goes_away_keeps_answering_and_recovers() {
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), move |config| {
        config.redis_url = Some(url);
    })
    .await;
    let admin = server.admin_token().await;
    let (_, limited) = server
        .create_key(
            &admin,
            json!({"name": "limited", "ratelimits": [
                {"name": "requests", "limit": 1, "duration_seconds": 3600}
            ]}),
        )
        .await;
    let (_, metered) = server
        .create_key(
            &admin,
            json!({"name": "metered", "credits": {"remaining": 10}}),
        )
        .await;
    assert_eq!(code(&server, &admin, &limited).await["code"], "VALID");
    assert_eq!(
        code(&server, &admin, &limited).await["code"],
        "RATE_LIMITED"
    );
    assert_eq!(code(&server, &admin, &metered).await["code"], "VALID");

    redis.down();
    // Rate limits fail open, credits closed (503), and nothing hangs.
    let started = std::time::Instant::now();
    assert_eq!(code(&server, &admin, &limited).await["code"], "VALID");
    let refused = code(&server, &admin, &metered).await;
    assert_eq!(refused["status"], 503, "{refused}");
    println!("answers without Redis took {:?}", started.elapsed());

    redis.up();
    // Back, with its data gone: counting starts again from the store.
    let mut recovered = Value::Null;
    for _ in 0..150 {
        recovered = code(&server, &admin, &metered).await;
        if recovered["code"] == "VALID" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(recovered["code"], "VALID", "{recovered}");
    assert_eq!(code(&server, &admin, &limited).await["code"], "VALID");
    assert_eq!(
        code(&server, &admin, &limited).await["code"],
        "RATE_LIMITED"
    );
}
