//! In-process verification of a cached key against its floor: one HMAC-SHA-256 of the
//! same input plus one hash-map lookup. The ratio (verify / floor) is the figure the
//! project tracks (target: at most 3x); it is printed after the measurements.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyward_app::import::bench_key;
use keyward_app::Verifier;
use keyward_core::{KeyHasher, SecretHash, ServerSecret, User};
use keyward_store::testing::UnauditedWrites;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Runs a future that must not wait: a verification of a cached key touches no I/O, so
/// measuring it through a runtime's `block_on` would only add the runtime's cost.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a cached verification waited"),
    }
}

struct Setup {
    verifier: Verifier,
    hasher: KeyHasher,
    secret: String,
    owner: User,
    _dir: tempfile::TempDir,
}

/// A real SQLite store in a temporary directory, one tenant, one key in it.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("keyward.db").display());
    let store = keyward_store::open(&url).await.expect("open store");
    let (_, owner) = keyward_server::create_tenant(&store, "bench", "a@bench.test", "benchpass1")
        .await
        .expect("tenant");
    let hasher = KeyHasher::new(&ServerSecret::generate());
    let (key, stored, secret) = bench_key(&hasher, &owner, "bench".into());
    store.create_key(&key, &stored).await.expect("key");
    let verifier = Verifier::new(hasher.clone(), store, 10_000);
    Setup {
        verifier,
        hasher,
        secret: secret.expose().to_string(),
        owner,
        _dir: dir,
    }
}

fn mean_of(mut f: impl FnMut(), iterations: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed() / iterations
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let s = runtime.block_on(setup());
    let mut table: HashMap<SecretHash, (User, u64)> = HashMap::new();
    table.insert(s.hasher.hash(&s.secret), (s.owner.clone(), 0));

    let verify = || {
        let verdict = ready(
            s.verifier
                .verify(black_box(&s.secret), None, None, &|| None),
        )
        .expect("verify");
        assert!(verdict.code.is_valid());
    };
    let floor = || {
        let hash = s.hasher.hash(black_box(&s.secret));
        assert!(black_box(table.get(&hash)).is_some());
    };
    // Warms the cache: the figure is for a cached key.
    runtime
        .block_on(s.verifier.verify(&s.secret, None, None, &|| None))
        .expect("first verify");

    let mut group = c.benchmark_group("verify");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.bench_function("cached_key", |b| b.iter(verify));
    group.bench_function("floor_hmac_plus_hashmap", |b| b.iter(floor));
    group.bench_function("malformed", |b| {
        b.iter(|| {
            ready(
                s.verifier
                    .verify(black_box("not a key"), None, None, &|| None),
            )
        })
    });
    // Well formed (the checksum holds) but no key has it: refused from the cache, which
    // remembers the miss.
    let unknown = keyward_core::KeyShape::Native.generate();
    runtime
        .block_on(s.verifier.verify(unknown.expose(), None, None, &|| None))
        .expect("first lookup of the unknown key");
    group.bench_function("unknown_key", |b| {
        b.iter(|| {
            let verdict =
                ready(
                    s.verifier
                        .verify(black_box(unknown.expose()), None, None, &|| None),
                );
            assert!(!verdict.expect("verify").code.is_valid());
        })
    });
    group.finish();

    // Criterion keeps its estimates to itself; a plain interleaved measurement gives the
    // ratio the README quotes, from the same run.
    let rounds = 200_000;
    let (mut v, mut f) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..5 {
        v += mean_of(verify, rounds);
        f += mean_of(floor, rounds);
    }
    println!(
        "verify/ratio: verify {:?}, floor {:?}, ratio {:.2}x (target <= 3x)",
        v / 5,
        f / 5,
        v.as_secs_f64() / f.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
