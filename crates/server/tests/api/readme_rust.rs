//! The README's Rust example runs as printed: the code between the markers below is the
//! README's `rust` block (a test holds the two equal), served and called here.

// <readme-example>
use axum::{routing::get, Extension, Router};
use keyward_client::layer::{KeywardLayer, LayerOptions};
use keyward_client::{Client, Verification};
use std::sync::Arc;

/// Every route now needs a key holding `invoices.read`, verified by Keyward and cached
/// until Keyward says the key changed.
fn invoices_service(keyward: Client) -> Router {
    let layer = KeywardLayer::new(
        keyward,
        LayerOptions {
            permissions: Some("invoices.read".into()),
            ..LayerOptions::default()
        },
    );
    Router::new()
        .route(
            "/invoices",
            get(|Extension(key): Extension<Arc<Verification>>| async move {
                format!("invoices of {}", key.owner_id.clone().unwrap_or_default())
            }),
        )
        .layer(layer)
}
// </readme-example>

use crate::support::*;
use serde_json::json;

#[test]
fn the_readme_shows_this_example() {
    let source = include_str!("readme_rust.rs");
    let start = source.find("// <readme-example>\n").unwrap() + "// <readme-example>\n".len();
    let end = source.find("// </readme-example>").unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let marker = readme
        .find("<!-- example: rust -->")
        .expect("the README's Rust example");
    let block = &readme[marker..];
    let block = &block[block.find("```rust\n").unwrap() + "```rust\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    assert_eq!(
        block,
        &source[start..end],
        "the README's Rust example differs from this file's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_example_serves_invoices_to_keys_that_may_read_them() {
    let server = TestServer::start().await;
    let admin = server.admin_token().await;
    let (_, key) = server
        .create_key(
            &admin,
            json!({"name": "reader", "permissions": ["invoices.read"]}),
        )
        .await;
    let app = invoices_service(Client::new(&server.url, Some(admin)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let url = format!("http://{address}/invoices");
    let answer = http.get(&url).bearer_auth(&key).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().starts_with("invoices of "));
    assert_eq!(http.get(&url).send().await.unwrap().status(), 401);
}
