//! The Macrometa GDN door: `/_open/auth`, `/_api/user`, `/_api/key...` and
//! `/_fabric/{fabric}/_api/...`, as the pyC8 client and Macrometa's documented scripts
//! call them (see docs/macrometa.md).
//!
//! A keyid is a key's name (unique per tenant among live Macrometa keys, enforced by the
//! store); a fabric is a space; access levels are the key's grants on the resource paths
//! `fabric/<f>`, `fabric/<f>/collection/<c>`, `fabric/<f>/stream/<s>` and `billing`,
//! where a name of `*` is the default; attributes are the key's metadata.

use crate::auth::{caller, origin, through};
use crate::body::{parse_json, read_body};
use crate::error::Failure;
use crate::AppState;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use keyward_app::keys::Removal;
use keyward_app::spaces::{space_path, SYSTEM_SPACE};
use keyward_app::{Caller, Entity, Field, NewKey};
use keyward_core::{
    AccessLevel, ApiKey, Door, KeyShape, Metadata, Page, ResourceKind, ResourcePath, Space, User,
    UserId,
};
use keyward_store::KeyFilter;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_open/auth", vendor(post(login)))
        .route("/_api/user", vendor(get(current_user)))
        .route("/_api/key", vendor(get(list_keys).post(create_key)))
        .route("/_api/key/{k}", vendor(get(get_key).delete(remove_key)))
        .route("/_api/key/{k}/database", vendor(get(list_fabric_levels)))
        .route(
            "/_api/key/{k}/database/{f}",
            vendor(
                get(get_fabric_level)
                    .put(set_fabric_level)
                    .delete(clear_fabric_level),
            ),
        )
        .route(
            "/_api/key/{k}/database/{f}/{kind}",
            vendor(get(list_resource_levels)),
        )
        .route(
            "/_api/key/{k}/database/{f}/{kind}/{name}",
            vendor(
                get(get_resource_level)
                    .put(set_resource_level)
                    .delete(clear_resource_level),
            ),
        )
        .route(
            "/_api/key/{k}/billing",
            vendor(get(get_billing).put(set_billing).delete(clear_billing)),
        )
        .route(
            "/_api/key/{k}/attributes",
            vendor(get(get_attributes).put(update_attributes)),
        )
        .route(
            "/_api/key/{k}/attributes/{name}",
            vendor(axum::routing::delete(remove_attribute)),
        )
        .route(
            "/_fabric/{f}/_api/database",
            vendor(get(list_fabrics).post(create_fabric)),
        )
        .route(
            "/_fabric/{f}/_api/database/user",
            vendor(get(fabric_details)),
        )
        .route(
            "/_fabric/{f}/_api/database/current",
            vendor(get(current_fabric)),
        )
        .route(
            "/_fabric/{f}/_api/collection",
            vendor(get(list_collections)),
        )
        .route("/_open/{*rest}", any(unknown_path))
        .route("/_api/{*rest}", any(unknown_path))
        .route("/_fabric/{f}/{*rest}", any(unknown_path))
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
        Failure::Conflict(_) => (StatusCode::BAD_REQUEST, 10, failure.message()),
        Failure::Validation { field, message } => match field.as_str() {
            "keyid" => (StatusCode::BAD_REQUEST, 100020, message.clone()),
            _ => (StatusCode::BAD_REQUEST, 10, message.clone()),
        },
        Failure::PayloadTooLarge => (status, 413, failure.message()),
        Failure::NotImplemented(_) => (status, 501, failure.message()),
        Failure::Unavailable(_) => (status, 503, failure.message()),
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
        (status, Json(body)).into_response()
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

// ---- Extractors with Macrometa-shaped rejections ----

/// The authenticated caller: `Authorization: bearer <jwt>` or `apikey <key>`, any case.
struct Authed(Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = MmError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> MmResult<Self> {
        let principal = caller(app, &parts.headers).await?.ok_or_else(|| {
            Failure::Unauthorized(
                "authentication required: send Authorization: bearer <jwt> or apikey <key>".into(),
            )
        })?;
        Ok(Authed(through(Door::Macrometa, principal)))
    }
}

/// A JSON body, whatever the Content-Type (pyC8 sends none when logging in).
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = MmError;

    async fn from_request(request: Request, _: &S) -> MmResult<Self> {
        Ok(Body(parse_json(&read_body(request.into_body()).await?)?))
    }
}

/// Percent-decoded path parameters.
struct Params<T>(T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Params<T> {
    type Rejection = MmError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> MmResult<Self> {
        let Path(params) = Path::<T>::from_request_parts(parts, app)
            .await
            .map_err(|e| Failure::BadRequest(format!("invalid path: {}", e.body_text())))?;
        Ok(Params(params))
    }
}

// ---- Login and the current user ----

#[derive(Deserialize)]
struct LoginRequest {
    email: Option<String>,
    tenant: Option<String>,
    username: Option<String>,
    password: String,
}

async fn login(State(app): State<AppState>, Body(req): Body<LoginRequest>) -> MmResult<Response> {
    let from = origin(Door::Macrometa);
    let session = match (&req.email, &req.tenant, &req.username) {
        (Some(email), _, _) => app.login(from, email, &req.password).await?,
        (None, Some(tenant), Some(username)) => {
            app.login_in_tenant(from, tenant, username, &req.password)
                .await?
        }
        _ => {
            return Err(invalid(
                "email",
                "send 'email' and 'password', or 'tenant', 'username' and 'password'",
            ))
        }
    };
    let (user, jwt) = (session.user, session.token);
    let tenant = tenant_name(&app, &user).await?;
    // Exactly 200 and no `error` fields: pyC8 checks the status and reads `jwt`/`tenant`.
    Ok(Json(json!({ "jwt": jwt, "tenant": tenant, "username": user.username })).into_response())
}

async fn current_user(State(app): State<AppState>, Authed(me): Authed) -> MmResult<Response> {
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

async fn list_keys(State(app): State<AppState>, Authed(me): Authed) -> MmResult<Response> {
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
    Authed(me): Authed,
    Body(req): Body<CreateKeyRequest>,
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
    Authed(me): Authed,
    Params(k): Params<String>,
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
    Authed(me): Authed,
    Params(k): Params<String>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    app.revoke_key(&me, key.id).await?;
    Ok(accepted())
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
    Authed(me): Authed,
    Params(k): Params<String>,
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
    Authed(me): Authed,
    Params((k, f)): Params<(String, String)>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let path = fabric_grant_path(&app, &me, &f).await?;
    Ok(result(json!(key.grants.level_at(&path).as_str())))
}

async fn set_fabric_level(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params((k, f)): Params<(String, String)>,
    Body(req): Body<GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let key = key_named(&app, &me, &k, true).await?;
    let path = fabric_grant_path(&app, &me, &f).await?;
    app.set_key_access(&me, key.id, path, Some(level)).await?;
    Ok(result(json!(level.as_str())))
}

async fn clear_fabric_level(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params((k, f)): Params<(String, String)>,
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
    Authed(me): Authed,
    Params((k, f, kind_name)): Params<(String, String, String)>,
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
    Authed(me): Authed,
    Params((k, f, kind, name)): Params<(String, String, String, String)>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let (_, _, path) = resource_path(&app, &me, &f, &kind, &name).await?;
    Ok(result(json!(key.grants.level_at(&path).as_str())))
}

async fn set_resource_level(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params((k, f, kind, name)): Params<(String, String, String, String)>,
    Body(req): Body<GrantRequest>,
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
    Authed(me): Authed,
    Params((k, f, kind, name)): Params<(String, String, String, String)>,
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
    Authed(me): Authed,
    Params(k): Params<String>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, false).await?;
    let level = key.grants.level_at(&billing_path());
    Ok(result(json!({ "billing": level.as_str() })))
}

async fn set_billing(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params(k): Params<String>,
    Body(req): Body<GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let key = key_named(&app, &me, &k, true).await?;
    app.set_key_access(&me, key.id, billing_path(), Some(level))
        .await?;
    Ok(result(json!(level.as_str())))
}

async fn clear_billing(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params(k): Params<String>,
) -> MmResult<Response> {
    let key = key_named(&app, &me, &k, true).await?;
    app.set_key_access(&me, key.id, billing_path(), None)
        .await?;
    Ok(accepted())
}

// ---- Attributes: the key's metadata, string values only ----

async fn get_attributes(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params(k): Params<String>,
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
    Authed(me): Authed,
    Params(k): Params<String>,
    Body(body): Body<Value>,
) -> MmResult<Response> {
    let added = attributes(body)?;
    let key = key_named(&app, &me, &k, true).await?;
    // Macrometa merges: attributes not named in the request stay.
    app.merge_key_metadata(&me, key.id, added.clone()).await?;
    Ok(result(Value::Object(added)))
}

async fn remove_attribute(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params((k, name)): Params<(String, String)>,
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
    Authed(me): Authed,
    Params(f): Params<String>,
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
    Authed(me): Authed,
    Params(f): Params<String>,
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
    Authed(me): Authed,
    Params(f): Params<String>,
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
    Authed(me): Authed,
    Params(f): Params<String>,
    Body(req): Body<CreateFabricRequest>,
) -> MmResult<Response> {
    app.create_space_from(&me, &f, &req.name).await?;
    Ok(success(StatusCode::CREATED, json!({ "result": true })))
}

/// The seed's example call: the fabric's collections the caller may read. Keyward keeps
/// only their names, so every one is shown as an empty, loaded document collection.
async fn list_collections(
    State(app): State<AppState>,
    Authed(me): Authed,
    Params(f): Params<String>,
) -> MmResult<Response> {
    let space = scoped_fabric(&app, &me, &f).await?;
    let mut items = Vec::new();
    for name in app
        .visible_resources(&me, &space, ResourceKind::Collection)
        .await?
    {
        {
            items.push(json!({
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
            }));
        }
    }
    Ok(result(Value::Array(items)))
}
