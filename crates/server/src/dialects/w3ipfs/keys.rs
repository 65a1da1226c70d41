//! `/api/apiKeys`: create (admin only), list, delete, and the authentication test.

use super::scopes::{grants_from_scopes, scopes_from_grants};
use super::{W3Result, W3};
use crate::body::{parse_json, read_body};
use crate::door::{Authed, Params, QueryOf};
use crate::AppState;
use axum::extract::{Request, State};
use axum::Json;
use keyward_app::NewKey;
use keyward_core::{ApiKey, CoreError, Door, KeyId, KeyShape, Metadata, Page};
use keyward_store::KeyFilter;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    name: Option<String>,
    scopes: Option<Value>,
}

/// `POST /api/apiKeys/`: W3IPFS lets only an admin key (or the account's session)
/// make keys; the core decides who is an admin and refuses any grant beyond the caller's.
pub async fn create(
    State(app): State<AppState>,
    Authed(principal, _): Authed<W3>,
    request: Request,
) -> W3Result<Json<Value>> {
    app.check_may_create_keys(&principal, keyward_core::Door::W3ipfs)?;
    let body: CreateRequest = parse_json(&read_body(request.into_body()).await?)?;
    let name = body.name.ok_or_else(|| required("name"))?;
    let scopes = body.scopes.ok_or_else(|| required("scopes"))?;
    let request = NewKey {
        name,
        grants: Some(grants_from_scopes(&scopes)?),
        expires_at: None,
        metadata: Metadata::new(),
        owner: None,
        door: Door::W3ipfs,
        shape: KeyShape::Pair,
        limits: Default::default(),
        credits: None,
    };
    let issued = app.create_key(&principal, request).await?;
    Ok(Json(json!({
        "data": {
            "name": issued.key.name,
            "api_key": issued.key.public_id,
            "secret_key": issued.secret.expose(),
        },
        "status": "success",
    })))
}

fn required(field: &str) -> CoreError {
    CoreError::invalid(field, format!("{field} is required"))
}

/// Paging is not in W3IPFS's documentation for this route; `offset` and `limit` are
/// accepted as on its other listings.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// `GET /api/apiKeys/list`: the caller's live W3IPFS keys, newest first.
pub async fn list(
    State(app): State<AppState>,
    Authed(principal, _): Authed<W3>,
    QueryOf(query, _): QueryOf<W3, ListQuery>,
) -> W3Result<Json<Value>> {
    let page = Page::new(query.offset.unwrap_or(0), query.limit.unwrap_or(100));
    let filter = KeyFilter {
        owner: Some(principal.user.id),
        door: Some(Door::W3ipfs),
        ..KeyFilter::default()
    };
    let keys = app.list_keys(&principal, filter, page).await?;
    let items: Vec<Value> = keys.items.iter().map(key_view).collect();
    Ok(Json(json!({
        "data": { "total": keys.total, "api_keys": items },
        "status": "success",
    })))
}

/// One listed key. W3IPFS's own example lists `secret_key`; Keyward never shows a
/// secret again, so the field keeps its type and is empty.
fn key_view(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "api_key": key.public_id.as_deref().unwrap_or_default(),
        "secret_key": "",
        "scopes": scopes_from_grants(&key.grants),
        "created_at": micros_utc(key.created_at),
    })
}

/// W3IPFS's time format: RFC 3339 in UTC with six fractional digits and `Z`.
fn micros_utc(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(format)
        .expect("UTC times format")
}

/// `DELETE /api/apiKeys/{id}`: revokes a key named by its id or, as Pinata does, by its
/// API key (the pair's public half).
pub async fn delete(
    State(app): State<AppState>,
    Authed(principal, _): Authed<W3>,
    Params(id, _): Params<W3, String>,
) -> W3Result<Json<Value>> {
    let key_id = match id.parse::<KeyId>() {
        Ok(key_id) => key_id,
        Err(_) => app.key_by_public_id(&principal, &id, true).await?.id,
    };
    app.revoke_key(&principal, key_id).await?;
    Ok(Json(json!({
        "message": "API key has been deleted",
        "status": "success",
    })))
}

/// `GET /api/apiKeys/testAuthentication`: 200 for any credential that authenticates.
pub async fn test(Authed(_, _): Authed<W3>) -> Json<Value> {
    Json(json!({
        "message": "Congratulations! You are communicating with the Web3 IPFS API!"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_microseconds_and_z() {
        let t = time::macros::datetime!(2023-01-01 11:11:11.111111 +02:00);
        assert_eq!(micros_utc(t), "2023-01-01T09:11:11.111111Z");
        let whole = time::macros::datetime!(2023-01-01 11:11:11 UTC);
        assert_eq!(micros_utc(whole), "2023-01-01T11:11:11.000000Z");
    }
}
