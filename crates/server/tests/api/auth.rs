//! Every way of presenting a credential, and every way of getting it wrong.

use crate::support::{assert_error, forged_key, RawConnection, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn every_header_style_is_accepted() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_id = server.user_id(&admin).await;
    let (key_id, key) = server
        .create_key(&admin, json!({"name": "header-styles"}))
        .await;

    let session = format!("Bearer {admin}");
    let bearer = format!("Bearer {key}");
    let lower_bearer = format!("bearer {key}");
    let apikey = format!("apikey {key}");
    let upper_apikey = format!("APIKEY {key}");
    let styles: [(&str, &str, &str, bool); 6] = [
        ("Bearer JWT", "Authorization", &session, false),
        ("Bearer key", "Authorization", &bearer, true),
        ("bearer key", "Authorization", &lower_bearer, true),
        ("apikey key", "Authorization", &apikey, true),
        (
            "APIKEY key, lower-case header",
            "authorization",
            &upper_apikey,
            true,
        ),
        ("X-API-Key", "X-API-Key", &key, true),
    ];
    for (label, header, value, via_key) in styles {
        let me = server
            .send(Method::GET, "/v0/me", &[(header, value.as_bytes())], None)
            .await;
        assert_eq!(me.status, StatusCode::OK, "{label}: {}", me.text);
        assert_eq!(me.body["user"]["id"], admin_id.as_str(), "{label}");
        assert_eq!(me.body["tenant"]["name"], "default", "{label}");
        if via_key {
            assert_eq!(me.body["via"], "api_key", "{label}");
            assert_eq!(me.body["key"]["id"], key_id.as_str(), "{label}");
        } else {
            assert_eq!(me.body["via"], "session", "{label}");
            assert_eq!(me.body["key"], Value::Null, "{label}");
        }
    }
}

#[tokio::test]
async fn missing_and_unsupported_credentials_are_401() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server.create_key(&admin, json!({"name": "k"})).await;

    let none = server.send(Method::GET, "/v0/me", &[], None).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "Unauthorized");
    let basic_key = format!("Basic {key}");
    let cases: [(&str, &[u8]); 7] = [
        ("Authorization", b"Basic xyz"),
        ("Authorization", basic_key.as_bytes()),
        ("Authorization", b"Bearer"),
        ("Authorization", b"Bearer    "),
        ("Authorization", b"Token abc"),
        ("X-API-Key", b"nonsense"),
        ("X-API-Key", b"   "),
    ];
    for (header, value) in cases {
        let reply = server
            .send(Method::GET, "/v0/me", &[(header, value)], None)
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // Login does not need a credential, everything else does.
    for (method, path) in [
        (Method::GET, "/v0/api_keys"),
        (Method::POST, "/v0/api_keys"),
        (Method::POST, "/v0/keys/verify"),
        (Method::GET, "/v0/users"),
    ] {
        let reply = server.send(method, path, &[], Some(b"{}".to_vec())).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let health = server.send(Method::GET, "/healthz", &[], None).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let ready = server.send(Method::GET, "/readyz", &[], None).await;
    assert_eq!(
        (ready.status, ready.body.clone()),
        (StatusCode::OK, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn malformed_keys_are_refused_before_lookup() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server.create_key(&admin, json!({"name": "real"})).await;

    let mut bad_checksum = key.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });
    let malformed = [
        "garbage".to_string(),
        key[..key.len() - 1].to_string(),
        key[..20].to_string(),
        format!("{key}x"),
        bad_checksum,
        key.replacen("kw_", "KW_", 1),
        "kw_".to_string(),
    ];
    for bad in &malformed {
        for header in [format!("Bearer {bad}"), format!("apikey {bad}")] {
            let reply = server
                .send(
                    Method::GET,
                    "/v0/me",
                    &[("Authorization", header.as_bytes())],
                    None,
                )
                .await;
            assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        let reply = server
            .send(
                Method::GET,
                "/v0/me",
                &[("X-API-Key", bad.as_bytes())],
                None,
            )
            .await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
        let verdict = server.verify(&admin, bad, None).await;
        assert_eq!(verdict["code"], "MALFORMED", "{bad}: {verdict}");
        assert_eq!(verdict["valid"], false);
        for field in [
            "key_id",
            "name",
            "owner_id",
            "permissions",
            "expires_at",
            "metadata",
        ] {
            assert_eq!(
                verdict[field],
                Value::Null,
                "{bad}: {field} of a malformed key"
            );
        }
    }
    // The real key is still fine.
    assert_eq!(server.verify_code(&admin, &key, None).await, "VALID");
}

#[tokio::test]
async fn unknown_well_formed_keys_are_not_found() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server.create_key(&admin, json!({"name": "real"})).await;
    let forged = forged_key();
    assert_ne!(forged, key);
    assert!(forged.starts_with("kw_") && forged.len() == key.len());

    let reply = server
        .call(Method::GET, "/v0/me", Some(&forged), None)
        .await;
    assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
    let verdict = server.verify(&admin, &forged, None).await;
    assert_eq!(verdict["code"], "NOT_FOUND", "{verdict}");
    assert_eq!(verdict["valid"], false);
    for field in [
        "key_id",
        "name",
        "owner_id",
        "permissions",
        "expires_at",
        "metadata",
    ] {
        assert_eq!(verdict[field], Value::Null, "{field} of an unknown key");
    }
    // Asking again (now from the cache of misses) gives the same answer.
    assert_eq!(server.verify_code(&admin, &forged, None).await, "NOT_FOUND");
    assert_eq!(
        server
            .call(Method::GET, "/v0/me", Some(&forged), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn forged_and_foreign_session_tokens_are_401() {
    let server = TestServer::start().await;
    let other = TestServer::start().await;
    let admin = server.admin_token().await;
    let foreign = other.admin_token().await;

    let (head, signature) = admin.rsplit_once('.').unwrap();
    let mut flipped: Vec<char> = signature.chars().collect();
    flipped[0] = if flipped[0] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{head}.{}", flipped.into_iter().collect::<String>());
    for token in [
        tampered.as_str(),
        foreign.as_str(),
        "eyJhbGciOiJIUzI1NiJ9.e30.x",
        &admin[..admin.len() - 4],
    ] {
        let reply = server.call(Method::GET, "/v0/me", Some(token), None).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    assert_eq!(server.get("/v0/me", &admin).await.status, StatusCode::OK);
}

/// Requests on one kept-alive connection are each answered for the key they present, as
/// that key stands at that moment. The connection remembers the key its last request
/// authenticated with (`connection.rs`); nothing remembered may outlive a change.
#[tokio::test]
async fn a_kept_alive_connection_answers_for_the_key_as_it_stands() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (a_id, a) = server.create_key(&admin, json!({"name": "a"})).await;
    let (b_id, b) = server.create_key(&admin, json!({"name": "b"})).await;
    let (_, soon) = server
        .create_key(
            &admin,
            json!({"name": "soon", "expires_at": crate::support::in_seconds(2)}),
        )
        .await;
    let member = server.member(&admin, "kept@example.com", None).await;
    let (_, members_key) = server.create_key(&member, json!({"name": "m"})).await;
    let member_id = server.user_id(&member).await;
    let mut connection = RawConnection::open(&server).await;

    // Repeats, and a switch of key on the same connection, each answer for their key.
    for (key, id) in [
        (&a, &a_id),
        (&a, &a_id),
        (&b, &b_id),
        (&a, &a_id),
        (&b, &b_id),
    ] {
        let (status, body) = connection.me(key).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["key"]["id"], id.as_str(), "{body}");
    }
    // A key one character off, the same length, after a remembered one.
    let mut altered = a.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
    let (status, _) = connection.me(&String::from_utf8(altered).unwrap()).await;
    assert_eq!(status, 401);
    let (status, _) = connection.me(&forged_key()).await;
    assert_eq!(status, 401);
    assert_eq!(connection.me(&a).await.0, 200);

    // Revoked on another connection: refused on this one at the next request.
    let revoked = server
        .call(
            Method::DELETE,
            &crate::support::key_path(&a_id),
            Some(&admin),
            None,
        )
        .await;
    assert!(revoked.status.is_success(), "{}", revoked.text);
    let (status, body) = connection.me(&a).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // Permissions narrowed on another connection: the next verification is forbidden.
    let caller = format!("Bearer {b}");
    let body = json!({"key": forged_key()});
    let (status, answer) = connection
        .send("POST", "/v0/keys/verify", &caller, Some(body.clone()))
        .await;
    assert_eq!(status, 200, "{answer}");
    let narrowed = server
        .call(
            Method::PATCH,
            &crate::support::key_path(&b_id),
            Some(&admin),
            Some(json!({"permissions": ["data.read"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    let (status, refused) = connection
        .send("POST", "/v0/keys/verify", &caller, Some(body))
        .await;
    assert_eq!(status, 403, "{refused}");

    // The owner disabled: the owner's key stops working at once.
    assert_eq!(connection.me(&members_key).await.0, 200);
    let disabled = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{member_id}"),
            Some(&admin),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text);
    assert_eq!(connection.me(&members_key).await.0, 401);

    // Expired while remembered, with nothing else changing meanwhile.
    let (status, body) = connection.me(&soon).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(connection.me(&soon).await.0, 200);
    crate::support::sleep_past(
        &body["key"]["expires_at"],
        std::time::Duration::from_millis(100),
    )
    .await;
    let (status, body) = connection.me(&soon).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}
