//! `keyward`: runs the server, administers a store, and talks to a running server.

mod client;
mod commands;
mod output;
mod settings;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "keyward",
    version,
    about = "API-key management and authentication server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (SQLite in the data directory unless --database-url is given).
    Serve(settings::ServeArgs),
    /// Apply the store's migrations and exit.
    Migrate(settings::StoreArgs),
    /// Copy a SQLite deployment into an empty PostgreSQL database, keeping every key valid.
    MigrateStore(MigrateStoreArgs),
    /// Manage tenants directly in the store (no server needed).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Log in to a running server and keep the session token for the other commands.
    Login(LoginArgs),
    /// Forget the stored session.
    Logout(ClientArgs),
    /// Show who the current credential is.
    Me(ClientArgs),
    /// Create, list, inspect, rotate, revoke and verify API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create and list users (administrators).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Read the audit log, newest first: the tenant's (administrators) or your own.
    Audit(AuditArgs),
    /// Load-test setup: store COUNT keys directly (one transaction per few thousand) and
    /// print the last one's secret. Hidden: it is for scripts/bench, not for operators.
    #[command(hide = true)]
    BenchLoad {
        #[command(flatten)]
        serve: settings::ServeArgs,
        #[arg(long)]
        count: u64,
        /// Key names are `PREFIX-0`, `PREFIX-1`, ...; use a new one for each load.
        #[arg(long, default_value = "bench")]
        prefix: String,
        /// How many of the last keys' secrets to print, one a line.
        #[arg(long, default_value_t = 1)]
        print: usize,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant with a default space and its first administrator.
    Create {
        #[command(flatten)]
        store: settings::StoreArgs,
        /// The tenant's unique name.
        #[arg(long)]
        name: String,
        #[arg(long = "tenant-admin-email")]
        admin_email: String,
        /// Prefer KEYWARD_TENANT_ADMIN_PASSWORD: flags show up in process lists.
        #[arg(
            long = "tenant-admin-password",
            env = "KEYWARD_TENANT_ADMIN_PASSWORD",
            hide_env_values = true
        )]
        admin_password: String,
    },
}

#[derive(Args)]
struct MigrateStoreArgs {
    /// The SQLite database to copy: `sqlite://DATA_DIR/keyward.db`.
    #[arg(long)]
    from: String,
    /// The PostgreSQL database to fill (`postgres://...`); it must hold no tenant yet.
    #[arg(long, hide_env_values = true)]
    to: String,
}

/// Where the server is and how the client reads and writes its session.
#[derive(Args, Clone)]
struct ClientArgs {
    /// The server's URL (default: the one you logged in to).
    #[arg(long, env = "KEYWARD_URL")]
    url: Option<String>,
    /// A session token or API key to use instead of the stored session.
    #[arg(long, env = "KEYWARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The client's session file (default: ~/.config/keyward/client.toml).
    #[arg(long, env = "KEYWARD_CLIENT_CONFIG")]
    client_config: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LoginArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[arg(long)]
    email: String,
    /// Read the password from standard input (else KEYWARD_PASSWORD, else a prompt).
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed this once.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        name: String,
        /// A permission (repeatable): `invoices.read`, `data.*`, `fabric/_system:ro`.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// When the key stops working (RFC 3339).
        #[arg(long, conflicts_with = "expires_in")]
        expires_at: Option<String>,
        /// How long the key works: `90s`, `15m`, `12h`, `30d`.
        #[arg(long)]
        expires_in: Option<String>,
        /// Free JSON attributes.
        #[arg(long)]
        metadata: Option<String>,
        /// A rate limit charged on every use (repeatable): `requests=100/60s`.
        #[arg(long = "ratelimit")]
        ratelimits: Vec<String>,
        /// Usage credits: each verification spends one (none: unlimited).
        #[arg(long)]
        credits: Option<u64>,
        /// Refills the credits: `daily:1000`, `monthly:1000` or `monthly:1000:15`.
        #[arg(long, requires = "credits")]
        refill: Option<String>,
        /// An address or network the key may be used from (repeatable): `10.0.0.0/8`.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
    },
    /// Change a key's credits: `set`, `add` or `sub` N; prints what is left.
    Credits {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        #[arg(value_parser = ["set", "add", "sub"])]
        op: String,
        value: u64,
    },
    /// List keys, newest first (never their secrets).
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
    },
    /// Show one key.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
    /// A key's verifications over time, by outcome.
    Usage {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        /// From when: a span before now (`90m`, `24h`, `7d`), RFC 3339, or Unix seconds.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Bucket width.
        #[arg(long, default_value = "hour", value_parser = ["minute", "hour", "day"])]
        granularity: String,
    },
    /// Revoke a key: refused from the next request on.
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
    },
    /// Give a key a new secret; the old one works for the grace period only.
    Rotate {
        #[command(flatten)]
        client: ClientArgs,
        id: String,
        #[arg(long, default_value_t = 0)]
        grace_seconds: u64,
    },
    /// Check a key (exit status 0 when valid, 1 otherwise).
    Verify {
        #[command(flatten)]
        client: ClientArgs,
        key: String,
        /// Required permissions, such as `a AND (b OR c)`.
        #[arg(long)]
        permissions: Option<String>,
    },
}

#[derive(clap::Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only this action, such as `key.revoked`.
    #[arg(long)]
    pub action: Option<String>,
    /// Only events made by this user or key (id).
    #[arg(long)]
    pub actor_id: Option<String>,
    /// Only events about this key, user or space (id).
    #[arg(long)]
    pub target_id: Option<String>,
    /// From this time on (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Where to continue: the cursor a previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long)]
        email: String,
        /// Prefer KEYWARD_NEW_USER_PASSWORD: flags show up in process lists.
        #[arg(long, env = "KEYWARD_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "member")]
        role: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users.
    List {
        #[command(flatten)]
        client: ClientArgs,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the runtime: {err}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(err) => fail(&err),
    }
}

/// Errors are one line on standard error and a non-zero exit.
fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("keyward: error: {err:#}");
    ExitCode::FAILURE
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    use commands::*;
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::MigrateStore(MigrateStoreArgs { from, to }) => migrate_store(&from, &to).await,
        Command::Tenant(TenantCommand::Create {
            store,
            name,
            admin_email,
            admin_password,
        }) => create_tenant(store, &name, &admin_email, &admin_password).await,
        Command::Login(args) => login(args).await,
        Command::Logout(args) => logout(args),
        Command::Me(args) => me(args).await,
        Command::Keys(command) => keys(command).await,
        Command::Users(command) => users(command).await,
        Command::Audit(args) => audit(args).await,
        Command::BenchLoad {
            serve,
            count,
            prefix,
            print,
        } => bench_load(serve, count, print, &prefix).await,
    }
}
