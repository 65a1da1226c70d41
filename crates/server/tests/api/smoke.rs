use crate::support::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn key_lifecycle_smoke() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server.create_key(&admin, json!({"name": "first"})).await;
    assert!(secret.starts_with("kw_"));
    let me = server
        .call(Method::GET, "/v0/me", Some(&secret), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["via"], "api_key");
    let v = server.verify(&admin, &secret, None).await;
    assert_eq!(v["code"], "VALID");
    let dup = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "first"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(
        dup.body,
        json!({"message": "An entity with this name already exists", "error_code": "DuplicateName", "details": null})
    );
    let del = server
        .call(
            Method::DELETE,
            &format!("/v0/api_keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::OK, "{}", del.text);
    let v = server.verify(&admin, &secret, None).await;
    assert_eq!(v["code"], "REVOKED");
    let me = server
        .call(Method::GET, "/v0/me", Some(&secret), None)
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
}
