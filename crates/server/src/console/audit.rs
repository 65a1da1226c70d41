//! The audit log in the console, with the API's filters (`GET /v0/audit`'s parsing).

use super::keys::events_table;
use super::layout::{page, utc_from_local_input};
use super::session::Signed;
use super::{respond, Page};
use crate::audit::{cursor, AuditQuery};
use crate::error::Failure;
use crate::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use keyward_core::audit::Action;
use maud::html;
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditPageQuery {
    action: Option<String>,
    actor_id: Option<String>,
    target_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

const PER_PAGE: &str = "50";

pub async fn list(
    State(app): State<AppState>,
    signed: Signed,
    query: Result<Query<AuditPageQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = query.map_err(|e| Failure::BadRequest(e.body_text()))?;
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    let api_query = AuditQuery {
        action: given(&q.action),
        actor_id: given(&q.actor_id),
        target_id: given(&q.target_id),
        since: given(&q.since).map(|t| utc_from_local_input(&t)),
        until: given(&q.until).map(|t| utc_from_local_input(&t)),
        cursor: given(&q.cursor),
        limit: Some(PER_PAGE.into()),
    };
    let events = app
        .audit_events(&signed.caller, api_query.filter()?)
        .await?;
    let next = events.next.map(|position| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("action", &q.action),
            ("actor_id", &q.actor_id),
            ("target_id", &q.target_id),
            ("since", &q.since),
            ("until", &q.until),
        ] {
            if let Some(value) = given(value) {
                link.append_pair(name, &value);
            }
        }
        link.append_pair("cursor", &cursor(position));
        format!("/console/audit?{}", link.finish())
    });
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/console/audit" {
            div {
                label for="action" { "Action" }
                select #action name="action" {
                    option value="" { "Any" }
                    @for action in Action::ALL {
                        option value=(action.as_str()) selected[q.action.as_deref() == Some(action.as_str())] { (action.as_str()) }
                    }
                }
            }
            div {
                label for="actor_id" { "Actor id" }
                input #actor_id type="text" name="actor_id" value=(text(&q.actor_id)) spellcheck="false";
            }
            div {
                label for="target_id" { "Target id" }
                input #target_id type="text" name="target_id" value=(text(&q.target_id)) spellcheck="false";
            }
            div {
                label for="since" { "Since (UTC)" }
                input #since type="datetime-local" name="since" value=(text(&q.since));
            }
            div {
                label for="until" { "Until (UTC)" }
                input #until type="datetime-local" name="until" value=(text(&q.until));
            }
            button type="submit" { "Filter" }
        }
        (events_table(&events.events))
        @if let Some(next) = next {
            nav.pager aria-label="Pages" { a href=(next) rel="next" { "Older events →" } }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Audit log", Some(&signed.nav("audit")), body),
    ))
}
