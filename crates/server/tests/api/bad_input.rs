//! Bad requests of every kind get the right 4xx in the native error shape, never a 5xx.

use crate::support::{assert_error, in_seconds, RawConnection, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::json;

enum Credential {
    Admin,
    Nothing,
    /// A raw header in place of the administrator's session.
    Header(&'static str, Vec<u8>),
}

struct Case {
    label: String,
    method: Method,
    /// `{id}` stands for a real key's id.
    path: String,
    credential: Credential,
    body: Option<Vec<u8>>,
    status: StatusCode,
    code: &'static str,
    /// Text the message must contain.
    message: Option<&'static str>,
    /// What `details.field` must name.
    field: Option<&'static str>,
}

fn case(
    label: &str,
    method: Method,
    path: &str,
    body: Option<&[u8]>,
    status: StatusCode,
    code: &'static str,
) -> Case {
    Case {
        label: label.to_string(),
        method,
        path: path.to_string(),
        credential: Credential::Admin,
        body: body.map(<[u8]>::to_vec),
        status,
        code,
        message: None,
        field: None,
    }
}

impl Case {
    fn message(mut self, text: &'static str) -> Self {
        self.message = Some(text);
        self
    }
    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
    fn credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }
}

fn json_body(value: serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    use Method as M;
    use StatusCode as S;
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (id, _) = server.create_key(&admin, json!({"name": "target"})).await;

    const KEYS: &str = "/v0/api_keys";
    const KEY: &str = "/v0/api_keys/{id}";
    const ROTATE: &str = "/v0/api_keys/{id}/rotate";
    const VERIFY: &str = "/v0/keys/verify";
    let long_name = "n".repeat(300);
    let huge = vec![b' '; 1 << 20];
    let mut huge_json = b"{\"name\": \"".to_vec();
    huge_json.extend(std::iter::repeat_n(b'x', 1 << 20));
    huge_json.extend_from_slice(b"\"}");
    let bad_json = S::BAD_REQUEST;
    let invalid = S::UNPROCESSABLE_ENTITY;

    let mut cases =
        vec![
        // Bodies that are not JSON, or not the right JSON.
        case(
            "truncated JSON",
            M::POST,
            KEYS,
            Some(b"{\"name\": "),
            bad_json,
            "InvalidJson",
        )
        .message("EOF while parsing"),
        case(
            "unquoted key",
            M::POST,
            KEYS,
            Some(b"{name: \"x\"}"),
            bad_json,
            "InvalidJson",
        )
        .message("line 1 column"),
        case(
            "trailing garbage",
            M::POST,
            KEYS,
            Some(b"{\"name\": \"x\"} extra"),
            bad_json,
            "InvalidJson",
        )
        .message("trailing characters"),
        case("empty body", M::POST, KEYS, None, bad_json, "InvalidJson"),
        case(
            "whitespace body",
            M::POST,
            KEYS,
            Some(b"  \n "),
            bad_json,
            "InvalidJson",
        ),
        case(
            "array body",
            M::POST,
            KEYS,
            Some(b"[]"),
            bad_json,
            "InvalidJson",
        ),
        case(
            "null body",
            M::POST,
            KEYS,
            Some(b"null"),
            bad_json,
            "InvalidJson",
        ),
        case(
            "not UTF-8",
            M::POST,
            KEYS,
            Some(b"{\"name\": \"\xff\xfe\"}"),
            bad_json,
            "InvalidJson",
        ),
        case(
            "name of the wrong type",
            M::POST,
            KEYS,
            Some(br#"{"name": 5}"#),
            bad_json,
            "InvalidJson",
        )
        .message("invalid type"),
        case(
            "permissions not a list",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": "data.read"}"#),
            bad_json,
            "InvalidJson",
        )
        .message("invalid type"),
        case(
            "unknown field",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "colour": "red"}"#),
            bad_json,
            "InvalidJson",
        )
        .message("unknown field"),
        case(
            "missing name",
            M::POST,
            KEYS,
            Some(b"{}"),
            bad_json,
            "InvalidJson",
        )
        .message("name"),
        case(
            "owner_id not a UUID",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "owner_id": "bob"}"#),
            bad_json,
            "InvalidJson",
        ),
        // JSON that breaks a rule.
        case(
            "blank name",
            M::POST,
            KEYS,
            Some(br#"{"name": "   "}"#),
            invalid,
            "ValidationError",
        )
        .field("name"),
        case(
            "300-character name",
            M::POST,
            KEYS,
            Some(&json_body(json!({"name": long_name}))),
            invalid,
            "ValidationError",
        )
        .field("name"),
        case(
            "control character in name",
            M::POST,
            KEYS,
            Some(br#"{"name": "a\u0000b"}"#),
            invalid,
            "ValidationError",
        )
        .field("name"),
        case(
            "permission with a space",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": ["data read"]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "empty permission segment",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": ["data..read"]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "empty permission",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": [""]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "non-ASCII permission",
            M::POST,
            KEYS,
            Some(r#"{"name": "x", "permissions": ["données"]}"#.as_bytes()),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "unknown access level",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": ["fabric/_system:admin"]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "empty path segment",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "permissions": ["fabric//x:ro"]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "expiry in the past",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "expires_at": "2020-01-01T00:00:00Z"}"#),
            invalid,
            "ValidationError",
        )
        .field("expires_at"),
        case(
            "expiry past year 9999 in UTC",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "expires_at": "9999-12-31T23:59:59-23:59"}"#),
            invalid,
            "ValidationError",
        )
        .field("expires_at"),
        case(
            "expiry not RFC 3339",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "expires_at": "tomorrow"}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "expiry without a time",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "expires_at": "2099-01-01"}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "expiry as a number",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "expires_at": 4102444800}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "metadata a list",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "metadata": [1, 2]}"#),
            invalid,
            "ValidationError",
        )
        .field("metadata"),
        case(
            "metadata a string",
            M::POST,
            KEYS,
            Some(br#"{"name": "x", "metadata": "team"}"#),
            invalid,
            "ValidationError",
        )
        .field("metadata"),
        case(
            "metadata too big",
            M::POST,
            KEYS,
            Some(&json_body(
                json!({"name": "x", "metadata": {"x": "y".repeat(9000)}}),
            )),
            invalid,
            "ValidationError",
        )
        .field("metadata"),
        // Too much.
        case(
            "1 MiB of whitespace",
            M::POST,
            KEYS,
            Some(&huge),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        case(
            "1 MiB name",
            M::POST,
            KEYS,
            Some(&huge_json),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        case(
            "1 MiB patch",
            M::PATCH,
            KEY,
            Some(&huge_json),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        case(
            "1 MiB rotation",
            M::POST,
            ROTATE,
            Some(&huge),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        case(
            "1 MiB verification",
            M::POST,
            VERIFY,
            Some(&huge),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        case(
            "1 MiB login",
            M::POST,
            "/v0/auth/login",
            Some(&huge),
            S::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        )
        .credential(Credential::Nothing),
        // Patching.
        case(
            "patch enabled of the wrong type",
            M::PATCH,
            KEY,
            Some(br#"{"enabled": "yes"}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "patch unknown field",
            M::PATCH,
            KEY,
            Some(br#"{"state": "active"}"#),
            bad_json,
            "InvalidJson",
        )
        .message("unknown field"),
        case(
            "patch blank name",
            M::PATCH,
            KEY,
            Some(br#"{"name": ""}"#),
            invalid,
            "ValidationError",
        )
        .field("name"),
        case(
            "patch expiry not RFC 3339",
            M::PATCH,
            KEY,
            Some(br#"{"expires_at": "soon"}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "patch expiry in the past",
            M::PATCH,
            KEY,
            Some(br#"{"expires_at": "2001-01-01T00:00:00Z"}"#),
            invalid,
            "ValidationError",
        )
        .field("expires_at"),
        case(
            "patch expiry past year 9999 in UTC",
            M::PATCH,
            KEY,
            Some(br#"{"expires_at": "9999-12-31T23:59:59-23:59"}"#),
            invalid,
            "ValidationError",
        )
        .field("expires_at"),
        case(
            "patch bad permissions",
            M::PATCH,
            KEY,
            Some(br#"{"permissions": ["a b"]}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "patch metadata a number",
            M::PATCH,
            KEY,
            Some(br#"{"metadata": 7}"#),
            invalid,
            "ValidationError",
        )
        .field("metadata"),
        case(
            "patch empty body",
            M::PATCH,
            KEY,
            None,
            bad_json,
            "InvalidJson",
        ),
        // Rotation.
        case(
            "grace over 30 days",
            M::POST,
            ROTATE,
            Some(br#"{"grace_seconds": 2592001}"#),
            invalid,
            "ValidationError",
        )
        .field("grace_seconds"),
        case(
            "enormous grace",
            M::POST,
            ROTATE,
            Some(br#"{"grace_seconds": 18446744073709551615}"#),
            invalid,
            "ValidationError",
        )
        .field("grace_seconds"),
        case(
            "negative grace",
            M::POST,
            ROTATE,
            Some(br#"{"grace_seconds": -1}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "grace as a string",
            M::POST,
            ROTATE,
            Some(br#"{"grace_seconds": "10"}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "rotation unknown field",
            M::POST,
            ROTATE,
            Some(br#"{"grace": 10}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "rotation not JSON",
            M::POST,
            ROTATE,
            Some(b"grace=10"),
            bad_json,
            "InvalidJson",
        ),
        // Verification.
        case(
            "verify without key",
            M::POST,
            VERIFY,
            Some(b"{}"),
            bad_json,
            "InvalidJson",
        )
        .message("key"),
        case(
            "verify key of the wrong type",
            M::POST,
            VERIFY,
            Some(br#"{"key": 42}"#),
            bad_json,
            "InvalidJson",
        ),
        case(
            "verify malformed query",
            M::POST,
            VERIFY,
            Some(br#"{"key": "kw_x", "permissions": "a AND"}"#),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        // Users and login.
        case(
            "user with a bad email",
            M::POST,
            "/v0/users",
            Some(br#"{"email": "nobody", "password": "long-enough-1"}"#),
            invalid,
            "ValidationError",
        )
        .field("email"),
        case(
            "user with a short password",
            M::POST,
            "/v0/users",
            Some(br#"{"email": "a@b.example", "password": "short"}"#),
            invalid,
            "ValidationError",
        )
        .field("password"),
        case(
            "user with an unknown role",
            M::POST,
            "/v0/users",
            Some(br#"{"email": "a@b.example", "password": "long-enough-1", "role": "boss"}"#),
            invalid,
            "ValidationError",
        )
        .field("role"),
        case(
            "user with bad permissions",
            M::POST,
            "/v0/users",
            Some(
                br#"{"email": "a@b.example", "password": "long-enough-1", "permissions": ["x:"]}"#,
            ),
            invalid,
            "ValidationError",
        )
        .field("permissions"),
        case(
            "login without password",
            M::POST,
            "/v0/auth/login",
            Some(br#"{"email": "admin@example.com"}"#),
            bad_json,
            "InvalidJson",
        )
        .credential(Credential::Nothing),
        case(
            "login with a wrong password",
            M::POST,
            "/v0/auth/login",
            Some(br#"{"email": "admin@example.com", "password": "wrong-password"}"#),
            S::UNAUTHORIZED,
            "Unauthorized",
        )
        .credential(Credential::Nothing),
        case(
            "login with a bad email",
            M::POST,
            "/v0/auth/login",
            Some(br#"{"email": "x", "password": "whatever-1"}"#),
            S::UNAUTHORIZED,
            "Unauthorized",
        )
        .credential(Credential::Nothing),
        // Path ids that are not UUIDs.
        case(
            "get by a non-UUID id",
            M::GET,
            "/v0/api_keys/not-a-uuid",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "patch by a non-UUID id",
            M::PATCH,
            "/v0/api_keys/123",
            Some(br#"{"name": "x"}"#),
            bad_json,
            "BadRequest",
        ),
        case(
            "delete by a non-UUID id",
            M::DELETE,
            "/v0/api_keys/%20",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "rotate by a non-UUID id",
            M::POST,
            "/v0/api_keys/xyz/rotate",
            Some(b"{}"),
            bad_json,
            "BadRequest",
        ),
        case(
            "user by a non-UUID id",
            M::GET,
            "/v0/users/someone",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "patch user by a non-UUID id",
            M::PATCH,
            "/v0/users/someone",
            Some(br#"{"active": false}"#),
            bad_json,
            "BadRequest",
        ),
        // Unknown routes and wrong methods.
        case(
            "unknown route",
            M::GET,
            "/v0/nothing-here",
            None,
            S::NOT_FOUND,
            "NotFound",
        ),
        // (`/` leads to the web console.)
        case("a POST to the root", M::POST, "/", None, S::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        case(
            "too deep",
            M::GET,
            "/v0/api_keys/{id}/rotate/again",
            None,
            S::NOT_FOUND,
            "NotFound",
        ),
        case(
            "unknown route without credentials",
            M::POST,
            "/v1/api_keys",
            Some(b"{}"),
            S::NOT_FOUND,
            "NotFound",
        )
        .credential(Credential::Nothing),
        case(
            "PUT on the key list",
            M::PUT,
            KEYS,
            Some(b"{}"),
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        case(
            "DELETE on the key list",
            M::DELETE,
            KEYS,
            None,
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        case(
            "GET on verify",
            M::GET,
            VERIFY,
            None,
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        case(
            "GET on rotate",
            M::GET,
            ROTATE,
            None,
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        case(
            "POST on a key",
            M::POST,
            KEY,
            Some(b"{}"),
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        case(
            "DELETE on me",
            M::DELETE,
            "/v0/me",
            None,
            S::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
        ),
        // Query strings.
        case(
            "limit not a number",
            M::GET,
            "/v0/api_keys?limit=abc",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "negative offset",
            M::GET,
            "/v0/api_keys?offset=-1",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "include_revoked not a boolean",
            M::GET,
            "/v0/api_keys?include_revoked=maybe",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "owner_id not a UUID",
            M::GET,
            "/v0/api_keys?owner_id=bob",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "unknown query parameter",
            M::GET,
            "/v0/api_keys?sort=name",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "limit too large for u64",
            M::GET,
            "/v0/api_keys?limit=99999999999999999999999",
            None,
            bad_json,
            "BadRequest",
        ),
        case(
            "user list limit not a number",
            M::GET,
            "/v0/users?limit=ten",
            None,
            bad_json,
            "BadRequest",
        ),
    ];
    // Credentials that cannot be read or do not verify.
    let garbage_credentials: Vec<(&str, &'static str, Vec<u8>)> = vec![
        (
            "non-ASCII bearer",
            "Authorization",
            b"Bearer \xff\xfe\xfd".to_vec(),
        ),
        ("Latin-1 scheme", "Authorization", b"B\xe9arer abc".to_vec()),
        (
            "UTF-8 key",
            "Authorization",
            "Bearer kw_é€😀".as_bytes().to_vec(),
        ),
        (
            "non-ASCII X-API-Key",
            "X-API-Key",
            b"kw_\xc3\xa9\xc3\xa9".to_vec(),
        ),
        ("scheme only", "Authorization", b"Bearer".to_vec()),
        (
            "unknown scheme",
            "Authorization",
            b"Digest username=admin".to_vec(),
        ),
        ("Basic", "Authorization", b"Basic xyz".to_vec()),
        (
            "JWT-looking garbage",
            "Authorization",
            b"Bearer eyJ.eyJ.sig".to_vec(),
        ),
        (
            "long garbage",
            "Authorization",
            format!("Bearer {}", "A".repeat(8000)).into_bytes(),
        ),
        (
            "tab-separated",
            "Authorization",
            b"Bearer\tkw_nothing".to_vec(),
        ),
    ];
    for (label, header, value) in garbage_credentials {
        cases.push(
            case(
                &format!("garbage credential: {label}"),
                M::GET,
                KEYS,
                None,
                S::UNAUTHORIZED,
                "Unauthorized",
            )
            .credential(Credential::Header(header, value)),
        );
    }
    cases.push(
        case(
            "no credential",
            M::GET,
            KEYS,
            None,
            S::UNAUTHORIZED,
            "Unauthorized",
        )
        .credential(Credential::Nothing),
    );

    let session = format!("Bearer {admin}");
    let mut failures = Vec::new();
    for case in &cases {
        let path = case.path.replace("{id}", &id);
        let headers: Vec<(&str, &[u8])> = match &case.credential {
            Credential::Admin => vec![("Authorization", session.as_bytes())],
            Credential::Nothing => vec![],
            Credential::Header(name, value) => vec![(*name, value.as_slice())],
        };
        let reply = server
            .send(case.method.clone(), &path, &headers, case.body.clone())
            .await;
        assert!(
            !reply.status.is_server_error(),
            "{}: a 5xx: {}",
            case.label,
            reply.text
        );
        let outcome = std::panic::catch_unwind(|| {
            let message = assert_error(&reply, case.status, case.code);
            if let Some(text) = case.message {
                assert!(message.contains(text), "message {message:?} lacks {text:?}");
            }
            if let Some(field) = case.field {
                assert_eq!(reply.body["details"]["field"], field, "details.field");
            }
        });
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{} ({} {path}): {why}", case.label, case.method));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // None of it changed the key or made a new one.
    let listed = server
        .get("/v0/api_keys?include_revoked=true", &admin)
        .await;
    assert_eq!(listed.body["total"], 1, "{}", listed.text);
    assert_eq!(listed.body["items"][0]["name"], "target");
    assert_eq!(listed.body["items"][0]["state"], "active");
    // And the server still answers well-formed requests.
    let fine = server
        .call(
            Method::POST,
            KEYS,
            Some(&admin),
            Some(json!({"name": "after", "expires_at": in_seconds(60)})),
        )
        .await;
    assert_eq!(fine.status, StatusCode::CREATED, "{}", fine.text);
}

/// A client that closes its sending side once its request is out (a TCP half-close)
/// still gets its answer, and what it asked for is done: seeing the end of what the
/// client sends does not cut the request short, whatever the handler is waiting on.
#[tokio::test]
async fn a_half_closed_connection_is_still_answered() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let body = json!({"name": "half-closed"}).to_string();
    let framing = format!("Content-Length: {}", body.len());
    let mut request = head("/v0/api_keys", &admin, &framing);
    request.extend_from_slice(body.as_bytes());
    let mut connection = RawConnection::open(&server).await;
    connection.write(&request).await;
    connection.close_sending().await;
    let (status, created) = connection.answer().await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().expect("the secret, once");
    assert_eq!(server.verify(&admin, key, None).await["code"], "VALID");
}

/// A request in HTTP/1.1 framing written by hand: the head, then the body as given.
fn head(path: &str, auth: &str, framing: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: keyward\r\nAuthorization: Bearer {auth}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut chunk = format!("{:x}\r\n", data.len()).into_bytes();
    chunk.extend_from_slice(data);
    chunk.extend_from_slice(b"\r\n");
    chunk
}

/// A body that arrives in several reads (a slow client, chunked encoding) is read whole;
/// one too long is refused with 413 however it is framed.
#[tokio::test]
async fn bodies_in_pieces_are_read_whole_and_bounded() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (key_id, key) = server.create_key(&admin, json!({"name": "pieces"})).await;
    let body = json!({"key": key}).to_string().into_bytes();
    let (first, second) = body.split_at(body.len() / 2);
    let mut connection = RawConnection::open(&server).await;

    // Content-Length, the body in two writes.
    let framing = format!("Content-Length: {}", body.len());
    let mut start = head("/v0/keys/verify", &admin, &framing);
    start.extend_from_slice(first);
    let (status, answer) = connection.send_pieces(&[start, second.to_vec()]).await;
    assert_eq!(
        (status, &answer["key_id"]),
        (200, &json!(key_id)),
        "{answer}"
    );
    assert_eq!(answer["valid"], true, "{answer}");

    // Chunked, three chunks in three writes, on the same connection.
    let chunked = "Transfer-Encoding: chunked";
    let (status, answer) = connection
        .send_pieces(&[
            head("/v0/keys/verify", &admin, chunked),
            chunk(first),
            [chunk(second), b"0\r\n\r\n".to_vec()].concat(),
        ])
        .await;
    assert_eq!((status, &answer["valid"]), (200, &json!(true)), "{answer}");

    // Whitespace in 16 KiB chunks: 5 are past the limit, refused once it is crossed;
    // 4 are exactly at it, so read, and refused for what they say.
    let spaces = |chunks: usize| {
        let piece = vec![b' '; 16 * 1024];
        let mut pieces = vec![head("/v0/keys/verify", &admin, chunked)];
        pieces.extend((0..chunks).map(|_| chunk(&piece)));
        pieces.push(b"0\r\n\r\n".to_vec());
        pieces
    };
    for (chunks, status, code) in [(5, 413, "PayloadTooLarge"), (4, 400, "InvalidJson")] {
        let mut connection = RawConnection::open(&server).await;
        let (got, answer) = connection.send_pieces(&spaces(chunks)).await;
        assert_eq!(
            (got, &answer["error_code"]),
            (status, &json!(code)),
            "{answer}"
        );
    }

    // A body cut short by a chunk that breaks the framing: a 400, not a 5xx.
    let (status, answer) = RawConnection::open(&server)
        .await
        .send_pieces(&[
            head("/v0/keys/verify", &admin, chunked),
            b"zz\r\nnot hex\r\n".to_vec(),
        ])
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error_code"], "BadRequest", "{answer}");
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("body could not be read"), "{answer}");
}
