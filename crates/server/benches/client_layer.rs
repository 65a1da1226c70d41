//! The Rust client's tower layer: a verification it answers from its cache (the key's
//! answer already fetched from a real in-process Keyward, whose change stream the layer
//! follows). Target: under 1 µs.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyward_client::layer::{KeywardLayer, LayerOptions};
use keyward_client::Client;
use std::time::Duration;

fn cached_verification(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (layer, headers, _server) = runtime.block_on(async {
        let mut config = keyward_server::ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().to_path_buf(),
        );
        config.admin_email = Some("bench@example.com".into());
        config.admin_password = Some("bench-password-1".into());
        let server = keyward_server::start(config).await.expect("server starts");
        let url = format!("http://{}", server.addr);
        let admin = Client::new(&url, None)
            .login("bench@example.com", "bench-password-1")
            .await
            .expect("login");
        let key = admin
            .create_key(&serde_json::json!({"name": "bench", "permissions": ["invoices.read"]}))
            .await
            .expect("a key");
        let layer = KeywardLayer::new(admin, LayerOptions::default());
        while !layer.is_following() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {}", key.api_key).parse().unwrap(),
        );
        layer.verify(&headers).await.expect("verified once");
        (layer, headers, server)
    });
    assert!(layer.cached(&headers).is_some(), "the answer is cached");
    c.bench_function("layer: cached verification", |b| {
        b.iter(|| black_box(layer.cached(black_box(&headers))))
    });
}

criterion_group!(benches, cached_verification);
criterion_main!(benches);
