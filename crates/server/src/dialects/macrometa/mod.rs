//! The Macrometa GDN door: `/_open/auth`, `/_api/user`, `/_api/key...` and
//! `/_fabric/{fabric}/_api/...`, as the pyC8 client and Macrometa's documented scripts
//! call them (see docs/macrometa.md).
//!
//! A keyid is a key's name (unique per tenant among live Macrometa keys, enforced by the
//! store); a fabric is a space; access levels are the key's grants on the resource paths
//! `fabric/<f>`, `fabric/<f>/collection/<c>`, `fabric/<f>/stream/<s>` and `billing`,
//! where a name of `*` is the default; attributes are the key's metadata.

mod users;

use crate::auth::origin;
use crate::door::{Authed, Body, DoorShape, Params, QueryOf};
use crate::error::Failure;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use keyward_app::keys::Removal;
use keyward_app::spaces::{space_path, SYSTEM_SPACE};
use keyward_app::{Caller, Credential, Entity, Field, NewKey};
use keyward_core::{
    AccessLevel, ApiKey, Door, KeyShape, Metadata, Page, ResourceKind, ResourcePath, Space, User,
    UserId,
};
use keyward_store::KeyFilter;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    let router = Router::new()
        .route("/_open/auth", vendor(post(login)))
        .route("/_api/user", vendor(get(current_user)));
    // pyC8 and the REST samples call `/_api/key...`; jsc8 puts its client's fabric in
    // front of every path. Keys belong to the tenant, not to a fabric (a level names
    // its fabric itself), so both forms reach the same handlers.
    let router = key_routes(router, "");
    let router = key_routes(router, "/_fabric/{f}");
    let router = fabric_routes(router, "/_fabric/{f}/_api");
    // jsc8 lists collections and fabrics without `_api`.
    let router = fabric_routes(router, "/_fabric/{f}");
    let router = users::routes(router, "/_fabric/{f}");
    router
        .route(
            "/_fabric/{f}/_api/database/{name}",
            vendor(axum::routing::delete(drop_fabric)),
        )
        .route(
            "/_fabric/{f}/database/{name}",
            vendor(axum::routing::delete(drop_fabric)),
        )
        .route("/_open/{*rest}", any(unknown_path))
        .route("/_api/{*rest}", any(unknown_path))
        .route("/_fabric/{f}/{*rest}", any(unknown_path))
}

/// The key, level and attribute routes under `prefix`.
fn key_routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}/_api/key{path}");
    router
        .route(&at(""), vendor(get(list_keys).post(create_key)))
        .route(&at("/validate"), vendor(post(validate_key)))
        .route(&at("/{k}"), vendor(get(get_key).delete(remove_key)))
        .route(&at("/{k}/database"), vendor(get(list_fabric_levels)))
        .route(
            &at("/{k}/database/{db}"),
            vendor(
                get(get_fabric_level)
                    .put(set_fabric_level)
                    .delete(clear_fabric_level),
            ),
        )
        .route(
            &at("/{k}/database/{db}/{kind}"),
            vendor(get(list_resource_levels)),
        )
        .route(
            &at("/{k}/database/{db}/{kind}/{name}"),
            vendor(
                get(get_resource_level)
                    .put(set_resource_level)
                    .delete(clear_resource_level),
            ),
        )
        .route(
            &at("/{k}/billing"),
            vendor(get(get_billing).put(set_billing).delete(clear_billing)),
        )
        .route(
            &at("/{k}/attributes"),
            vendor(get(get_attributes).put(update_attributes)),
        )
        .route(
            &at("/{k}/attributes/{name}"),
            vendor(axum::routing::delete(remove_attribute)),
        )
}

/// The fabric and collection listings under `prefix` (`/_fabric/{f}` or with `/_api`).
fn fabric_routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    let database = if prefix.ends_with("/_api") {
        get(list_fabrics).post(create_fabric)
    } else {
        get(list_fabrics)
    };
    router
        .route(&format!("{prefix}/database"), vendor(database))
        .route(
            &format!("{prefix}/database/user"),
            vendor(get(fabric_details)),
        )
        .route(
            &format!("{prefix}/database/current"),
            vendor(get(current_fabric)),
        )
        .route(
            &format!("{prefix}/collection"),
            vendor(get(list_collections)),
        )
}

/// A wrong method on a Macrometa path answers in Macrometa's shape, not the native one.
fn vendor(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.fallback(wrong_method)
}

// ---- Errors: the one mapping from Keyward's failures to Macrometa's error body ----

/// A failure rendered as `{"error": true, "code", "errorNum", "errorMessage"}`.
pub struct MmError(Failure);

impl<E: Into<Failure>> From<E> for MmError {
    fn from(err: E) -> Self {
        MmError(err.into())
    }
}

type MmResult<T> = Result<T, MmError>;

/// Status, Macrometa error number and message for a failure. The numbers are those
/// Macrometa's server answers where they are known (see docs/macrometa.md), else
/// ArangoDB's, from which Macrometa's come.
fn vendor_error(failure: &Failure) -> (StatusCode, u32, String) {
    let status = failure.status();
    match failure {
        Failure::InvalidJson(m) => (StatusCode::BAD_REQUEST, 600, m.clone()),
        Failure::BadRequest(m) => (StatusCode::BAD_REQUEST, 400, m.clone()),
        Failure::Unauthorized(m) | Failure::Forbidden(m) => (status, 11, format!("forbidden: {m}")),
        Failure::NotFound(Entity::ApiKey) => (status, 100015, "invalid api key id".into()),
        Failure::NotFound(Entity::Space) => (status, 1228, "database not found".into()),
        Failure::NotFound(Entity::User) => (status, 1703, "user not found".into()),
        Failure::NotFound(_) | Failure::NoSuch(_) => (status, 404, failure.message()),
        Failure::Conflict(Field::KeyName) => (status, 1702, "api key already exists".into()),
        Failure::Conflict(Field::SpaceName) => {
            (StatusCode::CONFLICT, 1207, "duplicate database name".into())
        }
        Failure::Conflict(Field::Username | Field::Email) => {
            (StatusCode::CONFLICT, 1702, "duplicate user".into())
        }
        Failure::Conflict(_) => (StatusCode::BAD_REQUEST, 10, failure.message()),
        Failure::Validation { field, message } => match field.as_str() {
            "keyid" => (StatusCode::BAD_REQUEST, 100020, message.clone()),
            "username" | "email" => (StatusCode::BAD_REQUEST, 1700, message.clone()),
            "password" => (StatusCode::BAD_REQUEST, 1701, message.clone()),
            _ => (StatusCode::BAD_REQUEST, 10, message.clone()),
        },
        Failure::PayloadTooLarge => (status, 413, failure.message()),
        Failure::PreconditionFailed => (status, 412, failure.message()),
        Failure::RequestTimeout => (status, 408, failure.message()),
        Failure::NotImplemented(_) => (status, 501, failure.message()),
        Failure::Unavailable(_) | Failure::Busy { .. } => (status, 503, failure.message()),
        Failure::Throttled { .. } | Failure::RateLimited(_) | Failure::UsageExceeded { .. } => {
            (status, 429, failure.message())
        }
        Failure::Internal(_) => (status, 4, failure.message()),
    }
}

impl IntoResponse for MmError {
    fn into_response(self) -> Response {
        self.0.log();
        let (status, number, message) = vendor_error(&self.0);
        let body = json!({
            "error": true,
            "code": status.as_u16(),
            "errorNum": number,
            "errorMessage": message,
        });
        self.0
            .with_retry_after((status, Json(body)).into_response())
    }
}

async fn unknown_path() -> MmError {
    MmError(Failure::NoSuch("route".into()))
}

async fn wrong_method() -> Response {
    let body = json!({
        "error": true,
        "code": 405,
        "errorNum": 405,
        "errorMessage": "method not supported on this path",
    });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// A success body: Macrometa's `error: false` and `code`, plus `fields`. Never an
/// `errorNum`: pyC8 treats any `errorNum` as a failure.
fn success(status: StatusCode, fields: Value) -> Response {
    let mut body = Map::new();
    body.insert("error".into(), Value::Bool(false));
    body.insert("code".into(), json!(status.as_u16()));
    if let Value::Object(fields) = fields {
        body.extend(fields);
    }
    (status, Json(Value::Object(body))).into_response()
}

fn result(value: Value) -> Response {
    success(StatusCode::OK, json!({ "result": value }))
}

fn accepted() -> Response {
    success(StatusCode::ACCEPTED, json!({}))
}

// ---- The door, for the shared extractors ----

/// Macrometa's door: `Authorization: bearer <jwt>` or `apikey <key>`, any case, and
/// errors in Macrometa's shape.
pub struct Mm;

impl DoorShape for Mm {
    const DOOR: Door = Door::Macrometa;
    type Error = MmError;
    const NO_CREDENTIAL: &'static str =
        "authentication required: send Authorization: bearer <jwt> or apikey <key>";
}

// ---- Path parameters (by name: the `/_fabric/{f}` prefix adds one) ----

#[derive(Deserialize)]
struct KeyAt {
    k: String,
}

#[derive(Deserialize)]
struct LevelAt {
    k: String,
    db: String,
}

#[derive(Deserialize)]
struct KindAt {
    k: String,
    db: String,
    kind: String,
}

#[derive(Deserialize)]
struct ResourceAt {
    k: String,
    db: String,
    kind: String,
    name: String,
}

#[derive(Deserialize)]
struct AttributeAt {
    k: String,
    name: String,
}

// ---- Login and the current user ----

#[derive(Deserialize)]
struct LoginRequest {
    email: Option<String>,
    tenant: Option<String>,
    username: Option<String>,
    password: String,
}

async fn login(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Body(req, _): Body<Mm, LoginRequest>,
) -> MmResult<Response> {
    let from = origin(&app, &headers, Door::Macrometa);
    let session = match (&req.email, &req.tenant, &req.username) {
        (Some(email), tenant, _) => {
            app.login(from, tenant.as_deref(), email, &req.password)
                .await?
        }
        (None, Some(tenant), Some(username)) => {
            app.login_in_tenant(from, tenant, username, &req.password)
                .await?
        }
        _ => {
            return Err(invalid(
                "login",
                "send 'email' and 'password', or 'tenant', 'username' and 'password'",
            ))
        }
    };
    let (user, jwt) = (session.user, session.token);
    let tenant = tenant_name(&app, &user).await?;
    // Exactly 200 and no `error` fields: pyC8 checks the status and reads `jwt`/`tenant`.
    Ok(Json(json!({ "jwt": jwt, "tenant": tenant, "username": user.username })).into_response())
}

async fn current_user(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
) -> MmResult<Response> {
    let tenant = tenant_name(&app, &me.user).await?;
    Ok(result(json!([user_item(&tenant, &me.user)])))
}

fn user_item(tenant: &str, user: &User) -> Value {
    json!({
        "tenant": tenant,
        "user": user.username,
        "email": user.email,
        "displayName": user.display_name,
        "active": user.active,
        "extra": {},
    })
}

async fn tenant_name(app: &AppState, user: &User) -> MmResult<String> {
    let tenant = app
        .tenant(user.tenant_id)
        .await?
        .ok_or_else(|| Failure::Internal("a user's tenant is missing".into()))?;
    Ok(tenant.name.clone())
}

fn invalid(field: &str, message: impl Into<String>) -> MmError {
    MmError(Failure::Validation {
        field: field.into(),
        message: message.into(),
    })
}

// ---- Keys ----

async fn list_keys(State(app): State<AppState>, Authed(me, _): Authed<Mm>) -> MmResult<Response> {
    let filter = KeyFilter {
        door: Some(Door::Macrometa),
        ..KeyFilter::default()
    };
    let keys = app
        .list_keys(&me, filter, Page::new(0, Page::MAX_LIMIT))
        .await?;
    let tenant = tenant_name(&app, &me.user).await?;
    let mut owners: HashMap<UserId, String> = HashMap::new();
    let mut items = Vec::with_capacity(keys.items.len());
    for key in &keys.items {
        let owner = owner_name(&app, &me, key, &mut owners).await?;
        items.push(
            json!({ "keyid": key.name, "user": format!("{tenant}.{owner}"), "tenant": tenant }),
        );
    }
    Ok(result(Value::Array(items)))
}

async fn owner_name(
    app: &AppState,
    me: &Caller,
    key: &ApiKey,
    known: &mut HashMap<UserId, String>,
) -> MmResult<String> {
    if let Some(name) = known.get(&key.owner_id) {
        return Ok(name.clone());
    }
    let name = app.owner_of(me, key).await?.username;
    known.insert(key.owner_id, name.clone());
    Ok(name)
}

#[derive(Deserialize)]
struct CreateKeyRequest {
    keyid: String,
}

/// Macrometa's rule for keyids: a letter, then letters, digits or underscores.
fn keyid(text: &str) -> MmResult<String> {
    let mut chars = text.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.len() <= 200;
    if valid {
        Ok(text.to_string())
    } else {
        Err(invalid(
            "keyid",
            "API key identifier must start with a letter and can only contain alpha-numeric \
             characters",
        ))
    }
}

async fn create_key(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Body(req, _): Body<Mm, CreateKeyRequest>,
) -> MmResult<Response> {
    let name = keyid(&req.keyid)?;
    let grants = app.space_snapshot_grants(&me).await?;
    let request = NewKey {
        name,
        grants: Some(grants),
        expires_at: None,
        metadata: Metadata::new(),
        owner: None,
        door: Door::Macrometa,
        shape: KeyShape::Native,
        limits: Default::default(),
        credits: None,
    };
    let issued = app.create_key(&me, request).await?;
    let tenant = tenant_name(&app, &me.user).await?;
    Ok(success(
        StatusCode::CREATED,
        json!({
            "key": issued.secret.expose(),
            "keyid": issued.key.name,
            "tenant": tenant,
            "user": format!("{tenant}.{}", me.user.username),
        }),
    ))
}

async fn key_named(app: &AppState, me: &Caller, keyid: &str, write: bool) -> MmResult<ApiKey> {
    Ok(app
        .key_by_door_name(me, Door::Macrometa, keyid, write)
        .await?)
}

async fn get_key(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let tenant = tenant_name(&app, &me.user).await?;
    let mut owners = HashMap::new();
    let owner = owner_name(&app, &me, &key, &mut owners).await?;
    Ok(success(
        StatusCode::OK,
        json!({
            "user": key.name,
            "displayName": key.name,
            "tenant": tenant,
            "email": format!("{}@apikey", key.name),
            "active": key.state(time::OffsetDateTime::now_utc()) == keyward_core::KeyState::Active,
            "apikey": { "parent": format!("{tenant}.{owner}"), "start": key.start },
            "extra": {},
        }),
    ))
}

async fn remove_key(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    app.revoke_key(&me, key.id).await?;
    Ok(accepted())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateRequest {
    apikey: Option<String>,
    jwt: Option<String>,
}

/// `POST .../_api/key/validate` (jsc8's `validateApiKey`, `loginWithApiKey` and
/// `loginWithToken`): whether an API key or a token is valid, and whose it is.
async fn validate_key(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Body(req, _): Body<Mm, ValidateRequest>,
) -> MmResult<Response> {
    let credential = match (&req.apikey, &req.jwt) {
        (Some(key), None) => Credential::Key(key.as_str().into()),
        (None, Some(jwt)) => Credential::Session(jwt.as_str().into()),
        _ => return Err(invalid("apikey", "send either 'apikey' or 'jwt'")),
    };
    let owner = app.validate_credential(&me, credential).await?;
    let tenant = tenant_name(&app, &owner.user).await?;
    let key = owner.key.as_deref();
    let expires = key
        .and_then(|k| k.expires_at)
        .map_or(0, |t| t.unix_timestamp());
    Ok(result(json!({
        "keyid": key.map(|k| k.name.as_str()),
        "tenant": tenant,
        "user": owner.user.username,
        "parent": format!("{tenant}.{}", owner.user.username),
        "expires": expires,
        "limitRequestsPerSec": 0,
    })))
}

// ---- Access levels ----

#[derive(Deserialize)]
struct GrantRequest {
    grant: String,
}

fn level(text: &str) -> MmResult<AccessLevel> {
    AccessLevel::parse(text).map_err(|_| {
        invalid(
            "grant",
            format!("invalid grant value '{text}': use 'rw', 'ro' or 'none'"),
        )
    })
}

fn path_of(segments: &[&str]) -> MmResult<ResourcePath> {
    Ok(keyward_app::spaces::resource_path(segments)?)
}

fn fabric_path(fabric: &str) -> MmResult<ResourcePath> {
    Ok(space_path(fabric)?)
}

/// `_system` is created on first use; any other fabric must exist.
async fn fabric(app: &AppState, me: &Caller, name: &str) -> MmResult<Space> {
    Ok(app.open_space(me, name).await?)
}

async fn system_fabric(app: &AppState, me: &Caller) -> MmResult<Space> {
    fabric(app, me, SYSTEM_SPACE).await
}

/// The path a fabric-level grant is stored at; `*` is the default for every fabric.
async fn fabric_grant_path(app: &AppState, me: &Caller, f: &str) -> MmResult<ResourcePath> {
    if f != "*" {
        fabric(app, me, f).await?;
    }
    fabric_path(f)
}

fn kind(text: &str) -> MmResult<ResourceKind> {
    match text {
        "collection" => Ok(ResourceKind::Collection),
        "stream" => Ok(ResourceKind::Stream),
        _ => Err(MmError(Failure::NoSuch("route".into()))),
    }
}

async fn list_fabric_levels(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    system_fabric(&app, &me).await?;
    let mut levels = Map::new();
    for space in app.all_spaces(&me).await? {
        if let Ok(path) = fabric_path(&space.name) {
            levels.insert(space.name, json!(key.grants.level_at(&path).as_str()));
        }
    }
    Ok(result(Value::Object(levels)))
}

async fn get_fabric_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { k, db: f }, _): Params<Mm, LevelAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let path = fabric_grant_path(&app, &me, &f).await?;
    Ok(result(json!(key.grants.level_at(&path).as_str())))
}

async fn set_fabric_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { k, db: f }, _): Params<Mm, LevelAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let key = key_named(&app, &me, &k, true).await?;
    let path = fabric_grant_path(&app, &me, &f).await?;
    app.set_key_access(&me, key.id, path, Some(level)).await?;
    Ok(result(json!(level.as_str())))
}

async fn clear_fabric_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { k, db: f }, _): Params<Mm, LevelAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    let path = fabric_grant_path(&app, &me, &f).await?;
    app.set_key_access(&me, key.id, path, None).await?;
    Ok(accepted())
}

/// Effective levels of a fabric's known collections or streams: those registered, and
/// those the key names in its grants (including a `*` default).
async fn list_resource_levels(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(
        KindAt {
            k,
            db: f,
            kind: kind_name,
        },
        _,
    ): Params<Mm, KindAt>,
) -> MmResult<Response> {
    let kind = kind(&kind_name)?;
    let key = key_named(&app, &me, &k, false).await?;
    let space = fabric(&app, &me, &f).await?;
    let mut names = app.list_resources(&space, kind).await?;
    names.extend(key.grants.access().keys().filter_map(|p| {
        let segments: Vec<&str> = p.segments().collect();
        match segments.as_slice() {
            ["fabric", fab, k, name] if *fab == f && *k == kind.as_str() => Some(name.to_string()),
            _ => None,
        }
    }));
    let mut levels = Map::new();
    for name in names {
        let path = path_of(&["fabric", &f, kind.as_str(), &name])?;
        levels.insert(name, json!(key.grants.level_at(&path).as_str()));
    }
    Ok(result(Value::Object(levels)))
}

async fn resource_path(
    app: &AppState,
    me: &Caller,
    f: &str,
    kind_name: &str,
    name: &str,
) -> MmResult<(Space, ResourceKind, ResourcePath)> {
    let kind = kind(kind_name)?;
    let space = fabric(app, me, f).await?;
    let path = path_of(&["fabric", f, kind.as_str(), name])?;
    Ok((space, kind, path))
}

async fn get_resource_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(
        ResourceAt {
            k,
            db: f,
            kind,
            name,
        },
        _,
    ): Params<Mm, ResourceAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let (_, _, path) = resource_path(&app, &me, &f, &kind, &name).await?;
    Ok(result(json!(key.grants.level_at(&path).as_str())))
}

async fn set_resource_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(
        ResourceAt {
            k,
            db: f,
            kind,
            name,
        },
        _,
    ): Params<Mm, ResourceAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let key = key_named(&app, &me, &k, true).await?;
    let (space, kind, path) = resource_path(&app, &me, &f, &kind, &name).await?;
    app.set_key_access(&me, key.id, path, Some(level)).await?;
    if name != "*" {
        app.declare_resource(&me, &space, kind, &name).await?;
    }
    Ok(result(json!(level.as_str())))
}

async fn clear_resource_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(
        ResourceAt {
            k,
            db: f,
            kind,
            name,
        },
        _,
    ): Params<Mm, ResourceAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    let (_, _, path) = resource_path(&app, &me, &f, &kind, &name).await?;
    app.set_key_access(&me, key.id, path, None).await?;
    Ok(accepted())
}

fn billing_path() -> ResourcePath {
    ResourcePath::parse("billing").expect("a valid literal")
}

async fn get_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let level = key.grants.level_at(&billing_path());
    Ok(result(json!({ "billing": level.as_str() })))
}

async fn set_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let key = key_named(&app, &me, &k, true).await?;
    app.set_key_access(&me, key.id, billing_path(), Some(level))
        .await?;
    Ok(result(json!(level.as_str())))
}

async fn clear_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    app.set_key_access(&me, key.id, billing_path(), None)
        .await?;
    Ok(accepted())
}

// ---- Attributes: the key's metadata, string values only ----

async fn get_attributes(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    Ok(result(Value::Object(key.metadata)))
}

fn attributes(body: Value) -> MmResult<Metadata> {
    let Value::Object(map) = body else {
        return Err(invalid("attributes", "attributes must be a JSON object"));
    };
    if let Some((name, _)) = map.iter().find(|(_, v)| !v.is_string()) {
        return Err(invalid(
            "attributes",
            format!("attribute '{name}' must be a string"),
        ));
    }
    Ok(map)
}

async fn update_attributes(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(KeyAt { k }, _): Params<Mm, KeyAt>,
    Body(body, _): Body<Mm, Value>,
) -> MmResult<Response> {
    let added = attributes(body)?;
    let key = key_named(&app, &me, &k, true).await?;
    // Macrometa merges: attributes not named in the request stay.
    app.merge_key_metadata(&me, key.id, added.clone()).await?;
    Ok(result(Value::Object(added)))
}

async fn remove_attribute(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(AttributeAt { k, name }, _): Params<Mm, AttributeAt>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    // Macrometa's API has `attributes/truncate` for "remove them all".
    let removal = if name == "truncate" {
        Removal::All
    } else {
        Removal::One(&name)
    };
    app.remove_key_metadata(&me, key.id, removal).await?;
    Ok(accepted())
}

// ---- Fabrics ----

/// The fabric in the path, which must exist and be readable by the caller.
async fn scoped_fabric(app: &AppState, me: &Caller, f: &str) -> MmResult<Space> {
    Ok(app.readable_space(me, f).await?)
}

async fn visible_fabrics(app: &AppState, me: &Caller) -> MmResult<Vec<Space>> {
    Ok(app.visible_spaces(me).await?)
}

fn fabric_item(tenant: &str, space: &Space) -> Value {
    json!({
        "name": space.name,
        "isSystem": space.name == SYSTEM_SPACE,
        "options": {
            "name": format!("{tenant}.{}", space.name),
            "tenant": tenant,
            "status": "available",
            "dcList": "",
            "spotDc": "",
            "realTime": false,
            "metadata": null,
        },
    })
}

async fn list_fabrics(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(f, _): Params<Mm, String>,
) -> MmResult<Response> {
    scoped_fabric(&app, &me, &f).await?;
    let names: Vec<String> = visible_fabrics(&app, &me)
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    Ok(result(json!(names)))
}

async fn fabric_details(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(f, _): Params<Mm, String>,
) -> MmResult<Response> {
    scoped_fabric(&app, &me, &f).await?;
    let tenant = tenant_name(&app, &me.user).await?;
    let items: Vec<Value> = visible_fabrics(&app, &me)
        .await?
        .iter()
        .map(|s| fabric_item(&tenant, s))
        .collect();
    Ok(result(Value::Array(items)))
}

async fn current_fabric(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(f, _): Params<Mm, String>,
) -> MmResult<Response> {
    let space = scoped_fabric(&app, &me, &f).await?;
    let tenant = tenant_name(&app, &me.user).await?;
    Ok(result(fabric_item(&tenant, &space)))
}

#[derive(Deserialize)]
struct CreateFabricRequest {
    name: String,
}

async fn create_fabric(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(f, _): Params<Mm, String>,
    Body(req, _): Body<Mm, CreateFabricRequest>,
) -> MmResult<Response> {
    app.create_space_from(&me, &f, &req.name).await?;
    Ok(success(StatusCode::CREATED, json!({ "result": true })))
}

/// The seed's example call: the fabric's collections the caller may read. Keyward keeps
/// only their names, so every one is shown as an empty, loaded document collection.
#[derive(Deserialize)]
struct CollectionQuery {
    #[serde(rename = "excludeSystem")]
    exclude_system: Option<String>,
}

/// `true`/`false` as jsc8 writes them, `True`/`False` as pyC8 does.
fn flag(value: Option<&str>, name: &str) -> MmResult<bool> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(invalid(
            name,
            format!("{name} must be true or false, not '{other}'"),
        )),
    }
}

async fn list_collections(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(f, _): Params<Mm, String>,
    QueryOf(query, _): QueryOf<Mm, CollectionQuery>,
) -> MmResult<Response> {
    let exclude_system = flag(query.exclude_system.as_deref(), "excludeSystem")?;
    let space = scoped_fabric(&app, &me, &f).await?;
    let names = app
        .visible_resources(&me, &space, ResourceKind::Collection)
        .await?;
    let items: Vec<Value> = names
        .iter()
        .filter(|name| !(exclude_system && name.starts_with('_')))
        .map(|name| {
            json!({
                "id": name,
                "name": name,
                "isSystem": name.starts_with('_'),
                "type": 2,
                "status": 3,
                "collectionModel": "DOC",
                "isSpot": false,
                "isLocal": false,
                "hasStream": false,
                "waitForSync": false,
                "searchEnabled": false,
                "globallyUniqueId": format!("{}/{}", space.id, name),
            })
        })
        .collect();
    Ok(result(Value::Array(items)))
}

/// `DELETE .../database/{name}`: Keyward keeps a fabric's name and the levels keys
/// hold on it, and does not drop fabrics.
async fn drop_fabric(Authed(_, _): Authed<Mm>) -> MmError {
    MmError(Failure::NotImplemented(
        "Keyward does not drop fabrics: a fabric's name and the access levels granted \
         on it stay"
            .into(),
    ))
}
