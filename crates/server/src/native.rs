//! The native door: `/v0/...` and the health endpoints.

use crate::auth::origin;
use crate::door::{Authed, Body, DoorShape, Params, QueryOf};
use crate::error::{ApiError, ApiResult, Failure};
use crate::limits_wire;
use crate::views::{IssuedKeyView, KeyView, PageView, UserView};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyward_app::{KeyPatch, NewKey, NewUser, UserPatch};
use keyward_core::limits::KeyLimits;
use keyward_core::{validate, ApiKey, Door, Grants, KeyId, KeyShape, Page, Role, UserId};
use keyward_store::KeyFilter;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::time::Duration;
use time::OffsetDateTime;

/// The native door, for the shared extractors.
pub struct Native;

impl DoorShape for Native {
    const DOOR: Door = Door::Native;
    type Error = ApiError;
    const NO_CREDENTIAL: &'static str =
        "authentication required: send Authorization: Bearer <token or API key>";
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v0/auth/login", post(login))
        .route("/v0/auth/logout", post(logout))
        .route("/v0/me", get(me))
        .route("/v0/users", post(create_user).get(list_users))
        .route("/v0/users/{id}", get(get_user).patch(update_user))
        .route("/v0/api_keys", post(create_key).get(list_keys))
        .route(
            "/v0/api_keys/{id}",
            get(get_key).patch(update_key).delete(revoke_key),
        )
        .route("/v0/api_keys/{id}/rotate", post(rotate_key))
        .route("/v0/api_keys/{id}/credits", post(change_credits))
        .route("/v0/keys/verify", post(verify_key))
}

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process answers", body = Object, example = json!({"status": "ok"}))))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The store answers", body = Object, example = json!({"status": "ready"})),
        (status = 503, description = "The store does not answer", body = Object),
    ))]
pub(crate) async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    match app.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(err) => {
            tracing::warn!(%err, "store not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "message": "the store does not answer" })),
            )
        }
    }
}

// ---- Request parsing helpers ----

fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, Failure> {
    text.parse()
        .map_err(|_| Failure::BadRequest(format!("'{text}' is not a valid {what} id (a UUID)")))
}

fn grants(entries: Option<Vec<String>>) -> Result<Option<Grants>, Failure> {
    entries
        .map(|e| Grants::parse(&e))
        .transpose()
        .map_err(|e| in_permissions(e.into()))
}

/// A bad entry of a `permissions` list is reported against that field, whichever part
/// of the entry (permission, path or access level) the core refused.
fn in_permissions(failure: Failure) -> Failure {
    match failure {
        Failure::Validation { message, .. } => Failure::Validation {
            field: "permissions".into(),
            message,
        },
        other => other,
    }
}

fn metadata(value: Option<Value>) -> Result<keyward_core::Metadata, Failure> {
    Ok(match value {
        None | Some(Value::Null) => Default::default(),
        Some(v) => validate::metadata(&v)?,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    #[param(minimum = 0)]
    offset: Option<i32>,
    /// 1 to 1000 (50 by default).
    #[param(minimum = 0)]
    limit: Option<i32>,
}

impl PageQuery {
    fn page(&self) -> Result<Page, Failure> {
        page(self.offset, self.limit)
    }
}

/// A page from a query's numbers, which are 32-bit, as the contract says.
fn page(offset: Option<i32>, limit: Option<i32>) -> Result<Page, Failure> {
    let whole = |n: Option<i32>, default: u64, name: &str| match n {
        None => Ok(default),
        Some(n) => u64::try_from(n)
            .map_err(|_| Failure::BadRequest(format!("{name} must not be negative"))),
    };
    Ok(Page::new(
        whole(offset, 0, "offset")?,
        whole(limit, 50, "limit")?,
    ))
}

fn page_view<'a, T, V>(
    paged: &'a keyward_core::Paged<T>,
    page: Page,
    view: impl Fn(&'a T) -> V,
) -> PageView<V> {
    PageView {
        items: paged.items.iter().map(view).collect(),
        total: paged.total,
        offset: page.offset,
        limit: page.limit,
    }
}

// ---- Sessions ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    email: String,
    password: String,
    /// Needed only for an email with accounts in several tenants.
    tenant: Option<String>,
}

/// Logs in with an email and password; answers a session token (a JWT) for `Authorization: Bearer`.
#[utoipa::path(post, path = "/v0/auth/login", tag = "sessions", request_body = LoginRequest,
    responses((status = 200, description = "A session", body = SessionView), crate::openapi::Refusals))]
pub(crate) async fn login(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    Body(req, _): Body<Native, LoginRequest>,
) -> ApiResult<Response> {
    let session = app
        .login(
            origin(&app, &headers, Door::Native),
            req.tenant.as_deref(),
            &req.email,
            &req.password,
        )
        .await?;
    Ok(Json(SessionView {
        token: &session.token,
        expires_at: session.expires_at,
        user: UserView::of(&session.user),
    })
    .into_response())
}

/// A session just opened.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SessionView<'a> {
    /// For `Authorization: Bearer`.
    token: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    user: UserView<'a>,
}

/// Ends every session of the caller's user, the one in use included.
#[utoipa::path(post, path = "/v0/auth/logout", tag = "sessions", security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "Logged out", body = Object, example = json!({"status": "logged out"})), crate::openapi::Refusals))]
pub(crate) async fn logout(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
) -> ApiResult<Response> {
    app.logout(&caller).await?;
    Ok(Json(json!({ "status": "logged out" })).into_response())
}

/// Who is calling, serialized straight from the principal (an authenticated request
/// that clients make often, so it copies nothing).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MeView<'a> {
    user: UserView<'a>,
    tenant: Option<TenantView<'a>>,
    /// session or api_key.
    via: &'static str,
    key: Option<KeyView<'a>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TenantView<'a> {
    #[schema(value_type = uuid::Uuid)]
    id: keyward_core::TenantId,
    name: &'a str,
}

/// Who the credential in use is: the user, their tenant, and the key if it is one.
#[utoipa::path(get, path = "/v0/me", tag = "sessions", security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The caller", body = MeView), crate::openapi::Refusals))]
pub(crate) async fn me(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
) -> ApiResult<Response> {
    let tenant = app.tenant(caller.tenant_id()).await?;
    let me = MeView {
        user: UserView::of(&caller.user),
        tenant: tenant.as_deref().map(|t| TenantView {
            id: t.id,
            name: &t.name,
        }),
        via: if caller.key.is_some() {
            "api_key"
        } else {
            "session"
        },
        key: caller.key.as_deref().map(KeyView::of),
    };
    Ok(Json(&me).into_response())
}

// ---- Users ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    email: String,
    password: String,
    username: Option<String>,
    display_name: Option<String>,
    role: Option<String>,
    permissions: Option<Vec<String>>,
}

fn role(text: &str) -> Result<Role, Failure> {
    Role::parse(text).ok_or_else(|| Failure::Validation {
        field: "role".into(),
        message: format!("'{text}' is not a role: use 'member' or 'admin'"),
    })
}

impl CreateUserRequest {
    pub(crate) fn into_new_user(self) -> Result<NewUser, Failure> {
        Ok(NewUser {
            email: self.email,
            password: self.password,
            username: self.username,
            display_name: self.display_name,
            role: self
                .role
                .as_deref()
                .map(role)
                .transpose()?
                .unwrap_or(Role::Member),
            grants: grants(self.permissions)?,
        })
    }
}

/// Adds a user to the caller's tenant (administrators).
#[utoipa::path(post, path = "/v0/users", tag = "users", request_body = CreateUserRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 201, description = "The user", body = UserView), crate::openapi::Refusals))]
pub(crate) async fn create_user(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Body(req, _): Body<Native, CreateUserRequest>,
) -> ApiResult<Response> {
    let user = app.create_user(&caller, req.into_new_user()?).await?;
    Ok((StatusCode::CREATED, Json(UserView::of(&user))).into_response())
}

/// The tenant's users (administrators).
#[utoipa::path(get, path = "/v0/users", tag = "users", params(PageQuery), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "A page of users", body = PageView<UserView>), crate::openapi::Refusals))]
pub(crate) async fn list_users(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    QueryOf(q, _): QueryOf<Native, PageQuery>,
) -> ApiResult<Response> {
    let page = q.page()?;
    let users = app.list_users(&caller, page).await?;
    Ok(Json(page_view(&users, page, UserView::of)).into_response())
}

/// A user: any for administrators, themselves for members.
#[utoipa::path(get, path = "/v0/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "The user's id")), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The user", body = UserView), crate::openapi::Refusals))]
pub(crate) async fn get_user(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
) -> ApiResult<Response> {
    let user = app
        .get_user(&caller, parse_id::<UserId>(&id, "user")?)
        .await?;
    Ok(Json(UserView::of(&user)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUserRequest {
    display_name: Option<String>,
    password: Option<String>,
    role: Option<String>,
    active: Option<bool>,
    permissions: Option<Vec<String>>,
    ratelimits: Option<Vec<limits_wire::RateLimitIn>>,
}

impl UpdateUserRequest {
    pub(crate) fn into_patch(self) -> Result<UserPatch, Failure> {
        Ok(UserPatch {
            display_name: self.display_name,
            password: self.password,
            role: self.role.as_deref().map(role).transpose()?,
            active: self.active,
            grants: grants(self.permissions)?,
            ratelimits: self.ratelimits.map(limits_wire::rate_limits).transpose()?,
        })
    }
}

/// Changes a user (administrators); absent fields are left alone.
#[utoipa::path(patch, path = "/v0/users/{id}", tag = "users", params(("id" = uuid::Uuid, Path, description = "The user's id")), request_body = UpdateUserRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The user as changed", body = UserView), crate::openapi::Refusals))]
pub(crate) async fn update_user(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
    Body(req, _): Body<Native, UpdateUserRequest>,
) -> ApiResult<Response> {
    let user = app
        .update_user(&caller, parse_id(&id, "user")?, req.into_patch()?)
        .await?;
    Ok(Json(UserView::of(&user)).into_response())
}

// ---- Keys ----

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    name: String,
    permissions: Option<Vec<String>>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    /// A JSON object returned with every verification.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Another user's key (administrators); the caller by default.
    #[schema(value_type = Option<uuid::Uuid>)]
    owner_id: Option<UserId>,
    ratelimits: Option<Vec<limits_wire::RateLimitIn>>,
    credits: Option<limits_wire::CreditsIn>,
    ip_allowlist: Option<Vec<String>>,
}

impl CreateKeyRequest {
    /// A native key (the console makes these too).
    pub(crate) fn into_new_key(self) -> Result<NewKey, Failure> {
        Ok(NewKey {
            name: self.name,
            grants: grants(self.permissions)?,
            expires_at: self.expires_at,
            metadata: metadata(self.metadata)?,
            owner: self.owner_id,
            door: Door::Native,
            shape: KeyShape::Native,
            limits: KeyLimits {
                ratelimits: limits_wire::rate_limits(self.ratelimits.unwrap_or_default())?,
                ip_allowlist: limits_wire::allowlist(self.ip_allowlist.unwrap_or_default())?,
            },
            credits: self.credits.map(limits_wire::credits).transpose()?,
        })
    }
}

/// Creates a key; the answer holds its secret, shown this once.
#[utoipa::path(post, path = "/v0/api_keys", tag = "keys", request_body = CreateKeyRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 201, description = "The key and its secret", body = IssuedKeyView), crate::openapi::Refusals))]
pub(crate) async fn create_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Body(req, _): Body<Native, CreateKeyRequest>,
) -> ApiResult<Response> {
    let issued = app.create_key(&caller, req.into_new_key()?).await?;
    let body = IssuedKeyView {
        key: KeyView::of(&issued.key),
        api_key: issued.secret.expose(),
        previous_expires_at: None,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListKeysQuery {
    #[param(minimum = 0)]
    offset: Option<i32>,
    /// 1 to 1000 (50 by default).
    #[param(minimum = 0)]
    limit: Option<i32>,
    #[param(value_type = Option<uuid::Uuid>)]
    owner_id: Option<UserId>,
    include_revoked: Option<bool>,
    /// Only keys whose name or start contains this text, ignoring case.
    search: Option<String>,
    /// Only keys in this state: active, disabled, expired or revoked.
    state: Option<String>,
}

/// Keys, newest first: the caller's own, or (administrators) any owner's.
#[utoipa::path(get, path = "/v0/api_keys", tag = "keys", params(ListKeysQuery), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "A page of keys, each with its recent use", body = PageView<KeyView>), crate::openapi::Refusals))]
pub(crate) async fn list_keys(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    QueryOf(q, _): QueryOf<Native, ListKeysQuery>,
) -> ApiResult<Response> {
    let page = page(q.offset, q.limit)?;
    let filter = KeyFilter {
        owner: q.owner_id,
        include_revoked: q.include_revoked.unwrap_or(false),
        search: q.search.filter(|s| !s.trim().is_empty()),
        state: q.state.as_deref().map(key_state).transpose()?,
        ..KeyFilter::default()
    };
    let keys = app.list_keys(&caller, filter, page).await?;
    let recent = app.recent_use(&caller, &keys.items).await?;
    let view = page_view(&keys, page, |key| {
        KeyView::with_usage(key, recent.get(&key.id))
    });
    Ok(Json(view).into_response())
}

/// A key state named in a query.
pub fn key_state(text: &str) -> Result<keyward_core::KeyState, Failure> {
    keyward_core::KeyState::parse(text).ok_or_else(|| Failure::Validation {
        field: "state".into(),
        message: format!("'{text}' is not a state: use active, disabled, expired or revoked"),
    })
}

/// A key (never its secret). The ETag names its version for `If-Match`.
#[utoipa::path(get, path = "/v0/api_keys/{id}", tag = "keys", params(("id" = uuid::Uuid, Path, description = "The key's id")), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The key", body = KeyView), crate::openapi::Refusals))]
pub(crate) async fn get_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
) -> ApiResult<Response> {
    let key = app
        .get_key(&caller, parse_id::<KeyId>(&id, "key")?, false)
        .await?;
    Ok(with_etag(Json(KeyView::of(&key)).into_response(), &key))
}

/// A key's version as an ETag: its `updated_at` in microseconds, which every change
/// moves forward.
fn with_etag(mut response: Response, key: &ApiKey) -> Response {
    let micros = key.updated_at.unix_timestamp_nanos() / 1_000;
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!("\"{micros}\"")) {
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, value);
    }
    response
}

/// The version an `If-Match` names: one ETag of [`with_etag`]'s (`*` names any).
fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<OffsetDateTime>, Failure> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || Failure::BadRequest("If-Match must be an ETag this server gave (\"...\")".into());
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let micros: i128 = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse().ok())
        .ok_or_else(bad)?;
    OffsetDateTime::from_unix_timestamp_nanos(micros * 1_000)
        .map(Some)
        .map_err(|_| bad())
}

/// `expires_at: null` clears the expiry; an absent field leaves it alone.
fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateKeyRequest {
    name: Option<String>,
    permissions: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    expires_at: Option<Option<OffsetDateTime>>,
    metadata: Option<Value>,
    enabled: Option<bool>,
    ratelimits: Option<Vec<limits_wire::RateLimitIn>>,
    #[serde(default, deserialize_with = "limits_wire::double_option_credits")]
    credits: Option<Option<limits_wire::CreditsIn>>,
    ip_allowlist: Option<Vec<String>>,
}

impl UpdateKeyRequest {
    /// The change, made only if the key is still at `if_version` (when one is named).
    pub(crate) fn into_patch(
        self,
        if_version: Option<OffsetDateTime>,
    ) -> Result<KeyPatch, Failure> {
        Ok(KeyPatch {
            name: self.name,
            grants: grants(self.permissions)?,
            expires_at: self.expires_at,
            metadata: self.metadata.map(|m| metadata(Some(m))).transpose()?,
            enabled: self.enabled,
            ratelimits: self.ratelimits.map(limits_wire::rate_limits).transpose()?,
            ip_allowlist: self.ip_allowlist.map(limits_wire::allowlist).transpose()?,
            credits: self
                .credits
                .map(|c| c.map(limits_wire::credits).transpose())
                .transpose()?,
            if_version,
        })
    }
}

/// Changes a key; absent fields are left alone, `null` clears expiry and credits.
#[utoipa::path(patch, path = "/v0/api_keys/{id}", tag = "keys",
    params(("id" = uuid::Uuid, Path, description = "The key's id"), ("If-Match" = Option<String>, Header, description = "Change only this version (an ETag)")),
    request_body = UpdateKeyRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The key as changed", body = KeyView), crate::openapi::Refusals))]
pub(crate) async fn update_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
    headers: axum::http::HeaderMap,
    Body(req, _): Body<Native, UpdateKeyRequest>,
) -> ApiResult<Response> {
    let patch = req.into_patch(if_match(&headers)?)?;
    let key = app
        .update_key(&caller, parse_id(&id, "key")?, patch)
        .await?;
    Ok(with_etag(Json(KeyView::of(&key)).into_response(), &key))
}

/// Revokes a key, on every node at once; it cannot be used again.
#[utoipa::path(delete, path = "/v0/api_keys/{id}", tag = "keys", params(("id" = uuid::Uuid, Path, description = "The key's id")), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The revoked key", body = KeyView), crate::openapi::Refusals))]
pub(crate) async fn revoke_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
) -> ApiResult<Response> {
    let key = app.revoke_key(&caller, parse_id(&id, "key")?).await?;
    Ok(Json(KeyView::of(&key)).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateRequest {
    grace_seconds: Option<u64>,
}

/// Gives a key a new secret; the old one keeps working for `grace_seconds`.
#[utoipa::path(post, path = "/v0/api_keys/{id}/rotate", tag = "keys", params(("id" = uuid::Uuid, Path, description = "The key's id")),
    request_body(content = Option<RotateRequest>, description = "Optional: an empty body rotates with no grace period"), security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The key and its new secret", body = IssuedKeyView), crate::openapi::Refusals))]
pub(crate) async fn rotate_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    // The body is optional: an empty one means "no grace period". Read through
    // `read_body` so that an oversized one gets the native 413, not axum's plain text.
    let body = crate::body::read_body(request.into_body()).await?;
    let req: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        crate::body::parse_json(&body)?
    };
    let grace = Duration::from_secs(req.grace_seconds.unwrap_or(0));
    let (issued, old_until) = app
        .rotate_key(&caller, parse_id(&id, "key")?, grace)
        .await?;
    let body = IssuedKeyView {
        key: KeyView::of(&issued.key),
        api_key: issued.secret.expose(),
        previous_expires_at: Some(old_until),
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreditsRequest {
    /// set, increment or decrement.
    #[schema(pattern = "^(set|increment|decrement)$")]
    op: String,
    value: i64,
}

/// Sets, adds to or takes from a key's credits.
#[utoipa::path(post, path = "/v0/api_keys/{id}/credits", tag = "keys", params(("id" = uuid::Uuid, Path, description = "The key's id")),
    request_body = CreditsRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The credits left", body = CreditsLeft), crate::openapi::Refusals))]
pub(crate) async fn change_credits(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    Params(id, _): Params<Native, String>,
    Body(req, _): Body<Native, CreditsRequest>,
) -> ApiResult<Json<CreditsLeft>> {
    let op = keyward_store::CreditOp::parse(&req.op).ok_or_else(|| Failure::Validation {
        field: "op".into(),
        message: format!(
            "'{}' is not an operation: use set, increment or decrement",
            req.op
        ),
    })?;
    let value = u64::try_from(req.value).map_err(|_| Failure::Validation {
        field: "value".into(),
        message: "value must not be negative".into(),
    })?;
    let left = app
        .change_credits(&caller, parse_id(&id, "key")?, op, value)
        .await?;
    Ok(Json(CreditsLeft { remaining: left }))
}

/// A permission query (`invoices.read AND (data.* OR admin)`), or a list of
/// permissions that must all be held.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum PermissionQuery {
    Expression(String),
    AllOf(Vec<String>),
}

/// Borrows the key from the body when it can (a key has nothing to unescape), so the
/// hot path copies nothing out of the request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyRequest<'a> {
    /// The key presented to the caller.
    #[serde(borrow)]
    #[schema(value_type = String)]
    key: Cow<'a, str>,
    permissions: Option<PermissionQuery>,
    /// Credits this verification costs (1 by default).
    credits: Option<limits_wire::CreditCost>,
    /// Rate limits to charge by name, beyond the auto-applied ones.
    ratelimits: Option<Vec<limits_wire::NamedLimit>>,
    /// The address of the client the caller verifies for (default: the caller's own).
    ip: Option<String>,
}

impl<'a> VerifyRequest<'a> {
    /// Reads a verification request. The body nearly every client sends, a lone key
    /// (`{"key":"…"}`, any JSON whitespace between the tokens), is read by
    /// [`lone_key`] without going through serde_json's deserializer, which cost more
    /// than the rest of the request's parsing; any other body, from one escape in the
    /// key to extra fields, is parsed in full.
    fn parse(body: &'a [u8]) -> Result<Self, Failure> {
        match lone_key(body) {
            Some(key) => Ok(VerifyRequest {
                key: Cow::Borrowed(key),
                permissions: None,
                credits: None,
                ratelimits: None,
                ip: None,
            }),
            None => crate::body::parse_json(body),
        }
    }
}

/// The key of a body that is exactly one `"key"` member whose string has nothing to
/// unescape (no `\`, no control character), else `None`. Where it answers, serde_json
/// reads the same key (a property test holds it to that).
fn lone_key(body: &[u8]) -> Option<&str> {
    let json_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let token = |rest: &[u8], token: &[u8]| -> Option<usize> {
        let start = rest.iter().position(|b| !json_space(b))?;
        rest[start..]
            .starts_with(token)
            .then_some(start + token.len())
    };
    let mut rest = body;
    for expected in [&b"{"[..], b"\"key\"", b":", b"\""] {
        rest = &rest[token(rest, expected)?..];
    }
    let end = memchr::memchr(b'"', rest)?;
    let (key, after) = rest.split_at(end);
    // Without an early exit, so that it compiles to a few wide comparisons.
    let unescaped = key
        .iter()
        .fold(true, |ok, &b| ok & (b != b'\\') & (b >= 0x20));
    if !unescaped {
        return None;
    }
    let after = &after[1..];
    let after = &after[token(after, b"}")?..];
    if !after.iter().all(json_space) {
        return None;
    }
    std::str::from_utf8(key).ok()
}

/// The answer to a verification, serialized straight from the cached key: this is the
/// hot path, so nothing is copied into an intermediate JSON tree.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct VerifyAnswer<'a> {
    valid: bool,
    /// VALID, NOT_FOUND, MALFORMED, EXPIRED, REVOKED, DISABLED,
    /// INSUFFICIENT_PERMISSIONS, FORBIDDEN, RATE_LIMITED or USAGE_EXCEEDED.
    code: &'static str,
    #[schema(value_type = Option<uuid::Uuid>)]
    key_id: Option<KeyId>,
    name: Option<&'a str>,
    #[schema(value_type = Option<uuid::Uuid>)]
    owner_id: Option<UserId>,
    #[schema(value_type = Option<Vec<String>>)]
    permissions: Option<&'a Grants>,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<&'a keyward_core::Metadata>,
    /// The rate limits charged, as they stand after the charge.
    ratelimits: Vec<limits_wire::RateLimitOut<'a>>,
    /// `null` when the key's credits are unlimited.
    credits: Option<CreditsLeft>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreditsLeft {
    remaining: u64,
}

impl VerifyAnswer<'_> {
    fn render(code: keyward_core::VerifyCode, key: Option<&ApiKey>) -> axum::body::Bytes {
        Self::render_charged(code, key, None)
    }

    /// A valid answer of a charged key: the cached answer of its key, whose limits part
    /// (the last two fields, empty) is replaced by what the charge says. `None` if the
    /// cached answer does not end as expected.
    fn with_limits(
        cached: &axum::body::Bytes,
        charged: &keyward_app::limiter::Charged,
    ) -> Option<axum::body::Bytes> {
        const EMPTY_LIMITS: &[u8] = br#","ratelimits":[],"credits":null}"#;
        let rest = cached.strip_suffix(EMPTY_LIMITS)?;
        let mut answer = Vec::with_capacity(rest.len() + 64 + 96 * charged.rates.len());
        answer.extend_from_slice(rest);
        answer.extend_from_slice(br#","ratelimits":"#);
        serde_json::to_writer(&mut answer, &limits_wire::rate_states(charged)).ok()?;
        answer.extend_from_slice(br#","credits":"#);
        let credits = charged
            .credits_left
            .map(|remaining| CreditsLeft { remaining });
        serde_json::to_writer(&mut answer, &credits).ok()?;
        answer.push(b'}');
        Some(axum::body::Bytes::from(answer))
    }

    fn render_charged(
        code: keyward_core::VerifyCode,
        key: Option<&ApiKey>,
        charged: Option<&keyward_app::limiter::Charged>,
    ) -> axum::body::Bytes {
        let answer = VerifyAnswer {
            valid: code.is_valid(),
            code: code.as_str(),
            key_id: key.map(|k| k.id),
            name: key.map(|k| k.name.as_str()),
            owner_id: key.map(|k| k.owner_id),
            permissions: key.map(|k| &k.grants),
            expires_at: key.and_then(|k| k.expires_at),
            metadata: key.map(|k| &k.metadata),
            ratelimits: charged.map(limits_wire::rate_states).unwrap_or_default(),
            credits: charged
                .and_then(|c| c.credits_left)
                .map(|remaining| CreditsLeft { remaining }),
        };
        // At its exact size: a valid answer is kept on its cache entry.
        let json = serde_json::to_vec(&answer).expect("answers serialize");
        axum::body::Bytes::from(json.into_boxed_slice())
    }
}

/// Verifies a key presented to the caller: state, permissions, address, limits and credits.
/// A refused key is a 200 with `valid: false` and its code.
#[utoipa::path(post, path = "/v0/keys/verify", tag = "verification", request_body = VerifyRequest, security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses((status = 200, description = "The verdict", body = VerifyAnswer), crate::openapi::Refusals))]
pub(crate) async fn verify_key(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let body = crate::body::read_body(body).await?;
    let req = VerifyRequest::parse(&body)?;
    let query = match &req.permissions {
        None => None,
        Some(PermissionQuery::Expression(text)) => {
            Some(keyward_core::Query::parse(text).map_err(|e| in_permissions(e.into()))?)
        }
        Some(PermissionQuery::AllOf(list)) => {
            Some(keyward_core::Query::all_of(list).map_err(|e| in_permissions(e.into()))?)
        }
    };
    let ask = limits_wire::ask(req.credits, req.ratelimits)?;
    // The address the key's allow-list is checked against: the one the caller names
    // for its own client, else the caller's (so that a forgotten `ip` fails closed).
    let client = match &req.ip {
        Some(text) => {
            Some(
                text.trim()
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| Failure::Validation {
                        field: "ip".into(),
                        message: format!("'{text}' is not an IPv4 or IPv6 address"),
                    })?,
            )
        }
        None => caller.remote_ip,
    };
    let (verdict, checked) = app
        .verify_key(&caller, &req.key, query.as_ref(), &ask, &|| client)
        .await?;
    let body = match (verdict.matched(), &checked.charged) {
        // A valid answer of a key without limits depends on the cached key alone:
        // rendered once per entry.
        (Some(matched), None) if checked.code.is_valid() => matched
            .valid_answer
            .get_or_init(|| VerifyAnswer::render(verdict.code, Some(&matched.key)))
            .clone(),
        // With limits, only their part changes: appended to the cached rest.
        (Some(matched), Some(charged)) if checked.code.is_valid() => {
            let cached = matched
                .valid_answer
                .get_or_init(|| VerifyAnswer::render(verdict.code, Some(&matched.key)));
            VerifyAnswer::with_limits(cached, charged).unwrap_or_else(|| {
                VerifyAnswer::render_charged(checked.code, Some(&matched.key), Some(charged))
            })
        }
        (matched, charged) => {
            VerifyAnswer::render_charged(checked.code, matched.map(|m| &*m.key), charged.as_ref())
        }
    };
    let mut answer = Response::new(axum::body::Body::from(body));
    answer.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(answer)
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("UTC times format")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_of(choices: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(choices).prop_map(<[u8]>::to_vec)
    }

    /// Bodies near the lone-key shape: every kind of whitespace (JSON's and not), an
    /// escaped or other member name, value bytes that need unescaping, are not allowed
    /// raw or are not UTF-8, other members, trailing bytes.
    fn near_lone_key() -> impl Strategy<Value = Vec<u8>> {
        let ws = || any_of(&[b"", b" ", b"\t", b"\n\r", b"\x0c", b"  "]);
        let name = any_of(&[b"\"key\"", b"\"ke\\u0079\"", b"\"kez\"", b"key"]);
        let byte = prop::sample::select(&b"aZ0_-\\\"\x00\x1f\t \xc3\xa9\xff/u"[..]);
        let value = prop::collection::vec(byte, 0..12);
        let tail = any_of(&[b"", b",\"permissions\":\"a\"", b",\"x\":1", b","]);
        let end = any_of(&[b"", b"x", b"}"]);
        (ws(), ws(), name, ws(), ws(), value, tail, ws(), end).prop_map(
            |(w1, w2, name, w3, w4, value, tail, w5, end)| {
                [
                    w1,
                    b"{".to_vec(),
                    w2,
                    name,
                    w3,
                    b":".to_vec(),
                    w4,
                    b"\"".to_vec(),
                    value,
                    b"\"".to_vec(),
                    tail,
                    w5,
                    b"}".to_vec(),
                    end,
                ]
                .concat()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]
        /// Wherever the shortcut reads a key, serde_json reads the same request.
        #[test]
        fn a_lone_key_reads_as_serde_json_reads_it(body in near_lone_key()) {
            if let Some(key) = lone_key(&body) {
                let full: VerifyRequest = serde_json::from_slice(&body)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {body:?}")))?;
                prop_assert_eq!(full.key.as_ref(), key);
                prop_assert!(full.permissions.is_none());
            }
        }
    }

    #[test]
    fn common_bodies_take_the_shortcut_and_others_do_not() {
        for body in [
            r#"{"key":"kw_x"}"#,
            r#"{"key": "kw_x"}"#,
            " {\n \"key\" : \"kw_x\"\r\n}\t",
        ] {
            assert_eq!(lone_key(body.as_bytes()), Some("kw_x"), "{body:?}");
        }
        for body in [
            r#"{"key":"kw\u0041"}"#,
            r#"{"key":"kw_x","permissions":"a"}"#,
            "{\"key\":\"kw\tx\"}",
            r#"{"key":"kw_x"} x"#,
            "\x0c{\"key\":\"kw_x\"}",
            r#"{"key":"kw_x""#,
            "",
        ] {
            assert_eq!(lone_key(body.as_bytes()), None, "{body:?}");
        }
        let parsed = VerifyRequest::parse(br#"{"key":"kw\u0041"}"#).unwrap();
        assert_eq!(parsed.key, "kwA", "escapes go through serde_json");
    }
}
