//! The Octopus Deploy door: `/api/users/...`, `/api/spaces`, `X-Octopus-ApiKey`.
//!
//! Octopus ids are the core's small numbers (`Users-<seq>`, `Spaces-<seq>`,
//! `APIKeys-<seq>`). Keys made here have Octopus's `API-...` shape and, like every key,
//! work through every door. Only self-service key creation exists, as in Octopus.

mod wire;

use crate::door::{Also, Authed, DoorShape, Params, QueryOf};
use crate::error::Failure;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use keyward_app::NewKey;
use keyward_core::{Door, KeyShape, Page, Paged, Principal, User};
use keyward_store::KeyFilter;
use serde::Deserialize;
use serde_json::Value;
use std::future::Future;
use time::OffsetDateTime;
use wire::{parse_seq, OctopusError, API_KEYS, SPACES, USERS};

type Reply = Result<Json<Value>, OctopusError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api", octopus(get(root)))
        .route("/api/users", octopus(get(list_users)))
        .route("/api/users/all", octopus(get(all_users)))
        .route("/api/users/me", octopus(get(me)))
        .route("/api/users/{user}", octopus(get(get_user)))
        .route(
            "/api/users/{user}/apikeys",
            octopus(get(list_keys).post(create_key)),
        )
        .route(
            "/api/users/{user}/apikeys/{key}",
            octopus(get(get_key).delete(revoke_key)),
        )
        .route("/api/spaces", octopus(get(list_spaces)))
        .route("/api/spaces/{space}", octopus(get(get_space)))
        .route("/api/{space}", octopus(get(space_home)))
}

/// A route whose other methods get Octopus's 405 rather than the native one.
fn octopus(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(|| async { wire::method_not_allowed() })
}

// ---- Requests ----

/// Octopus's door: any header the server reads, or Octopus's `?apikey=`; errors in
/// Octopus's shape.
pub struct Octo;

impl DoorShape for Octo {
    const DOOR: Door = Door::Octopus;
    type Error = OctopusError;
    const NO_CREDENTIAL: &'static str = "send your API key in the X-Octopus-ApiKey header";
    const ALSO: Also = Also::QueryKey;
}

#[derive(Deserialize)]
struct ListQuery {
    skip: Option<u64>,
    take: Option<u64>,
    filter: Option<String>,
    ids: Option<String>,
    #[serde(rename = "partialName")]
    partial_name: Option<String>,
    name: Option<String>,
}

impl ListQuery {
    fn page(&self) -> Page {
        Page::new(
            self.skip.unwrap_or(0),
            self.take.unwrap_or(wire::DEFAULT_TAKE),
        )
    }

    /// Whether an item's id (its seq) is among `ids`, when `ids` is given.
    fn wants_seq(&self, seq: i64, prefix: &str) -> bool {
        self.ids.as_deref().is_none_or(|ids| {
            ids.split(',')
                .any(|id| parse_seq(id.trim(), prefix) == Some(seq))
        })
    }
}

/// The seq in an id of this kind; anything else is a resource that does not exist.
fn seq_of(id: &str, prefix: &str, what: &str) -> Result<i64, Failure> {
    parse_seq(id, prefix).ok_or_else(|| Failure::NoSuch(format!("{what} '{id}'")))
}

#[derive(Deserialize)]
struct CreateApiKey {
    #[serde(rename = "Purpose")]
    purpose: Option<String>,
    #[serde(rename = "Expires")]
    expires: Option<String>,
}

/// `Expires` as clients write it: ISO-8601 with an offset, or without one (UTC), or
/// a bare date (midnight UTC).
fn expires(text: &str) -> Result<OffsetDateTime, Failure> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let text = text.trim();
    OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| {
            time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc())
        })
        .or_else(|_| time::Date::parse(text, &Iso8601::DEFAULT).map(|d| d.midnight().assume_utc()))
        .map_err(|_| Failure::Validation {
            field: "Expires".into(),
            message: format!(
                "Expires '{text}' is not a date and time; use ISO-8601, for example \
                 2027-01-01T00:00:00+00:00"
            ),
        })
}

// ---- Listing helpers ----

/// Every item of a paged source, a page at a time.
async fn every<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Failure>
where
    F: FnMut(Page) -> Fut,
    Fut: Future<Output = Result<Paged<T>, keyward_app::AppError>>,
{
    let mut all = Vec::new();
    loop {
        let page = fetch(Page::new(all.len() as u64, Page::MAX_LIMIT)).await?;
        let done = page.items.is_empty() || all.len() + page.items.len() >= page.total as usize;
        all.extend(page.items);
        if done {
            return Ok(all);
        }
    }
}

/// One page of an already filtered list.
fn page_of<T>(items: Vec<T>, page: Page) -> Paged<T> {
    let total = items.len() as u64;
    let items = items
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect();
    Paged { items, total }
}

fn contains_folded(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

// ---- Root and spaces ----

async fn root(State(app): State<AppState>) -> Json<Value> {
    Json(wire::root(installation_id(&app)))
}

/// A stable id for this installation that reveals nothing: derived from the server
/// secret, which every node of a cluster shares.
fn installation_id(app: &AppState) -> uuid::Uuid {
    let hash = app.deployment_id("octopus installation id");
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

async fn list_spaces(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    QueryOf(q, _): QueryOf<Octo, ListQuery>,
) -> Reply {
    let spaces = every(|page| app.list_spaces(&principal, page)).await?;
    let default_seq = spaces.iter().map(|s| s.seq).min();
    let wanted = spaces
        .into_iter()
        .filter(|s| q.wants_seq(s.seq, SPACES))
        .filter(|s| {
            q.name
                .as_deref()
                .is_none_or(|n| s.name.eq_ignore_ascii_case(n))
        })
        .filter(|s| {
            q.partial_name
                .as_deref()
                .is_none_or(|n| contains_folded(&s.name, n))
        })
        .collect();
    let page = q.page();
    let paged = page_of(wanted, page);
    let items = paged
        .items
        .iter()
        .map(|s| wire::space(s, Some(s.seq) == default_seq))
        .collect();
    Ok(Json(wire::collection(
        "Space",
        "/api/spaces",
        items,
        paged.total,
        page,
    )))
}

async fn get_space(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(id, _): Params<Octo, String>,
) -> Reply {
    let space = app
        .space_by_seq(&principal, seq_of(&id, SPACES, "space")?)
        .await?;
    let first = app.list_spaces(&principal, Page::new(0, 1)).await?;
    let is_default = first.items.first().is_some_and(|s| s.seq == space.seq);
    Ok(Json(wire::space(&space, is_default)))
}

async fn space_home(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(id, _): Params<Octo, String>,
) -> Reply {
    let space = app
        .space_by_seq(&principal, seq_of(&id, SPACES, "space")?)
        .await?;
    Ok(Json(wire::space_home(&space)))
}

// ---- Users ----

async fn all_users(State(app): State<AppState>, Authed(principal, _): Authed<Octo>) -> Reply {
    let users = every(|page| app.list_users(&principal, page)).await?;
    let items = users
        .iter()
        .map(|u| wire::user(u, &principal.user))
        .collect();
    Ok(Json(Value::Array(items)))
}

async fn list_users(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    QueryOf(q, _): QueryOf<Octo, ListQuery>,
) -> Reply {
    let page = q.page();
    let paged = if q.filter.is_none() && q.ids.is_none() {
        app.list_users(&principal, page).await?
    } else {
        let users = every(|page| app.list_users(&principal, page)).await?;
        let wanted = users
            .into_iter()
            .filter(|u| q.wants_seq(u.seq, USERS))
            .filter(|u| q.filter.as_deref().is_none_or(|f| matches_filter(u, f)))
            .collect();
        page_of(wanted, page)
    };
    let items = paged
        .items
        .iter()
        .map(|u| wire::user(u, &principal.user))
        .collect();
    Ok(Json(wire::collection(
        "User",
        "/api/users",
        items,
        paged.total,
        page,
    )))
}

fn matches_filter(user: &User, filter: &str) -> bool {
    [&user.username, &user.display_name, &user.email]
        .into_iter()
        .any(|field| contains_folded(field, filter))
}

async fn me(Authed(principal, _): Authed<Octo>) -> Reply {
    Ok(Json(wire::user(&principal.user, &principal.user)))
}

async fn get_user(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(id, _): Params<Octo, String>,
) -> Reply {
    let user = user_named(&app, &principal, &id).await?;
    Ok(Json(wire::user(&user, &principal.user)))
}

async fn user_named(app: &AppState, principal: &Principal, id: &str) -> Result<User, Failure> {
    Ok(app
        .user_by_seq(principal, seq_of(id, USERS, "user")?)
        .await?)
}

// ---- API keys ----

async fn create_key(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(id, _): Params<Octo, String>,
    request: Request,
) -> Result<impl IntoResponse, OctopusError> {
    let owner = user_named(&app, &principal, &id).await?;
    // JSON whatever the Content-Type: the seed's PowerShell sends none.
    let body: CreateApiKey =
        crate::body::parse_json(&crate::body::read_body(request.into_body()).await?)?;
    let request = NewKey {
        // A missing Purpose is a blank one; the core says why that is refused.
        name: body.purpose.unwrap_or_default(),
        grants: None,
        expires_at: body.expires.as_deref().map(expires).transpose()?,
        metadata: Default::default(),
        owner: Some(owner.id),
        door: Door::Octopus,
        shape: KeyShape::Octopus,
        limits: Default::default(),
        credits: None,
    };
    let issued = app.create_own_key(&principal, owner.id, request).await?;
    let body = wire::created_key(&issued.key, owner.seq, issued.secret.expose());
    Ok((StatusCode::CREATED, Json(body)))
}

async fn list_keys(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(id, _): Params<Octo, String>,
    QueryOf(q, _): QueryOf<Octo, ListQuery>,
) -> Reply {
    let owner = user_named(&app, &principal, &id).await?;
    let page = q.page();
    let filter = KeyFilter {
        owner: Some(owner.id),
        door: None,
        ..KeyFilter::default()
    };
    let keys = app.list_keys(&principal, filter, page).await?;
    let items = keys.items.iter().map(|k| wire::key(k, owner.seq)).collect();
    let path = format!("/api/users/{USERS}{}/apikeys", owner.seq);
    Ok(Json(wire::collection(
        "ApiKey", &path, items, keys.total, page,
    )))
}

/// The key a `/api/users/{user}/apikeys/{key}` path names, if it is that user's.
async fn key_at(
    app: &AppState,
    principal: &Principal,
    ids: (String, String),
    write: bool,
) -> Result<(keyward_core::ApiKey, User), Failure> {
    let (user_id, key_id) = ids;
    let owner = user_named(app, principal, &user_id).await?;
    let key = app
        .key_by_seq(principal, seq_of(&key_id, API_KEYS, "API key")?, write)
        .await?;
    if key.owner_id != owner.id {
        return Err(Failure::NoSuch(format!("API key '{key_id}'")));
    }
    Ok((key, owner))
}

async fn get_key(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(ids, _): Params<Octo, (String, String)>,
) -> Reply {
    let (key, owner) = key_at(&app, &principal, ids, false).await?;
    Ok(Json(wire::key(&key, owner.seq)))
}

async fn revoke_key(
    State(app): State<AppState>,
    Authed(principal, _): Authed<Octo>,
    Params(ids, _): Params<Octo, (String, String)>,
) -> Result<StatusCode, OctopusError> {
    let (key, _) = key_at(&app, &principal, ids, true).await?;
    app.revoke_key(&principal, key.id).await?;
    Ok(StatusCode::OK)
}
