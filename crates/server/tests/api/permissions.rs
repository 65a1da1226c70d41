//! Who may see and do what: members and administrators, no escalation through the API
//! (also as a property over random permission lists), and permission queries.

use crate::support::{assert_error, key_path, names, TestServer, MEMBER_PASSWORD};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// What the constrained member of these tests holds.
const MEMBER_GRANTS: [&str; 3] = ["keyward.keys.*", "data.read", "fabric/_system:ro"];

fn rotate_path(id: &str) -> String {
    format!("{}/rotate", key_path(id))
}

#[tokio::test]
async fn members_see_and_manage_only_their_own_keys() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (alice_id, alice) = server
        .member_with_id(&admin, "alice@example.com", None)
        .await;
    let (bob_id, bob) = server.member_with_id(&admin, "bob@example.com", None).await;
    let (a1, _) = server.create_key(&alice, json!({"name": "a1"})).await;
    let (b1, b1_secret) = server.create_key(&bob, json!({"name": "b1"})).await;
    let (adm1, _) = server.create_key(&admin, json!({"name": "adm1"})).await;

    let listed = server.get("/v0/api_keys", &alice).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(names(&listed.body), ["a1"]);
    assert_eq!(listed.body["total"], 1);
    let own = server
        .get(&format!("/v0/api_keys?owner_id={alice_id}"), &alice)
        .await;
    assert_eq!(names(&own.body), ["a1"]);
    let others = server
        .get(&format!("/v0/api_keys?owner_id={bob_id}"), &alice)
        .await;
    assert_error(&others, StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(
        server.get(&key_path(&a1), &alice).await.status,
        StatusCode::OK
    );

    // Another user's key does not exist for a member, whatever the verb.
    for id in [&b1, &adm1] {
        let get = server.get(&key_path(id), &alice).await;
        assert_error(&get, StatusCode::NOT_FOUND, "NotFound");
        let patch = server
            .call(
                Method::PATCH,
                &key_path(id),
                Some(&alice),
                Some(json!({"name": "mine now"})),
            )
            .await;
        assert_error(&patch, StatusCode::NOT_FOUND, "NotFound");
        let delete = server
            .call(Method::DELETE, &key_path(id), Some(&alice), None)
            .await;
        assert_error(&delete, StatusCode::NOT_FOUND, "NotFound");
        let rotate = server
            .call(
                Method::POST,
                &rotate_path(id),
                Some(&alice),
                Some(json!({})),
            )
            .await;
        assert_error(&rotate, StatusCode::NOT_FOUND, "NotFound");
    }
    // ...and none of those attempts changed it.
    let b1_view = server.get(&key_path(&b1), &bob).await.body;
    assert_eq!(
        (&b1_view["name"], &b1_view["state"]),
        (&json!("b1"), &json!("active"))
    );
    assert_eq!(server.verify_code(&admin, &b1_secret, None).await, "VALID");

    // Members cannot manage users or make keys for others.
    assert_error(
        &server.get("/v0/users", &alice).await,
        StatusCode::FORBIDDEN,
        "Forbidden",
    );
    let new_user = server
        .call(
            Method::POST,
            "/v0/users",
            Some(&alice),
            Some(json!({"email": "eve@example.com", "password": "eve-password-1"})),
        )
        .await;
    assert_error(&new_user, StatusCode::FORBIDDEN, "Forbidden");
    let promote = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{alice_id}"),
            Some(&alice),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_error(&promote, StatusCode::FORBIDDEN, "Forbidden");
    let for_bob = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&alice),
            Some(json!({"name": "for bob", "owner_id": bob_id})),
        )
        .await;
    assert_error(&for_bob, StatusCode::FORBIDDEN, "Forbidden");
    let for_self = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&alice),
            Some(json!({"name": "for me", "owner_id": alice_id})),
        )
        .await;
    assert_eq!(for_self.status, StatusCode::CREATED, "{}", for_self.text);
    assert_eq!(
        server.get("/v0/api_keys", &bob).await.body["total"],
        1,
        "bob got a key he did not make"
    );

    // The administrator sees everything, filters by owner and acts on anyone's keys.
    let all = server.get("/v0/api_keys", &admin).await;
    assert_eq!(names(&all.body), ["for me", "adm1", "b1", "a1"]);
    assert_eq!(all.body["total"], 4);
    let alices = server
        .get(&format!("/v0/api_keys?owner_id={alice_id}"), &admin)
        .await;
    assert_eq!(names(&alices.body), ["for me", "a1"]);
    let users = server.get("/v0/users", &admin).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.text);
    assert_eq!(users.body["total"], 3);

    let for_alice = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "from admin", "owner_id": alice_id})),
        )
        .await;
    assert_eq!(for_alice.status, StatusCode::CREATED, "{}", for_alice.text);
    assert_eq!(for_alice.body["owner_id"], alice_id.as_str());
    assert_eq!(
        for_alice.body["permissions"],
        json!(["keyward.keys.*"]),
        "defaults to what the owner holds"
    );
    let secret = for_alice.body["api_key"].as_str().unwrap();
    assert_eq!(
        server.user_id(secret).await,
        alice_id,
        "the key acts as its owner"
    );
    assert!(
        names(&server.get("/v0/api_keys", &alice).await.body).contains(&"from admin".to_string())
    );
    // Not more than the owner holds, even when an administrator asks.
    let too_much = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&admin),
            Some(json!({"name": "too much", "owner_id": alice_id, "permissions": ["data.read"]})),
        )
        .await;
    assert_error(&too_much, StatusCode::FORBIDDEN, "Forbidden");

    assert_eq!(
        server.get(&key_path(&b1), &admin).await.status,
        StatusCode::OK
    );
    let revoked = server
        .call(Method::DELETE, &key_path(&b1), Some(&admin), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(
        server.verify_code(&admin, &b1_secret, None).await,
        "REVOKED"
    );
}

#[tokio::test]
async fn nobody_grants_more_than_they_hold() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server
        .member(&admin, "limited@example.com", Some(json!(MEMBER_GRANTS)))
        .await;
    let create = |auth: String, name: &str, permissions: Value| {
        let body = json!({ "name": name, "permissions": permissions });
        let server = &server;
        async move {
            server
                .call(Method::POST, "/v0/api_keys", Some(&auth), Some(body))
                .await
        }
    };

    for (i, excess) in [
        json!(["data.write"]),
        json!(["data.*"]),
        json!(["fabric/_system:rw"]),
        json!(["*"]),
        json!(["keyward.*"]),
        json!(["keyward.admin"]),
        json!(["fabric/*:ro"]),
        json!(["*:ro"]),
        json!(["data.read", "data.write"]),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = create(member.clone(), &format!("excess-{i}"), excess.clone()).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    }
    assert_eq!(
        server.get("/v0/api_keys", &member).await.body["total"],
        0,
        "a refused key was made anyway"
    );

    for (name, within) in [
        ("read", json!(["data.read"])),
        ("nothing", json!([])),
        ("collection", json!(["fabric/_system/collection/x:ro"])),
        ("all of it", json!(MEMBER_GRANTS)),
    ] {
        let reply = create(member.clone(), name, within.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{name}: {}", reply.text);
    }
    let defaulted = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&member),
            Some(json!({"name": "default"})),
        )
        .await;
    assert_eq!(defaulted.status, StatusCode::CREATED, "{}", defaulted.text);
    assert_eq!(
        defaulted.body["permissions"],
        json!(["data.read", "keyward.keys.*", "fabric/_system:ro"])
    );

    // A key holding only `keyward.keys.write` makes keys within that, and no more.
    let (writer_id, writer) = server
        .create_key(
            &member,
            json!({"name": "writer", "permissions": ["keyward.keys.write"]}),
        )
        .await;
    let reply = create(
        writer.clone(),
        "writer-child",
        json!(["keyward.keys.write"]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = create(writer.clone(), "writer-empty", json!([])).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = server
        .call(
            Method::POST,
            "/v0/api_keys",
            Some(&writer),
            Some(json!({"name": "writer-default"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(
        reply.body["permissions"],
        json!(["keyward.keys.write"]),
        "defaults to the key's own grants"
    );
    for (i, excess) in [
        json!(["data.read"]),
        json!(["keyward.keys.read"]),
        json!(["keyward.keys.write", "data.read"]),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = create(writer.clone(), &format!("writer-excess-{i}"), excess).await;
        assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    }

    // PATCH obeys the same rule, for the member and for the narrow key.
    let (reader_id, _) = server
        .create_key(
            &member,
            json!({"name": "reader", "permissions": ["data.read"]}),
        )
        .await;
    for excess in [
        json!(["data.write"]),
        json!(["*"]),
        json!(["fabric/_system:rw"]),
        json!(["data.*"]),
    ] {
        let reply = server
            .call(
                Method::PATCH,
                &key_path(&reader_id),
                Some(&member),
                Some(json!({ "permissions": excess })),
            )
            .await;
        assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    }
    let reply = server
        .call(
            Method::PATCH,
            &key_path(&reader_id),
            Some(&writer),
            Some(json!({"permissions": ["data.read"]})),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    let reply = server
        .call(
            Method::PATCH,
            &key_path(&writer_id),
            Some(&writer),
            Some(json!({"permissions": ["keyward.keys.write", "data.read"]})),
        )
        .await;
    assert_error(&reply, StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(
        server.get(&key_path(&reader_id), &member).await.body["permissions"],
        json!(["data.read"])
    );
    assert_eq!(
        server.get(&key_path(&writer_id), &member).await.body["permissions"],
        json!(["keyward.keys.write"])
    );
    let reply = server
        .call(
            Method::PATCH,
            &key_path(&reader_id),
            Some(&member),
            Some(json!({"permissions": ["fabric/_system:ro"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["permissions"], json!(["fabric/_system:ro"]));
    let reply = server
        .call(
            Method::PATCH,
            &key_path(&writer_id),
            Some(&writer),
            Some(json!({"permissions": []})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "a key may narrow itself: {}",
        reply.text
    );
}

#[tokio::test]
async fn a_narrow_key_cannot_obtain_the_secret_of_a_wider_one() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let member = server
        .member(&admin, "narrow@example.com", Some(json!(MEMBER_GRANTS)))
        .await;
    let (wide_id, wide) = server
        .create_key(
            &member,
            json!({"name": "wide", "permissions": ["data.read"]}),
        )
        .await;
    let (_, writer) = server
        .create_key(
            &member,
            json!({"name": "writer", "permissions": ["keyward.keys.write"]}),
        )
        .await;

    // Rotating hands out a new secret of the wide key: through a key that could not
    // have granted `data.read`, that would be an escalation.
    let rotate = server
        .call(
            Method::POST,
            &rotate_path(&wide_id),
            Some(&writer),
            Some(json!({})),
        )
        .await;
    assert_error(&rotate, StatusCode::FORBIDDEN, "Forbidden");
    assert_eq!(
        server.verify_code(&admin, &wide, None).await,
        "VALID",
        "a refused rotation replaced the secret"
    );
    // A key holding at least as much may rotate it, and so may the member's session.
    let (_, keeper) = server
        .create_key(
            &member,
            json!({"name": "keeper", "permissions": ["keyward.keys.write", "data.read"]}),
        )
        .await;
    let rotate = server
        .call(
            Method::POST,
            &rotate_path(&wide_id),
            Some(&keeper),
            Some(json!({})),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::OK, "{}", rotate.text);
    let rotate = server
        .call(
            Method::POST,
            &rotate_path(&wide_id),
            Some(&member),
            Some(json!({})),
        )
        .await;
    assert_eq!(rotate.status, StatusCode::OK, "{}", rotate.text);
}

#[tokio::test]
async fn verify_answers_permission_queries() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "queried", "permissions": ["a.read", "b.write", "fabric/_system:ro"]}),
        )
        .await;
    let cases: [(Value, &str); 19] = [
        (json!("a.read AND (b.write OR c.x)"), "VALID"),
        (json!("a.read AND (c.x OR d.y)"), "INSUFFICIENT_PERMISSIONS"),
        (json!("c.x OR a.read"), "VALID"),
        (json!("c.x OR d.y"), "INSUFFICIENT_PERMISSIONS"),
        (json!("a.read and b.write"), "VALID"),
        (json!("a.read AND c.x OR b.write"), "VALID"),
        (json!("(a.read AND c.x) OR d.y"), "INSUFFICIENT_PERMISSIONS"),
        (json!(["a.read", "b.write"]), "VALID"),
        (json!(["a.read", "c.x"]), "INSUFFICIENT_PERMISSIONS"),
        (json!([]), "VALID"),
        (json!("fabric/_system:ro"), "VALID"),
        (json!("fabric/_system:rw"), "INSUFFICIENT_PERMISSIONS"),
        (json!("fabric/_system:none"), "VALID"),
        (json!("fabric/_system/collection/users:ro"), "VALID"),
        (json!("fabric/other:ro"), "INSUFFICIENT_PERMISSIONS"),
        (json!(["a.read", "fabric/_system:ro"]), "VALID"),
        (
            json!(["a.read", "fabric/_system:rw"]),
            "INSUFFICIENT_PERMISSIONS",
        ),
        (json!("a.read AND fabric/_system:ro"), "VALID"),
        (json!("a.*"), "INSUFFICIENT_PERMISSIONS"),
    ];
    for (query, code) in cases {
        let verdict = server.verify(&admin, &key, Some(query.clone())).await;
        assert_eq!(verdict["code"], code, "{query}: {verdict}");
        assert_eq!(verdict["valid"], code == "VALID", "{query}");
        assert_eq!(
            verdict["name"], "queried",
            "{query}: the key is reported either way"
        );
    }

    for bad in [
        json!("a.read AND"),
        json!("(a.read"),
        json!("a.read b.write"),
        json!("x:admin"),
        json!(""),
        json!("a..b"),
        json!(["a..b"]),
        json!(["fabric/_system:sometimes"]),
    ] {
        let reply = server
            .call(
                Method::POST,
                "/v0/keys/verify",
                Some(&admin),
                Some(json!({"key": key, "permissions": bad})),
            )
            .await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        assert_eq!(reply.body["details"]["field"], "permissions", "{bad}");
    }
    let reply = server
        .call(
            Method::POST,
            "/v0/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "permissions": 5})),
        )
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "InvalidJson");
}

#[tokio::test]
async fn a_key_never_acts_beyond_its_owner() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (member_id, member) = server
        .member_with_id(&admin, "shrinking@example.com", Some(json!(MEMBER_GRANTS)))
        .await;
    let (_, key) = server
        .create_key(
            &member,
            json!({"name": "reader", "permissions": ["data.read"]}),
        )
        .await;
    assert_eq!(
        server
            .verify_code(&admin, &key, Some(json!("data.read")))
            .await,
        "VALID"
    );

    let reply = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{member_id}"),
            Some(&admin),
            Some(json!({"permissions": ["keyward.keys.*"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        server
            .verify_code(&admin, &key, Some(json!("data.read")))
            .await,
        "INSUFFICIENT_PERMISSIONS"
    );
}

// ---- The same rule as a property over random permission lists ----

/// Entries of a permission list, and whether the constrained member may grant each.
const POOL: [(&str, bool); 24] = [
    ("data.read", true),
    ("keyward.keys.read", true),
    ("keyward.keys.write", true),
    ("keyward.keys.verify", true),
    ("keyward.keys.*", true),
    ("keyward.keys.extra.deep", true),
    ("fabric/_system:ro", true),
    ("fabric/_system:none", true),
    ("fabric/_system/collection/users:ro", true),
    ("fabric/_system/collection/users:none", true),
    ("fabric/other:none", true),
    ("data.write", false),
    ("data.*", false),
    ("data.read.more", false),
    ("*", false),
    ("*.read", false),
    ("keyward.*", false),
    ("keyward.admin", false),
    ("fabric/_system:rw", false),
    ("fabric/_system/collection/users:rw", false),
    ("fabric/*:ro", false),
    ("*:ro", false),
    ("fabric/other:ro", false),
    ("other.thing", false),
];

/// A random entry: from the pool, or a random permission string or path the member
/// holds nothing of (paths under `fabric/_system` may be read).
fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0..POOL.len()).prop_map(|i| POOL[i].0.to_string()),
        1 => "[a-c]{1,3}(\\.([a-c]{1,3}|\\*)){0,2}",
        1 => ("(fabric/_system|fabric/[a-c]{1,3})(/[a-c]{1,3}){0,2}", prop_oneof![Just("none"), Just("ro"), Just("rw")])
            .prop_map(|(path, level)| format!("{path}:{level}")),
    ]
}

/// Whether the member may grant one entry (the independent oracle).
fn grantable(entry: &str) -> bool {
    if let Some(&(_, ok)) = POOL.iter().find(|(e, _)| *e == entry) {
        return ok;
    }
    match entry.rsplit_once(':') {
        // The member reads `fabric/_system` and below, and has nothing elsewhere.
        Some((path, level)) => match level {
            "none" => true,
            "ro" => path == "fabric/_system" || path.starts_with("fabric/_system/"),
            _ => false,
        },
        // Random permission strings are built from segments the member holds nothing of.
        None => false,
    }
}

/// The grants a list amounts to: permission strings once each, and the last level
/// named for each path.
fn effective(entries: &[String]) -> BTreeSet<String> {
    let mut permissions = BTreeSet::new();
    let mut access = std::collections::BTreeMap::new();
    for e in entries {
        match e.rsplit_once(':') {
            Some((path, level)) => {
                access.insert(path.to_string(), level.to_string());
            }
            None => {
                permissions.insert(e.clone());
            }
        }
    }
    permissions.extend(access.into_iter().map(|(p, l)| format!("{p}:{l}")));
    permissions
}

#[test]
fn random_permission_lists_never_escalate() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(TestServer::start());
    let member = runtime.block_on(async {
        let admin = server.admin_token().await;
        server
            .member(&admin, "random@example.com", Some(json!(MEMBER_GRANTS)))
            .await
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(entry(), 0..5), |entries| {
        let name = format!(
            "random-{}",
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let expected = effective(&entries);
        let allowed = expected.iter().all(|e| grantable(e));
        runtime.block_on(async {
            let reply = server
                .call(
                    Method::POST,
                    "/v0/api_keys",
                    Some(&member),
                    Some(json!({ "name": name, "permissions": entries })),
                )
                .await;
            if !allowed {
                prop_assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{:?} was granted: {}",
                    entries,
                    reply.text
                );
                prop_assert_eq!(&reply.body["error_code"], "Forbidden");
                return Ok(());
            }
            prop_assert_eq!(
                reply.status,
                StatusCode::CREATED,
                "{:?} was refused: {}",
                entries,
                reply.text
            );
            let granted: Vec<String> = serde_json::from_value(reply.body["permissions"].clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                granted.iter().cloned().collect::<BTreeSet<_>>(),
                expected,
                "the key holds other grants than asked"
            );
            let secret = reply.body["api_key"].as_str().unwrap().to_string();
            for permission in &granted {
                let verdict = server
                    .verify(&member, &secret, Some(json!([permission])))
                    .await;
                prop_assert_eq!(&verdict["code"], "VALID", "{} of {:?}", permission, granted);
            }
            let verdict = server.verify(&member, &secret, Some(json!(granted))).await;
            prop_assert_eq!(&verdict["code"], "VALID", "all of {:?}", granted);
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

/// The same random lists as permissions of new users, made through an administrator's
/// key that holds only a member's grants and `keyward.admin`: a user gets nothing the
/// key does not hold.
#[test]
fn random_permission_lists_never_escalate_through_users() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(TestServer::start());
    let key = runtime.block_on(async {
        let admin = server.admin_token().await;
        let mut grants: Vec<&str> = MEMBER_GRANTS.to_vec();
        grants.push("keyward.admin");
        server
            .create_key(&admin, json!({"name": "user-maker", "permissions": grants}))
            .await
            .1
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(entry(), 0..5), |entries| {
        let email = format!(
            "random-{}@example.com",
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let allowed = entries.iter().all(|e| grantable(e) || e == "keyward.admin");
        runtime.block_on(async {
            let body =
                json!({ "email": email, "password": MEMBER_PASSWORD, "permissions": entries });
            let reply = server
                .call(Method::POST, "/v0/users", Some(&key), Some(body))
                .await;
            let expected = if allowed {
                StatusCode::CREATED
            } else {
                StatusCode::FORBIDDEN
            };
            prop_assert_eq!(reply.status, expected, "{:?}: {}", entries, reply.text);
            if allowed {
                let held: BTreeSet<String> =
                    serde_json::from_value(reply.body["permissions"].clone())
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(held, effective(&entries));
            }
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
