//! Limits through the real server: named rate limits exact under concurrency, credits
//! spent exactly, refilled at a day's boundary (on a clock the test moves), IP
//! allow-lists (v4, v6, through trusted proxies), shared owner limits, every door's 429
//! in its own shape with its headers, and bad input refused naming the field.

use crate::support::{assert_error, key_path, Reply, TestServer};
use keyward_app::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Verifies `key` with extra request fields; answers the verification's JSON.
async fn verify_with(server: &TestServer, auth: &str, key: &str, extra: Value) -> Value {
    let mut body = json!({ "key": key });
    for (name, value) in extra.as_object().expect("an object") {
        body[name] = value.clone();
    }
    let reply = server
        .call(Method::POST, "/v0/keys/verify", Some(auth), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "verify: {}", reply.text);
    reply.body
}

/// Runs `per_client` verifications from each of 16 concurrent clients; answers how
/// many got each code.
async fn storm(
    server: &Arc<TestServer>,
    auth: &str,
    key: &str,
    per_client: usize,
) -> std::collections::BTreeMap<String, usize> {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (server, auth, key) = (server.clone(), auth.to_string(), key.to_string());
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..per_client {
                    let answer = verify_with(&server, &auth, &key, json!({})).await;
                    codes.push(answer["code"].as_str().unwrap().to_string());
                }
                codes
            })
        })
        .collect();
    let mut counted = std::collections::BTreeMap::new();
    for task in tasks {
        for code in task.await.unwrap() {
            *counted.entry(code).or_insert(0) += 1;
        }
    }
    counted
}

fn count(counted: &std::collections::BTreeMap<String, usize>, code: &str) -> usize {
    counted.get(code).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_admits_exactly_its_limit_under_16_clients() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "limited", "ratelimits": [
                {"name": "requests", "limit": 100, "duration_seconds": 3600, "auto_apply": true}
            ]}),
        )
        .await;
    let counted = storm(&server, &admin, &key, 20).await;
    assert_eq!(count(&counted, "VALID"), 100, "{counted:?}");
    assert_eq!(count(&counted, "RATE_LIMITED"), 220, "{counted:?}");
    let answer = verify_with(&server, &admin, &key, json!({})).await;
    assert_eq!(answer["valid"], false);
    let limit = &answer["ratelimits"][0];
    assert_eq!(limit["name"], "requests");
    assert_eq!(limit["limit"], 100);
    assert_eq!(limit["remaining"], 0);
    assert_eq!(limit["exceeded"], true);
    assert!(limit["reset_at"].as_i64().unwrap() > 0);
    assert_eq!(answer["credits"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credits_are_spent_exactly_and_reach_the_store() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin_token().await;
    let (id, key) = server
        .create_key(
            &admin,
            json!({"name": "metered", "credits": {"remaining": 500}}),
        )
        .await;
    let counted = storm(&server, &admin, &key, 40).await;
    assert_eq!(count(&counted, "VALID"), 500, "{counted:?}");
    assert_eq!(count(&counted, "USAGE_EXCEEDED"), 140, "{counted:?}");
    // A verification can cost more than one, or nothing.
    let answer = verify_with(&server, &admin, &key, json!({"credits": {"cost": 0}})).await;
    assert_eq!(answer["code"], "VALID");
    assert_eq!(answer["credits"]["remaining"], 0);
    // The batched flush writes what was spent.
    let stored = server
        .poll_key(&admin, &id, Duration::from_secs(30), |k| {
            k["credits"]["remaining"] == 0
        })
        .await;
    assert_eq!(stored["credits"]["remaining"], 0, "{stored}");

    // Credits changed through the API apply at once, audited.
    let change = |op: &str, value: i64| {
        let (server, admin, id) = (server.clone(), admin.clone(), id.clone());
        let op = op.to_string();
        async move {
            server
                .call(
                    Method::POST,
                    &format!("{}/credits", key_path(&id)),
                    Some(&admin),
                    Some(json!({"op": op, "value": value})),
                )
                .await
        }
    };
    let set = change("set", 10).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["remaining"], 10);
    assert_eq!(change("increment", 5).await.body["remaining"], 15);
    assert_eq!(change("decrement", 20).await.body["remaining"], 0);
    assert_eq!(change("set", 3).await.body["remaining"], 3);
    let answer = verify_with(&server, &admin, &key, json!({"credits": {"cost": 2}})).await;
    assert_eq!(answer["code"], "VALID");
    assert_eq!(answer["credits"]["remaining"], 1);
    let answer = verify_with(&server, &admin, &key, json!({"credits": {"cost": 2}})).await;
    assert_eq!(answer["code"], "USAGE_EXCEEDED");
    assert_eq!(
        answer["credits"]["remaining"], 1,
        "a refusal charges nothing"
    );
    for (op, value, field) in [("add", 1, "op"), ("set", -1, "value")] {
        let reply = change(op, value).await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        assert_eq!(reply.body["details"]["field"], field, "{}", reply.text);
    }
    let audit = server
        .get("/v0/audit?action=key.credits_changed", &admin)
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text);
    assert_eq!(
        audit.body["events"].as_array().unwrap().len(),
        4,
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn credits_refill_at_the_days_boundary() {
    let clock = Arc::new(ManualClock::at(
        time::macros::datetime!(2026-12-03 23:59:50 UTC),
    ));
    let node_clock = clock.clone();
    let server = TestServer::start_configured(tempfile::tempdir().unwrap(), move |config| {
        config.clock = node_clock;
    })
    .await;
    let admin = server.admin_token().await;
    let (id, key) = server
        .create_key(
            &admin,
            json!({"name": "daily", "credits": {"remaining": 2, "refill": {"amount": 5, "interval": "daily"}}}),
        )
        .await;
    let codes: Vec<Value> = [
        verify_with(&server, &admin, &key, json!({})).await,
        verify_with(&server, &admin, &key, json!({})).await,
        verify_with(&server, &admin, &key, json!({})).await,
    ]
    .into_iter()
    .map(|a| a["code"].clone())
    .collect();
    assert_eq!(codes, ["VALID", "VALID", "USAGE_EXCEEDED"]);
    clock.advance(Duration::from_secs(11));
    let answer = verify_with(&server, &admin, &key, json!({})).await;
    assert_eq!(answer["code"], "VALID", "{answer}");
    assert_eq!(answer["credits"]["remaining"], 4);
    let view = server.get(&key_path(&id), &admin).await;
    assert_eq!(view.body["credits"]["refill"]["interval"], "daily");
    assert_eq!(view.body["credits"]["refill"]["amount"], 5);
}

#[tokio::test]
async fn named_limits_are_charged_only_when_named_and_unknown_names_are_refused() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "tokens", "ratelimits": [
                {"name": "tokens", "limit": 100, "duration_seconds": 60, "auto_apply": false}
            ]}),
        )
        .await;
    let plain = verify_with(&server, &admin, &key, json!({})).await;
    assert_eq!(plain["code"], "VALID");
    assert_eq!(plain["ratelimits"], json!([]));
    let named = json!({"ratelimits": [{"name": "tokens", "cost": 60}]});
    let first = verify_with(&server, &admin, &key, named.clone()).await;
    assert_eq!(first["code"], "VALID");
    assert_eq!(first["ratelimits"][0]["remaining"], 40);
    let second = verify_with(&server, &admin, &key, named).await;
    assert_eq!(second["code"], "RATE_LIMITED");
    assert_eq!(second["ratelimits"][0]["remaining"], 40, "nothing charged");
    let unknown = server
        .call(
            Method::POST,
            "/v0/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "ratelimits": [{"name": "nope"}]})),
        )
        .await;
    assert_error(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationError",
    );
    assert_eq!(unknown.body["details"]["field"], "ratelimits");
}

#[tokio::test]
async fn an_owners_shared_limit_counts_all_of_their_keys() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (member_id, member) = server
        .member_with_id(&admin, "team@example.com", None)
        .await;
    let limits = json!({"ratelimits": [{"name": "team", "limit": 3, "duration_seconds": 3600}]});
    let refused = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{member_id}"),
            Some(&member),
            Some(limits.clone()),
        )
        .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "Forbidden");
    let set = server
        .call(
            Method::PATCH,
            &format!("/v0/users/{member_id}"),
            Some(&admin),
            Some(limits),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["ratelimits"][0]["name"], "team");
    let (_, one) = server.create_key(&member, json!({"name": "one"})).await;
    let (_, two) = server.create_key(&member, json!({"name": "two"})).await;
    let mut codes = Vec::new();
    for key in [&one, &two, &one, &two, &one] {
        codes.push(verify_with(&server, &admin, key, json!({})).await["code"].clone());
    }
    assert_eq!(
        codes,
        ["VALID", "VALID", "VALID", "RATE_LIMITED", "RATE_LIMITED"]
    );
}

/// Checks the rate-limit headers of a 429.
fn assert_limited_headers(reply: &reqwest::Response) {
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name: &str| {
        reply
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"))
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(header("retry-after") >= 1);
    assert_eq!(header("ratelimit-limit"), 2);
    assert_eq!(header("ratelimit-remaining"), 0);
    assert!(header("ratelimit-reset") <= 3600);
}

/// Sends the same request three times; the third must be refused by the limit of 2.
async fn third_is_limited(request: impl Fn() -> reqwest::RequestBuilder) -> Value {
    for _ in 0..2 {
        let reply = request().send().await.unwrap();
        assert!(
            reply.status().is_success(),
            "within the limit: {}",
            reply.text().await.unwrap()
        );
    }
    let reply = request().send().await.unwrap();
    assert_limited_headers(&reply);
    reply.json().await.unwrap()
}

#[tokio::test]
async fn every_door_answers_429_in_its_own_shape_with_rate_limit_headers() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let two = json!([{"name": "requests", "limit": 2, "duration_seconds": 3600}]);
    let limited_key = |name: &str| {
        let (server, admin, two) = (&server, &admin, two.clone());
        let name = name.to_string();
        async move {
            server
                .create_key(admin, json!({"name": name, "ratelimits": two}))
                .await
                .1
        }
    };
    let http = &server.http;
    let url = |path: &str| format!("{}{path}", server.url);

    let native = limited_key("native").await;
    let body = third_is_limited(|| http.get(url("/v0/me")).bearer_auth(&native)).await;
    assert_eq!(body["error_code"], "RateLimited", "{body}");
    assert!(body["message"].as_str().unwrap().contains("requests"));

    let macrometa = limited_key("macrometa").await;
    let body = third_is_limited(|| {
        http.get(url("/_api/key"))
            .header("Authorization", format!("apikey {macrometa}"))
    })
    .await;
    assert_eq!(body["error"], true, "{body}");
    assert_eq!(body["code"], 429);
    assert_eq!(body["errorNum"], 429);

    let octopus = limited_key("octopus").await;
    let body = third_is_limited(|| {
        http.get(url("/api/users/me"))
            .header("X-Octopus-ApiKey", &octopus)
    })
    .await;
    assert!(body["ErrorMessage"].is_string(), "{body}");

    // A W3IPFS pair, limited through the native API.
    let made = server
        .call(
            Method::POST,
            "/api/apiKeys/",
            Some(&admin),
            Some(json!({"name": "pair", "scopes": {
                "admin": true,
                "data": {"pin_list": true, "nft_list": true},
                "pinning": {"unpin": true, "pin_by_hash": true, "pin_file_to_ipfs": true},
                "pin_nft": {"unpin_nft": true, "pin_nft_to_ipfs": true},
            }})),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text);
    let (public, secret) = (
        made.body["data"]["api_key"].as_str().unwrap().to_string(),
        made.body["data"]["secret_key"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let listed = server.get("/v0/api_keys?limit=100", &admin).await;
    let pair_id = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "pair")
        .expect("the pair is listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patched = server
        .call(
            Method::PATCH,
            &key_path(&pair_id),
            Some(&admin),
            Some(json!({"ratelimits": two})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let body = third_is_limited(|| {
        http.get(url("/api/testAuthentication"))
            .header("pinning_api_key", &public)
            .header("pinning_secret_key", &secret)
    })
    .await;
    assert_eq!(body["status"], "error", "{body}");
}

#[tokio::test]
async fn spent_credits_refuse_a_credential_with_429() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "one use", "credits": {"remaining": 1}}),
        )
        .await;
    assert_eq!(server.get("/v0/me", &key).await.status, StatusCode::OK);
    let spent = server.get("/v0/me", &key).await;
    assert_error(&spent, StatusCode::TOO_MANY_REQUESTS, "UsageExceeded");

    // Credits that refill say when: until the next UTC midnight, for a daily refill.
    let (_, daily) = server
        .create_key(
            &admin,
            json!({"name": "daily", "credits": {"remaining": 1, "refill": {"amount": 1, "interval": "daily"}}}),
        )
        .await;
    assert_eq!(server.get("/v0/me", &daily).await.status, StatusCode::OK);
    let response = server
        .http
        .get(format!("{}/v0/me", server.url))
        .bearer_auth(&daily)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let to_midnight = 86_400 - u64::from(now.hour()) * 3_600 - u64::from(now.minute()) * 60;
    assert!(
        retry <= to_midnight && retry + 120 >= to_midnight - 60,
        "{retry} vs {to_midnight}"
    );
}

async fn me_from(server: &TestServer, key: &str, forwarded_for: Option<&str>) -> Reply {
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let auth = format!("Bearer {key}");
    headers.push(("authorization", auth.as_bytes()));
    if let Some(xff) = forwarded_for {
        headers.push(("x-forwarded-for", xff.as_bytes()));
    }
    server.send(Method::GET, "/v0/me", &headers, None).await
}

#[tokio::test]
async fn allow_lists_check_v4_and_v6_and_believe_only_trusted_proxies() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "office", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"]}),
        )
        .await;
    // Verifying for a client: the named address, else the caller's own (fail closed).
    let own = verify_with(&server, &admin, &key, json!({})).await;
    assert_eq!(own["code"], "FORBIDDEN");
    for (ip, code) in [
        ("203.0.113.9", "VALID"),
        ("2001:db8::5", "VALID"),
        ("198.51.100.1", "FORBIDDEN"),
        ("2001:db9::1", "FORBIDDEN"),
    ] {
        let answer = verify_with(&server, &admin, &key, json!({"ip": ip})).await;
        assert_eq!(answer["code"], code, "{ip}");
    }
    let bad = server
        .call(
            Method::POST,
            "/v0/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "ip": "300.1.1.1"})),
        )
        .await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
    // As a credential from loopback: refused, and X-Forwarded-For from an untrusted
    // peer changes nothing.
    let direct = me_from(&server, &key, None).await;
    assert_error(&direct, StatusCode::FORBIDDEN, "Forbidden");
    let spoofed = me_from(&server, &key, Some("203.0.113.7")).await;
    assert_error(&spoofed, StatusCode::FORBIDDEN, "Forbidden");

    // Behind a trusted proxy (loopback here), the first untrusted hop is the client.
    let proxied = TestServer::start_configured(tempfile::tempdir().unwrap(), |config| {
        config.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    })
    .await;
    let admin = proxied.admin_token().await;
    let (_, key) = proxied
        .create_key(
            &admin,
            json!({"name": "office", "ip_allowlist": ["203.0.113.0/24", "2001:db8::/32"]}),
        )
        .await;
    for (xff, status) in [
        ("203.0.113.7", StatusCode::OK),
        ("198.51.100.1, 203.0.113.7, 127.0.0.5", StatusCode::OK),
        ("2001:db8::9", StatusCode::OK),
        ("203.0.113.7, 198.51.100.1", StatusCode::FORBIDDEN),
        ("not an address", StatusCode::FORBIDDEN),
    ] {
        let reply = me_from(&proxied, &key, Some(xff)).await;
        assert_eq!(
            reply.status, status,
            "X-Forwarded-For: {xff}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn bad_limits_are_refused_naming_the_field() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let limit = |name: &str, limit: i64, seconds: i64| json!({"name": name, "limit": limit, "duration_seconds": seconds});
    let fifty_one: Vec<Value> = (0..51).map(|i| limit(&format!("l{i}"), 1, 1)).collect();
    let cases = [
        (json!({"ratelimits": [limit("a", 1, 0)]}), "ratelimits"),
        (json!({"ratelimits": [limit("a", 0, 1)]}), "ratelimits"),
        (
            json!({"ratelimits": [limit("a", 1, 2_592_001)]}),
            "ratelimits",
        ),
        (
            json!({"ratelimits": [limit("a", 1, 1), limit("a", 2, 1)]}),
            "ratelimits",
        ),
        (json!({"ratelimits": [limit("a", -1, 1)]}), "ratelimits"),
        (json!({"ratelimits": fifty_one}), "ratelimits"),
        (json!({"credits": {"remaining": -5}}), "credits.remaining"),
        (
            json!({"credits": {"remaining": 5, "refill": {"amount": 5, "interval": "weekly"}}}),
            "credits.refill.interval",
        ),
        (
            json!({"credits": {"remaining": 5, "refill": {"amount": 5, "interval": "monthly", "day": 32}}}),
            "credits.refill.day",
        ),
        (json!({"ip_allowlist": ["10.0.0.0/33"]}), "ip_allowlist"),
        (json!({"ip_allowlist": ["banana"]}), "ip_allowlist"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"name": "bad"});
        for (name, value) in extra.as_object().unwrap() {
            body[name] = value.clone();
        }
        let reply = server
            .call(
                Method::POST,
                "/v0/api_keys",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "ValidationError");
        assert_eq!(
            reply.body["details"]["field"], field,
            "{body}: {}",
            reply.text
        );
    }
    let (id, key) = server
        .create_key(&admin, json!({"name": "good", "credits": {"remaining": 5}}))
        .await;
    let negative = server
        .call(
            Method::POST,
            "/v0/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "credits": {"cost": -1}})),
        )
        .await;
    assert_error(
        &negative,
        StatusCode::UNPROCESSABLE_ENTITY,
        "ValidationError",
    );
    assert_eq!(negative.body["details"]["field"], "credits.cost");
    // PATCH replaces the list, and [] clears it; credits: null makes the key unlimited.
    let patched = server
        .call(
            Method::PATCH,
            &key_path(&id),
            Some(&admin),
            Some(json!({"ratelimits": [limit("a", 5, 60)], "credits": null})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.body["ratelimits"][0]["duration_seconds"], 60);
    assert_eq!(patched.body["ratelimits"][0]["auto_apply"], true);
    assert_eq!(patched.body["credits"], Value::Null);
    let cleared = server
        .call(
            Method::PATCH,
            &key_path(&id),
            Some(&admin),
            Some(json!({"ratelimits": []})),
        )
        .await;
    assert_eq!(cleared.body["ratelimits"], json!([]), "{}", cleared.text);
}
