//! Tenants are isolated: no key, user or listing crosses between them.

use crate::support::{assert_error, key_path, names, TestServer, OTHER_TENANT};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn tenants_never_see_each_others_keys() {
    let server = TestServer::start().await;
    let first = server.admin_token().await;
    let second = server.other_tenant().await;
    let first_admin_id = server.user_id(&first).await;
    let me = server.get("/v0/me", &second).await;
    assert_eq!(me.body["tenant"]["name"], OTHER_TENANT);

    let (first_id, first_secret) = server.create_key(&first, json!({"name": "mine"})).await;
    let (first_id_2, _) = server
        .create_key(&first, json!({"name": "first only"}))
        .await;
    // The same name in another tenant is no conflict.
    let (second_id, second_secret) = server.create_key(&second, json!({"name": "mine"})).await;
    // Keys made through a key stay in its tenant too.
    let (second_via_key, _) = server
        .create_key(&second_secret, json!({"name": "second via key"}))
        .await;

    for (caller, foreign_ids, foreign_secret) in [
        (&first, vec![&second_id, &second_via_key], &second_secret),
        (&second, vec![&first_id, &first_id_2], &first_secret),
    ] {
        for id in foreign_ids {
            let get = server.get(&key_path(id), caller).await;
            assert_error(&get, StatusCode::NOT_FOUND, "NotFound");
            let patch = server
                .call(
                    Method::PATCH,
                    &key_path(id),
                    Some(caller),
                    Some(json!({"enabled": false})),
                )
                .await;
            assert_error(&patch, StatusCode::NOT_FOUND, "NotFound");
            let delete = server
                .call(Method::DELETE, &key_path(id), Some(caller), None)
                .await;
            assert_error(&delete, StatusCode::NOT_FOUND, "NotFound");
            let rotate = server
                .call(
                    Method::POST,
                    &format!("{}/rotate", key_path(id)),
                    Some(caller),
                    Some(json!({"grace_seconds": 0})),
                )
                .await;
            assert_error(&rotate, StatusCode::NOT_FOUND, "NotFound");
        }
        let verdict = server.verify(caller, foreign_secret, None).await;
        assert_eq!(verdict["code"], "NOT_FOUND", "{verdict}");
        for field in ["key_id", "name", "owner_id", "permissions", "metadata"] {
            assert_eq!(
                verdict[field],
                Value::Null,
                "a foreign key's {field} leaked"
            );
        }
    }

    // Each tenant's keys are untouched by the other's attempts and still verify at home.
    assert_eq!(
        server.verify_code(&first, &first_secret, None).await,
        "VALID"
    );
    assert_eq!(
        server.verify_code(&second, &second_secret, None).await,
        "VALID"
    );
    assert_eq!(
        server.get(&key_path(&first_id), &first).await.body["state"],
        "active"
    );
    assert_eq!(
        server.get(&key_path(&second_id), &second).await.body["state"],
        "active"
    );

    let listed = server
        .get("/v0/api_keys?include_revoked=true", &first)
        .await;
    assert_eq!(names(&listed.body), ["first only", "mine"]);
    assert_eq!(listed.body["total"], 2);
    let listed = server
        .get("/v0/api_keys?include_revoked=true", &second)
        .await;
    assert_eq!(names(&listed.body), ["second via key", "mine"]);
    assert_eq!(listed.body["total"], 2);
    let filtered = server
        .get(&format!("/v0/api_keys?owner_id={first_admin_id}"), &second)
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.text);
    assert_eq!(filtered.body["total"], 0);

    // Nor do users cross.
    let for_foreign_user = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&second),
            Some(json!({"name": "planted", "owner_id": first_admin_id})),
        )
        .await;
    assert_error(&for_foreign_user, StatusCode::NOT_FOUND, "NotFound");
    let user = server
        .get(&format!("/v0/users/{first_admin_id}"), &second)
        .await;
    assert_error(&user, StatusCode::NOT_FOUND, "NotFound");
    let users = server.get("/v0/users", &second).await;
    assert_eq!(users.body["total"], 1);
    let deactivate = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{first_admin_id}"),
            Some(&second),
            Some(json!({"active": false})),
        )
        .await;
    assert_error(&deactivate, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(server.get("/v0/me", &first).await.status, StatusCode::OK);
}
