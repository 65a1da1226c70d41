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

#[tokio::test]
async fn sessions_end_at_logout_and_when_an_administrator_changes_the_user() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (jo_id, jo) = server.member_with_id(&admin, "jo@example.com", None).await;
    let jo_path = format!("/v0/users/{jo_id}");
    let me = |token: String| {
        let server = &server;
        async move { server.get("/v0/me", &token).await.status }
    };
    assert_eq!(me(jo.clone()).await, StatusCode::OK);

    // An administrator sets a new password: the old session is over.
    let changed = server
        .call(
            Method::PATCH,
            &jo_path,
            Some(&admin),
            Some(json!({"password": "brand-new-pass-1"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    let refused = server.get("/v0/me", &jo).await;
    assert_error(&refused, StatusCode::UNAUTHORIZED, "Unauthorized");

    // Logout ends the session in use (and any other of the user's).
    let first = server.login("jo@example.com", "brand-new-pass-1").await;
    let second = server.login("jo@example.com", "brand-new-pass-1").await;
    let out = server
        .call(Method::POST, "/v0/auth/logout", Some(&first), None)
        .await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text);
    assert_eq!(me(first.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(second).await, StatusCode::UNAUTHORIZED);
    let twice = server
        .call(Method::POST, "/v0/auth/logout", Some(&first), None)
        .await;
    assert_error(&twice, StatusCode::UNAUTHORIZED, "Unauthorized");

    // Deactivation ends sessions, and reactivation does not revive them.
    let third = server.login("jo@example.com", "brand-new-pass-1").await;
    for active in [false, true] {
        let reply = server
            .call(
                Method::PATCH,
                &jo_path,
                Some(&admin),
                Some(json!({"active": active})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    assert_eq!(me(third).await, StatusCode::UNAUTHORIZED);

    // A role change ends them too; a key is not a session and cannot log out.
    let fourth = server.login("jo@example.com", "brand-new-pass-1").await;
    let (_, key) = server.create_key(&fourth, json!({"name": "jo-key"})).await;
    let promoted = server
        .call(
            Method::PATCH,
            &jo_path,
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text);
    assert_eq!(me(fourth).await, StatusCode::UNAUTHORIZED);
    let by_key = server
        .call(Method::POST, "/v0/auth/logout", Some(&key), None)
        .await;
    assert_error(&by_key, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    let logouts = server.get("/v0/audit?action=user.logged_out", &admin).await;
    assert_eq!(
        logouts.body["events"].as_array().unwrap().len(),
        1,
        "{}",
        logouts.text
    );
}

/// `count` access grants shaped like the ones that once took seconds to refuse:
/// `*/a/*/b/.../*:rw`, 16 segments each, each distinct.
fn crafted_grants(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let segments: Vec<String> = (0..16)
                .map(|s| {
                    if s % 2 == 0 {
                        "*".to_string()
                    } else {
                        format!("n{}", (i >> (s / 2)) & 1)
                    }
                })
                .collect();
            format!("{}/x{i}:rw", segments[..15].join("/"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_grant_lists_are_refused_by_their_limits_and_healthz_answers() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server
        .member(
            &admin,
            "m@example.com",
            Some(json!(["keyward.keys.*", "fabric/_system:ro"])),
        )
        .await;
    let create = |permissions: Vec<String>| {
        let (server, member) = (&server, &member);
        async move {
            server
                .call(
                    Method::POST,
                    "/v0/api_keys",
                    Some(member),
                    Some(json!({"name": "crafted", "permissions": permissions})),
                )
                .await
        }
    };
    // The attack's size: more entries than a key may hold.
    let (too_many, health) = tokio::join!(
        create(crafted_grants(170)),
        server.call(Method::GET, "/healthz", None, None)
    );
    assert_eq!(health.status, StatusCode::OK);
    let message = assert_error(
        &too_many,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationError",
    );
    assert!(message.contains("at most 64"), "{message}");
    assert_eq!(too_many.body["details"]["field"], "permissions");
    // Within the entries' limit, past the access grants' one.
    let over_access = create(crafted_grants(33)).await;
    let message = assert_error(
        &over_access,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationError",
    );
    assert!(message.contains("at most 32 access grants"), "{message}");
    // At the limit, the decision is made (and is a refusal: the member holds none of it).
    let at_limit = create(crafted_grants(32)).await;
    assert_error(&at_limit, StatusCode::FORBIDDEN, "Forbidden");
    // A grant of more segments than allowed is refused by name.
    let deep = format!("{}:ro", vec!["a"; 17].join("/"));
    let reply = create(vec![deep]).await;
    assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");

    // A member who holds the most a user may: comparisons this large leave the request
    // thread (app's no_escalation.rs), and decide the same there.
    let mut held = crafted_grants(32);
    held.push("keyward.keys.*".into());
    let big = server
        .member(&admin, "big@example.com", Some(json!(held)))
        .await;
    let as_big = |permissions: Vec<String>| {
        let (server, big) = (&server, &big);
        async move {
            server
                .call(
                    Method::POST,
                    "/v0/api_keys",
                    Some(big),
                    Some(json!({"name": "big", "permissions": permissions})),
                )
                .await
        }
    };
    let (within, health) = tokio::join!(
        as_big(crafted_grants(32)),
        server.call(Method::GET, "/healthz", None, None)
    );
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(within.status, StatusCode::CREATED, "{}", within.body);
    let mut beyond = crafted_grants(31);
    beyond.push("fabric/_system:rw".into());
    assert_error(&as_big(beyond).await, StatusCode::FORBIDDEN, "Forbidden");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_account_through_every_door() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(dir, |config| {
        config.login_throttle.per_account = 3;
        config.login_throttle.window = std::time::Duration::from_secs(2);
    })
    .await;
    let admin = server.admin_token().await;
    let (_, _) = server.member_with_id(&admin, "jo@example.com", None).await;
    let login = |password: &'static str| {
        let server = &server;
        async move {
            server
                .call(
                    Method::POST,
                    "/v0/auth/login",
                    None,
                    Some(json!({"email": "jo@example.com", "password": password})),
                )
                .await
        }
    };
    for _ in 0..3 {
        assert_error(
            &login("wrong-password-1").await,
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
        );
    }
    let throttled = login("wrong-password-1").await;
    assert_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    assert!(throttled.body["message"]
        .as_str()
        .unwrap()
        .contains("retry after"));
    // The right password waits too, and Macrometa's door counts the same failures.
    let right = login(MEMBER_PASSWORD).await;
    assert_error(&right, StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    let mm = server
        .call(
            Method::POST,
            "/_open/auth",
            None,
            Some(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD})),
        )
        .await;
    assert_eq!(
        (mm.status, mm.body["errorNum"].as_u64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(429))
    );
    let events = server.get("/v0/audit?action=login.throttled", &admin).await;
    assert_eq!(
        events.body["events"].as_array().unwrap().len(),
        3,
        "{}",
        events.text
    );
    // After the window, the right password works.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(login(MEMBER_PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_an_administrator_disabled_stays_disabled_until_an_administrator_enables_it() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_id = server.user_id(&admin).await;
    let (member_id, member) = server.member_with_id(&admin, "jo@example.com", None).await;
    let (id, secret) = server.create_key(&member, json!({"name": "jo"})).await;
    let path = key_path(&id);
    let patch = |auth: String, body: serde_json::Value| {
        let (server, path) = (&server, path.clone());
        async move {
            server
                .call(Method::PATCH, &path, Some(&auth), Some(body))
                .await
        }
    };
    let disabled = patch(
        admin.clone(),
        json!({"enabled": false, "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(disabled.body["disabled_by"], admin_id.as_str());

    let undone = patch(member.clone(), json!({"enabled": true, "expires_at": null})).await;
    assert_error(&undone, StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(server.verify_code(&admin, &secret, None).await, "DISABLED");

    let enabled = patch(admin.clone(), json!({"enabled": true})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    assert_eq!(enabled.body["disabled_by"], serde_json::Value::Null);
    assert_eq!(server.verify_code(&admin, &secret, None).await, "VALID");

    // What a member disabled, the member may enable again.
    let own = patch(member.clone(), json!({"enabled": false})).await;
    assert_eq!(own.body["disabled_by"], member_id.as_str());
    let back = patch(member.clone(), json!({"enabled": true})).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
}

#[tokio::test]
async fn an_email_is_unique_per_tenant_and_a_login_names_the_tenant_when_it_must() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    server.member_with_id(&admin, "jo@example.com", None).await;
    let other = server.other_tenant().await;
    // Another tenant's administrator learns nothing: the address is free in their tenant.
    let theirs = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&other),
            Some(json!({"email": "jo@example.com", "password": "their-jo-password-1"})),
        )
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.text);
    let again = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&other),
            Some(json!({"email": "jo@example.com", "password": "their-jo-password-1"})),
        )
        .await;
    assert_error(&again, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");

    let login = |body: serde_json::Value| {
        let server = &server;
        async move {
            server
                .call(Method::POST, "/v0/auth/login", None, Some(body))
                .await
        }
    };
    let ambiguous = login(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD})).await;
    assert_error(
        &ambiguous,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationError",
    );
    assert_eq!(ambiguous.body["details"]["field"], "tenant");
    let ours =
        login(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD, "tenant": "default"}))
            .await;
    assert_eq!(ours.status, StatusCode::OK, "{}", ours.text);
    let theirs = login(json!({"email": "jo@example.com", "password": "their-jo-password-1", "tenant": crate::support::OTHER_TENANT})).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    assert_ne!(ours.body["user"]["id"], theirs.body["user"]["id"]);
    let crossed = login(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD, "tenant": crate::support::OTHER_TENANT})).await;
    assert_error(&crossed, StatusCode::UNAUTHORIZED, "Unauthorized");
    // Macrometa's login takes the tenant beside the email too.
    let mm = server
        .call(
            Method::POST,
            "/_open/auth",
            None,
            Some(json!({"email": "jo@example.com", "password": MEMBER_PASSWORD, "tenant": "default"})),
        )
        .await;
    assert_eq!(mm.status, StatusCode::OK, "{}", mm.text);
}
