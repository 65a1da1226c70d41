//! Keys that must be refused: revoked, expired, disabled, or owned by a deactivated
//! user. Each is reported by `/v0/keys/verify` and refused (401) as a credential, at
//! once, even right after it was accepted (and cached).

use crate::support::{assert_error, in_seconds, key_path, sleep_past, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

/// Asserts that a key works now, so a cached verdict exists for it.
async fn assert_works(server: &TestServer, verifier: &str, secret: &str) {
    assert_eq!(server.verify_code(verifier, secret, None).await, "VALID");
    let me = server.call(Method::GET, "/v0/me", Some(secret), None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
}

async fn assert_refused(server: &TestServer, verifier: &str, secret: &str, code: &str) {
    let verdict = server.verify(verifier, secret, None).await;
    assert_eq!(verdict["code"], code, "{verdict}");
    assert_eq!(verdict["valid"], false);
    // The key is known, so its fields are reported with the refusal.
    assert!(verdict["key_id"].is_string(), "{verdict}");
    for path in ["/v0/me", "/v0/api_keys"] {
        let reply = server.call(Method::GET, path, Some(secret), None).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
}

#[tokio::test]
async fn a_revoked_key_is_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server.create_key(&admin, json!({"name": "revoked"})).await;
    assert_works(&server, &admin, &secret).await;
    let reply = server
        .call(Method::DELETE, &key_path(&id), Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_refused(&server, &admin, &secret, "REVOKED").await;
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "short-lived", "expires_at": in_seconds(1)})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let secret = created.body["api_key"].as_str().unwrap();
    let id = created.body["id"].as_str().unwrap();
    assert_works(&server, &admin, secret).await;

    sleep_past(&created.body["expires_at"], Duration::from_millis(200)).await;
    assert_refused(&server, &admin, secret, "EXPIRED").await;
    assert_eq!(
        server.get(&key_path(id), &admin).await.body["state"],
        "expired"
    );
}

#[tokio::test]
async fn a_disabled_key_is_refused_until_enabled_again() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server.create_key(&admin, json!({"name": "switch"})).await;
    assert_works(&server, &admin, &secret).await;

    let off = server
        .call(
            Method::PATCH,
            &key_path(&id),
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_refused(&server, &admin, &secret, "DISABLED").await;

    let on = server
        .call(
            Method::PATCH,
            &key_path(&id),
            Some(&admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    assert_works(&server, &admin, &secret).await;
}

#[tokio::test]
async fn a_deactivated_owner_loses_keys_and_sessions_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (member_id, member) = server
        .member_with_id(&admin, "leaver@example.com", None)
        .await;
    let (_, secret) = server
        .create_key(&member, json!({"name": "leaver-key"}))
        .await;
    assert_works(&server, &admin, &secret).await;
    assert_eq!(server.get("/v0/me", &member).await.status, StatusCode::OK);

    let user_path = format!("/v0/users/{member_id}");
    let off = server
        .call(
            Method::PATCH,
            &user_path,
            Some(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text);
    assert_eq!(off.body["active"], false);

    assert_refused(&server, &admin, &secret, "DISABLED").await;
    let me = server.get("/v0/me", &member).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "Unauthorized");
    let login = server
        .call(
            Method::POST,
            "/v0/auth/login",
            None,
            Some(
                json!({"email": "leaver@example.com", "password": crate::support::MEMBER_PASSWORD}),
            ),
        )
        .await;
    assert_error(&login, StatusCode::UNAUTHORIZED, "Unauthorized");

    // Reactivated, the same key works again; the old session does not (deactivation
    // ended it for good), and a new login works.
    let on = server
        .call(
            Method::PATCH,
            &user_path,
            Some(&admin),
            Some(json!({"active": true})),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.text);
    assert_works(&server, &admin, &secret).await;
    let old = server.get("/v0/me", &member).await;
    assert_error(&old, StatusCode::UNAUTHORIZED, "Unauthorized");
    let again = server
        .login("leaver@example.com", crate::support::MEMBER_PASSWORD)
        .await;
    assert_eq!(server.get("/v0/me", &again).await.status, StatusCode::OK);
}
