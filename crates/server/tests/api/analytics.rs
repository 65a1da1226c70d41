//! Usage analytics and Prometheus metrics: verifications of mixed outcomes through
//! several doors add up, per bucket, to what was sent; key listings carry recent use;
//! two PostgreSQL nodes' counts add up; `/metrics` parses with the Prometheus project's
//! own parser and counts what was sent; bad queries get a 4xx naming the parameter.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Sent verifications: per outcome, and per minute for those whose request began and
/// ended in the same minute (the others may land in either).
#[derive(Default, Debug)]
struct Sent {
    by_code: BTreeMap<String, u64>,
    certain: BTreeMap<(i64, String), u64>,
}

impl Sent {
    fn record(&mut self, code: &str, began: i64, ended: i64) {
        *self.by_code.entry(code.to_lowercase()).or_default() += 1;
        if began / 60 == ended / 60 {
            *self
                .certain
                .entry((began / 60 * 60, code.to_lowercase()))
                .or_default() += 1;
        }
    }

    fn total(&self) -> u64 {
        self.by_code.values().sum()
    }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Sends one request, checks that its outcome is `code`, and records it.
async fn sent(sent: &mut Sent, code: &str, request: impl std::future::Future<Output = Reply>) {
    let began = unix_now();
    let reply = request.await;
    let ended = unix_now();
    assert_eq!(outcome(&reply), code, "{} {}", reply.status, reply.text);
    sent.record(code, began, ended);
}

/// A verification's code from `/v0/keys/verify`, or what a door's status says.
fn outcome(reply: &Reply) -> &str {
    if let Some(code) = reply.body["code"].as_str() {
        return code;
    }
    match reply.status {
        StatusCode::OK => "VALID",
        StatusCode::UNAUTHORIZED => "REVOKED",
        StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
        _ => "UNEXPECTED",
    }
}

async fn verify_call(server: &TestServer, auth: &str, body: Value) -> Reply {
    server
        .call(Method::POST, "/v0/keys/verify", Some(auth), Some(body))
        .await
}

/// A request through `path` with `key` as its credential, in `header`.
async fn door_call(server: &TestServer, path: &str, header: &str, value: String) -> Reply {
    let response = server
        .http
        .get(format!("{}{path}", server.url))
        .header(header, value)
        .send()
        .await
        .expect("request sent");
    TestServer::reply(response).await
}

async fn series(server: &TestServer, auth: &str, query: &str) -> Reply {
    server
        .call(
            Method::GET,
            &format!("/v0/analytics/verifications?{query}"),
            Some(auth),
            None,
        )
        .await
}

/// Sums of a series answer: per code over every bucket and series.
fn sums(answer: &Value) -> BTreeMap<String, u64> {
    sums_of(answer["series"].as_array().expect("series"))
}

fn sums_of(series: &[Value]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in series {
        for bucket in s["buckets"].as_array().expect("buckets") {
            for (name, value) in bucket.as_object().unwrap() {
                if name != "time" {
                    *out.entry(name.clone()).or_default() += value.as_u64().unwrap();
                }
            }
        }
    }
    out.retain(|_, n| *n > 0);
    out
}

/// Polls a series until its total reaches `total` (the flush runs every 200 ms in
/// tests), and answers it.
async fn settled(server: &TestServer, auth: &str, query: &str, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = series(server, auth, query).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
        let counted = sums(&reply.body).get("total").copied().unwrap_or(0);
        if counted >= total || Instant::now() > deadline {
            assert_eq!(counted, total, "{query}: {}", reply.text);
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn expected(sent: &Sent) -> BTreeMap<String, u64> {
    let mut want = sent.by_code.clone();
    want.insert("total".into(), sent.total());
    want
}

#[tokio::test]
async fn verifications_through_three_doors_add_up_per_bucket() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (member_id, member) = server
        .member_with_id(&admin, "counted@example.com", None)
        .await;
    let (good_id, good) = server
        .create_key(
            &admin,
            json!({"name": "good", "permissions": ["invoices.read"]}),
        )
        .await;
    let (gone_id, gone) = server.create_key(&admin, json!({"name": "gone"})).await;
    let revoked = server
        .call(Method::DELETE, &key_path(&gone_id), Some(&admin), None)
        .await;
    assert!(revoked.status.is_success(), "{}", revoked.text);
    let (limited_id, limited) = server
        .create_key(
            &admin,
            json!({"name": "limited", "ratelimits": [
                {"name": "requests", "limit": 2, "duration_seconds": 3600}
            ]}),
        )
        .await;
    let (mine_id, mine) = server.create_key(&member, json!({"name": "mine"})).await;
    let unknown = keyward_core::KeyShape::Native.generate();
    let unknown = unknown.expose();

    let mut by_key: BTreeMap<String, Sent> = BTreeMap::new();
    let mut unmatched = Sent::default();
    for round in 0..3 {
        // The native verify endpoint.
        let s = by_key.entry(good_id.clone()).or_default();
        sent(
            s,
            "VALID",
            verify_call(&server, &admin, json!({"key": good})),
        )
        .await;
        let query = json!({"key": good, "permissions": "invoices.write"});
        sent(
            s,
            "INSUFFICIENT_PERMISSIONS",
            verify_call(&server, &admin, query),
        )
        .await;
        let s = by_key.entry(gone_id.clone()).or_default();
        sent(
            s,
            "REVOKED",
            verify_call(&server, &admin, json!({"key": gone})),
        )
        .await;
        let s = &mut unmatched;
        sent(
            s,
            "NOT_FOUND",
            verify_call(&server, &admin, json!({"key": unknown})),
        )
        .await;
        // Keys as credentials: the native API, the Octopus door, the Macrometa door.
        let s = by_key.entry(good_id.clone()).or_default();
        let me = door_call(&server, "/v0/me", "Authorization", format!("Bearer {good}"));
        sent(s, "VALID", me).await;
        let octopus = door_call(&server, "/api/users/me", "X-Octopus-ApiKey", good.clone());
        sent(s, "VALID", octopus).await;
        let s = by_key.entry(gone_id.clone()).or_default();
        let octopus = door_call(&server, "/api/users/me", "X-Octopus-ApiKey", gone.clone());
        sent(s, "REVOKED", octopus).await;
        let s = by_key.entry(mine_id.clone()).or_default();
        let macrometa = door_call(
            &server,
            "/_api/user",
            "Authorization",
            format!("apikey {mine}"),
        );
        sent(s, "VALID", macrometa).await;
        // The limit admits two (the first round's), then refuses: counted by the
        // final outcome, through verify and as a credential alike.
        let s = by_key.entry(limited_id.clone()).or_default();
        let code = if round == 0 { "VALID" } else { "RATE_LIMITED" };
        sent(
            s,
            code,
            verify_call(&server, &admin, json!({"key": limited})),
        )
        .await;
        let me = door_call(&server, "/v0/me", "X-API-Key", limited.clone());
        sent(s, code, me).await;
    }
    let total: u64 = by_key.values().map(Sent::total).sum::<u64>() + unmatched.total();

    // Per key, per minute bucket: every count where it was sent.
    // Secrets that matched no key are the tenant's, in a series of their own.
    let answer = settled(
        &server,
        &admin,
        "granularity=minute&since=15m&group_by=key",
        total,
    )
    .await;
    let per_key = answer["series"].as_array().unwrap();
    assert_eq!(per_key.len(), by_key.len() + 1, "one series per key used");
    for s in per_key {
        let key = s["key_id"].as_str().unwrap_or("none");
        let sent = by_key.get(key).unwrap_or(&unmatched);
        let buckets = s["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 16, "15 minutes back and this one, gap-free");
        let mut counted: BTreeMap<String, u64> = BTreeMap::new();
        let mut previous = None;
        for bucket in buckets {
            let time = OffsetDateTime::parse(
                bucket["time"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
            .unix_timestamp();
            if let Some(previous) = previous {
                assert_eq!(time - previous, 60, "consecutive minutes");
            }
            previous = Some(time);
            for (code, n) in bucket.as_object().unwrap() {
                if code == "time" || code == "total" {
                    continue;
                }
                let n = n.as_u64().unwrap();
                let certain = sent
                    .certain
                    .get(&(time, code.clone()))
                    .copied()
                    .unwrap_or(0);
                assert!(n >= certain, "{key} {code} at {time}: {n} < {certain}");
                *counted.entry(code.clone()).or_default() += n;
            }
        }
        counted.retain(|_, n| *n > 0);
        assert_eq!(counted, sent.by_code, "key {key}");
    }

    // The whole tenant, by code, at each granularity: unknown secrets included.
    let mut everything = Sent::default();
    for s in by_key.values().chain([&unmatched]) {
        for (code, n) in &s.by_code {
            *everything.by_code.entry(code.clone()).or_default() += n;
        }
    }
    for granularity in ["minute", "hour", "day"] {
        let query = format!("granularity={granularity}");
        let answer = settled(&server, &admin, &query, total).await;
        assert_eq!(sums(&answer), expected(&everything), "{granularity}");
        assert_eq!(answer["series"].as_array().unwrap().len(), 1);
    }

    // By owner: the member's one key against the administrator's.
    let answer = settled(&server, &admin, "group_by=owner", total).await;
    let owners: BTreeMap<String, u64> = answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let owner = s["owner_id"].as_str().unwrap_or("none").to_string();
            (owner, sums_of(std::slice::from_ref(s))["total"])
        })
        .collect();
    assert_eq!(owners[&member_id], by_key[&mine_id].total());
    assert_eq!(owners["none"], unmatched.total());
    assert_eq!(owners.len(), 3);

    // A member sees their own keys only, whatever they ask.
    let mine_only = settled(
        &server,
        &member,
        "granularity=minute",
        by_key[&mine_id].total(),
    )
    .await;
    assert_eq!(sums(&mine_only), expected(&by_key[&mine_id]));
    let others = series(&server, &member, &format!("key_id={good_id}")).await;
    assert_eq!(others.status, StatusCode::NOT_FOUND, "{}", others.text);
    let admin_me = server.call(Method::GET, "/v0/me", Some(&admin), None).await;
    let admin_id = admin_me.body["user"]["id"].as_str().unwrap().to_string();
    let others = series(&server, &member, &format!("owner_id={admin_id}")).await;
    assert_eq!(others.status, StatusCode::FORBIDDEN, "{}", others.text);

    // Listings carry each key's recent use, from the same counts.
    let listed = server
        .call(
            Method::GET,
            "/v0/api_keys?include_revoked=true",
            Some(&admin),
            None,
        )
        .await;
    for item in listed.body["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        let Some(sent) = by_key.get(id) else { continue };
        let usage = &item["usage"];
        assert_eq!(usage["verifications_24h"], sent.total(), "{id}: {usage}");
        assert_eq!(usage["verifications_30d"], sent.total(), "{id}: {usage}");
        let valid = sent.by_code.get("valid").copied().unwrap_or(0);
        assert_eq!(usage["valid_24h"], valid, "{id}: {usage}");
        if valid > 0 {
            assert!(item["last_used_at"].is_string(), "{item}");
        }
    }
}

#[tokio::test]
async fn a_graceful_stop_loses_no_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_configured(dir, |config| {
        // Longer than the test: only the stop's flush can write the counts.
        config.usage_flush_interval = Duration::from_secs(3600);
    })
    .await;
    let admin = server.admin_token().await;
    let (_, key) = server.create_key(&admin, json!({"name": "k"})).await;
    for _ in 0..25 {
        assert_eq!(server.verify_code(&admin, &key, None).await, "VALID");
    }
    server.stop().await;
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let again = TestServer::start_in(data_dir).await;
    let admin = again.admin_token().await;
    let answer = series(&again, &admin, "granularity=minute&since=10m").await;
    assert_eq!(
        sums(&answer.body).get("valid"),
        Some(&25),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn bad_analytics_queries_name_their_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(dir, |config| {
        // Minutes kept long enough that a range can hold more than 10,000 of them.
        config.analytics_retention.minutes = 30 * 86_400;
    })
    .await;
    let admin = server.admin_token().await;
    let cases = [
        ("since=1h&until=2h", "since"),
        ("group_by=tenant", "group_by"),
        ("granularity=second", "granularity"),
        ("granularity=hour&since=100d", "since"),
        ("granularity=day&since=800d", "since"),
        ("granularity=minute&since=8d", "granularity"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("key_id=42", "key_id"),
        ("owner_id=", "owner_id"),
    ];
    for (query, field) in cases {
        let reply = series(&server, &admin, query).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            reply.text
        );
        assert_eq!(
            reply.body["details"]["field"], field,
            "{query}: {}",
            reply.text
        );
        assert!(!reply.body["message"].as_str().unwrap().is_empty());
    }
    let unknown = series(&server, &admin, "bucket=minute").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    assert!(unknown.text.contains("bucket"), "{}", unknown.text);
    let nobody = server
        .call(Method::GET, "/v0/analytics/verifications", None, None)
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    // Within every limit: a full series of zeros.
    let ok = series(&server, &admin, "granularity=minute&since=6d").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.body["series"][0]["buckets"].as_array().unwrap().len(),
        6 * 1440 + 1
    );
}

#[tokio::test]
async fn two_postgres_nodes_counts_add_up() {
    let cluster = crate::nodes::cluster().await;
    let (id, key) = cluster.key("shared", json!([])).await;
    for i in 0..40 {
        let node = if i % 2 == 0 { &cluster.a } else { &cluster.b };
        assert_eq!(node.verify_code(&cluster.admin, &key, None).await, "VALID");
        let body = json!({"key": key, "permissions": "x.read"});
        let reply = verify_call(node, &cluster.admin, body).await;
        assert_eq!(reply.body["code"], "INSUFFICIENT_PERMISSIONS");
    }
    for node in [&cluster.a, &cluster.b] {
        let query = format!("key_id={id}&group_by=key&granularity=minute&since=10m");
        let answer = settled(node, &cluster.admin, &query, 80).await;
        let counted = sums(&answer);
        assert_eq!(counted["valid"], 40);
        assert_eq!(counted["insufficient_permissions"], 40);
    }
}

/// `/metrics` as the Prometheus project's Python parser reads it: one line per sample,
/// `name{labels} value`, labels sorted.
async fn parsed_metrics(url: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .unwrap();
    let python = std::env::var("KEYWARD_TEST_PYTHON")
        .expect("KEYWARD_TEST_PYTHON is not set: run ./scripts/test, which installs it");
    let code = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps([s.name, s.labels, s.value]))
"#;
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(python)
            .args(["-c", code])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "the parser refused /metrics: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn sample(
    samples: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_count_what_was_sent() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, key) = server
        .create_key(&admin, json!({"name": "m", "permissions": ["a.read"]}))
        .await;
    for _ in 0..7 {
        assert_eq!(server.verify_code(&admin, &key, None).await, "VALID");
    }
    for _ in 0..3 {
        let body = json!({"key": key, "permissions": "a.write"});
        verify_call(&server, &admin, body).await;
    }
    for _ in 0..2 {
        let r = door_call(
            &server,
            "/api/users/me",
            "X-Octopus-ApiKey",
            "API-NOPE".into(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let read = server
        .call(Method::GET, &key_path(&id), Some(&admin), None)
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let samples = parsed_metrics(&server.url).await;
    let outcome = |code| {
        sample(
            &samples,
            "keyward_verifications_total",
            &[("outcome", code)],
        )
    };
    assert_eq!(outcome("valid"), 7.0);
    assert_eq!(outcome("insufficient_permissions"), 3.0);
    assert_eq!(outcome("malformed") + outcome("not_found"), 2.0);
    let verify_route = [
        ("route", "/v0/keys/verify"),
        ("method", "POST"),
        ("door", "native"),
    ];
    let ok: Vec<_> = verify_route
        .iter()
        .copied()
        .chain([("status", "200")])
        .collect();
    assert_eq!(sample(&samples, "keyward_http_requests_total", &ok), 10.0);
    let octopus = [
        ("route", "/api/users/me"),
        ("door", "octopus"),
        ("status", "401"),
    ];
    assert_eq!(
        sample(&samples, "keyward_http_requests_total", &octopus),
        2.0
    );
    let template = [("route", "/v0/api_keys/{id}"), ("method", "GET")];
    assert_eq!(
        sample(&samples, "keyward_http_requests_total", &template),
        1.0
    );
    assert_eq!(
        sample(
            &samples,
            "keyward_http_request_duration_seconds_count",
            &verify_route
        ),
        10.0
    );
    for (name, labels, _) in &samples {
        assert!(
            !labels.values().any(|v| v.contains(&id)),
            "a raw id in {name}{labels:?}"
        );
    }
    assert!(sample(&samples, "keyward_verify_cache_misses_total", &[]) >= 1.0);
    assert!(sample(&samples, "keyward_verify_cache_hits_total", &[]) >= 9.0);
    assert!(sample(&samples, "keyward_verify_cache_entries", &[]) >= 1.0);
    assert!(sample(&samples, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sample(&samples, "process_open_fds", &[]) > 0.0);
    assert!(
        sample(
            &samples,
            "keyward_store_query_duration_seconds_count",
            &[("operation", "lookup_secret")]
        ) >= 1.0
    );
    // The flush runs every 200 ms in tests: it has run, and recently.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = parsed_metrics(&server.url).await;
        let flushes = sample(&samples, "keyward_usage_flush_duration_seconds_count", &[]);
        if flushes >= 1.0 {
            assert!(sample(&samples, "keyward_usage_flush_lag_seconds", &[]) < 5.0);
            break;
        }
        assert!(Instant::now() < deadline, "no flush recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_on_an_address_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(dir, |config| {
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let public = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let addr = server
        .running
        .as_ref()
        .unwrap()
        .metrics_addr
        .expect("metrics address");
    let samples = parsed_metrics(&format!("http://{addr}")).await;
    assert!(samples.iter().any(|(n, _, _)| n == "keyward_build_info"));
}
