//! What `keyward serve` needs to run. The CLI fills it from flags, `KEYWARD_*`
//! environment variables and a TOML file, in that order of precedence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone)]
pub struct ServeConfig {
    /// Where to listen (`127.0.0.1:8080` by default).
    pub listen: SocketAddr,
    /// Holds the SQLite database and the server secret file.
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL instead of SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The server secret as 64 hex characters; read from or written to
    /// `data_dir/secret` when absent.
    pub secret_hex: Option<String>,
    /// The first administrator, created on first start with an empty database.
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
    /// How long a login session (JWT) lasts.
    pub session_ttl: Duration,
    /// How many verified keys each node keeps in memory: about 0.85 KB each, so the
    /// default bounds the cache near 85 MiB (see docs/benchmarks.md).
    pub cache_capacity: u64,
    /// How often batched last-used times and counters are written.
    pub usage_flush_interval: Duration,
    /// How long audit events are kept; older ones are deleted in the background.
    pub audit_retention_days: u32,
    /// What one client connection may hold and for how long.
    pub limits: ConnectionLimits,
    /// How long a graceful stop waits for requests in flight before closing their
    /// connections.
    pub shutdown_timeout: Duration,
    /// Failed logins allowed per account and per address within a window.
    pub login_throttle: keyward_app::auth::LoginThrottle,
    /// Proxies in front of the node whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `redis://...`: rate limits and credits shared by every node through Redis;
    /// without it each node counts alone.
    pub redis_url: Option<String>,
    /// Whether rate limits and credits admit (open) or refuse (closed) while Redis
    /// cannot be reached.
    pub limits_fail: keyward_app::limits::FailurePolicy,
    /// How long analytics buckets of each granularity are kept.
    pub analytics_retention: keyward_core::analytics::Retention,
    /// The forward-auth policy file (`--gateway-config`); without it, the default
    /// policy (a key required, its auto-applied limits, one credit).
    pub gateway_config: Option<PathBuf>,
    /// Where `/metrics` is served: `None` beside the API, or only on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// The node's source of "now": the system's, or one a test moves by hand (refills
    /// at a day's boundary without waiting for it).
    pub clock: std::sync::Arc<dyn keyward_app::Clock>,
}

/// Bounds on what clients can make a node hold: every one has a flag and a default.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// A request's head must arrive within this, counted from its first bytes (or, for
    /// a connection's first request, from the accept).
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this long.
    /// Longer than proxies keep idle upstream connections by default (nginx 60 s,
    /// Traefik 90 s), so that they close first rather than send on a connection that
    /// is being closed here.
    pub idle_timeout: Duration,
    /// A request's body must arrive within this once its head has.
    pub body_read_timeout: Duration,
    /// Connections open at once; past it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// The largest request head (and so the buffer a connection may grow to).
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_header_bytes: 32 * 1024,
        }
    }
}

impl ServeConfig {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_DATA_DIR: &'static str = "./keyward-data";

    /// The defaults that work on a laptop.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeConfig {
            listen,
            data_dir,
            database_url: None,
            secret_hex: None,
            admin_email: None,
            admin_password: None,
            session_ttl: Duration::from_secs(3600),
            cache_capacity: 100_000,
            usage_flush_interval: Duration::from_secs(5),
            audit_retention_days: 365,
            limits: ConnectionLimits::default(),
            shutdown_timeout: Duration::from_secs(10),
            login_throttle: keyward_app::auth::LoginThrottle::default(),
            trusted_proxies: Vec::new(),
            redis_url: None,
            limits_fail: keyward_app::limits::FailurePolicy::default(),
            analytics_retention: Default::default(),
            metrics_listen: None,
            gateway_config: None,
            clock: std::sync::Arc::new(keyward_app::SystemClock),
        }
    }

    /// The database URL in effect: PostgreSQL if given, else SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("keyward.db").display()),
        }
    }
}
