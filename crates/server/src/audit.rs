//! The native door's view of the audit log: `GET /v0/audit`, newest first, one page at
//! a time behind an opaque cursor.

use crate::door::{Authed, QueryOf};
use crate::error::{ApiResult, Failure};
use crate::native::Native;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use keyward_core::audit::{Action, AuditEvent, AuditFilter};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v0/audit", get(list_events))
}

/// Events per page unless the request says otherwise.
const DEFAULT_LIMIT: u32 = 100;

/// The log's filters as query parameters (the console's audit page takes the same).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only this action (`key.created`, `login.failed`, ...).
    pub action: Option<String>,
    /// Only events by this user or key.
    #[param(format = Uuid)]
    pub actor_id: Option<String>,
    /// Only events about this key, user, tenant or space.
    #[param(format = Uuid)]
    pub target_id: Option<String>,
    /// RFC 3339.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// RFC 3339.
    #[param(format = DateTime)]
    pub until: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000 (100 by default).
    #[param(pattern = "^[0-9]+$")]
    pub limit: Option<String>,
}

impl AuditQuery {
    pub(crate) fn filter(&self) -> Result<AuditFilter, Failure> {
        Ok(AuditFilter {
            action: self.action.as_deref().map(action).transpose()?,
            actor_id: self
                .actor_id
                .as_deref()
                .map(|t| id(t, "actor_id"))
                .transpose()?,
            target_id: self
                .target_id
                .as_deref()
                .map(|t| id(t, "target_id"))
                .transpose()?,
            since: self
                .since
                .as_deref()
                .map(|t| time(t, "since"))
                .transpose()?,
            until: self
                .until
                .as_deref()
                .map(|t| time(t, "until"))
                .transpose()?,
            involving: None,
            before: self.cursor.as_deref().map(cursor_position).transpose()?,
            limit: self
                .limit
                .as_deref()
                .map(limit)
                .transpose()?
                .unwrap_or(DEFAULT_LIMIT),
        })
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = AuditPage)]
struct AuditPageView<'a> {
    #[schema(value_type = Vec<AuditEventSchema>)]
    events: &'a [AuditEvent],
    /// Where the next (older) page starts; null on the last.
    next_cursor: Option<String>,
}

/// How `AuditEvent` (core) serializes (a test holds the two together).
#[derive(utoipa::ToSchema)]
#[schema(as = AuditEvent)]
#[allow(dead_code)]
pub(crate) struct AuditEventSchema {
    id: Uuid,
    time: OffsetDateTime,
    tenant_id: Option<Uuid>,
    /// `{type: user|key|system|anonymous, id}`.
    #[schema(value_type = Object)]
    actor: (),
    /// native, macrometa, octopus, w3ipfs, gateway, console, or system.
    door: String,
    remote_ip: Option<String>,
    /// `key.created`, `key.revoked`, `login.failed`, ...
    action: String,
    /// `{type: key|user|tenant|space|nobody, id}`.
    #[schema(value_type = Object)]
    target: (),
    /// Per field: `{from, to}` (secrets and password hashes as "[hidden]").
    #[schema(value_type = Object)]
    changes: (),
    #[schema(value_type = Object)]
    details: (),
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/v0/audit",
    tag = "audit",
    params(AuditQuery),
    security(("session" = []), ("api_key" = []), ("x_api_key" = [])),
    responses(
        (status = 200, description = "A page of events", body = AuditPageView),
        crate::openapi::Refusals,
    )
)]
pub(crate) async fn list_events(
    State(app): State<AppState>,
    Authed(caller, _): Authed<Native>,
    QueryOf(q, _): QueryOf<Native, AuditQuery>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    let page = app.audit_events(&caller, filter).await?;
    let view = AuditPageView {
        events: &page.events,
        next_cursor: page.next.map(cursor),
    };
    Ok(Json(view).into_response())
}

fn action(text: &str) -> Result<Action, Failure> {
    Action::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        Failure::BadRequest(format!(
            "action '{text}' is not an audit action: use one of {}",
            known.join(", ")
        ))
    })
}

fn id(text: &str, field: &str) -> Result<Uuid, Failure> {
    Uuid::parse_str(text).map_err(|_| Failure::BadRequest(format!("{field} must be a UUID")))
}

fn time(text: &str, field: &str) -> Result<OffsetDateTime, Failure> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|_| {
        Failure::BadRequest(format!(
            "{field} must be an RFC 3339 time, such as 2026-01-31T12:00:00Z"
        ))
    })
}

fn limit(text: &str) -> Result<u32, Failure> {
    text.parse()
        .ok()
        .filter(|n| (1..=keyward_app::audit::MAX_PAGE).contains(n))
        .ok_or_else(|| {
            Failure::BadRequest(format!(
                "limit must be a whole number from 1 to {}",
                keyward_app::audit::MAX_PAGE
            ))
        })
}

/// The cursor is the position of the last event shown, in a form clients should not
/// build themselves.
pub(crate) fn cursor(position: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{position}"))
}

fn cursor_position(text: &str) -> Result<i64, Failure> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("audit:")?.parse().ok())
        .filter(|position: &i64| *position > 0)
        .ok_or_else(|| {
            Failure::BadRequest(
                "cursor is not one this server gave: pass next_cursor back unchanged".into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        assert_eq!(cursor_position(&cursor(42)).unwrap(), 42);
        for bad in ["", "!!", "YXVkaXQ6", "YXVkaXQ6LTE", "bm9wZTo0Mg"] {
            assert!(cursor_position(bad).is_err(), "{bad}");
        }
    }
}
