//! The JSON bodies of every create and update operation, through every door, against
//! a real server on a SQLite store: whatever the body, the answer is never a 5xx.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tower::ServiceExt;

const EMAIL: &str = "admin@fuzz.test";
const PASSWORD: &str = "fuzz-password-1";

struct Target {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    key_id: String,
    user_id: String,
    _dir: tempfile::TempDir,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let (router, token, key_id, user_id) = runtime.block_on(async {
            let mut config = keyward_server::ServeConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                dir.path().to_path_buf(),
            );
            config.admin_email = Some(EMAIL.into());
            config.admin_password = Some(PASSWORD.into());
            let running = keyward_server::start(config).await.expect("server starts");
            let router = running.router();
            let login = serde_json::json!({"email": EMAIL, "password": PASSWORD});
            let token = call(
                &router,
                Method::POST,
                "/v0/auth/login",
                None,
                login.to_string(),
            )
            .await
            .1["token"]
                .as_str()
                .expect("a token")
                .to_string();
            let (_, key) = call(
                &router,
                Method::POST,
                "/v0/api_keys",
                Some(&token),
                r#"{"name":"k"}"#.into(),
            )
            .await;
            let (_, mm) = call(
                &router,
                Method::POST,
                "/_api/key",
                Some(&token),
                r#"{"keyid":"mm"}"#.into(),
            )
            .await;
            assert!(mm["key"].is_string(), "{mm}");
            let (_, me) = call(&router, Method::GET, "/v0/me", Some(&token), String::new()).await;
            std::mem::forget(running);
            (
                router,
                token,
                key["id"].as_str().unwrap().to_string(),
                me["user"]["id"].as_str().unwrap().to_string(),
            )
        });
        Target {
            runtime,
            router,
            token,
            key_id,
            user_id,
            _dir: dir,
        }
    })
}

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: String,
) -> (u16, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Body::from(body)).expect("a request");
    let answer = router.clone().oneshot(request).await.expect("infallible");
    let status = answer.status().as_u16();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let Some((choice, body)) = data.split_first() else {
        return;
    };
    let t = target();
    let users_me = format!("/v0/users/{}", t.user_id);
    let key = format!("/v0/api_keys/{}", t.key_id);
    let credits = format!("{key}/credits");
    let routes: [(Method, &str); 10] = [
        (Method::POST, "/v0/api_keys"),
        (Method::PATCH, &key),
        (Method::POST, "/v0/users"),
        (Method::PATCH, &users_me),
        (Method::POST, "/v0/keys/verify"),
        (Method::POST, "/_api/key"),
        (Method::PUT, "/_api/key/mm/attributes"),
        (Method::POST, "/api/users/Users-1/apikeys"),
        (Method::POST, "/api/apiKeys"),
        (Method::POST, &credits),
    ];
    let (method, path) = &routes[*choice as usize % routes.len()];
    let body = String::from_utf8_lossy(body).into_owned();
    let (status, answer) =
        t.runtime
            .block_on(call(&t.router, method.clone(), path, Some(&t.token), body));
    assert!(status < 500, "{method} {path}: {status} {answer}");
});
