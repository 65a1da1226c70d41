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
    /// Handles per route template, then per (method, status, door).
    routes: RwLock<HashMap<Box<str>, Vec<RouteHandles>>>,
    flush: FlushHandles,
    changes: ChangeHandles,
    started: Instant,
}

struct RouteHandles {
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
        {
            let routes = self.routes.read().expect("routes lock");
            if let Some(h) = routes.get(route).and_then(|list| {
                list.iter()
                    .find(|h| h.status == status && h.door == door && h.method == method)
            }) {
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
        routes.entry(route.into()).or_default().push(handles);
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

/// Counts a request of a door's routes: its route template (`MatchedPath`), method,
/// status and how long it took.
pub async fn count_request(
    axum::extract::State((metrics, door)): axum::extract::State<(Arc<Metrics>, Door)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    metrics.request(
        route,
        &method,
        response.status().as_u16(),
        door,
        started.elapsed(),
    );
    response
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
