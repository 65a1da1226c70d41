//! Starting and stopping a node: the data directory, the server secret, the first
//! tenant, the listener, the usage flusher and graceful shutdown.

use crate::config::ServeConfig;
use anyhow::Context;
use keyward_app::sessions::Sessions;
use keyward_app::{Keyward, Verifier};
use keyward_core::{KeyHasher, ServerSecret, Tenant, User};
use keyward_store::DynStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const DEFAULT_ADMIN_EMAIL: &str = "admin@keyward.local";
pub const DEFAULT_TENANT: &str = "default";
pub use keyward_app::DEFAULT_SPACE;

/// A node that is up and serving.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has an address of its own.
    pub metrics_addr: Option<SocketAddr>,
    gateway: Arc<crate::gateway::GatewayPolicy>,
    /// The routes this node serves, for driving it without a socket (the fuzzer).
    router: axum::Router,
    pub app: Arc<Keyward>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// Every door's routes as this node serves them.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Reads the forward-auth policy file again (as SIGHUP does): a bad file is
    /// refused and the policy in force stays.
    pub fn reload_gateway(&self) -> anyhow::Result<usize> {
        self.gateway.reload()
    }

    /// Stops accepting, lets in-flight requests finish, flushes counters, closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("server task panicked")?
    }

    /// Runs until the process gets SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        wait_for_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await
    }
}

/// Opens the store, prepares the first tenant if the store is empty, binds the
/// listener and starts serving. Prints the first administrator's credentials (once,
/// to standard output) when it had to generate them.
pub async fn start(config: ServeConfig) -> anyhow::Result<RunningServer> {
    private_data_dir(&config)?;
    let secret = load_or_create_secret(&config)?;
    let store = keyward_store::open(&config.effective_database_url()).await?;
    bootstrap(&store, &config).await?;
    let gateway = Arc::new(
        crate::gateway::GatewayPolicy::load(config.gateway_config.clone())
            .context("--gateway-config")?,
    );
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let observer = metrics.clone();
    let store = keyward_store::metered::Metered::wrap(
        store,
        Arc::new(move |operation, took, failed| observer.store_call(operation, took, failed)),
    );
    let clock = config.clock.clone();
    let verifier = Verifier::with_clock(
        KeyHasher::new(&secret),
        store.clone(),
        config.cache_capacity,
        clock.clone(),
    );
    let sessions = Sessions::new(&secret, config.session_ttl);
    let mut app = Keyward::new(store, Arc::new(verifier), sessions, clock)
        .with_login_throttle(config.login_throttle)
        .with_trusted_proxies(config.trusted_proxies.clone())
        .with_retention(config.analytics_retention);
    if let Some(url) = &config.redis_url {
        let counters = keyward_app::redis_counters::RedisCounters::new(url)?;
        app = app.with_counters(Arc::new(counters), config.limits_fail);
        tracing::info!("rate limits and credits are shared through Redis");
    }
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let (limits, shutdown_timeout) = (config.limits, config.shutdown_timeout);
    let flusher = spawn_usage_flusher(
        app.clone(),
        metrics.clone(),
        config.usage_flush_interval,
        stopped.clone(),
    );
    let follower = spawn_change_follower(app.clone(), metrics.clone(), stopped.clone()).await?;
    let pruner = spawn_pruner(app.clone(), config.audit_retention_days, stopped.clone());
    let reloader = spawn_policy_reloader(gateway.clone(), stopped.clone())?;
    let (router, metrics_addr, metrics_task) = match config.metrics_listen {
        None => (
            crate::router(app.clone(), metrics.clone(), gateway.clone(), true),
            None,
            None,
        ),
        Some(address) => {
            let metrics_listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?;
            let metrics_addr = metrics_listener.local_addr()?;
            let only_metrics = crate::metrics_router(app.clone(), metrics.clone());
            let stopped = stopped.clone();
            let task = tokio::spawn(serve_connections(
                metrics_listener,
                only_metrics,
                stopped,
                limits,
                shutdown_timeout,
            ));
            let router = crate::router(app.clone(), metrics.clone(), gateway.clone(), false);
            (router, Some(metrics_addr), Some(task))
        }
    };
    let serving_app = app.clone();
    let served = router.clone();
    let task = tokio::spawn(async move {
        serve_connections(listener, served, stopped, limits, shutdown_timeout).await;
        if let Some(task) = metrics_task {
            task.await.ok();
        }
        flusher.await.ok();
        reloader.await.ok();
        follower.await.ok();
        pruner.await.ok();
        serving_app.close().await;
        Ok(())
    });
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        gateway,
        router,
        app,
        stop,
        task,
    })
}

/// Serves every connection accepted until `stopped`, then lets each finish the request
/// it is answering before returning (hyper's graceful shutdown: idle keep-alive
/// connections close at once), for `shutdown_timeout` at most. Each connection is a task
/// with a memory of its own (`connection.rs`). HTTP/1.1 only, as axum::serve spoke it
/// here before: a TLS terminator in front speaks HTTP/1.1 to its upstreams.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
    limits: crate::ConnectionLimits,
    shutdown_timeout: std::time::Duration,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A request is answered even when the client has closed its sending side: hyper
    // otherwise reads on while the handler runs, to notice that end, and drops the
    // handler mid-way (a key created, or a transaction cut, with no answer). That read
    // also needs a new 8 KiB buffer per request whenever the request still holds the
    // last one (any handler with a body or headers to read): a malloc and a free on
    // every verification. A client that goes away is noticed when its answer is written.
    builder.half_close(true);
    // A client that sends a head slowly, or nothing at all, or sits on a kept-alive
    // connection, is closed by the connection's watchdog (`watchdog.rs`), not by
    // hyper's header-read timer, which would bound idle connections by the same figure.
    builder
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let deadlines = crate::watchdog::Deadlines {
        header_read: limits.header_read_timeout,
        idle: limits.idle_timeout,
    };
    let open = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        // At the cap, stop accepting: new connections wait in the kernel's backlog
        // rather than each costing a task and a file descriptor here.
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    refused_connection(err).await;
                    continue;
                }
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let (stream, service, watchdog) = crate::watchdog::watch(stream, service, deadlines);
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let this = crate::connection::Connection {
            peer: Some(peer.ip()),
            body_read_timeout: Some(limits.body_read_timeout),
        };
        tokio::spawn(crate::connection::scope_with(this, async move {
            // The connection first: the watchdog only looks a few times per deadline.
            tokio::select! {
                biased;
                ended = connection => if let Err(err) = ended {
                    tracing::debug!(%err, "a connection ended with an error");
                },
                () = watchdog => {}
            }
            drop(permit);
        }));
    }
    drop(listener);
    if tokio::time::timeout(shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = shutdown_timeout.as_secs_f64(),
            "requests still in flight at the shutdown deadline; closing their connections"
        );
    }
}

/// After a failed accept: a connection the peer gave up on is no concern; anything
/// else (out of file descriptors, say) is logged, and accepting pauses for a moment
/// rather than spinning on the same error.
async fn refused_connection(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%err, "cannot accept connections; retrying in a second");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
}

/// Resolves once `stopped` says so, or once nobody can say so any more.
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// Applies every node's key and owner changes to this node's cache. Subscribing before
/// serving means no change committed after the first request goes unheard.
async fn spawn_change_follower(
    app: Arc<Keyward>,
    metrics: Arc<crate::metrics::Metrics>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut feed = app.subscribe_changes().await?;
    Ok(tokio::spawn(async move {
        let mut lags = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                event = feed.recv() => match event {
                    Some(event) => {
                        if event == keyward_store::ChangeEvent::Resumed {
                            metrics.listener_reconnected();
                        }
                        app.apply_change(event)
                    }
                    None => {
                        tracing::error!("the change feed ended; caching stops on this node");
                        app.apply_change(keyward_store::ChangeEvent::Lost);
                        return;
                    }
                },
                _ = lags.tick() => {
                    for lag in feed.take_lags() {
                        metrics.notice_heard(lag);
                    }
                }
                _ = stopped.changed() => return,
            }
        }
    }))
}

fn spawn_usage_flusher(
    app: Arc<Keyward>,
    metrics: Arc<crate::metrics::Metrics>,
    every: std::time::Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let started = std::time::Instant::now();
                    match app.flush_usage().await {
                        Ok(flushed) => metrics.flushed(started.elapsed(), Some(flushed.rows())),
                        Err(err) => {
                            metrics.flushed(started.elapsed(), None);
                            tracing::warn!(%err, "could not flush usage counters; will retry");
                        }
                    }
                }
                _ = stopped.changed() => return,
            }
        }
    })
}

/// Reads the forward-auth policy file again on SIGHUP and whenever it changes (its
/// modification time or size, looked at every second). A bad file is logged with its
/// line and the policy in force stays.
fn spawn_policy_reloader(
    gateway: Arc<crate::gateway::GatewayPolicy>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let stamp = |path: &std::path::Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    Ok(tokio::spawn(async move {
        let Some(path) = gateway.path.clone() else {
            let _ = stopped.changed().await;
            return;
        };
        let mut seen = stamp(&path);
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = hangups.recv() => {}
                _ = ticker.tick() => {
                    let now = stamp(&path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
                _ = stopped.changed() => return,
            }
            match gateway.reload() {
                Ok(routes) => {
                    tracing::info!(routes, path = %path.display(), "gateway policy reloaded")
                }
                Err(err) => tracing::error!("{err:#}; the policy in force stays"),
            }
        }
    }))
}

/// Deletes audit events and analytics buckets past their retention, once at start and
/// then hourly. Every node does it; deleting what another node already deleted is
/// harmless.
fn spawn_pruner(
    app: Arc<Keyward>,
    days: u32,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(3600));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Minute buckets pass their retention every minute; pruned every ten.
        let mut analytics = tokio::time::interval(std::time::Duration::from_secs(600));
        analytics.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => match app.prune_audit(days).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, days, "audit events past retention deleted"),
                    Err(err) => tracing::warn!(%err, "could not prune the audit log; will retry"),
                },
                _ = analytics.tick() => match app.prune_analytics().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "analytics buckets past retention deleted"),
                    Err(err) => tracing::warn!(%err, "could not prune analytics; will retry"),
                },
                _ = stopped.changed() => return,
            }
        }
    })
}

/// Creates the data directory readable by its owner only (it holds the database, with
/// emails and password hashes, and the server secret), and the SQLite database file
/// likewise before SQLite opens it (its WAL and shared-memory files take the database
/// file's mode). Warns about an existing directory or file that others may read.
pub(crate) fn private_data_dir(config: &ServeConfig) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        }
        let database = dir.join("keyward.db");
        if config.database_url.is_none() && !database.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&database)
                .with_context(|| format!("cannot create {}", database.display()))?;
        }
        let mut paths = vec![dir.to_path_buf()];
        for entry in std::fs::read_dir(dir)?.flatten() {
            paths.push(entry.path());
        }
        for path in paths {
            let mode = std::fs::metadata(&path)?.mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "others may read this; Keyward keeps emails, password hashes and its \
                     secret here: chmod go-rwx"
                );
            }
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    Ok(())
}

/// The server secret: from the configuration, else from `data_dir/secret`, else a new
/// one written there readable by the owner only.
pub(crate) fn load_or_create_secret(config: &ServeConfig) -> anyhow::Result<ServerSecret> {
    if let Some(hex) = &config.secret_hex {
        return ServerSecret::from_hex(hex).map_err(|e| anyhow::anyhow!("KEYWARD_SECRET: {e}"));
    }
    let path = config.data_dir.join("secret");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return ServerSecret::from_hex(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let secret = ServerSecret::generate();
    write_private_file(&path, &secret.to_hex())?;
    Ok(secret)
}

/// Writes a file that only its owner may read (mode 0600 from the start).
pub fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// On an empty store, creates the default tenant, its default space and its first
/// administrator.
pub(crate) async fn bootstrap(store: &DynStore, config: &ServeConfig) -> anyhow::Result<()> {
    if store.tenant_count().await? > 0 {
        return Ok(());
    }
    let email = config
        .admin_email
        .clone()
        .unwrap_or_else(|| DEFAULT_ADMIN_EMAIL.to_string());
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.clone(), false),
        None => (
            keyward_core::random::string_from(
                b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
                20,
            ),
            true,
        ),
    };
    if let Err(err) = create_tenant(store, DEFAULT_TENANT, &email, &password).await {
        // Several nodes starting at once on an empty database: one of them wins (the
        // tenant name is unique), and the others carry on with its tenant.
        if store.tenant_count().await? > 0 {
            tracing::info!("another node created the first tenant");
            return Ok(());
        }
        return Err(err);
    }
    // Standard output, not the log: a person reads it once at first start.
    println!("Keyward: created tenant '{DEFAULT_TENANT}' with administrator {email}");
    if generated {
        println!("Keyward: log in with email {email} and password {password}");
        println!("Keyward: this password is shown only now; change it or set KEYWARD_ADMIN_PASSWORD on first start");
    }
    Ok(())
}

/// Creates a tenant with a default space and an administrator (also used by
/// `keyward tenant create`).
pub async fn create_tenant(
    store: &DynStore,
    name: &str,
    admin_email: &str,
    admin_password: &str,
) -> anyhow::Result<(Tenant, User)> {
    keyward_app::create_tenant(store, name, admin_email, admin_password)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs `keyward serve` until a signal.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let running = start(config).await?;
    println!("Keyward listening on http://{}", running.addr);
    running.run_until_signal().await
}
