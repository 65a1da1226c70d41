//! Verification under concurrency: 32 clients verify keys while other requests revoke
//! and rotate them. Once a revoke's (or a grace-less rotation's) response has returned,
//! no verification that started afterwards may accept the old secret on this node.
//! Half the clients ask `POST /v0/keys/verify`; the other half present each secret as
//! their own credential (`GET /v0/me`), several times in a row on one kept-alive
//! connection each, which is what the connection's memory of its caller serves.

use crate::support::{key_path, RawConnection, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
const KEYS: usize = 12;
/// How many requests in a row present the same secret.
const REPEATS: usize = 4;

/// One secret the clients present, and when (if ever) it stopped being valid.
struct Presented {
    secret: String,
    dead_since: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct Tally {
    valid_before_death: AtomicU64,
    checked_after_death: AtomicU64,
    violations: Mutex<Vec<String>>,
}

async fn client(
    server: Arc<TestServer>,
    auth: String,
    pool: Arc<Mutex<Vec<Arc<Presented>>>>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    offset: usize,
) {
    let mut turn = offset;
    // Odd clients authenticate as the secret itself, on a connection of their own.
    let mut own = match offset % 2 {
        1 => Some(RawConnection::open(&server).await),
        _ => None,
    };
    while !stop.load(Ordering::Relaxed) {
        let presented = {
            let pool = pool.lock().unwrap();
            pool[(turn / REPEATS) % pool.len()].clone()
        };
        turn += 1;
        let started = Instant::now();
        let dead_at_start = *presented.dead_since.lock().unwrap();
        let valid = match &mut own {
            Some(connection) => connection.me(&presented.secret).await.0 == 200,
            None => server.verify(&auth, &presented.secret, None).await["valid"] == true,
        };
        match dead_at_start {
            Some(dead) if dead <= started => {
                tally.checked_after_death.fetch_add(1, Ordering::Relaxed);
                if valid {
                    tally.violations.lock().unwrap().push(format!(
                        "a secret was accepted {:?} after its key was revoked or rotated",
                        started - dead
                    ));
                }
            }
            _ if valid => {
                tally.valid_before_death.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// Revokes even keys and rotates odd ones (no grace), marking each old secret dead the
/// moment the response is back; rotated secrets join the pool.
async fn mutate(
    server: Arc<TestServer>,
    admin: String,
    ids: Vec<String>,
    pool: Arc<Mutex<Vec<Arc<Presented>>>>,
) {
    for (i, id) in ids.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(40)).await;
        let old = pool.lock().unwrap()[i].clone();
        let reply = if i % 2 == 0 {
            server
                .call(Method::DELETE, &key_path(id), Some(&admin), None)
                .await
        } else {
            server
                .call(
                    Method::POST,
                    &format!("{}/rotate", key_path(id)),
                    Some(&admin),
                    Some(json!({"grace_seconds": 0})),
                )
                .await
        };
        *old.dead_since.lock().unwrap() = Some(Instant::now());
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        if let Some(secret) = reply.body["api_key"].as_str() {
            pool.lock().unwrap().push(Arc::new(Presented {
                secret: secret.to_string(),
                dead_since: Mutex::new(None),
            }));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_revoked_or_rotated_secret_is_accepted_after_the_response() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin_token().await;
    let (_, checker) = server.create_key(&admin, json!({"name": "checker"})).await;
    let mut ids = Vec::new();
    let mut presented = Vec::new();
    for i in 0..KEYS {
        let (id, secret) = server
            .create_key(&admin, json!({"name": format!("target-{i}")}))
            .await;
        ids.push(id);
        presented.push(Arc::new(Presented {
            secret,
            dead_since: Mutex::new(None),
        }));
    }
    let pool = Arc::new(Mutex::new(presented));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(client(
                server.clone(),
                checker.clone(),
                pool.clone(),
                tally.clone(),
                stop.clone(),
                n,
            ))
        })
        .collect();

    mutate(server.clone(), admin, ids, pool.clone()).await;
    // Keep verifying for a while after the last change, when every old secret is dead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client task");
    }

    let violations = tally.violations.lock().unwrap();
    assert!(violations.is_empty(), "{violations:#?}");
    // The test could have failed: keys were accepted while live, and old secrets were
    // presented after their revocation.
    assert!(tally.valid_before_death.load(Ordering::Relaxed) > 0);
    assert!(tally.checked_after_death.load(Ordering::Relaxed) > CLIENTS as u64);
}
