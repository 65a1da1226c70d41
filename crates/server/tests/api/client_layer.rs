//! The Rust client's tower layer in a small axum service: it admits valid keys, refuses
//! missing, revoked and under-privileged ones, charges limited keys on every request,
//! and refuses a key revoked through the API within a second (the change stream,
//! `GET /v0/changes`), measured over twenty keys.

use crate::support::*;
use axum::routing::get;
use axum::{Extension, Router};
use keyward_client::layer::{KeywardLayer, LayerOptions};
use keyward_client::{Client, Verification};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A service whose every route needs a key holding `invoices.read`.
async fn service(layer: KeywardLayer) -> String {
    let app = Router::new()
        .route(
            "/invoices",
            get(
                |Extension(verdict): Extension<Arc<Verification>>| async move {
                    format!(
                        "invoices for {}",
                        verdict.owner_id.clone().unwrap_or_default()
                    )
                },
            ),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}/invoices")
}

async fn status(http: &reqwest::Client, url: &str, key: Option<&str>) -> StatusCode {
    let mut request = http.get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("the service answers").status()
}

async fn following(layer: &KeywardLayer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !layer.is_following() {
        assert!(
            Instant::now() < deadline,
            "the layer never followed the change stream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tower_layer_admits_refuses_and_drops_revoked_keys_within_a_second() {
    let server = TestServer::start().await;
    let admin_token = server.admin_token().await;
    let admin = Client::new(&server.url, Some(admin_token.clone()));
    let options = LayerOptions {
        permissions: Some("invoices.read".into()),
        ..LayerOptions::default()
    };
    let layer = KeywardLayer::new(admin.clone(), options);
    following(&layer).await;
    let url = service(layer.clone()).await;
    let http = reqwest::Client::new();

    let reader = admin
        .create_key(&json!({"name": "reader", "permissions": ["invoices.read"]}))
        .await
        .unwrap();
    let writer_only = admin
        .create_key(&json!({"name": "writer", "permissions": ["invoices.write"]}))
        .await
        .unwrap();
    assert_eq!(status(&http, &url, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&http, &url, Some("kw_nothing")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&http, &url, Some(&writer_only.api_key)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&http, &url, Some(&reader.api_key)).await,
        StatusCode::OK
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", reader.api_key.parse().unwrap());
    assert!(
        layer.cached(&headers).is_some(),
        "a valid key's answer is cached"
    );

    // A limited key is charged on every request: never answered from the cache.
    let limited = admin
        .create_key(&json!({"name": "limited", "permissions": ["invoices.read"],
            "ratelimits": [{"name": "default", "limit": 3, "duration_seconds": 60}]}))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            status(&http, &url, Some(&limited.api_key)).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        status(&http, &url, Some(&limited.api_key)).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Revoked through the API: refused by the layer within a second, worst of 20.
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let key = admin
            .create_key(&json!({"name": format!("revoked-{i}"), "permissions": ["invoices.read"]}))
            .await
            .unwrap();
        assert_eq!(
            status(&http, &url, Some(&key.api_key)).await,
            StatusCode::OK
        );
        assert_eq!(
            status(&http, &url, Some(&key.api_key)).await,
            StatusCode::OK,
            "cached"
        );
        admin.revoke_key(&key.key.id).await.unwrap();
        let revoked_at = Instant::now();
        loop {
            let answer = status(&http, &url, Some(&key.api_key)).await;
            if answer == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(answer, StatusCode::OK);
            assert!(
                revoked_at.elapsed() < Duration::from_secs(1),
                "a revoked key was still admitted after a second"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        worst = worst.max(revoked_at.elapsed());
    }
    println!("tower layer: a revoked key is refused after {worst:?} at worst of 20");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_stream_needs_a_verifier_and_tells_only_the_tenants_changes() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    // A member whose keys cannot verify keys may not follow changes.
    let member = server
        .member(
            &admin,
            "member@example.com",
            Some(json!(["keyward.keys.read"])),
        )
        .await;
    let refused = server.get("/v0/changes", &member).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "Forbidden");
    let unauthenticated = reqwest::get(format!("{}/v0/changes", server.url))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    // An administrator of another tenant hears nothing of this tenant's changes.
    let other = server.other_tenant().await;
    let mut stream = server
        .http
        .get(format!("{}/v0/changes", server.url))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mine = server
        .http
        .get(format!("{}/v0/changes", server.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (id, _) = server.create_key(&admin, json!({"name": "k"})).await;
    let revoked = server
        .call(reqwest::Method::DELETE, &key_path(&id), Some(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let mut mine = mine;
    let mut heard = String::new();
    while !heard.contains(&id) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), mine.chunk())
            .await
            .expect("the change is told in time")
            .unwrap()
            .expect("the stream goes on");
        heard.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(heard.starts_with("event: ready"), "{heard}");
    assert!(
        heard.contains(&format!("event: key\ndata: {{\"key_id\":\"{id}\"}}")),
        "{heard}"
    );
    // The other tenant's stream said it was ready, and nothing about the key.
    let first = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("event: ready"));
    let more = tokio::time::timeout(Duration::from_millis(500), stream.chunk()).await;
    assert!(
        more.is_err(),
        "another tenant heard of the change: {more:?}"
    );
}
