//! A key's secret is shown once, in the answer that creates (or rotates) it, and is
//! neither answered again nor stored.

use crate::support::{assert_secret_absent, bytes_contain, key_path, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn secrets_are_shown_once_and_never_stored() {
    let mut server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server.member(&admin, "member@example.com", None).await;

    let mut secrets = Vec::new();
    let mut answers = Vec::new();
    let mut ids = Vec::new();
    for (auth, name) in [
        (&admin, "secret-test-admin-1"),
        (&admin, "secret-test-admin-2"),
        (&member, "secret-test-member"),
    ] {
        let (id, secret) = server
            .create_key(auth, json!({ "name": name, "metadata": {"note": name} }))
            .await;
        ids.push((auth.clone(), id));
        secrets.push(secret);
    }
    // A key made through a key, and a rotation: both secrets of it must stay hidden too.
    let (via_key, via_key_secret) = server
        .create_key(&secrets[0], json!({"name": "secret-test-via-key"}))
        .await;
    secrets.push(via_key_secret);
    let rotated = server
        .call(
            Method::POST,
            &format!("{}/rotate", key_path(&via_key)),
            Some(&admin),
            Some(json!({"grace_seconds": 60})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let rotated_secret = rotated.body["api_key"].as_str().unwrap().to_string();
    assert_secret_absent(
        rotated.text.as_bytes(),
        &secrets[3],
        "the rotation answer (old secret)",
    );
    secrets.push(rotated_secret);

    // Every later answer about these keys.
    for auth in [&admin, &member] {
        answers.push((
            "list",
            server.get("/v0/api_keys?include_revoked=true", auth).await,
        ));
    }
    for (auth, id) in &ids {
        answers.push(("get", server.get(&key_path(id), auth).await));
        answers.push((
            "patch",
            server
                .call(
                    Method::PATCH,
                    &key_path(id),
                    Some(auth),
                    Some(json!({"metadata": {"patched": true}})),
                )
                .await,
        ));
    }
    for secret in &secrets {
        answers.push((
            "verify",
            server
                .call(
                    Method::POST,
                    "/v0/keys/verify",
                    Some(&admin),
                    Some(json!({"key": secret})),
                )
                .await,
        ));
        answers.push((
            "me",
            server.call(Method::GET, "/v0/me", Some(secret), None).await,
        ));
    }
    let (auth, id) = &ids[1];
    answers.push((
        "revoke",
        server
            .call(Method::DELETE, &key_path(id), Some(auth), None)
            .await,
    ));
    answers.push((
        "list after revoke",
        server
            .get("/v0/api_keys?include_revoked=true", &admin)
            .await,
    ));

    for (what, answer) in &answers {
        assert!(answer.status.is_success(), "{what}: {}", answer.text);
        assert!(
            !answer.text.contains("\"api_key\":"),
            "{what} has an api_key field: {}",
            answer.text
        );
        for secret in &secrets {
            assert_secret_absent(answer.text.as_bytes(), secret, what);
        }
    }

    // Uses are flushed and the store closed on shutdown; then read the files raw.
    server.stop().await;
    let stored = server.stored_bytes().await;
    // These are the right files: the keys themselves are in them.
    for name in [
        "secret-test-admin-1",
        "secret-test-member",
        "secret-test-via-key",
    ] {
        assert!(
            bytes_contain(&stored, name),
            "the database does not hold key {name}"
        );
    }
    // The visible start (prefix and 4 characters) is stored, which shows the search
    // finds a secret's characters where they are.
    assert!(
        bytes_contain(&stored, &secrets[0][..7]),
        "the start of a key is not stored"
    );
    for secret in &secrets {
        assert_secret_absent(&stored, secret, "the database");
    }
}
