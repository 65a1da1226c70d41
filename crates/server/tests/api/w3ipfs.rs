//! The W3IPFS door against the real server: the seed's curl and axios samples, the key +
//! secret pair, scopes guarding routes, admin-only creation, and W3IPFS's error shape.

use crate::support::{Reply, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const CURL_SAMPLE: &str = include_str!("w3ipfs/generate-api-key.sh");
const AXIOS_SAMPLE: &str = include_str!("w3ipfs/generate-api-key.js");
/// The sample JWT in the seed's axios script (a W3IPFS token; ours replaces it).
const SEED_JWT_START: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.";

/// The seed's body, with every scope set.
fn full_scopes(admin: bool, value: bool) -> Value {
    json!({
        "admin": admin,
        "data": {"pin_list": value, "nft_list": value},
        "pinning": {"unpin": value, "pin_by_hash": value, "pin_file_to_ipfs": value},
        "pin_nft": {"unpin_nft": value, "pin_nft_to_ipfs": value},
    })
}

/// A non-admin tree that may list and pin by hash, and nothing else.
fn lister_scopes() -> Value {
    let mut scopes = full_scopes(false, false);
    scopes["data"]["pin_list"] = json!(true);
    scopes["pinning"]["pin_by_hash"] = json!(true);
    scopes
}

/// Raw request headers: name and value.
type Headers<'a> = Vec<(&'static str, &'a [u8])>;

struct Pair {
    api_key: String,
    secret: String,
}

impl Pair {
    fn from_created(body: &Value) -> Pair {
        assert_eq!(body["status"], "success", "{body}");
        let api_key = body["data"]["api_key"].as_str().expect("api_key");
        let secret = body["data"]["secret_key"].as_str().expect("secret_key");
        assert!(
            api_key.len() == 20 && api_key.bytes().all(|b| b.is_ascii_hexdigit()),
            "api_key is 20 hex characters: {api_key}"
        );
        assert!(
            secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
            "secret_key is 64 hex characters"
        );
        Pair {
            api_key: api_key.into(),
            secret: secret.into(),
        }
    }

    fn headers(&self) -> Headers<'_> {
        vec![
            ("pinning_api_key", self.api_key.as_bytes()),
            ("pinning_secret_key", self.secret.as_bytes()),
        ]
    }
}

/// A request through the pair's headers, with an optional JSON body.
async fn with_pair(
    server: &TestServer,
    pair: &Pair,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut headers = pair.headers();
    headers.push(("content-type", b"application/json"));
    let body = body.map(|b| b.to_string().into_bytes());
    server.send(method, path, &headers, body).await
}

/// Creates a key through the W3IPFS door with a bearer credential.
async fn create(server: &TestServer, bearer: &str, name: &str, scopes: Value) -> Pair {
    let reply = server
        .call(
            Method::POST,
            "/api/apiKeys/",
            Some(bearer),
            Some(json!({"name": name, "scopes": scopes})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "create: {}", reply.text);
    assert_eq!(reply.body["data"]["name"], name);
    Pair::from_created(&reply.body)
}

/// Checks W3IPFS's error shape, exactly `{"status": "error", "message"}`, and returns
/// the message.
fn assert_w3_error(reply: &Reply, status: StatusCode) -> String {
    assert_eq!(reply.status, status, "expected {status}: {}", reply.text);
    let object = reply.body.as_object().unwrap_or_else(|| {
        panic!("error body is not a JSON object: {:?}", reply.text);
    });
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["message", "status"], "error shape: {}", reply.text);
    assert_eq!(reply.body["status"], "error");
    let message = reply.body["message"].as_str().expect("message").to_string();
    assert!(!message.trim().is_empty(), "empty message");
    message
}

/// What the pair can do, checked through the door: it authenticates, and lists pins.
async fn assert_pair_authenticates(server: &TestServer, pair: &Pair) {
    for path in ["/api/apiKeys/testAuthentication", "/api/testAuthentication"] {
        let reply = with_pair(server, pair, Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert_eq!(
            reply.body,
            json!({"message": "Congratulations! You are communicating with the Web3 IPFS API!"})
        );
    }
}

fn host_port(server: &TestServer) -> &str {
    server.url.strip_prefix("http://").expect("http URL")
}

#[tokio::test]
async fn the_seed_curl_request_makes_an_admin_pair() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let script = crate::support::substitute_once(CURL_SAMPLE, "0.0.0.0:8000", host_port(&server));
    let script = crate::support::substitute_once(&script, "Bearer JWT", &format!("Bearer {jwt}"));

    let output = crate::support::shell_script(script).await;
    let body: Value = serde_json::from_str(&output)
        .unwrap_or_else(|e| panic!("curl printed no JSON ({e}): {output}"));
    assert_eq!(body["data"]["name"], "test-api-key");
    let pair = Pair::from_created(&body);

    assert_pair_authenticates(&server, &pair).await;
    // Admin means every scope: each guarded listing answers.
    for path in ["/api/pinning/pins/", "/api/nft/nfts/"] {
        let reply = with_pair(&server, &pair, Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let verdict = server.verify(&jwt, &pair.secret, None).await;
    assert_eq!(verdict["code"], "VALID");
    assert_eq!(verdict["permissions"], json!(["*"]));
    assert_eq!(verdict["name"], "test-api-key");
}

#[tokio::test]
async fn the_seed_axios_script_makes_an_admin_pair() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let url = format!("http://{}/api/apiKeys/", host_port(&server));
    let script = crate::support::substitute_once(
        AXIOS_SAMPLE,
        "'0.0.0.0:8000/api/apiKeys/'",
        &format!("'{url}'"),
    );
    let start = script.find(SEED_JWT_START).expect("the seed's JWT");
    let end = start + script[start..].find('\'').expect("end of the JWT");
    let script = format!("{}{jwt}{}", &script[..start], &script[end..]);

    let output = crate::support::node_script(script).await;
    let body: Value = serde_json::from_str(output.trim())
        .unwrap_or_else(|e| panic!("axios printed no JSON ({e}): {output}"));
    assert_eq!(body["data"]["name"], "test-api-key");
    let pair = Pair::from_created(&body);

    assert_pair_authenticates(&server, &pair).await;
    // The hyphenated header spellings some toolkits send work too.
    let hyphens: [(&str, &[u8]); 2] = [
        ("pinning-api-key", pair.api_key.as_bytes()),
        ("pinning-secret-key", pair.secret.as_bytes()),
    ];
    let reply = server
        .send(
            Method::GET,
            "/api/apiKeys/testAuthentication",
            &hyphens,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // The admin pair may itself make keys.
    let reply = with_pair(
        &server,
        &pair,
        Method::POST,
        "/api/apiKeys",
        Some(json!({"name": "made by a pair", "scopes": lister_scopes()})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    Pair::from_created(&reply.body);
}

#[tokio::test]
async fn scopes_guard_their_routes_and_match_native_verify() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let pair = create(&server, &jwt, "lister", lister_scopes()).await;

    let reply = with_pair(
        &server,
        &pair,
        Method::GET,
        "/api/pinning/pins/?offset=0&limit=10&pinned=true&sortBy=name&sortOrder=ASC",
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"data": {"totals": {"files": 0, "size": 0}, "pins": []}, "status": "success"})
    );
    let unknown_pin = "/api/pinning/3c3fec2a-ca65-4b8e-bcf3-c8e2ceaa23d2";
    let reply = with_pair(&server, &pair, Method::GET, unknown_pin, None).await;
    assert_w3_error(&reply, StatusCode::NOT_FOUND);
    let pin = json!({"hash_to_pin": "Qmc1135ziMvmFG534i75E8HpJoLqzLzgKBxfjBV9cBsMAs"});
    let reply = with_pair(
        &server,
        &pair,
        Method::POST,
        "/api/pinning/pinByHash",
        Some(pin),
    )
    .await;
    assert_w3_error(&reply, StatusCode::NOT_IMPLEMENTED);

    let refused = [
        (Method::GET, "/api/nft/nfts/", "data.nft_list"),
        (
            Method::GET,
            "/api/nft/f0cda369-2846-414d-8e8d-8c0394113bef",
            "data.nft_list",
        ),
        (Method::DELETE, "/api/pinning/unpin/x1", "pinning.unpin"),
        (Method::POST, "/api/pinning/", "pinning.pin_file_to_ipfs"),
        (Method::POST, "/api/nft/", "pin_nft.pin_nft_to_ipfs"),
        (Method::DELETE, "/api/nft/n1", "pin_nft.unpin_nft"),
    ];
    for (method, path, scope) in refused {
        let reply = with_pair(&server, &pair, method, path, None).await;
        let message = assert_w3_error(&reply, StatusCode::FORBIDDEN);
        assert!(message.contains(scope), "{path}: {message}");
    }

    let verdict = server.verify(&jwt, &pair.secret, None).await;
    assert_eq!(
        verdict["permissions"],
        json!(["data.pin_list", "pinning.pin_by_hash"])
    );
    let code = server
        .verify_code(&jwt, &pair.secret, Some(json!(["pinning.unpin"])))
        .await;
    assert_eq!(code, "INSUFFICIENT_PERMISSIONS");
    let code = server
        .verify_code(&jwt, &pair.secret, Some(json!(["data.pin_list"])))
        .await;
    assert_eq!(code, "VALID");
}

#[tokio::test]
async fn only_admins_create_keys() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let pair = create(&server, &jwt, "lister", lister_scopes()).await;
    let body = json!({"name": "escalate", "scopes": {"admin": true}});

    let reply = with_pair(
        &server,
        &pair,
        Method::POST,
        "/api/apiKeys/",
        Some(body.clone()),
    )
    .await;
    assert_w3_error(&reply, StatusCode::FORBIDDEN);
    // A non-admin key may not even read the key list.
    let reply = with_pair(&server, &pair, Method::GET, "/api/apiKeys/list", None).await;
    assert_w3_error(&reply, StatusCode::FORBIDDEN);

    // Refused for not being an admin, not for asking too much: a member may make
    // native keys with no grants, and a key that may manage keys may hand out its
    // own scope elsewhere, but W3IPFS keys come from admins only.
    let nothing = json!({"name": "nothing", "scopes": full_scopes(false, false)});
    let member = server.member(&jwt, "member@example.com", None).await;
    let mut within = full_scopes(false, false);
    within["data"]["pin_list"] = json!(true);
    let (_, manager) = server
        .create_key(
            &jwt,
            json!({"name": "manager", "permissions": ["keyward.keys.*", "data.pin_list"]}),
        )
        .await;
    let attempts = [
        (&member, nothing),
        (&manager, json!({"name": "within", "scopes": within})),
    ];
    for (bearer, body) in attempts {
        let reply = server
            .call(Method::POST, "/api/apiKeys/", Some(bearer), Some(body))
            .await;
        let message = assert_w3_error(&reply, StatusCode::FORBIDDEN);
        assert!(message.contains("administrator"), "{message}");
    }
}

#[tokio::test]
async fn no_key_mints_more_than_it_holds() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    // An administrator's key that may manage keys but holds only one data scope.
    let (_, narrow) = server
        .create_key(
            &jwt,
            json!({"name": "narrow admin", "permissions": ["keyward.admin", "keyward.keys.*", "data.pin_list"]}),
        )
        .await;
    let mut within = full_scopes(false, false);
    within["data"]["pin_list"] = json!(true);
    create(&server, &narrow, "within", within.clone()).await;

    let mut beyond = within;
    beyond["pinning"]["unpin"] = json!(true);
    for scopes in [beyond, json!({"admin": true})] {
        let reply = server
            .call(
                Method::POST,
                "/api/apiKeys/",
                Some(&narrow),
                Some(json!({"name": "beyond", "scopes": scopes})),
            )
            .await;
        assert_w3_error(&reply, StatusCode::FORBIDDEN);
    }
}

#[tokio::test]
async fn bad_requests_get_w3ipfs_errors() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let auth = format!("Bearer {jwt}");
    let headers: [(&str, &[u8]); 2] = [
        ("authorization", auth.as_bytes()),
        ("content-type", b"application/json"),
    ];
    let post = |body: Vec<u8>| server.send(Method::POST, "/api/apiKeys/", &headers, Some(body));

    let mut scopes = full_scopes(false, true);
    scopes["pinning"].as_object_mut().unwrap().remove("unpin");
    let reply = post(
        json!({"name": "k", "scopes": scopes})
            .to_string()
            .into_bytes(),
    )
    .await;
    let message = assert_w3_error(&reply, StatusCode::BAD_REQUEST);
    assert!(message.contains("pinning.unpin"), "{message}");

    let reply = post(b"{\"name\": \"k\", \"scopes\": ".to_vec()).await;
    let message = assert_w3_error(&reply, StatusCode::BAD_REQUEST);
    assert!(message.contains("JSON"), "{message}");

    let cases = [
        (json!({"scopes": {"admin": true}}), "name"),
        (json!({"name": "k"}), "scopes"),
        (json!({"name": "  ", "scopes": {"admin": true}}), "name"),
        (
            json!({"name": "k", "scopes": {"admin": "yes"}}),
            "scopes.admin",
        ),
        (
            json!({"name": "k", "scopes": {"admin": false}}),
            "scopes.data",
        ),
        (
            json!({"name": "k", "scopes": {"admin": true}, "extra": 1}),
            "extra",
        ),
        (json!({"name": 5, "scopes": {"admin": true}}), "JSON"),
    ];
    for (body, named) in cases {
        let reply = post(body.to_string().into_bytes()).await;
        let message = assert_w3_error(&reply, StatusCode::BAD_REQUEST);
        assert!(message.contains(named), "{body}: {message}");
    }
    let reply = post(vec![b' '; 70 * 1024]).await;
    assert_w3_error(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    // A 400 made nothing.
    let list = server.get("/api/apiKeys/list", &jwt).await;
    assert_eq!(list.body["data"]["total"], 0, "{}", list.text);

    let wrong = server
        .send(Method::GET, "/api/apiKeys/", &headers, None)
        .await;
    assert_w3_error(&wrong, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn wrong_or_partial_pairs_are_unauthorized() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let pair = create(&server, &jwt, "one", json!({"admin": true})).await;
    let other = create(&server, &jwt, "two", json!({"admin": true})).await;
    let path = "/api/apiKeys/testAuthentication";

    let forged = "0".repeat(64);
    let cases: Vec<(Headers, &str)> = vec![
        (
            vec![
                ("pinning_api_key", pair.api_key.as_bytes()),
                ("pinning_secret_key", forged.as_bytes()),
            ],
            "do not match",
        ),
        (
            vec![
                ("pinning_api_key", pair.api_key.as_bytes()),
                ("pinning_secret_key", other.secret.as_bytes()),
            ],
            "do not match",
        ),
        (
            vec![("pinning_api_key", pair.api_key.as_bytes())],
            "pinning_secret_key",
        ),
        (
            vec![("pinning_secret_key", pair.secret.as_bytes())],
            "pinning_api_key",
        ),
        (vec![], "pinning_api_key"),
    ];
    for (headers, said) in cases {
        let reply = server.send(Method::GET, path, &headers, None).await;
        let message = assert_w3_error(&reply, StatusCode::UNAUTHORIZED);
        assert!(message.contains(said), "{message}");
        crate::support::assert_secret_absent(reply.text.as_bytes(), &pair.secret, "a 401");
    }
    // A wrong secret stays refused on the routes that need a scope, and on creation.
    let wrong = Pair {
        api_key: pair.api_key.clone(),
        secret: other.secret.clone(),
    };
    let body = json!({"name": "x", "scopes": {"admin": true}});
    let reply = with_pair(&server, &wrong, Method::POST, "/api/apiKeys/", Some(body)).await;
    assert_w3_error(&reply, StatusCode::UNAUTHORIZED);
    let reply = with_pair(&server, &wrong, Method::GET, "/api/pinning/pins/", None).await;
    assert_w3_error(&reply, StatusCode::UNAUTHORIZED);

    // The pair is this door's credential: it decides whatever `Authorization` says.
    let garbage = "Bearer kw_not_a_key".to_string();
    let mut headers = pair.headers();
    headers.push(("authorization", garbage.as_bytes()));
    let reply = server.send(Method::GET, path, &headers, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let bearer = format!("Bearer {jwt}");
    let mut headers = wrong.headers();
    headers.push(("authorization", bearer.as_bytes()));
    let reply = server.send(Method::GET, path, &headers, None).await;
    assert_w3_error(&reply, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn list_and_delete_keys() {
    let server = TestServer::start().await;
    let jwt = server.admin_token().await;
    let admin = create(&server, &jwt, "admin key", full_scopes(true, true)).await;
    let lister = create(&server, &jwt, "lister", lister_scopes()).await;
    let again = json!({"name": "lister", "scopes": {"admin": true}});
    let reply = server
        .call(Method::POST, "/api/apiKeys/", Some(&jwt), Some(again))
        .await;
    assert_w3_error(&reply, StatusCode::CONFLICT);
    // A native key is not a W3IPFS key and is not listed here.
    server.create_key(&jwt, json!({"name": "native"})).await;

    let reply = with_pair(&server, &admin, Method::GET, "/api/apiKeys/list", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["status"], "success");
    assert_eq!(reply.body["data"]["total"], 2);
    let items = reply.body["data"]["api_keys"].as_array().expect("api_keys");
    let newest = &items[0];
    assert_eq!(newest["name"], "lister");
    assert_eq!(newest["api_key"], lister.api_key.as_str());
    assert_eq!(newest["secret_key"], "");
    let mut shown = lister_scopes();
    shown["admin"] = json!(false);
    assert_eq!(newest["scopes"], shown);
    assert_eq!(items[1]["scopes"], json!({"admin": true}));
    let created = newest["created_at"].as_str().expect("created_at");
    assert!(
        created.len() == 27 && created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "microseconds and Z: {created}"
    );
    crate::support::parse_time(&newest["created_at"]);
    uuid::Uuid::parse_str(newest["id"].as_str().expect("id")).expect("id is a UUID");
    for pair in [&admin, &lister] {
        crate::support::assert_secret_absent(reply.text.as_bytes(), &pair.secret, "the key list");
    }

    let id = newest["id"].as_str().unwrap();
    let reply = server
        .call(
            Method::DELETE,
            &format!("/api/apiKeys/{id}"),
            Some(&jwt),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"message": "API key has been deleted", "status": "success"})
    );
    let reply = with_pair(&server, &lister, Method::GET, "/api/pinning/pins/", None).await;
    let message = assert_w3_error(&reply, StatusCode::UNAUTHORIZED);
    assert!(message.contains("revoked"), "{message}");

    // By the API key string, as Pinata revokes.
    let path = format!("/api/apiKeys/{}", admin.api_key);
    let reply = server.call(Method::DELETE, &path, Some(&jwt), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = server.get("/api/apiKeys/list", &jwt).await;
    assert_eq!(
        reply.body,
        json!({"data": {"total": 0, "api_keys": []}, "status": "success"})
    );

    for unknown in [
        "/api/apiKeys/38ad2971-6be5-4dc3-ba28-890b9a86b8e9",
        "/api/apiKeys/nope",
    ] {
        let reply = server.call(Method::DELETE, unknown, Some(&jwt), None).await;
        assert_w3_error(&reply, StatusCode::NOT_FOUND);
    }
}
