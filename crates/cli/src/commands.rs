//! One function per command: gather the input, call the server or the store, print.

use crate::client::{self, Client, Session};
use crate::output::{self, KEY_COLUMNS, KEY_FIELDS, USER_COLUMNS};
use crate::settings::{ServeArgs, StoreArgs};
use crate::{AuditArgs, ClientArgs, KeysCommand, LoginArgs, UsersCommand};
use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    keyward_server::serve(args.resolve()?).await?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to standard error; `KEYWARD_LOG` (or `RUST_LOG`) picks the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYWARD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn open_store(args: StoreArgs) -> anyhow::Result<keyward_store::DynStore> {
    let url = args.database_url()?;
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(dir) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        }
    }
    Ok(keyward_store::open(&url).await?)
}

pub async fn bench_load(
    args: ServeArgs,
    count: u64,
    print: usize,
    prefix: &str,
) -> anyhow::Result<ExitCode> {
    let secrets = keyward_server::bulk::load_keys(&args.resolve()?, count, print, prefix).await?;
    for secret in secrets {
        println!("{}", secret.expose());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn migrate(args: StoreArgs) -> anyhow::Result<ExitCode> {
    // Opening a store applies its pending migrations, under the store's own lock.
    let store = open_store(args).await?;
    store.close().await;
    println!("migrations applied");
    Ok(ExitCode::SUCCESS)
}

/// Copies a SQLite store into an empty PostgreSQL one. Keys stay valid because their
/// keyed hashes are copied as stored: the PostgreSQL nodes need the same server secret.
pub async fn migrate_store(from: &str, to: &str) -> anyhow::Result<ExitCode> {
    let Some(path) = from.strip_prefix("sqlite://") else {
        anyhow::bail!("--from must be a SQLite URL: sqlite://DATA_DIR/keyward.db");
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        anyhow::bail!("--to must be a PostgreSQL URL: postgres://...");
    }
    if !std::path::Path::new(path).is_file() {
        anyhow::bail!("no SQLite database at {path}");
    }
    let source = keyward_store::SqliteStore::open(std::path::Path::new(path)).await?;
    let target = keyward_store::PostgresStore::connect(to).await?;
    let copied = keyward_store::copy_sqlite_to_postgres(&source, &target)
        .await
        .context("migrate-store copies into an empty database only")?;
    keyward_store::Store::close(&source).await;
    keyward_store::Store::close(&target).await;
    for (table, rows) in copied {
        println!("{table}: {rows} rows copied");
    }
    println!(
        "done: start the PostgreSQL nodes with the same server secret as the SQLite \
         deployment (its data directory's `secret` file, as KEYWARD_SECRET)"
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn create_tenant(
    args: StoreArgs,
    name: &str,
    admin_email: &str,
    admin_password: &str,
) -> anyhow::Result<ExitCode> {
    let store = open_store(args).await?;
    let result = keyward_server::create_tenant(&store, name, admin_email, admin_password).await;
    store.close().await;
    let (tenant, admin) = result?;
    println!(
        "created tenant '{}' ({}) with administrator {}",
        tenant.name, tenant.id, admin.email
    );
    Ok(ExitCode::SUCCESS)
}

// ---- Sessions ----

pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .client
        .url
        .clone()
        .ok_or_else(|| anyhow!("--url is required: the server to log in to"))?;
    let password = read_password(args.password_stdin)?;
    let client = Client::anonymous(&url)?;
    let reply = client
        .post(
            "/v0/auth/login",
            json!({"email": args.email, "password": password}),
        )
        .await?;
    let session = Session {
        url: client.url().to_string(),
        email: args.email.clone(),
        token: text(&reply, "token")?,
        expires_at: text(&reply, "expires_at")?,
    };
    let path = client::session_path(&args.client)?;
    client::save_session(&path, &session)?;
    if args.client.json {
        println!(
            "{}",
            json!({"url": session.url, "email": session.email, "expires_at": session.expires_at})
        );
    } else {
        println!(
            "logged in to {} as {} until {}",
            session.url, session.email, session.expires_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The password from standard input, `KEYWARD_PASSWORD`, or a prompt that does not echo.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    if let Ok(password) = std::env::var("KEYWARD_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password: use --password-stdin or KEYWARD_PASSWORD");
    }
    Ok(rpassword::prompt_password("Password: ")?)
}

pub fn logout(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let path = client::session_path(&args)?;
    match std::fs::remove_file(&path) {
        Ok(()) => println!("logged out"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => println!("not logged in"),
        Err(err) => return Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn me(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let reply = Client::from_args(&args)?.get("/v0/me").await?;
    print(&args, &reply, || {
        let summary = json!({
            "email": reply["user"]["email"],
            "role": reply["user"]["role"],
            "tenant": reply["tenant"]["name"],
            "key": reply["key"]["name"],
        });
        let fields = [
            ("email", "email"),
            ("role", "role"),
            ("tenant", "tenant"),
            ("via key", "key"),
        ];
        output::card(&fields, &summary)
    })
}

// ---- Keys ----

pub async fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            client,
            name,
            permissions,
            expires_at,
            expires_in,
            metadata,
            ratelimits,
            credits,
            refill,
            allow_ips,
        } => {
            let mut body = json!({"name": name});
            if !ratelimits.is_empty() {
                body["ratelimits"] = ratelimits
                    .iter()
                    .map(|text| rate_limit(text))
                    .collect::<anyhow::Result<Value>>()?;
            }
            if let Some(remaining) = credits {
                body["credits"] = json!({"remaining": remaining});
                if let Some(text) = refill {
                    body["credits"]["refill"] = refill_of(&text)?;
                }
            }
            if !allow_ips.is_empty() {
                body["ip_allowlist"] = json!(allow_ips);
            }
            if !permissions.is_empty() {
                body["permissions"] = json!(permissions);
            }
            if let Some(at) = expiry(expires_at, expires_in)? {
                body["expires_at"] = json!(at);
            }
            if let Some(text) = metadata {
                body["metadata"] = serde_json::from_str(&text)
                    .map_err(|e| anyhow!("--metadata is not JSON: {e}"))?;
            }
            let reply = Client::from_args(&client)?
                .post("/v0/api_keys", body)
                .await?;
            print(&client, &reply, || issued(&reply))
        }
        KeysCommand::List {
            client,
            offset,
            limit,
            all,
        } => {
            let path = format!("/v0/api_keys?offset={offset}&limit={limit}&include_revoked={all}");
            let reply = Client::from_args(&client)?.get(&path).await?;
            print(&client, &reply, || listing(KEY_COLUMNS, &reply))
        }
        KeysCommand::Credits {
            client,
            id,
            op,
            value,
        } => {
            let op = match op.as_str() {
                "add" => "increment",
                "sub" => "decrement",
                _ => "set",
            };
            let reply = Client::from_args(&client)?
                .post(
                    &format!("/v0/api_keys/{}/credits", path_segment(&id)?),
                    json!({"op": op, "value": value}),
                )
                .await?;
            print(&client, &reply, || {
                format!("credits left: {}", output::cell(&reply["remaining"]))
            })
        }
        KeysCommand::Usage {
            client,
            id,
            since,
            granularity,
        } => {
            let query: String = form_urlencoded::Serializer::new(String::new())
                .append_pair("key_id", path_segment(&id)?)
                .append_pair("since", &since)
                .append_pair("granularity", &granularity)
                .finish();
            let reply = Client::from_args(&client)?
                .get(&format!("/v0/analytics/verifications?{query}"))
                .await?;
            print(&client, &reply, || usage_table(&reply))
        }
        KeysCommand::Get { client, id } => {
            let reply = Client::from_args(&client)?
                .get(&format!("/v0/api_keys/{}", path_segment(&id)?))
                .await?;
            print(&client, &reply, || output::card(KEY_FIELDS, &reply))
        }
        KeysCommand::Revoke { client, id } => {
            let reply = Client::from_args(&client)?
                .delete(&format!("/v0/api_keys/{}", path_segment(&id)?))
                .await?;
            print(&client, &reply, || {
                format!(
                    "revoked {} ({})",
                    output::cell(&reply["name"]),
                    output::cell(&reply["id"])
                )
            })
        }
        KeysCommand::Rotate {
            client,
            id,
            grace_seconds,
        } => {
            let reply = Client::from_args(&client)?
                .post(
                    &format!("/v0/api_keys/{}/rotate", path_segment(&id)?),
                    json!({"grace_seconds": grace_seconds}),
                )
                .await?;
            print(&client, &reply, || {
                format!(
                    "{}\nthe previous secret works until {}",
                    issued(&reply),
                    output::cell(&reply["previous_expires_at"])
                )
            })
        }
        KeysCommand::Verify {
            client,
            key,
            permissions,
        } => verify(client, key, permissions).await,
    }
}

async fn verify(
    client: ClientArgs,
    key: String,
    permissions: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({"key": key});
    if let Some(query) = permissions {
        body["permissions"] = json!(query);
    }
    let reply = Client::from_args(&client)?
        .post("/v0/keys/verify", body)
        .await?;
    let valid = reply["valid"].as_bool() == Some(true);
    print(&client, &reply, || {
        if valid {
            format!(
                "VALID: {} ({})",
                output::cell(&reply["name"]),
                output::cell(&reply["key_id"])
            )
        } else {
            format!("not valid: {}", output::cell(&reply["code"]))
        }
    })?;
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A freshly issued key: the one time its secret is printed.
fn issued(reply: &Value) -> String {
    format!(
        "{}\n\nsecret (shown only now; store it safely): {}",
        output::card(KEY_FIELDS, reply),
        output::cell(&reply["api_key"])
    )
}

/// `--expires-at` as given, or now + `--expires-in`, as RFC 3339.
fn expiry(at: Option<String>, within: Option<String>) -> anyhow::Result<Option<String>> {
    if let Some(at) = at {
        OffsetDateTime::parse(&at, &Rfc3339)
            .map_err(|e| anyhow!("--expires-at '{at}' is not an RFC 3339 time: {e}"))?;
        return Ok(Some(at));
    }
    let Some(within) = within else {
        return Ok(None);
    };
    let at = OffsetDateTime::now_utc() + parse_duration(&within)?;
    Ok(Some(at.format(&Rfc3339)?))
}

/// `90s`, `15m`, `12h`, `30d`.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let unit_at = text.len().saturating_sub(1);
    let (number, unit) = text.split_at(unit_at);
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("'{text}' is not a duration: use 90s, 15m, 12h or 30d"),
    };
    let count: u64 = number
        .parse()
        .map_err(|_| anyhow!("'{text}' is not a duration: use 90s, 15m, 12h or 30d"))?;
    let seconds = count
        .checked_mul(seconds_per_unit)
        .filter(|s| *s > 0)
        .ok_or_else(|| anyhow!("'{text}' is not a usable duration"))?;
    Ok(Duration::from_secs(seconds))
}

/// `requests=100/60s`: a rate limit charged on every use.
fn rate_limit(text: &str) -> anyhow::Result<Value> {
    let usage = || anyhow!("--ratelimit '{text}': use NAME=LIMIT/DURATION, like requests=100/60s");
    let (name, rest) = text.split_once('=').ok_or_else(usage)?;
    let (limit, window) = rest.split_once('/').ok_or_else(usage)?;
    let limit: u64 = limit.parse().map_err(|_| usage())?;
    Ok(json!({
        "name": name,
        "limit": limit,
        "duration_seconds": parse_duration(window)?.as_secs(),
        "auto_apply": true,
    }))
}

/// `daily:1000`, `monthly:1000` or `monthly:1000:15` (on the 15th).
fn refill_of(text: &str) -> anyhow::Result<Value> {
    let usage = || anyhow!("--refill '{text}': use daily:AMOUNT or monthly:AMOUNT[:DAY]");
    let mut parts = text.split(':');
    let interval = parts.next().ok_or_else(usage)?;
    let amount: u64 = parts
        .next()
        .ok_or_else(usage)?
        .parse()
        .map_err(|_| usage())?;
    let day: Option<u8> = parts
        .next()
        .map(str::parse)
        .transpose()
        .map_err(|_| usage())?;
    if parts.next().is_some() || !matches!(interval, "daily" | "monthly") {
        return Err(usage());
    }
    let mut refill = json!({"amount": amount, "interval": interval});
    if let Some(day) = day {
        refill["day"] = json!(day);
    }
    Ok(refill)
}

/// Ids go into URL paths: refuse anything that would change the path.
fn path_segment(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("'{id}' is not an id");
    }
    Ok(id)
}

/// A key's usage series as a table: each bucket's total, valid and refusals by code.
fn usage_table(reply: &Value) -> String {
    let buckets = reply["series"][0]["buckets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Value> = buckets
        .iter()
        .map(|bucket| {
            let refused: Vec<String> = bucket
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(code, n)| {
                    !matches!(code.as_str(), "time" | "total" | "valid")
                        && n.as_u64().unwrap_or(0) > 0
                })
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            json!({
                "time": bucket["time"],
                "total": bucket["total"],
                "valid": bucket["valid"],
                "refused": if refused.is_empty() { Value::Null } else { refused.join(", ").into() },
            })
        })
        .collect();
    let columns = [
        ("TIME", "time"),
        ("TOTAL", "total"),
        ("VALID", "valid"),
        ("REFUSED", "refused"),
    ];
    output::table(&columns, &rows)
}

// ---- Users ----

pub async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Create {
            client,
            email,
            password,
            role,
            display_name,
        } => {
            let mut body = json!({"email": email, "password": password, "role": role});
            if let Some(name) = display_name {
                body["display_name"] = json!(name);
            }
            let reply = Client::from_args(&client)?.post("/v0/users", body).await?;
            print(&client, &reply, || {
                format!(
                    "created {} {} ({})",
                    output::cell(&reply["role"]),
                    output::cell(&reply["email"]),
                    output::cell(&reply["id"])
                )
            })
        }
        UsersCommand::List {
            client,
            offset,
            limit,
        } => {
            let path = format!("/v0/users?offset={offset}&limit={limit}");
            let reply = Client::from_args(&client)?.get(&path).await?;
            print(&client, &reply, || listing(USER_COLUMNS, &reply))
        }
    }
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("limit", &args.limit.to_string());
    let filters = [
        ("action", &args.action),
        ("actor_id", &args.actor_id),
        ("target_id", &args.target_id),
        ("since", &args.since),
        ("until", &args.until),
        ("cursor", &args.cursor),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let path = format!("/v0/audit?{}", query.finish());
    let reply = Client::from_args(&args.client)?.get(&path).await?;
    print(&args.client, &reply, || {
        let rows: Vec<Value> = reply["events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|event| {
                json!({
                    "time": event["time"],
                    "action": event["action"],
                    "actor": format!("{} {}", output::cell(&event["actor"]["type"]), output::cell(&event["actor"]["id"])),
                    "door": event["door"],
                    "target": format!("{} {}", output::cell(&event["target"]["type"]), output::cell(&event["target"]["id"])),
                    "changed": event["changes"].as_object().map(|c| c.keys().cloned().collect::<Vec<_>>().join(",")),
                })
            })
            .collect();
        let columns = [
            ("TIME", "time"),
            ("ACTION", "action"),
            ("ACTOR", "actor"),
            ("DOOR", "door"),
            ("TARGET", "target"),
            ("CHANGED", "changed"),
        ];
        let mut text = output::table(&columns, &rows);
        if let Some(next) = reply["next_cursor"].as_str() {
            text.push_str(&format!("\n(more: --cursor {next})"));
        }
        text
    })
}

// ---- Output ----

fn print(
    args: &ClientArgs,
    reply: &Value,
    human: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(reply)?);
    } else {
        println!("{}", human());
    }
    Ok(ExitCode::SUCCESS)
}

/// A page of a listing as a table, with where it sits in the whole.
fn listing(columns: &[(&str, &str)], page: &Value) -> String {
    let items = page["items"].as_array().cloned().unwrap_or_default();
    let offset = page["offset"].as_u64().unwrap_or(0);
    let total = page["total"].as_u64().unwrap_or(items.len() as u64);
    let shown = if items.is_empty() {
        format!("none of {total}")
    } else {
        format!("{}-{} of {total}", offset + 1, offset + items.len() as u64)
    };
    format!("{}\n({shown})", output::table(columns, &items))
}

fn text(reply: &Value, field: &str) -> anyhow::Result<String> {
    reply[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the server's answer has no '{field}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_garbage() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "d", "10", "10w", "-1h", "0s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_cannot_escape_the_path() {
        assert!(path_segment("0193a2b4-7c1d-7e00-8000-000000000000").is_ok());
        for bad in ["", "../users", "a/b", "a?b=c", "a b"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
