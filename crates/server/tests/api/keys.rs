//! The key lifecycle over HTTP: create, list, get, patch, revoke, rotate, names, usage.

use crate::support::{
    assert_error, in_seconds, key_path, names, parse_time, sleep_past, TestServer,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

fn duplicate_name_body() -> Value {
    json!({"message": "An entity with this name already exists", "error_code": "DuplicateName", "details": null})
}

#[tokio::test]
async fn create_returns_the_secret_once_with_the_key_view() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_id = server.user_id(&admin).await;

    let reply = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "  ci key "})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let body = &reply.body;
    let secret = body["api_key"].as_str().expect("api_key");
    assert!(
        secret.starts_with("kw_") && secret.len() == 41,
        "native key shape: {secret}"
    );
    assert!(
        uuid::Uuid::parse_str(body["id"].as_str().expect("id")).is_ok(),
        "id is a UUID: {}",
        body["id"]
    );
    assert_eq!(body["name"], "ci key", "the name is trimmed");
    assert_eq!(body["start"], &secret[..7]);
    assert_eq!(body["owner_id"], admin_id.as_str());
    assert_eq!(body["door"], "native");
    assert_eq!(
        body["permissions"],
        json!(["*", "*:rw"]),
        "an admin session's default is everything"
    );
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(body["enabled"], true);
    assert_eq!(body["state"], "active");
    assert_eq!(body["expires_at"], Value::Null);
    assert_eq!(body["revoked_at"], Value::Null);
    assert_eq!(body["last_used_at"], Value::Null);
    assert_eq!(body["use_count"], 0);
    parse_time(&body["created_at"]);
    parse_time(&body["updated_at"]);

    // Everything the request names is kept.
    let expires = in_seconds(3600);
    let reply = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({
                "name": "scoped",
                "permissions": ["data.read", "fabric/_system:ro"],
                "expires_at": expires,
                "metadata": {"team": "billing", "n": 3},
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        reply.body["permissions"],
        json!(["data.read", "fabric/_system:ro"])
    );
    assert_eq!(reply.body["metadata"], json!({"team": "billing", "n": 3}));
    assert_eq!(
        parse_time(&reply.body["expires_at"]),
        parse_time(&json!(expires))
    );
    assert_eq!(reply.body["state"], "active");
    let scoped = reply.body["api_key"].as_str().unwrap();
    let v = server
        .verify(&admin, scoped, Some(json!(["data.read"])))
        .await;
    assert_eq!(v["code"], "VALID");
    let v = server
        .verify(&admin, scoped, Some(json!(["data.write"])))
        .await;
    assert_eq!(v["code"], "INSUFFICIENT_PERMISSIONS");

    // `[]` gives the key nothing.
    let reply = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "empty", "permissions": []})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["permissions"], json!([]));
}

#[tokio::test]
async fn get_shows_what_create_showed_without_the_secret() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "same", "permissions": ["data.read"], "metadata": {"a": 1}, "expires_at": in_seconds(600)})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap();
    let got = server.get(&key_path(id), &admin).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let mut expected = created.body.clone();
    expected.as_object_mut().unwrap().remove("api_key");
    assert_eq!(got.body, expected, "GET differs from the create answer");

    // A listing adds each key's recent use (none yet) to the same fields.
    let listed = server.get("/v0/api_keys", &admin).await;
    let mut item = listed.body["items"][0].clone();
    let usage = item.as_object_mut().unwrap().remove("usage");
    assert_eq!(
        usage,
        Some(
            json!({"verifications_24h": 0, "valid_24h": 0, "verifications_30d": 0, "valid_30d": 0})
        )
    );
    assert_eq!(item, expected, "the listing differs from the create answer");

    // An id nobody has is a 404.
    let unknown = server
        .get(&key_path(&uuid::Uuid::new_v4().to_string()), &admin)
        .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn list_is_newest_first_with_paging_and_revoked_on_request() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            server
                .create_key(&admin, json!({ "name": format!("k{i}") }))
                .await
                .0,
        );
    }

    let all = server.get("/v0/api_keys", &admin).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    assert_eq!(names(&all.body), ["k4", "k3", "k2", "k1", "k0"]);
    assert_eq!(
        (
            all.body["total"].as_u64(),
            all.body["offset"].as_u64(),
            all.body["limit"].as_u64()
        ),
        (Some(5), Some(0), Some(50))
    );
    assert!(
        all.text.find("api_key").is_none(),
        "a listing shows no secret field: {}",
        all.text
    );

    let page = server.get("/v0/api_keys?offset=1&limit=2", &admin).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(names(&page.body), ["k3", "k2"]);
    assert_eq!(
        (
            page.body["total"].as_u64(),
            page.body["offset"].as_u64(),
            page.body["limit"].as_u64()
        ),
        (Some(5), Some(1), Some(2))
    );

    let last = server.get("/v0/api_keys?offset=4&limit=2", &admin).await;
    assert_eq!(names(&last.body), ["k0"]);
    let beyond = server.get("/v0/api_keys?offset=10", &admin).await;
    assert_eq!(beyond.status, StatusCode::OK);
    assert!(names(&beyond.body).is_empty());
    assert_eq!(beyond.body["total"], 5);

    let capped = server.get("/v0/api_keys?limit=5000", &admin).await;
    assert_eq!(capped.status, StatusCode::OK, "{}", capped.text);
    assert_eq!(capped.body["limit"], 1000, "limit is at most 1000");
    assert_eq!(names(&capped.body).len(), 5);

    // Revoked keys are hidden unless asked for.
    let revoked = server
        .call(Method::DELETE, &key_path(&ids[2]), Some(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let live = server.get("/v0/api_keys", &admin).await;
    assert_eq!(names(&live.body), ["k4", "k3", "k1", "k0"]);
    assert_eq!(live.body["total"], 4);
    let explicit = server
        .get("/v0/api_keys?include_revoked=false", &admin)
        .await;
    assert_eq!(names(&explicit.body), ["k4", "k3", "k1", "k0"]);
    let with_revoked = server
        .get("/v0/api_keys?include_revoked=true", &admin)
        .await;
    assert_eq!(names(&with_revoked.body), ["k4", "k3", "k2", "k1", "k0"]);
    assert_eq!(with_revoked.body["total"], 5);
    assert_eq!(with_revoked.body["items"][2]["state"], "revoked");
}

#[tokio::test]
async fn patch_changes_each_field_and_leaves_the_rest() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server
        .create_key(&admin, json!({"name": "before", "permissions": ["data.read", "data.write"], "metadata": {"v": 1}}))
        .await;
    let path = key_path(&id);
    let original = server.get(&path, &admin).await.body;
    // Warm the cache, so that a stale verdict would show.
    assert_eq!(
        server
            .verify_code(&admin, &secret, Some(json!(["data.write"])))
            .await,
        "VALID"
    );

    let patch = |body: Value| server.call(Method::PATCH, &path, Some(&admin), Some(body));

    let renamed = patch(json!({"name": "after"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    assert_eq!(renamed.body["name"], "after");
    assert_eq!(renamed.body["permissions"], original["permissions"]);
    assert_eq!(renamed.body["metadata"], original["metadata"]);
    assert!(parse_time(&renamed.body["updated_at"]) >= parse_time(&original["updated_at"]));
    assert_eq!(server.verify(&admin, &secret, None).await["name"], "after");

    let narrowed = patch(json!({"permissions": ["data.read"]})).await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    assert_eq!(narrowed.body["permissions"], json!(["data.read"]));
    assert_eq!(narrowed.body["name"], "after");
    assert_eq!(
        server
            .verify_code(&admin, &secret, Some(json!(["data.write"])))
            .await,
        "INSUFFICIENT_PERMISSIONS"
    );
    assert_eq!(
        server
            .verify_code(&admin, &secret, Some(json!(["data.read"])))
            .await,
        "VALID"
    );

    let expiry = in_seconds(3600);
    let expiring = patch(json!({"expires_at": expiry})).await;
    assert_eq!(expiring.status, StatusCode::OK, "{}", expiring.text);
    assert_eq!(
        parse_time(&expiring.body["expires_at"]),
        parse_time(&json!(expiry))
    );
    assert_eq!(
        server.get(&path, &admin).await.body["expires_at"],
        expiring.body["expires_at"]
    );
    assert!(server.verify(&admin, &secret, None).await["expires_at"].is_string());

    // Absent leaves the expiry alone; null clears it.
    let untouched = patch(json!({"metadata": {"team": "ops"}})).await;
    assert_eq!(untouched.status, StatusCode::OK, "{}", untouched.text);
    assert_eq!(untouched.body["metadata"], json!({"team": "ops"}));
    assert_eq!(untouched.body["expires_at"], expiring.body["expires_at"]);
    let cleared = patch(json!({"expires_at": null})).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text);
    assert_eq!(cleared.body["expires_at"], Value::Null);
    assert_eq!(
        server.get(&path, &admin).await.body["expires_at"],
        Value::Null
    );
    assert_eq!(
        server.verify(&admin, &secret, None).await["metadata"],
        json!({"team": "ops"})
    );

    let disabled = patch(json!({"enabled": false})).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(
        (&disabled.body["enabled"], &disabled.body["state"]),
        (&json!(false), &json!("disabled"))
    );
    assert_eq!(server.verify_code(&admin, &secret, None).await, "DISABLED");
    let enabled = patch(json!({"enabled": true})).await;
    assert_eq!(
        (&enabled.body["enabled"], &enabled.body["state"]),
        (&json!(true), &json!("active"))
    );
    assert_eq!(server.verify_code(&admin, &secret, None).await, "VALID");

    // Several at once, and what GET shows afterwards.
    let all =
        patch(json!({"name": "final", "permissions": [], "metadata": {}, "enabled": true})).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let got = server.get(&path, &admin).await.body;
    assert_eq!(got, all.body);
    assert_eq!(
        (&got["name"], &got["permissions"], &got["metadata"]),
        (&json!("final"), &json!([]), &json!({}))
    );
    assert_eq!(got["id"], original["id"]);
    assert_eq!(got["created_at"], original["created_at"]);
}

#[tokio::test]
async fn revoke_refuses_the_key_on_the_very_next_request() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server.create_key(&admin, json!({"name": "doomed"})).await;
    let me = server
        .call(Method::GET, "/v0/me", Some(&secret), None)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(server.verify_code(&admin, &secret, None).await, "VALID");

    let revoked = server
        .call(Method::DELETE, &key_path(&id), Some(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.body["state"], "revoked");
    assert_eq!(revoked.body["id"], id.as_str());
    assert!(revoked.body["revoked_at"].is_string());

    let me = server
        .call(Method::GET, "/v0/me", Some(&secret), None)
        .await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "Unauthorized");
    assert_eq!(server.verify_code(&admin, &secret, None).await, "REVOKED");
    assert_eq!(
        server.get(&key_path(&id), &admin).await.body["state"],
        "revoked"
    );

    // Revoking again is harmless; a revoked key can be neither changed nor rotated.
    let again = server
        .call(Method::DELETE, &key_path(&id), Some(&admin), None)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["revoked_at"], revoked.body["revoked_at"]);
    let patch = server
        .call(
            Method::PATCH,
            &key_path(&id),
            Some(&admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_error(&patch, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    let rotate = server
        .call(
            Method::POST,
            &format!("{}/rotate", key_path(&id)),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_error(&rotate, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    assert_eq!(server.verify_code(&admin, &secret, None).await, "REVOKED");
}

#[tokio::test]
async fn rotate_without_grace_replaces_the_secret_at_once() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, old) = server
        .create_key(
            &admin,
            json!({"name": "rotating", "permissions": ["data.read"]}),
        )
        .await;
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&old), None)
            .await
            .status,
        StatusCode::OK
    );

    let rotated = server
        .call(
            Method::POST,
            &format!("{}/rotate", key_path(&id)),
            Some(&admin),
            Some(json!({"grace_seconds": 0})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new = rotated.body["api_key"]
        .as_str()
        .expect("new secret")
        .to_string();
    assert_ne!(new, old);
    assert!(new.starts_with("kw_") && new.len() == 41);
    assert_eq!(rotated.body["id"], id.as_str());
    assert_eq!(rotated.body["name"], "rotating");
    assert_eq!(rotated.body["start"], &new[..7]);
    assert_eq!(rotated.body["permissions"], json!(["data.read"]));
    assert_eq!(rotated.body["state"], "active");
    assert!(parse_time(&rotated.body["previous_expires_at"]) <= time::OffsetDateTime::now_utc());

    let me = server.call(Method::GET, "/v0/me", Some(&old), None).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "Unauthorized");
    let code = server.verify_code(&admin, &old, None).await;
    assert!(
        code == "EXPIRED" || code == "NOT_FOUND",
        "old secret after rotation: {code}"
    );

    let me = server.call(Method::GET, "/v0/me", Some(&new), None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["key"]["id"], id.as_str());
    let v = server.verify(&admin, &new, Some(json!("data.read"))).await;
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["key_id"], id.as_str());
    assert_eq!(
        server.get(&key_path(&id), &admin).await.body["start"],
        &new[..7]
    );

    // No body at all also means "no grace".
    let again = server
        .call(
            Method::POST,
            &format!("{}/rotate", key_path(&id)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let newest = again.body["api_key"].as_str().unwrap();
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&new), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.verify_code(&admin, newest, None).await, "VALID");
}

#[tokio::test]
async fn rotate_with_grace_keeps_the_old_secret_until_the_grace_ends() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, old) = server.create_key(&admin, json!({"name": "graceful"})).await;
    assert_eq!(server.verify_code(&admin, &old, None).await, "VALID");

    let rotated = server
        .call(
            Method::POST,
            &format!("{}/rotate", key_path(&id)),
            Some(&admin),
            Some(json!({"grace_seconds": 2})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new = rotated.body["api_key"].as_str().unwrap().to_string();
    let until = parse_time(&rotated.body["previous_expires_at"]);
    let now = time::OffsetDateTime::now_utc();
    assert!(
        until > now && until <= now + time::Duration::seconds(3),
        "previous_expires_at {until}"
    );

    // During the grace period both secrets work.
    assert_eq!(server.verify_code(&admin, &old, None).await, "VALID");
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&old), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(server.verify_code(&admin, &new, None).await, "VALID");
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );

    sleep_past(
        &rotated.body["previous_expires_at"],
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(server.verify_code(&admin, &old, None).await, "EXPIRED");
    let me = server.call(Method::GET, "/v0/me", Some(&old), None).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "Unauthorized");
    assert_eq!(server.verify_code(&admin, &new, None).await, "VALID");
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&new), None)
            .await
            .status,
        StatusCode::OK
    );
    // The key itself is not expired: only the old secret is.
    assert_eq!(
        server.get(&key_path(&id), &admin).await.body["state"],
        "active"
    );
}

#[tokio::test]
async fn names_are_unique_per_owner_among_live_keys() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server.member(&admin, "member@example.com", None).await;
    let (first, _) = server.create_key(&admin, json!({"name": "shared"})).await;

    let dup = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT, "{}", dup.text);
    assert_eq!(dup.body, duplicate_name_body());
    let padded = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": " shared "})),
        )
        .await;
    assert_eq!(
        padded.status,
        StatusCode::CONFLICT,
        "names are compared trimmed: {}",
        padded.text
    );
    assert_eq!(padded.body, duplicate_name_body());

    // Another owner may use the same name.
    let other = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&member),
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);

    // Renaming onto a taken name is the same conflict.
    let (second, _) = server.create_key(&admin, json!({"name": "second"})).await;
    let rename = server
        .call(
            Method::PATCH,
            &key_path(&second),
            Some(&admin),
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(rename.status, StatusCode::CONFLICT, "{}", rename.text);
    assert_eq!(rename.body, duplicate_name_body());
    assert_eq!(
        server.get(&key_path(&second), &admin).await.body["name"],
        "second"
    );

    // A revoked key's name is free again.
    let revoked = server
        .call(Method::DELETE, &key_path(&first), Some(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    let reused = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "shared"})),
        )
        .await;
    assert_eq!(reused.status, StatusCode::CREATED, "{}", reused.text);
    assert_ne!(reused.body["id"], first.as_str());
}

#[tokio::test]
async fn usage_is_counted_and_flushed() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, secret) = server.create_key(&admin, json!({"name": "busy"})).await;
    let (idle, _) = server.create_key(&admin, json!({"name": "idle"})).await;
    let before = server.get(&key_path(&id), &admin).await.body;
    assert_eq!(
        (&before["last_used_at"], &before["use_count"]),
        (&Value::Null, &json!(0))
    );

    for _ in 0..3 {
        assert_eq!(server.verify_code(&admin, &secret, None).await, "VALID");
    }
    for _ in 0..2 {
        assert_eq!(
            server
                .call(Method::GET, "/v0/me", Some(&secret), None)
                .await
                .status,
            StatusCode::OK
        );
    }

    let after = server
        .poll_key(&admin, &id, Duration::from_secs(3), |k| {
            k["use_count"].as_i64() >= Some(5)
        })
        .await;
    assert_eq!(
        after["use_count"], 5,
        "three verifications and two requests: {after}"
    );
    let last_used = parse_time(&after["last_used_at"]);
    assert!(last_used >= parse_time(&before["created_at"]));
    assert!(last_used <= time::OffsetDateTime::now_utc());
    let idle = server.get(&key_path(&idle), &admin).await.body;
    assert_eq!(
        (&idle["last_used_at"], &idle["use_count"]),
        (&Value::Null, &json!(0))
    );
}

#[tokio::test]
async fn times_are_answered_in_utc_as_later_reads_show_them() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let created = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "zoned", "expires_at": "2099-01-01T12:00:00+02:00"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["expires_at"], "2099-01-01T10:00:00Z");
    let id = created.body["id"].as_str().unwrap();
    let patched = server
        .call(
            Method::PATCH,
            &key_path(id),
            Some(&admin),
            Some(json!({"expires_at": "2098-06-01T07:30:00-05:00"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["expires_at"], "2098-06-01T12:30:00Z");
    let got = server.get(&key_path(id), &admin).await;
    assert_eq!(
        got.body, patched.body,
        "PATCH answered other values than GET shows"
    );
    for field in ["created_at", "updated_at", "expires_at"] {
        assert!(
            got.body[field].as_str().unwrap().ends_with('Z'),
            "{field}: {}",
            got.body[field]
        );
    }
}
