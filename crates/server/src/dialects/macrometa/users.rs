//! `/_fabric/{f}/_admin/user...`: Macrometa's user calls as jsc8 makes them (getUsers,
//! getUser/hasUser, createUser, updateUser/replaceUser, deleteUser, and a user's access
//! levels). A user's levels are their grants on the same resource paths as a key's.
//! Keyward users carry no attributes, so those calls are refused by name.

use super::{
    billing_path, fabric_grant_path, level, path_of, result, success, tenant_name, user_item,
    Authed, Body, Mm, MmError, MmResult, Params,
};
use crate::error::Failure;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;
use keyward_app::{Caller, NewUser, UserPatch};
use keyward_core::{AccessLevel, Page, ResourcePath, Role, User};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn routes(router: Router<AppState>, prefix: &str) -> Router<AppState> {
    let at = |path: &str| format!("{prefix}/_admin/user{path}");
    router
        .route(&at(""), super::vendor(get(list).post(create)))
        .route(
            &at("/{u}"),
            super::vendor(get(read).patch(update).put(update).delete(deactivate)),
        )
        .route(&at("/{u}/database"), super::vendor(get(list_levels)))
        .route(
            &at("/{u}/database/{db}"),
            super::vendor(get(get_level).put(set_level).delete(clear_level)),
        )
        .route(
            &at("/{u}/database/{db}/collection/{name}"),
            super::vendor(
                get(get_collection_level)
                    .put(set_collection_level)
                    .delete(clear_collection_level),
            ),
        )
        .route(
            &at("/{u}/billing"),
            super::vendor(get(get_billing).put(set_billing).delete(clear_billing)),
        )
        .route(
            &at("/{u}/attributes"),
            super::vendor(get(no_attributes).put(no_attributes)),
        )
        .route(
            &at("/{u}/attributes/{name}"),
            super::vendor(delete(no_attributes)),
        )
}

#[derive(Deserialize)]
struct UserAt {
    u: String,
}

#[derive(Deserialize)]
struct LevelAt {
    u: String,
    db: String,
}

#[derive(Deserialize)]
struct CollectionAt {
    u: String,
    db: String,
    name: String,
}

#[derive(Deserialize)]
struct GrantRequest {
    grant: String,
}

/// One user as Macrometa answers it: the user's fields beside `error` and `code`.
async fn answer(app: &AppState, status: StatusCode, user: &User) -> MmResult<Response> {
    let tenant = tenant_name(app, user).await?;
    Ok(success(status, user_item(&tenant, user)))
}

async fn list(State(app): State<AppState>, Authed(me, _): Authed<Mm>) -> MmResult<Response> {
    let users = app.list_users(&me, Page::new(0, Page::MAX_LIMIT)).await?;
    let tenant = tenant_name(&app, &me.user).await?;
    let items: Vec<Value> = users.items.iter().map(|u| user_item(&tenant, u)).collect();
    Ok(result(Value::Array(items)))
}

async fn read(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
) -> MmResult<Response> {
    let user = app.user_by_username(&me, &u).await?;
    answer(&app, StatusCode::OK, &user).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    user: String,
    email: String,
    #[serde(default)]
    passwd: String,
    active: Option<bool>,
    #[serde(default)]
    extra: Map<String, Value>,
}

async fn create(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Body(req, _): Body<Mm, CreateRequest>,
) -> MmResult<Response> {
    refuse_extra(&req.extra)?;
    let request = NewUser {
        email: req.email,
        password: req.passwd,
        username: Some(req.user),
        display_name: None,
        role: Role::Member,
        grants: None,
    };
    let mut user = app.create_user(&me, request).await?;
    if req.active == Some(false) {
        user = set_active(&app, &me, &user, false).await?;
    }
    answer(&app, StatusCode::CREATED, &user).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    passwd: Option<String>,
    active: Option<bool>,
    #[serde(default)]
    extra: Map<String, Value>,
}

async fn update(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
    Body(req, _): Body<Mm, UpdateRequest>,
) -> MmResult<Response> {
    refuse_extra(&req.extra)?;
    let user = app.user_by_username(&me, &u).await?;
    let patch = UserPatch {
        password: req.passwd,
        active: req.active,
        ..UserPatch::default()
    };
    let user = app.update_user(&me, user.id, patch).await?;
    answer(&app, StatusCode::OK, &user).await
}

/// Keyward keeps every user for the audit log's sake: removing one deactivates it.
async fn deactivate(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
) -> MmResult<Response> {
    let user = app.user_by_username(&me, &u).await?;
    set_active(&app, &me, &user, false).await?;
    Ok(super::accepted())
}

async fn set_active(app: &AppState, me: &Caller, user: &User, active: bool) -> MmResult<User> {
    let patch = UserPatch {
        active: Some(active),
        ..UserPatch::default()
    };
    Ok(app.update_user(me, user.id, patch).await?)
}

fn refuse_extra(extra: &Map<String, Value>) -> MmResult<()> {
    if extra.is_empty() {
        Ok(())
    } else {
        Err(MmError(Failure::NotImplemented(
            "Keyward keeps no extra data on users; send 'extra' empty or leave it out".into(),
        )))
    }
}

async fn no_attributes(Authed(_, _): Authed<Mm>) -> MmError {
    MmError(Failure::NotImplemented(
        "Keyward users have no attributes; API keys do (/_api/key/{keyid}/attributes)".into(),
    ))
}

// ---- A user's access levels: their grants, as a key's ----

async fn list_levels(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
) -> MmResult<Response> {
    let user = app.user_by_username(&me, &u).await?;
    let mut levels = Map::new();
    for space in app.all_spaces(&me).await? {
        if let Ok(path) = path_of(&["fabric", &space.name]) {
            let level = user.effective_grants().level_at(&path);
            levels.insert(space.name, json!(level.as_str()));
        }
    }
    Ok(result(Value::Object(levels)))
}

async fn level_of(app: &AppState, me: &Caller, u: &str, path: &ResourcePath) -> MmResult<Response> {
    let user = app.user_by_username(me, u).await?;
    Ok(result(json!(user
        .effective_grants()
        .level_at(path)
        .as_str())))
}

/// Sets (`Some`) or clears (`None`) one of a user's levels; administrators only.
async fn change_level(
    app: &AppState,
    me: &Caller,
    u: &str,
    path: ResourcePath,
    level: Option<AccessLevel>,
) -> MmResult<Response> {
    let user = app.user_by_username(me, u).await?;
    let mut grants = user.grants.clone();
    match level {
        Some(level) => grants.set_access(path, level),
        None => {
            grants.clear_access(&path);
        }
    }
    let patch = UserPatch {
        grants: Some(grants),
        ..UserPatch::default()
    };
    app.update_user(me, user.id, patch).await?;
    Ok(match level {
        Some(level) => result(json!(level.as_str())),
        None => super::accepted(),
    })
}

async fn get_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { u, db }, _): Params<Mm, LevelAt>,
) -> MmResult<Response> {
    let path = fabric_grant_path(&app, &me, &db).await?;
    level_of(&app, &me, &u, &path).await
}

async fn set_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { u, db }, _): Params<Mm, LevelAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let path = fabric_grant_path(&app, &me, &db).await?;
    change_level(&app, &me, &u, path, Some(level)).await
}

async fn clear_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(LevelAt { u, db }, _): Params<Mm, LevelAt>,
) -> MmResult<Response> {
    let path = fabric_grant_path(&app, &me, &db).await?;
    change_level(&app, &me, &u, path, None).await
}

async fn collection_path(
    app: &AppState,
    me: &Caller,
    db: &str,
    name: &str,
) -> MmResult<ResourcePath> {
    fabric_grant_path(app, me, db).await?;
    path_of(&["fabric", db, "collection", name])
}

async fn get_collection_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(CollectionAt { u, db, name }, _): Params<Mm, CollectionAt>,
) -> MmResult<Response> {
    let path = collection_path(&app, &me, &db, &name).await?;
    level_of(&app, &me, &u, &path).await
}

async fn set_collection_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(CollectionAt { u, db, name }, _): Params<Mm, CollectionAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    let path = collection_path(&app, &me, &db, &name).await?;
    change_level(&app, &me, &u, path, Some(level)).await
}

async fn clear_collection_level(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(CollectionAt { u, db, name }, _): Params<Mm, CollectionAt>,
) -> MmResult<Response> {
    let path = collection_path(&app, &me, &db, &name).await?;
    change_level(&app, &me, &u, path, None).await
}

async fn get_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
) -> MmResult<Response> {
    let user = app.user_by_username(&me, &u).await?;
    let level = user.effective_grants().level_at(&billing_path());
    Ok(result(json!({ "billing": level.as_str() })))
}

async fn set_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
    Body(req, _): Body<Mm, GrantRequest>,
) -> MmResult<Response> {
    let level = level(&req.grant)?;
    change_level(&app, &me, &u, billing_path(), Some(level)).await
}

async fn clear_billing(
    State(app): State<AppState>,
    Authed(me, _): Authed<Mm>,
    Params(UserAt { u }, _): Params<Mm, UserAt>,
) -> MmResult<Response> {
    change_level(&app, &me, &u, billing_path(), None).await
}
