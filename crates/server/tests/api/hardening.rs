//! Hardening through the real server: nothing escalates through users, a demoted
//! administrator keeps none of an administrator's power (nor do their keys), and dates
//! past what the store keeps are refused rather than panicking.

use crate::support::{assert_error, key_path, TestServer, MEMBER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_restricted_administrator_key_cannot_make_or_raise_an_administrator() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, narrow) = server
        .create_key(
            &admin,
            json!({"name": "restricted", "permissions": ["keyward.admin", "keyward.keys.*", "data.read"]}),
        )
        .await;
    let made = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&narrow),
            Some(
                json!({"email": "boss@example.com", "password": MEMBER_PASSWORD, "role": "admin"}),
            ),
        )
        .await;
    assert_error(&made, StatusCode::FORBIDDEN, "Forbidden");
    let wide = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&narrow),
            Some(json!({"email": "wide@example.com", "password": MEMBER_PASSWORD, "permissions": ["billing.*"]})),
        )
        .await;
    assert_error(&wide, StatusCode::FORBIDDEN, "Forbidden");
    // Within what the key holds, it may make a member.
    let member = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&narrow),
            Some(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD, "permissions": ["data.read"]})),
        )
        .await;
    assert_eq!(member.status, StatusCode::CREATED, "{}", member.text);
    let jo = member.body["id"].as_str().unwrap().to_string();
    let jo_path = format!("/v0/users/{jo}");
    for raise in [json!({"role": "admin"}), json!({"permissions": ["*"]})] {
        let reply = server
            .call(Method::PATCH, &jo_path, Some(&narrow), Some(raise.clone()))
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    }
    // Nor may it take over a user who holds more: the first administrator's password.
    let admin_id = server.user_id(&admin).await;
    let takeover = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{admin_id}"),
            Some(&narrow),
            Some(json!({"password": "taken-over-123"})),
        )
        .await;
    assert_error(&takeover, StatusCode::FORBIDDEN, "Forbidden");
    let users = server.get("/v0/users?limit=100", &admin).await;
    let roles: Vec<&str> = users.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "admin").count(),
        1,
        "{roles:?}"
    );
}

#[tokio::test]
async fn a_demoted_administrator_and_their_keys_hold_only_what_a_member_does() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let made = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&admin),
            Some(json!({"email": "ex@example.com", "password": MEMBER_PASSWORD, "role": "admin"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let ex_id = made.body["id"].as_str().unwrap().to_string();
    let ex = server.login("ex@example.com", MEMBER_PASSWORD).await;
    let (_, ex_key) = server
        .create_key(&ex, json!({"name": "wide", "permissions": ["*", "*:rw"]}))
        .await;
    let query = json!("billing.admin AND fabric/prod:rw");
    assert_eq!(
        server
            .verify_code(&admin, &ex_key, Some(query.clone()))
            .await,
        "VALID"
    );

    let demoted = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{ex_id}"),
            Some(&admin),
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(demoted.status, StatusCode::OK, "{}", demoted.text);
    assert_eq!(demoted.body["permissions"], json!(["keyward.keys.*"]));
    assert_eq!(
        server.verify_code(&admin, &ex_key, Some(query)).await,
        "INSUFFICIENT_PERMISSIONS",
        "the key is held to what its owner now holds"
    );
    let ex = server.login("ex@example.com", MEMBER_PASSWORD).await;
    let again = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&ex),
            Some(json!({"name": "again", "permissions": ["*"]})),
        )
        .await;
    assert_error(&again, StatusCode::FORBIDDEN, "Forbidden");
    let (own, _) = server.create_key(&admin, json!({"name": "admins"})).await;
    let seen = server.get(&key_path(&own), &ex).await;
    assert_error(&seen, StatusCode::NOT_FOUND, "NotFound");
}
