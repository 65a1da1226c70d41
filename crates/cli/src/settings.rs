//! The server's settings: flags, then `KEYWARD_*` environment variables (clap reads both),
//! then a TOML file, then defaults that work on a laptop.

use anyhow::Context;
use clap::Args;
use keyward_server::ServeConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store is: enough for `migrate` and `tenant create`.
#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// SQLite database and server secret live here.
    #[arg(long, env = "KEYWARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` to use PostgreSQL instead of SQLite.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// A TOML file with the same settings (`listen`, `data_dir`, ...).
    #[arg(long, env = "KEYWARD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to serve on.
    #[arg(long, env = "KEYWARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// The server secret, 64 hex characters, the same on every node.
    #[arg(long, env = "KEYWARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// The first administrator's email (first start only).
    #[arg(long, env = "KEYWARD_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// The first administrator's password (first start only; generated if absent).
    #[arg(long, env = "KEYWARD_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Lifetime of login tokens.
    #[arg(long, env = "KEYWARD_SESSION_TTL_SECONDS")]
    pub session_ttl_seconds: Option<u64>,
    /// Verified keys kept in memory per node.
    #[arg(long, env = "KEYWARD_CACHE_CAPACITY")]
    pub cache_capacity: Option<u64>,
    /// How often batched last-used times are written.
    #[arg(long, env = "KEYWARD_USAGE_FLUSH_SECONDS")]
    pub usage_flush_seconds: Option<u64>,
    /// Days the audit log keeps an event (default 365).
    #[arg(long, env = "KEYWARD_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Seconds a request's head may take from its first byte (default 10).
    #[arg(long, env = "KEYWARD_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: Option<u64>,
    /// Seconds a kept-alive connection may sit idle between requests (default 120).
    #[arg(long, env = "KEYWARD_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Seconds a request's body may take once its head has arrived (default 10).
    #[arg(long, env = "KEYWARD_BODY_READ_TIMEOUT_SECONDS")]
    pub body_read_timeout_seconds: Option<u64>,
    /// Client connections open at once (default 10000).
    #[arg(long, env = "KEYWARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// The largest request head in bytes (default 32768).
    #[arg(long, env = "KEYWARD_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Seconds a graceful stop waits for requests in flight (default 10).
    #[arg(long, env = "KEYWARD_SHUTDOWN_TIMEOUT_SECONDS")]
    pub shutdown_timeout_seconds: Option<u64>,
    /// Failed logins of one account within the window before more are refused (10).
    #[arg(long, env = "KEYWARD_LOGIN_FAILURES_PER_ACCOUNT")]
    pub login_failures_per_account: Option<u32>,
    /// Failed logins from one address within the window before more are refused (100).
    #[arg(long, env = "KEYWARD_LOGIN_FAILURES_PER_ADDRESS")]
    pub login_failures_per_address: Option<u32>,
    /// The window failed logins are counted in, in seconds (900).
    #[arg(long, env = "KEYWARD_LOGIN_THROTTLE_WINDOW_SECONDS")]
    pub login_throttle_window_seconds: Option<u64>,
    /// Proxies whose X-Forwarded-For names the client, as CIDRs: `10.0.0.0/8,::1`.
    #[arg(long, env = "KEYWARD_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Share rate limits and credits between nodes through Redis: `redis://host:6379`.
    #[arg(long, env = "KEYWARD_REDIS_URL")]
    pub redis_url: Option<String>,
    /// While Redis is unreachable, rate limits `open` (admit, the default) or `closed`.
    #[arg(long, env = "KEYWARD_RATE_LIMITS_WITHOUT_REDIS", value_parser = ["open", "closed"])]
    pub rate_limits_without_redis: Option<String>,
    /// While Redis is unreachable, credits `open` (admit) or `closed` (the default).
    #[arg(long, env = "KEYWARD_CREDITS_WITHOUT_REDIS", value_parser = ["open", "closed"])]
    pub credits_without_redis: Option<String>,
    /// Hours per-minute analytics buckets are kept (default 48).
    #[arg(long, env = "KEYWARD_ANALYTICS_MINUTE_RETENTION_HOURS")]
    pub analytics_minute_retention_hours: Option<u32>,
    /// Days hourly analytics buckets are kept (default 90).
    #[arg(long, env = "KEYWARD_ANALYTICS_HOUR_RETENTION_DAYS")]
    pub analytics_hour_retention_days: Option<u32>,
    /// Days daily analytics buckets are kept (default 731, two years).
    #[arg(long, env = "KEYWARD_ANALYTICS_DAY_RETENTION_DAYS")]
    pub analytics_day_retention_days: Option<u32>,
    /// Serve `/metrics` on this address only, instead of beside the API.
    #[arg(long, env = "KEYWARD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Forward-auth policies (TOML): routes to permissions, limits and key places.
    /// Read again on SIGHUP and when it changes.
    #[arg(long, env = "KEYWARD_GATEWAY_CONFIG")]
    pub gateway_config: Option<PathBuf>,
}

/// The TOML file: the same names as the flags, with underscores.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    secret: Option<String>,
    admin_email: Option<String>,
    admin_password: Option<String>,
    session_ttl_seconds: Option<u64>,
    cache_capacity: Option<u64>,
    usage_flush_seconds: Option<u64>,
    audit_retention_days: Option<u32>,
    header_read_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    body_read_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
    max_header_bytes: Option<usize>,
    shutdown_timeout_seconds: Option<u64>,
    login_failures_per_account: Option<u32>,
    login_failures_per_address: Option<u32>,
    login_throttle_window_seconds: Option<u64>,
    trusted_proxies: Option<String>,
    redis_url: Option<String>,
    rate_limits_without_redis: Option<String>,
    credits_without_redis: Option<String>,
    analytics_minute_retention_hours: Option<u32>,
    analytics_hour_retention_days: Option<u32>,
    analytics_day_retention_days: Option<u32>,
    metrics_listen: Option<SocketAddr>,
    gateway_config: Option<PathBuf>,
}

fn read_file(path: Option<&Path>) -> anyhow::Result<FileSettings> {
    let Some(path) = path else {
        return Ok(FileSettings::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in configuration file {}", path.display()))
}

impl ServeArgs {
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = read_file(self.store.config.as_deref())?;
        let listen = match self.listen.or(file.listen) {
            Some(addr) => addr,
            None => ServeConfig::DEFAULT_LISTEN.parse()?,
        };
        let data_dir = self
            .store
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(ServeConfig::DEFAULT_DATA_DIR));
        let mut config = ServeConfig::new(listen, data_dir);
        config.database_url = self.store.database_url.or(file.database_url);
        config.secret_hex = self.secret.or(file.secret);
        config.admin_email = self.admin_email.or(file.admin_email);
        config.admin_password = self.admin_password.or(file.admin_password);
        if let Some(seconds) = self.session_ttl_seconds.or(file.session_ttl_seconds) {
            config.session_ttl = positive_seconds("session TTL", seconds)?;
        }
        if let Some(capacity) = self.cache_capacity.or(file.cache_capacity) {
            config.cache_capacity = capacity;
        }
        if let Some(seconds) = self.usage_flush_seconds.or(file.usage_flush_seconds) {
            config.usage_flush_interval = positive_seconds("usage flush interval", seconds)?;
        }
        if let Some(days) = self.audit_retention_days.or(file.audit_retention_days) {
            anyhow::ensure!(days > 0, "the audit retention must be at least one day");
            config.audit_retention_days = days;
        }
        let limits = &mut config.limits;
        if let Some(s) = self
            .header_read_timeout_seconds
            .or(file.header_read_timeout_seconds)
        {
            limits.header_read_timeout = positive_seconds("header read timeout", s)?;
        }
        if let Some(s) = self.idle_timeout_seconds.or(file.idle_timeout_seconds) {
            limits.idle_timeout = positive_seconds("idle timeout", s)?;
        }
        if let Some(s) = self
            .body_read_timeout_seconds
            .or(file.body_read_timeout_seconds)
        {
            limits.body_read_timeout = positive_seconds("body read timeout", s)?;
        }
        if let Some(n) = self.max_connections.or(file.max_connections) {
            anyhow::ensure!(n > 0, "max connections must be at least one");
            limits.max_connections = n;
        }
        if let Some(n) = self.max_header_bytes.or(file.max_header_bytes) {
            anyhow::ensure!(
                n >= 8192,
                "max header bytes must be at least 8192 (hyper's smallest read buffer)"
            );
            limits.max_header_bytes = n;
        }
        if let Some(s) = self
            .shutdown_timeout_seconds
            .or(file.shutdown_timeout_seconds)
        {
            config.shutdown_timeout = positive_seconds("shutdown timeout", s)?;
        }
        let logins = &mut config.login_throttle;
        if let Some(n) = self
            .login_failures_per_account
            .or(file.login_failures_per_account)
        {
            anyhow::ensure!(n > 0, "login failures per account must be at least one");
            logins.per_account = n;
        }
        if let Some(n) = self
            .login_failures_per_address
            .or(file.login_failures_per_address)
        {
            anyhow::ensure!(n > 0, "login failures per address must be at least one");
            logins.per_address = n;
        }
        if let Some(s) = self
            .login_throttle_window_seconds
            .or(file.login_throttle_window_seconds)
        {
            logins.window = positive_seconds("login throttle window", s)?;
        }
        if let Some(list) = self.trusted_proxies.or(file.trusted_proxies) {
            config.trusted_proxies = list
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    keyward_core::limits::parse_network(entry).ok_or_else(|| {
                        anyhow::anyhow!("--trusted-proxies: '{entry}' is not a CIDR")
                    })
                })
                .collect::<anyhow::Result<_>>()?;
        }
        config.redis_url = self.redis_url.or(file.redis_url);
        let open = |flag: &str, value: Option<String>, default: bool| match value.as_deref() {
            None => Ok(default),
            Some("open") => Ok(true),
            Some("closed") => Ok(false),
            Some(other) => Err(anyhow::anyhow!("{flag}: '{other}' is not open or closed")),
        };
        config.limits_fail = keyward_app::limits::FailurePolicy {
            rate_limits_open: open(
                "rate_limits_without_redis",
                self.rate_limits_without_redis
                    .or(file.rate_limits_without_redis),
                true,
            )?,
            credits_open: open(
                "credits_without_redis",
                self.credits_without_redis.or(file.credits_without_redis),
                false,
            )?,
        };
        let keep = &mut config.analytics_retention;
        let at_least_one = |what: &str, n: u32| {
            anyhow::ensure!(n > 0, "{what} must be at least 1");
            Ok(i64::from(n))
        };
        if let Some(h) = self
            .analytics_minute_retention_hours
            .or(file.analytics_minute_retention_hours)
        {
            keep.minutes = at_least_one("analytics_minute_retention_hours", h)? * 3_600;
        }
        if let Some(d) = self
            .analytics_hour_retention_days
            .or(file.analytics_hour_retention_days)
        {
            keep.hours = at_least_one("analytics_hour_retention_days", d)? * 86_400;
        }
        if let Some(d) = self
            .analytics_day_retention_days
            .or(file.analytics_day_retention_days)
        {
            keep.days = at_least_one("analytics_day_retention_days", d)? * 86_400;
        }
        config.metrics_listen = self.metrics_listen.or(file.metrics_listen);
        config.gateway_config = self.gateway_config.or(file.gateway_config);
        Ok(config)
    }
}

impl StoreArgs {
    /// The database URL these settings point at.
    pub fn database_url(self) -> anyhow::Result<String> {
        ServeArgs {
            store: self,
            ..ServeArgs::default()
        }
        .resolve()
        .map(|config| config.effective_database_url())
    }
}

fn positive_seconds(what: &str, seconds: u64) -> anyhow::Result<Duration> {
    anyhow::ensure!(seconds > 0, "the {what} must be at least one second");
    Ok(Duration::from_secs(seconds))
}
