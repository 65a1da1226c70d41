//! The audit log through the real server: one event per change, whichever door made
//! it, with the right actor, door, target and changes, never a secret; members see only
//! their own; bad parameters are refused by name; concurrent edits of one key all land.

use crate::support::{
    assert_error, key_path, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD, MEMBER_PASSWORD,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Every event about `target`, newest first.
async fn events_about(server: &TestServer, auth: &str, target: &str) -> Vec<Value> {
    let reply = server
        .get(&format!("/v0/audit?target_id={target}&limit=1000"), auth)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["events"].as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn patch(server: &TestServer, auth: &str, path: &str, body: Value) {
    let reply = server
        .call(Method::PATCH, path, Some(auth), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn each_change_to_a_key_is_one_event_with_its_actor_door_target_and_changes() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let admin_id = server.user_id(&admin).await;
    let (id, secret) = server
        .create_key(
            &admin,
            json!({"name": "billing", "permissions": ["invoices.read"]}),
        )
        .await;
    let path = key_path(&id);
    patch(&server, &admin, &path, json!({"name": "billing-2"})).await;
    patch(&server, &admin, &path, json!({"enabled": false})).await;
    patch(&server, &admin, &path, json!({"enabled": true})).await;
    // A change to nothing is no change: no event.
    patch(&server, &admin, &path, json!({"enabled": true})).await;
    let rotated = server
        .call(
            Method::POST,
            &format!("{path}/rotate"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text);
    let new_secret = rotated.body["api_key"].as_str().unwrap().to_string();
    let revoked = server.call(Method::DELETE, &path, Some(&admin), None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);

    let events = events_about(&server, &admin, &id).await;
    assert_eq!(
        actions(&events),
        [
            "key.revoked",
            "key.rotated",
            "key.enabled",
            "key.disabled",
            "key.updated",
            "key.created"
        ]
    );
    for event in &events {
        assert_eq!(event["actor"], json!({"type": "user", "id": admin_id}));
        assert_eq!(event["door"], "native");
        assert_eq!(event["target"], json!({"type": "key", "id": id}));
        assert_eq!(event["remote_ip"], "127.0.0.1");
        let text = event.to_string();
        for hidden in [&secret, &new_secret, &ADMIN_PASSWORD.to_string()] {
            assert!(!text.contains(hidden.as_str()), "a secret in {text}");
        }
    }
    let renamed = &events[4]["changes"];
    assert_eq!(renamed.as_object().unwrap().len(), 1, "{renamed}");
    assert_eq!(
        renamed["name"],
        json!({"from": "billing", "to": "billing-2"})
    );
    assert_eq!(
        events[3]["changes"]["enabled"],
        json!({"from": true, "to": false})
    );
    let created = &events[5]["changes"];
    assert_eq!(created["permissions"]["to"], json!(["invoices.read"]));
    assert_eq!(created["owner_id"]["to"], json!(admin_id));
    assert!(events[0]["changes"]["revoked_at"]["to"].is_string());
}

#[tokio::test]
async fn users_and_logins_are_recorded_without_passwords() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (member_id, _) = server.member_with_id(&admin, "jo@example.com", None).await;
    let user_path = format!("/v0/users/{member_id}");
    patch(
        &server,
        &admin,
        &user_path,
        json!({"password": "new-password-42"}),
    )
    .await;
    patch(&server, &admin, &user_path, json!({"display_name": "Jo"})).await;
    patch(&server, &admin, &user_path, json!({"active": false})).await;
    let wrong = server
        .call(
            Method::POST,
            "/v0/auth/login",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": "not-the-password"})),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let events = events_about(&server, &admin, &member_id).await;
    assert_eq!(
        actions(&events),
        [
            "user.deactivated",
            "user.updated",
            "user.password_changed",
            "login.succeeded",
            "user.created"
        ]
    );
    assert_eq!(
        events[2]["changes"]["password"],
        json!({"from": "(hidden)", "to": "(hidden)"})
    );
    assert_eq!(events[1]["changes"]["display_name"]["to"], "Jo");
    let admin_id = server.user_id(&admin).await;
    let logins = events_about(&server, &admin, &admin_id).await;
    assert_eq!(actions(&logins)[..2], ["login.failed", "login.succeeded"]);
    assert_eq!(logins[0]["details"]["login"], ADMIN_EMAIL);
    let all = server.get("/v0/audit?limit=1000", &admin).await.text;
    for password in [
        ADMIN_PASSWORD,
        MEMBER_PASSWORD,
        "new-password-42",
        "not-the-password",
    ] {
        assert!(!all.contains(password), "a password in the log");
    }
}

#[tokio::test]
async fn keys_made_through_macrometa_and_by_keys_say_so() {
    let server = TestServer::start().await;
    let login = server
        .call(
            Method::POST,
            "/_open/auth",
            None,
            Some(json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})),
        )
        .await;
    let jwt = login.body["jwt"].as_str().unwrap().to_string();
    let made = server
        .call(
            Method::POST,
            "/_api/key",
            Some(&jwt),
            Some(json!({"keyid": "mm1"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let admin = server.admin_token().await;
    let (key_id, key_secret) = server.create_key(&admin, json!({"name": "robot"})).await;
    let (made_by_key, _) = server
        .create_key(&key_secret, json!({"name": "child"}))
        .await;

    let page = server.get("/v0/audit?action=key.created", &admin).await;
    let events = page.body["events"].as_array().unwrap();
    let by_door: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["door"].as_str().unwrap(),
                e["actor"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        by_door,
        [("native", "key"), ("native", "user"), ("macrometa", "user")]
    );
    assert_eq!(events[0]["actor"]["id"], key_id.as_str());
    assert_eq!(events[0]["target"]["id"], made_by_key.as_str());
    let logins = server.get("/v0/audit?action=login.succeeded", &admin).await;
    let doors: Vec<&str> = logins.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["door"].as_str().unwrap())
        .collect();
    assert_eq!(doors, ["native", "macrometa"]);
}

#[tokio::test]
async fn members_see_only_what_they_did_and_what_was_done_to_theirs() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (jo_id, jo) = server.member_with_id(&admin, "jo@example.com", None).await;
    let (_, kim) = server.member_with_id(&admin, "kim@example.com", None).await;
    let (jo_key, _) = server.create_key(&jo, json!({"name": "jo-key"})).await;
    let (kim_key, _) = server.create_key(&kim, json!({"name": "kim-key"})).await;
    // The administrator disables Jo's key: Jo sees it, Kim does not.
    patch(
        &server,
        &admin,
        &key_path(&jo_key),
        json!({"enabled": false}),
    )
    .await;

    let seen = server.get("/v0/audit?limit=1000", &jo).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    let events = seen.body["events"].as_array().unwrap();
    assert!(!events.is_empty());
    for event in events {
        let mine = event["target"]["id"] == jo_key.as_str()
            || event["target"]["id"] == jo_id.as_str()
            || event["actor"]["id"] == jo_id.as_str();
        assert!(mine, "Jo sees someone else's event: {event}");
    }
    assert!(actions(events).contains(&"key.disabled"));
    assert!(
        !seen.text.contains(&kim_key),
        "Kim's key is invisible to Jo"
    );
    let asked = server
        .get(&format!("/v0/audit?target_id={kim_key}"), &jo)
        .await;
    assert_eq!(asked.body["events"], json!([]), "{}", asked.text);
    let other = server.other_tenant().await;
    let theirs = server.get("/v0/audit?limit=1000", &other).await;
    assert!(
        !theirs.text.contains(&jo_key),
        "tenants never see each other's"
    );
}

#[tokio::test]
async fn pages_follow_the_cursor_newest_first_without_gaps() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(
            server
                .create_key(&admin, json!({"name": format!("k{i}")}))
                .await
                .0,
        );
    }
    let mut seen = Vec::new();
    let mut query = "/v0/audit?action=key.created&limit=3".to_string();
    loop {
        let page = server.get(&query, &admin).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for event in page.body["events"].as_array().unwrap() {
            seen.push(event["target"]["id"].as_str().unwrap().to_string());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("/v0/audit?action=key.created&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    made.reverse();
    assert_eq!(seen, made);
    let later = server
        .get(
            "/v0/audit?action=key.created&since=2999-01-01T00:00:00Z",
            &admin,
        )
        .await;
    assert_eq!(later.body["events"], json!([]));
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_a_current_one_lands() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, _) = server
        .create_key(&admin, json!({"name": "versioned"}))
        .await;
    let url = format!("{}{}", server.url, key_path(&id));
    let read = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_string();
    patch(&server, &admin, &key_path(&id), json!({"name": "moved on"})).await;
    let stale = server
        .http
        .patch(&url)
        .bearer_auth(&admin)
        .header("If-Match", &etag)
        .json(&json!({"metadata": {"a": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["error_code"], "PreconditionFailed");
    let read = server
        .http
        .get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_string();
    let current = server
        .http
        .patch(&url)
        .bearer_auth(&admin)
        .header("If-Match", &etag)
        .json(&json!({"metadata": {"a": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), StatusCode::OK);
    assert_ne!(
        current.headers()["etag"].to_str().unwrap(),
        etag,
        "a new version"
    );
    for bad in ["nope", "\"x\"", "W/"] {
        let reply = server
            .http
            .patch(&url)
            .bearer_auth(&admin)
            .header("If-Match", bad)
            .json(&json!({"name": "n"}))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    for (query, named) in [
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=YXVkaXQ6LTQ", "cursor"),
        ("limit=1001", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("since=yesterday", "since"),
        (
            "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "since",
        ),
        ("actor_id=42", "actor_id"),
        ("target_id=%00", "target_id"),
        ("action=key.exploded", "action"),
        ("colour=red", "colour"),
    ] {
        let reply = server.get(&format!("/v0/audit?{query}"), &admin).await;
        assert!(reply.status.is_client_error(), "{query}: {}", reply.text);
        let code = reply.body["error_code"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let message = assert_error(&reply, reply.status, &code);
        let field = reply.body["details"]["field"].as_str().unwrap_or_default();
        assert!(
            message.contains(named) || field == named,
            "{query}: the answer names {named}: {}",
            reply.text
        );
    }
    let anonymous = server.call(Method::GET, "/v0/audit", None, None).await;
    assert_error(&anonymous, StatusCode::UNAUTHORIZED, "Unauthorized");
}

/// Adds one metadata attribute through the native API as a careful client does: read
/// the key and its ETag, write the whole metadata back with `If-Match`, and start again
/// when somebody changed the key meanwhile (412).
async fn add_attribute_natively(server: &TestServer, admin: &str, path: &str, name: String) {
    let url = format!("{}{path}", server.url);
    for _ in 0..200 {
        let read = server
            .http
            .get(&url)
            .bearer_auth(admin)
            .send()
            .await
            .expect("GET");
        let etag = read.headers()["etag"].to_str().unwrap().to_string();
        let key: Value = read.json().await.unwrap();
        let mut metadata = key["metadata"].as_object().unwrap().clone();
        metadata.insert(name.clone(), json!("native"));
        let write = server
            .http
            .patch(&url)
            .bearer_auth(admin)
            .header("If-Match", &etag)
            .json(&json!({ "metadata": metadata }))
            .send()
            .await
            .expect("PATCH");
        match write.status() {
            StatusCode::OK => return,
            StatusCode::PRECONDITION_FAILED => tokio::task::yield_now().await,
            other => panic!("{name}: {other} {}", write.text().await.unwrap()),
        }
    }
    panic!("{name} never landed");
}

/// Sixteen clients at once, each adding its own attribute or access level to one key
/// through Macrometa, eight more adding attributes through the native API (reading and
/// writing back with If-Match), while others change other fields of it natively: every
/// change lands.
#[tokio::test]
async fn concurrent_edits_of_one_key_are_never_lost() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let made = server
        .call(
            Method::POST,
            "/_api/key",
            Some(&admin),
            Some(json!({"keyid": "shared"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let listed = server.get("/v0/api_keys?limit=10", &admin).await;
    let id = listed.body["items"][0]["id"].as_str().unwrap().to_string();

    let mut clients = Vec::new();
    for i in 0..16 {
        let (server, admin) = (&server, &admin);
        clients.push(async move {
            let (path, body) = match i % 2 {
                0 => (
                    "/_api/key/shared/attributes".to_string(),
                    json!({ format!("a{i}"): format!("v{i}") }),
                ),
                _ => (
                    format!("/_api/key/shared/database/_system/collection/c{i}"),
                    json!({"grant": "ro"}),
                ),
            };
            let reply = server
                .call(Method::PUT, &path, Some(admin), Some(body))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        });
    }
    let path = key_path(&id);
    let native = [
        json!({"enabled": false}),
        json!({"expires_at": "2999-01-01T00:00:00Z"}),
    ];
    let natives = native.iter().map(|body| {
        let (server, admin, path) = (&server, &admin, &path);
        Box::pin(async move { patch(server, admin, path, body.clone()).await })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>
    });
    let careful = (0..8).map(|i| {
        let (server, admin, path) = (&server, &admin, &path);
        Box::pin(async move { add_attribute_natively(server, admin, path, format!("n{i}")).await })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>
    });
    futures_join(clients, natives.chain(careful)).await;

    let key = server.get(&path, &admin).await.body;
    let permissions: Vec<&str> = key["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for i in 0..16 {
        if i % 2 == 0 {
            assert_eq!(key["metadata"][format!("a{i}")], format!("v{i}"), "{key}");
        } else {
            let level = format!("fabric/_system/collection/c{i}:ro");
            assert!(permissions.contains(&level.as_str()), "{level} lost: {key}");
        }
    }
    assert_eq!(key["enabled"], false);
    for i in 0..8 {
        assert_eq!(
            key["metadata"][format!("n{i}")],
            "native",
            "n{i} lost: {key}"
        );
    }
    assert!(key["expires_at"].as_str().unwrap().starts_with("2999"));
    // Each change is one event.
    let events = events_about(&server, &admin, &id).await;
    assert_eq!(events.len(), 1 + 16 + 2 + 8, "{}", json!(actions(&events)));
}

async fn futures_join<A, B>(a: Vec<A>, b: impl Iterator<Item = B>)
where
    A: std::future::Future<Output = ()>,
    B: std::future::Future<Output = ()>,
{
    let mut all: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>> = Vec::new();
    for f in a {
        all.push(Box::pin(f));
    }
    for f in b {
        all.push(Box::pin(f));
    }
    join_all(all).await;
}

/// Runs every future to completion, concurrently, on this task.
async fn join_all(mut futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>>>) {
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

/// Keys made and revoked through Octopus's and W3IPFS's doors are recorded with their
/// door, as through any other.
#[tokio::test]
async fn octopus_and_w3ipfs_changes_are_recorded_with_their_door() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let me = server.get("/api/users/me", &admin).await;
    let octopus_id = me.body["Id"].as_str().unwrap().to_string();
    let made = server
        .call(
            Method::POST,
            &format!("/api/users/{octopus_id}/apikeys"),
            Some(&admin),
            Some(json!({"Purpose": "octo"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let octo_key = made.body["Id"].as_str().unwrap().to_string();
    let removed = server
        .call(
            Method::DELETE,
            &format!("/api/users/{octopus_id}/apikeys/{octo_key}"),
            Some(&admin),
            None,
        )
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);

    let w3 = server
        .call(
            Method::POST,
            "/api/apiKeys",
            Some(&admin),
            Some(json!({"name": "w3", "scopes": {"admin": true}})),
        )
        .await;
    assert_eq!(w3.status, StatusCode::OK, "{}", w3.text);
    let w3_id = w3.body["data"]["api_key"].as_str().unwrap().to_string();
    let deleted = server
        .call(
            Method::DELETE,
            &format!("/api/apiKeys/{w3_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);

    let page = server.get("/v0/audit?limit=1000", &admin).await;
    let by_door: Vec<(&str, &str)> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("key."))
        .map(|e| (e["action"].as_str().unwrap(), e["door"].as_str().unwrap()))
        .collect();
    assert_eq!(
        by_door,
        [
            ("key.revoked", "w3ipfs"),
            ("key.created", "w3ipfs"),
            ("key.revoked", "octopus"),
            ("key.created", "octopus"),
        ],
        "{}",
        page.text
    );
    assert!(!page
        .text
        .contains(w3.body["data"]["secret_key"].as_str().unwrap_or("-")));
}
