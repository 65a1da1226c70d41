//! Several nodes on one PostgreSQL database: a change made through one node is refused
//! by every other node within one second, and names stay unique under concurrent
//! creation through different nodes.
//!
//! Needs `KEYWARD_TEST_POSTGRES_URL` (set by ./scripts/test); each test gets a database
//! of its own.

use crate::support::postgres::PgDatabase;
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// The promise: a change on one node is enforced by all of them within this.
const PROMISE: Duration = Duration::from_secs(1);
/// How long a check waits before calling a node hopelessly stale.
const GIVE_UP: Duration = Duration::from_secs(10);

pub(crate) struct Cluster {
    pub a: TestServer,
    pub b: TestServer,
    /// A session issued by node A; node B accepts it too, as they share the secret.
    pub admin: String,
    _db: PgDatabase,
}

/// Two nodes on one fresh database with one server secret. A starts first so that
/// only A creates the first tenant.
pub(crate) async fn cluster() -> Cluster {
    cluster_with(|url| url.to_string()).await
}

/// A cluster whose node B reaches the database through the URL `b_url` makes of it.
async fn cluster_with(b_url: impl FnOnce(&str) -> String) -> Cluster {
    let db = PgDatabase::create().await;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let node = |url: String, secret: String| async move {
        let dir = tempfile::tempdir().expect("temp dir");
        TestServer::start_configured(dir, move |config| {
            config.database_url = Some(url);
            config.secret_hex = Some(secret);
        })
        .await
    };
    let a = node(db.url.clone(), secret.clone()).await;
    let b = node(b_url(&db.url), secret).await;
    let admin = a.admin_token().await;
    Cluster {
        a,
        b,
        admin,
        _db: db,
    }
}

impl Cluster {
    pub async fn key(&self, name: &str, permissions: Value) -> (String, String) {
        self.a
            .create_key(
                &self.admin,
                json!({"name": name, "permissions": permissions}),
            )
            .await
    }

    async fn patch_key(&self, id: &str, body: Value) {
        let reply = self
            .a
            .call(Method::PATCH, &key_path(id), Some(&self.admin), Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "patch on A: {}", reply.text);
    }
}

/// Makes sure `node` has the key in its cache (a second verification reads nothing
/// from the store), so what follows tests invalidation rather than a cache miss.
async fn warm(node: &TestServer, auth: &str, key: &str, permissions: Option<Value>) {
    let verifier = &node.running.as_ref().expect("running").app.verifier();
    let code = node.verify_code(auth, key, permissions.clone()).await;
    assert_eq!(
        code, "VALID",
        "the key works on the other node before the change"
    );
    let lookups = verifier.store_lookups();
    let code = node.verify_code(auth, key, permissions).await;
    assert_eq!(code, "VALID");
    assert_eq!(
        verifier.store_lookups(),
        lookups,
        "the key is served from B's cache"
    );
}

/// Runs `change` (on the other node) and polls `node` as fast as it answers until it
/// stops saying VALID. Returns how long that took, from the start of the change, and
/// the code it gave instead.
async fn stale_for(
    node: &TestServer,
    auth: &str,
    key: &str,
    permissions: Option<Value>,
    change: impl Future<Output = ()>,
) -> (Duration, String) {
    let started = Instant::now();
    change.await;
    loop {
        let code = node.verify_code(auth, key, permissions.clone()).await;
        if code != "VALID" {
            return (started.elapsed(), code);
        }
        assert!(
            started.elapsed() < GIVE_UP,
            "node B still accepts the key {GIVE_UP:?} after the change"
        );
    }
}

fn assert_kept(what: &str, took: Duration) {
    eprintln!("{what}: node B enforced the change after {took:?}");
    assert!(
        took < PROMISE,
        "{what}: node B took {took:?} to enforce the change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_on_one_node_is_enforced_by_the_other_within_a_second() {
    let c = cluster().await;
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        let (id, secret) = c
            .key(&format!("revoke-{round}"), json!(["data.read"]))
            .await;
        warm(&c.b, &c.admin, &secret, None).await;
        let revoke = async {
            let reply =
                c.a.call(Method::DELETE, &key_path(&id), Some(&c.admin), None)
                    .await;
            assert_eq!(reply.status, StatusCode::OK, "revoke on A: {}", reply.text);
        };
        let (took, code) = stale_for(&c.b, &c.admin, &secret, None, revoke).await;
        assert_eq!(code, "REVOKED");
        eprintln!("round {round:2}: node B refused the revoked key after {took:?}");
        worst = worst.max(took);
    }
    eprintln!("worst of 20: node B accepted a revoked key for at most {worst:?}");
    assert!(worst < PROMISE, "worst of 20 was {worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disabling_and_rescoping_on_one_node_reach_the_other() {
    let c = cluster().await;
    let (id, secret) = c.key("changing", json!(["data.read", "data.write"])).await;

    warm(&c.b, &c.admin, &secret, None).await;
    let disable = c.patch_key(&id, json!({"enabled": false}));
    let (took, code) = stale_for(&c.b, &c.admin, &secret, None, disable).await;
    assert_eq!(code, "DISABLED");
    assert_kept("disable", took);

    // Enabling again is a change too: B must not keep refusing from its cache.
    c.patch_key(&id, json!({"enabled": true})).await;
    let started = Instant::now();
    while c.b.verify_code(&c.admin, &secret, None).await != "VALID" {
        assert!(
            started.elapsed() < GIVE_UP,
            "B never saw the key enabled again"
        );
    }
    assert_kept("re-enable", started.elapsed());

    let write = Some(json!(["data.write"]));
    warm(&c.b, &c.admin, &secret, write.clone()).await;
    let narrow = c.patch_key(&id, json!({"permissions": ["data.read"]}));
    let (took, code) = stale_for(&c.b, &c.admin, &secret, write, narrow).await;
    assert_eq!(code, "INSUFFICIENT_PERMISSIONS");
    assert_kept("re-scope", took);
    assert_eq!(
        c.b.verify_code(&c.admin, &secret, Some(json!(["data.read"])))
            .await,
        "VALID"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_on_one_node_retires_the_old_secret_on_the_other() {
    let c = cluster().await;
    let (id, old) = c.key("rotating", json!(["data.read"])).await;
    warm(&c.b, &c.admin, &old, None).await;
    let mut new = String::new();
    let rotate = async {
        let reply =
            c.a.call(
                Method::POST,
                &format!("{}/rotate", key_path(&id)),
                Some(&c.admin),
                Some(json!({"grace_seconds": 0})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "rotate on A: {}", reply.text);
        new = reply.body["api_key"].as_str().expect("new secret").into();
    };
    let (took, code) = stale_for(&c.b, &c.admin, &old, None, rotate).await;
    assert_eq!(code, "NOT_FOUND");
    assert_kept("rotate", took);
    assert_eq!(c.b.verify_code(&c.admin, &new, None).await, "VALID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deactivating_an_owner_on_one_node_reaches_the_other() {
    let c = cluster().await;
    let (member_id, member) =
        c.a.member_with_id(
            &c.admin,
            "jo@example.com",
            Some(json!(["data.read", "keyward.keys.write"])),
        )
        .await;
    let (_, secret) =
        c.a.create_key(
            &member,
            json!({"name": "jo's", "permissions": ["data.read"]}),
        )
        .await;
    warm(&c.b, &c.admin, &secret, None).await;
    let deactivate = async {
        let reply =
            c.a.call(
                Method::PATCH,
                &format!("/v0/users/{member_id}"),
                Some(&c.admin),
                Some(json!({"active": false})),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "deactivate on A: {}",
            reply.text
        );
    };
    let (took, code) = stale_for(&c.b, &c.admin, &secret, None, deactivate).await;
    assert_eq!(code, "DISABLED");
    assert_kept("owner deactivation", took);
}

const NAMES: usize = 12;
const CLIENTS_PER_NODE: usize = 16;

/// One client: tries every name once, starting at its own offset so that clients
/// collide on every name at about the same moment. Returns (name, status, secret).
async fn creator(
    node: String,
    admin: String,
    offset: usize,
) -> Vec<(String, StatusCode, Option<String>)> {
    let http = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for i in 0..NAMES {
        let name = format!("shared-{}", (offset + i) % NAMES);
        let response = http
            .post(format!("{node}/v0/api_keys"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "permissions": ["data.read"]}))
            .send()
            .await
            .expect("request sent");
        let reply = TestServer::reply(response).await;
        let secret = reply.body["api_key"].as_str().map(str::to_string);
        outcomes.push((name, reply.status, secret));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_creating_the_same_names_at_once_make_one_key_each() {
    let c = cluster().await;
    let mut clients = Vec::new();
    for n in 0..CLIENTS_PER_NODE {
        for node in [&c.a, &c.b] {
            clients.push(tokio::spawn(creator(
                node.url.clone(),
                c.admin.clone(),
                n % NAMES,
            )));
        }
    }
    let mut by_name: HashMap<String, Vec<(StatusCode, Option<String>)>> = HashMap::new();
    for client in clients {
        for (name, status, secret) in client.await.expect("client task") {
            by_name.entry(name).or_default().push((status, secret));
        }
    }
    assert_eq!(by_name.len(), NAMES);
    for (name, outcomes) in &by_name {
        let created: Vec<_> = outcomes
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .collect();
        let refused = outcomes
            .iter()
            .filter(|(s, _)| *s == StatusCode::CONFLICT)
            .count();
        assert_eq!(created.len(), 1, "{name}: {outcomes:?}");
        assert_eq!(refused, 2 * CLIENTS_PER_NODE - 1, "{name}: {outcomes:?}");
        let secret = created[0].1.as_deref().expect("a 201 carries the secret");
        for node in [&c.a, &c.b] {
            assert_eq!(node.verify_code(&c.admin, secret, None).await, "VALID");
        }
    }
    let listed = c.b.get("/v0/api_keys?limit=100", &c.admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(listed.body["total"], NAMES);
}

/// Ends every connection of the database that listens for changes, as a network cut
/// or a database restart would; returns how many it ended.
async fn cut_listeners(db_url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.expect("connect");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("terminate listeners");
    conn.close().await.ok();
    cut.into_iter().filter(|done| *done).count() as i64
}

/// Revokes a key straight in the database, announcing nothing.
async fn revoke_silently(db_url: &str, id: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.expect("connect");
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2")
        .bind(now as i64)
        .bind(uuid::Uuid::parse_str(id).expect("key id"))
        .execute(&mut conn)
        .await
        .expect("revoke in the database");
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.ok();
}

async fn listeners(db_url: &str) -> i64 {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(db_url).await.expect("connect");
    let count = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&mut conn)
    .await
    .expect("count listeners");
    conn.close().await.ok();
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_loses_its_change_feed_drops_its_cache_and_recovers() {
    let c = cluster().await;
    let url = c._db.url.clone();
    assert_eq!(listeners(&url).await, 2, "each node listens");
    let (id, secret) = c.key("cut", json!(["data.read"])).await;
    warm(&c.b, &c.admin, &secret, None).await;

    // A change B cannot hear about: made in the database without a notification,
    // while B's feed is cut. B must still refuse the key in time, because losing the
    // feed empties its cache (and keeps it empty until the feed is back).
    assert_eq!(cut_listeners(&url).await, 2);
    let silently = revoke_silently(&url, &id);
    let (took, code) = stale_for(&c.b, &c.admin, &secret, None, silently).await;
    assert_eq!(code, "REVOKED");
    assert_kept("revoke during a feed outage", took);

    // Both nodes listen again, cache again, and hear changes again.
    let started = Instant::now();
    while listeners(&url).await < 2 {
        assert!(
            started.elapsed() < GIVE_UP,
            "the nodes did not listen again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (id, secret) = c.key("after", json!(["data.read"])).await;
    let started = Instant::now();
    loop {
        let verifier = &c.b.running.as_ref().unwrap().app.verifier();
        c.b.verify_code(&c.admin, &secret, None).await;
        let lookups = verifier.store_lookups();
        c.b.verify_code(&c.admin, &secret, None).await;
        if verifier.store_lookups() == lookups {
            break;
        }
        assert!(started.elapsed() < GIVE_UP, "B never cached again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoke = async {
        let reply =
            c.a.call(Method::DELETE, &key_path(&id), Some(&c.admin), None)
                .await;
        assert_eq!(reply.status, StatusCode::OK, "revoke on A: {}", reply.text);
    };
    let (took, code) = stale_for(&c.b, &c.admin, &secret, None, revoke).await;
    assert_eq!(code, "REVOKED");
    assert_kept("revoke after the feed came back", took);
}

/// A TCP relay to PostgreSQL that can go quiet without closing anything, as a cut
/// network path does: bytes stop flowing, and neither side hears a reset.
struct Freezable {
    addr: std::net::SocketAddr,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Freezable {
    async fn start(upstream: String) -> Freezable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, gate.clone()));
                tokio::spawn(pump(sr, cw, gate.clone()));
            }
        });
        Freezable { addr, frozen }
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `host:port` of a PostgreSQL URL.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit('@').next().unwrap_or(authority)
}

/// Asks `node` to verify `key`, authenticating with the API key `caller`, and gives up
/// after 200 ms. `None` is no answer (a hung database, a timeout).
async fn quick_verify(node: &TestServer, caller: &str, key: &str) -> Option<String> {
    let response = node
        .http
        .post(format!("{}/v0/keys/verify", node.url))
        .bearer_auth(caller)
        .json(&json!({ "key": key }))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["code"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_without_a_reset_stops_accepting_changed_keys_within_a_second() {
    let upstream = std::env::var("KEYWARD_TEST_POSTGRES_URL").unwrap_or_default();
    let relay = Freezable::start(host_port(&upstream).to_string()).await;
    let relay_addr = relay.addr.to_string();
    let c = cluster_with(move |url| url.replacen(host_port(url), &relay_addr, 1)).await;
    // An API key as the caller's credential: B checks it from its cache too, so while
    // B's cache is intact it can answer without its database.
    let (_, caller) = c.key("caller", json!(["keyward.keys.verify"])).await;
    let (id, secret) = c.key("cut-off", json!(["data.read"])).await;
    warm(&c.b, &c.admin, &caller, None).await;
    warm(&c.b, &c.admin, &secret, None).await;
    assert_eq!(
        quick_verify(&c.b, &caller, &secret).await.as_deref(),
        Some("VALID")
    );

    relay.freeze(true);
    let revoked_at = Instant::now();
    let reply =
        c.a.call(Method::DELETE, &key_path(&id), Some(&c.admin), None)
            .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // B hears neither the feed nor its database. Whatever it answers must not be VALID
    // once the promise's second has passed; no answer is not an acceptance.
    let mut last_valid = Duration::ZERO;
    let mut answers = 0;
    while revoked_at.elapsed() < Duration::from_secs(3) {
        match quick_verify(&c.b, &caller, &secret).await.as_deref() {
            Some("VALID") => last_valid = revoked_at.elapsed(),
            Some(_) => answers += 1,
            None => {}
        }
    }
    eprintln!("B's other answers while cut off: {answers}");
    assert_kept("revoke while B is cut off silently", last_valid);

    relay.freeze(false);
    let started = Instant::now();
    while quick_verify(&c.b, &caller, &secret).await.as_deref() != Some("REVOKED") {
        assert!(started.elapsed() < GIVE_UP, "B did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_on_an_empty_database_all_come_up() {
    let db = PgDatabase::create().await;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    // Each migrates and tries to create the first tenant at the same moment.
    let starts = (0..4).map(|_| {
        let (url, secret) = (db.url.clone(), secret.clone());
        tokio::spawn(async move {
            let dir = tempfile::tempdir().expect("temp dir");
            TestServer::start_configured(dir, move |config| {
                config.database_url = Some(url);
                config.secret_hex = Some(secret);
            })
            .await
        })
    });
    let mut nodes = Vec::new();
    for start in starts.collect::<Vec<_>>() {
        nodes.push(start.await.expect("every node starts"));
    }
    let admin = nodes[0].admin_token().await;
    let (_, secret) = nodes[1]
        .create_key(&admin, json!({"name": "together"}))
        .await;
    for node in &nodes {
        assert_eq!(node.verify_code(&admin, &secret, None).await, "VALID");
    }
}

/// Ending a user's sessions on one node (logout, a new password set by an
/// administrator) ends them on the other at its next request.
#[tokio::test]
async fn sessions_ended_on_one_node_are_refused_by_the_other() {
    let c = cluster().await;
    let (jo_id, jo) = c.a.member_with_id(&c.admin, "jo@example.com", None).await;
    assert_eq!(c.b.get("/v0/me", &jo).await.status, StatusCode::OK);
    let changed =
        c.a.call(
            Method::PATCH,
            &format!("/v0/users/{jo_id}"),
            Some(&c.admin),
            Some(json!({"password": "another-password-9"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(
        c.b.get("/v0/me", &jo).await.status,
        StatusCode::UNAUTHORIZED
    );

    let again = c.b.login("jo@example.com", "another-password-9").await;
    let out =
        c.a.call(Method::POST, "/v0/auth/logout", Some(&again), None)
            .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(
        c.b.get("/v0/me", &again).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Failed logins are counted from the shared audit log: ten on one node, and the next
/// on the other is refused.
#[tokio::test]
async fn failed_logins_on_one_node_throttle_the_other() {
    let c = cluster().await;
    c.a.member_with_id(&c.admin, "jo@example.com", None).await;
    let wrong = json!({"email": "jo@example.com", "password": "not-jos-password"});
    for _ in 0..10 {
        let reply =
            c.a.call(Method::POST, "/v0/auth/login", None, Some(wrong.clone()))
                .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    }
    let refused =
        c.b.call(Method::POST, "/v0/auth/login", None, Some(wrong))
            .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
}
