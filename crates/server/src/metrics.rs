//! Prometheus metrics: `GET /metrics` in the text format, from the `metrics` crate's
//! Prometheus recorder. Each server has a recorder of its own (not the process-wide
//! one), so that several servers in one process (the tests) keep their figures apart.
//!
//! Hot figures are kept where they happen and read at scrape time: verifications by
//! outcome and the cache's counts (the verifier's atomics), process figures
//! (`metrics-process`). Per-request figures go to handles made once per route, method
//! and status, so a request costs two clock reads, one map read and three atomic adds.
//! Every metric is listed in docs/observability.md.

use keyward_app::Keyward;
use keyward_core::{Door, VerifyCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Request durations, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Rows written by one flush.
const ROW_BUCKETS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    /// Handles per route template (by the address of the router's own copy of it,
    /// which is stable while the router lives: no string hashing per request), then
    /// per (method, status, door).
    routes: RwLock<HashMap<usize, Vec<RouteHandles>, BuildAddressHasher>>,
    flush: FlushHandles,
    changes: ChangeHandles,
    started: Instant,
}

struct RouteHandles {
    route: Box<str>,
    method: axum::http::Method,
    status: u16,
    door: Door,
    requests: Counter,
    duration: Histogram,
}

struct FlushHandles {
    duration: Histogram,
    rows: Histogram,
    errors: Counter,
    /// When the last flush succeeded, in milliseconds since the server started.
    last_ok_ms: AtomicI64,
}

struct ChangeHandles {
    lag: Histogram,
    reconnects: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_rows".into()), ROW_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        let (flush, changes) = metrics::with_local_recorder(&recorder, || {
            describe();
            process.describe();
            (
                FlushHandles {
                    duration: metrics::histogram!("keyward_usage_flush_duration_seconds"),
                    rows: metrics::histogram!("keyward_usage_flush_rows"),
                    errors: metrics::counter!("keyward_usage_flush_errors_total"),
                    last_ok_ms: AtomicI64::new(0),
                },
                ChangeHandles {
                    lag: metrics::histogram!("keyward_change_notice_lag_seconds"),
                    reconnects: metrics::counter!("keyward_change_listener_reconnects_total"),
                },
            )
        });
        Metrics {
            recorder,
            handle,
            process,
            routes: RwLock::default(),
            flush,
            changes,
            started: Instant::now(),
        }
    }

    /// Counts one answered request of `route` (a template such as `/v0/api_keys/{id}`).
    pub fn request(
        &self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
        door: Door,
        took: Duration,
    ) {
        let seconds = took.as_secs_f64();
        let address = route.as_ptr() as usize;
        let same = |h: &&RouteHandles| {
            h.status == status && h.door == door && h.method == method && *h.route == *route
        };
        {
            let routes = self.routes.read().expect("routes lock");
            if let Some(h) = routes.get(&address).and_then(|list| list.iter().find(same)) {
                h.requests.increment(1);
                h.duration.record(seconds);
                return;
            }
        }
        let handles = metrics::with_local_recorder(&self.recorder, || {
            let labels = [
                ("route", route.to_string()),
                ("method", method.as_str().to_string()),
                ("door", door.as_str().to_string()),
            ];
            let mut with_status = labels.to_vec();
            with_status.push(("status", status.to_string()));
            RouteHandles {
                route: route.into(),
                method: method.clone(),
                status,
                door,
                requests: metrics::counter!("keyward_http_requests_total", &with_status),
                duration: metrics::histogram!("keyward_http_request_duration_seconds", &labels),
            }
        });
        handles.requests.increment(1);
        handles.duration.record(seconds);
        let mut routes = self.routes.write().expect("routes lock");
        routes.entry(address).or_default().push(handles);
    }

    /// Records a usage flush: how long it took and how many rows it wrote, or that it
    /// failed.
    pub fn flushed(&self, took: Duration, rows: Option<usize>) {
        self.flush.duration.record(took.as_secs_f64());
        match rows {
            Some(rows) => {
                self.flush.rows.record(rows as f64);
                let ms = self.started.elapsed().as_millis() as i64;
                self.flush.last_ok_ms.store(ms, Ordering::Relaxed);
            }
            None => self.flush.errors.increment(1),
        }
    }

    /// Records how long a change notice took from the node that sent it to this one.
    pub fn notice_heard(&self, lag: Duration) {
        self.changes.lag.record(lag.as_secs_f64());
    }

    pub fn listener_reconnected(&self) {
        self.changes.reconnects.increment(1);
    }

    /// A store operation's duration, and whether it failed.
    pub fn store_call(&self, operation: &'static str, took: Duration, failed: bool) {
        metrics::with_local_recorder(&self.recorder, || {
            metrics::histogram!("keyward_store_query_duration_seconds", "operation" => operation)
                .record(took.as_secs_f64());
            if failed {
                metrics::counter!("keyward_store_errors_total", "operation" => operation)
                    .increment(1);
            }
        });
    }

    /// The text exposition, with the figures read at scrape time brought up to date.
    pub fn render(&self, app: &Keyward) -> String {
        metrics::with_local_recorder(&self.recorder, || {
            self.process.collect();
            let outcomes = app.verifier().outcomes();
            for code in VerifyCode::ALL {
                metrics::counter!("keyward_verifications_total", "outcome" => code.field_name())
                    .absolute(outcomes.get(code));
            }
            let cache = app.verifier().cache_stats();
            metrics::counter!("keyward_verify_cache_hits_total").absolute(cache.hits);
            metrics::counter!("keyward_verify_cache_misses_total").absolute(cache.misses);
            metrics::counter!("keyward_verify_cache_evictions_total").absolute(cache.evictions);
            metrics::gauge!("keyward_verify_cache_entries").set(cache.entries as f64);
            metrics::gauge!("keyward_verify_cache_capacity").set(cache.capacity as f64);
            metrics::counter!("keyward_redis_errors_total").absolute(app.limit_counter_errors());
            let last_ok = self.flush.last_ok_ms.load(Ordering::Relaxed);
            let now = self.started.elapsed().as_millis() as i64;
            metrics::gauge!("keyward_usage_flush_lag_seconds")
                .set((now - last_ok) as f64 / 1_000.0);
            metrics::gauge!("keyward_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        });
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// The help text of every metric the server makes itself.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "keyward_http_requests_total",
        "HTTP requests answered, by route template, method, status and door."
    );
    describe_histogram!(
        "keyward_http_request_duration_seconds",
        Unit::Seconds,
        "Time from routing a request to its answer, by route template, method and door."
    );
    describe_counter!(
        "keyward_verifications_total",
        "Key verifications by final outcome (after limits), through every door."
    );
    describe_counter!(
        "keyward_verify_cache_hits_total",
        "Verifications answered from this node's cache."
    );
    describe_counter!(
        "keyward_verify_cache_misses_total",
        "Verifications that read the store (cache misses)."
    );
    describe_counter!(
        "keyward_verify_cache_evictions_total",
        "Cache entries evicted to make room."
    );
    describe_gauge!(
        "keyward_verify_cache_entries",
        "Entries in the verification cache."
    );
    describe_gauge!(
        "keyward_verify_cache_capacity",
        "Entries the verification cache may hold."
    );
    describe_histogram!(
        "keyward_store_query_duration_seconds",
        Unit::Seconds,
        "Store operations' durations, by operation."
    );
    describe_counter!(
        "keyward_store_errors_total",
        "Store operations that failed, by operation."
    );
    describe_histogram!(
        "keyward_usage_flush_duration_seconds",
        Unit::Seconds,
        "Time a batched usage flush took."
    );
    describe_histogram!(
        "keyward_usage_flush_rows",
        "Rows (keys' uses, verification counts, credits) one flush wrote."
    );
    describe_counter!(
        "keyward_usage_flush_errors_total",
        "Usage flushes that failed (their counts are kept for the next)."
    );
    describe_gauge!(
        "keyward_usage_flush_lag_seconds",
        Unit::Seconds,
        "Seconds since the last successful usage flush."
    );
    describe_histogram!(
        "keyward_change_notice_lag_seconds",
        Unit::Seconds,
        "Time from a node announcing a change (or its heartbeat) to this node hearing it."
    );
    describe_counter!(
        "keyward_change_listener_reconnects_total",
        "Times the cross-node change listener was lost and reconnected."
    );
    describe_counter!(
        "keyward_redis_errors_total",
        "Limit charges and credit changes that could not reach Redis (0 without Redis)."
    );
    describe_gauge!("keyward_build_info", "The running version, as a label.");
}

/// Counts the requests of a door's routes: route template (`MatchedPath`), method,
/// status, how long the answer took. A layer of its own rather than `from_fn`, whose
/// boxed futures and extractor cost every request thousands of instructions.
#[derive(Clone)]
pub struct CountRequests {
    metrics: Arc<Metrics>,
    door: Door,
}

impl CountRequests {
    pub fn new(metrics: Arc<Metrics>, door: Door) -> Self {
        CountRequests { metrics, door }
    }
}

impl<S> tower::Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            counter: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: CountRequests,
}

impl<S, B> tower::Service<axum::http::Request<B>> for Counted<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::response::Response>,
{
    type Response = axum::response::Response;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let route = request
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .cloned();
        let method = request.method().clone();
        CountedFuture {
            inner: self.inner.call(request),
            started: Instant::now(),
            route,
            method,
            counter: self.counter.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: Option<axum::extract::MatchedPath>,
        method: axum::http::Method,
        counter: CountRequests,
    }
}

impl<F, E> std::future::Future for CountedFuture<F>
where
    F: std::future::Future<Output = Result<axum::response::Response, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &answer {
            let route = this.route.as_ref().map_or("unmatched", |r| r.as_str());
            let counter = &*this.counter;
            counter.metrics.request(
                route,
                this.method,
                response.status().as_u16(),
                counter.door,
                this.started.elapsed(),
            );
        }
        std::task::Poll::Ready(answer)
    }
}

/// Hashes an address: it is already unique, so one multiplication spreads it.
#[derive(Clone, Copy, Default)]
pub struct BuildAddressHasher;

impl std::hash::BuildHasher for BuildAddressHasher {
    type Hasher = AddressHasher;

    fn build_hasher(&self) -> AddressHasher {
        AddressHasher(0)
    }
}

pub struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn write_usize(&mut self, value: usize) {
        self.0 = (value as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `GET /metrics`: the Prometheus text format, without a credential (serve it on its
/// own address with `--metrics-listen` to keep it off the public one).
pub fn route(metrics: Arc<Metrics>) -> axum::routing::MethodRouter<crate::AppState> {
    axum::routing::get(
        move |axum::extract::State(app): axum::extract::State<crate::AppState>| async move {
            let text = metrics.render(&app);
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        },
    )
}
