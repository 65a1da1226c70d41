//! Keys in the console: the list, creating one (its secret shown once), a key's page
//! with its usage and history, editing, rotating and revoking.
//!
//! Forms are turned into the native API's request shapes (`CreateKeyRequest`,
//! `UpdateKeyRequest`) and go through the same conversion and the same operations, so
//! nothing about keys is decided here.

use super::layout::{
    csrf_field, local_input_value, notice, page, state_badge, utc_from_local_input, when,
};
use super::session::{Fields, Signed, SignedForm};
use super::{chart, respond, Page, Shown};
use crate::error::Failure;
use crate::native::{key_state, CreateKeyRequest, UpdateKeyRequest};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_app::analytics::SeriesRequest;
use keyward_app::IssuedKey;
use keyward_core::analytics::{Granularity, GroupBy};
use keyward_core::audit::{AuditEvent, AuditFilter, Target};
use keyward_core::limits::RefillInterval;
use keyward_core::{ApiKey, KeyId, KeyState, Page as Paging, User, UserId};
use keyward_store::KeyFilter;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use time::OffsetDateTime;

const PER_PAGE: u64 = 50;
/// Rate-limit rows a form offers beyond the key's own.
const SPARE_LIMIT_ROWS: usize = 1;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    search: Option<String>,
    state: Option<String>,
    owner: Option<String>,
    page: Option<u64>,
}

pub async fn list(
    State(app): State<AppState>,
    signed: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = query.map_err(|e| Failure::BadRequest(e.body_text()))?;
    let caller = &signed.caller;
    let state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(key_state)
        .transpose()?;
    let owner = q
        .owner
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<UserId>()
                .map_err(|_| Failure::BadRequest("owner must be a user id".into()))
        })
        .transpose()?;
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let page_number = q.page.unwrap_or(1).max(1);
    let paging = Paging::new((page_number - 1) * PER_PAGE, PER_PAGE);
    let filter = KeyFilter {
        owner,
        search: search.map(str::to_string),
        state,
        ..KeyFilter::default()
    };
    let keys = app.list_keys(caller, filter, paging).await?;
    let recent = app.recent_use(caller, &keys.items).await?;
    let people = owners(&app, &signed).await?;
    let filtered = search.is_some() || state.is_some() || owner.is_some();
    let first = paging.offset + 1;
    let last = paging.offset + keys.items.len() as u64;
    let link = |n: u64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(s) = search {
            query.append_pair("search", s);
        }
        if let Some(s) = state {
            query.append_pair("state", s.as_str());
        }
        if let Some(o) = owner {
            query.append_pair("owner", &o.to_string());
        }
        query.append_pair("page", &n.to_string());
        format!("/console/keys?{}", query.finish())
    };
    let body = html! {
        div.heading {
            h1 { "Keys" }
            a.button href="/console/keys/new" { "Create a key" }
        }
        form.filters method="get" action="/console/keys" role="search" {
            div {
                label for="search" { "Search by name or start" }
                input #search type="search" name="search" value=[search];
            }
            div {
                label for="state" { "State" }
                select #state name="state" {
                    option value="" { "Any but revoked" }
                    @for s in KeyState::ALL {
                        option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            @if signed.caller.acts_as_admin() {
                div {
                    label for="owner" { "Owner" }
                    select #owner name="owner" {
                        option value="" { "Anyone" }
                        @for (id, person) in &people {
                            option value=(id) selected[owner == Some(*id)] { (person) }
                        }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if keys.items.is_empty() {
            @if filtered {
                p.empty { "No keys match these filters. " a href="/console/keys" { "Show all keys" } }
            } @else {
                p.empty { "No keys yet — " a href="/console/keys/new" { "create one" } "." }
            }
        } @else {
            p.muted #count { "Showing " (first) "–" (last) " of " (keys.total) }
            div.scroll tabindex="0" role="region" aria-label="Keys" {
                table #keys {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Start" } th scope="col" { "Owner" }
                        th scope="col" { "State" } th scope="col" { "Permissions" } th scope="col" { "Last used" }
                        th scope="col" { "Uses (24 h)" } th scope="col" { "Expires" }
                    } }
                    tbody {
                        @for key in &keys.items {
                            @let uses = recent.get(&key.id).map_or(0, |r| r.day.total());
                            tr data-key=(key.id) {
                                td data-label="Name" { a href={ "/console/keys/" (key.id) } { (key.name) } }
                                td data-label="Start" { code { (key.start) "…" } }
                                td data-label="Owner" { (owner_name(&people, key.owner_id, &signed)) }
                                td data-label="State" { (state_badge(key.state(OffsetDateTime::now_utc()).as_str())) }
                                td.perms data-label="Permissions" { (permissions_text(key)) }
                                td data-label="Last used" { (when(key.last_used_at)) }
                                td.number data-label="Uses (24 h)" data-uses-24h=(uses) { (uses) }
                                td data-label="Expires" { (when(key.expires_at)) }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if page_number > 1 { a href=(link(page_number - 1)) rel="prev" { "← Newer" } }
                @if last < keys.total { a href=(link(page_number + 1)) rel="next" { "Older →" } }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Keys", Some(&signed.nav("keys")), body),
    ))
}

/// The tenant's people by id, for administrators' owner column and filter (members
/// see only their own keys).
async fn owners(app: &AppState, signed: &Signed) -> Result<BTreeMap<UserId, String>, Shown> {
    if !signed.caller.acts_as_admin() {
        return Ok(BTreeMap::new());
    }
    let users = app
        .list_users(&signed.caller, Paging::new(0, Paging::MAX_LIMIT))
        .await?;
    Ok(users.items.into_iter().map(|u| (u.id, u.email)).collect())
}

fn owner_name(people: &BTreeMap<UserId, String>, id: UserId, signed: &Signed) -> String {
    if signed.caller.is_user(id) {
        return "you".into();
    }
    people.get(&id).cloned().unwrap_or_else(|| id.to_string())
}

fn permissions_text(key: &ApiKey) -> String {
    let all = key.grants.to_strings();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

// ---- Creating ----

pub async fn new(State(app): State<AppState>, signed: Signed) -> Page {
    let form = key_form(&app, &signed, &Fields::default(), None).await?;
    Ok(respond(StatusCode::OK, form))
}

async fn key_form(
    app: &AppState,
    signed: &Signed,
    values: &Fields,
    error: Option<&str>,
) -> Result<Markup, Shown> {
    let offered = app.grantable_permissions(&signed.caller).await?;
    let people = owners(app, signed).await?;
    let chosen: Vec<&str> = values.all("permissions").collect();
    let body = html! {
        h1 { "Create a key" }
        (notice(error, None))
        form.stack method="post" action="/console/keys" {
            (csrf_field(&signed.csrf))
            label for="name" { "Name" }
            input #name type="text" name="name" value=(values.text("name")) required maxlength="200";
            @if signed.caller.acts_as_admin() {
                label for="owner_id" { "Owner" }
                select #owner_id name="owner_id" {
                    option value="" { "Me" }
                    @for (id, person) in &people {
                        @if !signed.caller.is_user(*id) {
                            option value=(id) selected[values.text("owner_id") == id.to_string()] { (person) }
                        }
                    }
                }
            }
            fieldset {
                legend { "Permissions (only what you may grant is offered)" }
                @if offered.is_empty() { p.muted { "You hold no permissions you could grant." } }
                @for (i, permission) in offered.iter().enumerate() {
                    div.check {
                        input type="checkbox" name="permissions" value=(permission) id={ "perm" (i) }
                            checked[chosen.contains(&permission.as_str())];
                        label for={ "perm" (i) } { code { (permission) } }
                    }
                }
            }
            (limit_fields(values, &[]))
            (credit_fields(values))
            (allowlist_and_metadata(values))
            label for="expires_at" { "Expires (UTC, leave empty for never)" }
            input #expires_at type="datetime-local" name="expires_at" value=(values.text("expires_at"));
            button type="submit" { "Create key" }
        }
    };
    Ok(page("Create a key", Some(&signed.nav("keys")), body))
}

fn limit_fields(values: &Fields, current: &[keyward_core::limits::RateLimit]) -> Markup {
    let rows = current.len() + SPARE_LIMIT_ROWS;
    html! {
        fieldset {
            legend { "Rate limits" }
            p.hint { "Each limit admits so many verifications per window. Leave the limit empty for none." }
            @for i in 0..rows {
                @let existing = current.get(i);
                @let field = |name: &str| format!("rl_{name}_{i}");
                @let value = |name: &str, fallback: String| {
                    let submitted = values.text(&field(name));
                    if values.checked(&field(name)) { submitted.to_string() } else { fallback }
                };
                div.row {
                    div {
                        label for=(field("name")) { "Name" }
                        input id=(field("name")) type="text" name=(field("name"))
                            value=(value("name", existing.map_or_else(|| if i == 0 { "default".into() } else { String::new() }, |l| l.name.clone())));
                    }
                    div {
                        label for=(field("limit")) { "Limit" }
                        input id=(field("limit")) type="number" min="0" inputmode="numeric" name=(field("limit"))
                            value=(value("limit", existing.map_or(String::new(), |l| l.limit.to_string())));
                    }
                    div {
                        label for=(field("seconds")) { "Per seconds" }
                        input id=(field("seconds")) type="number" min="1" inputmode="numeric" name=(field("seconds"))
                            value=(value("seconds", existing.map_or("60".into(), |l| (l.window_ms / 1000).to_string())));
                    }
                }
            }
        }
    }
}

/// The credit fields as they were shown, to tell on saving whether they were changed:
/// credits are spent meanwhile, and saving a form unchanged must not give them back.
fn credit_snapshot(values: &Fields) -> String {
    [
        "credits_remaining",
        "refill_amount",
        "refill_interval",
        "refill_day",
    ]
    .map(|name| values.text(name))
    .join("|")
}

fn credit_fields(values: &Fields) -> Markup {
    let interval = values.text("refill_interval");
    html! {
        fieldset {
            legend { "Usage credits" }
            p.hint { "Each verification spends one. Leave empty for unlimited." }
            div.row {
                div {
                    label for="credits_remaining" { "Credits" }
                    input #credits_remaining type="number" min="0" inputmode="numeric" name="credits_remaining" value=(values.text("credits_remaining"));
                }
                div {
                    label for="refill_amount" { "Refill to" }
                    input #refill_amount type="number" min="0" inputmode="numeric" name="refill_amount" value=(values.text("refill_amount"));
                }
                div {
                    label for="refill_interval" { "Refill" }
                    select #refill_interval name="refill_interval" {
                        option value="" { "Never" }
                        option value="daily" selected[interval == "daily"] { "Daily" }
                        option value="monthly" selected[interval == "monthly"] { "Monthly" }
                    }
                }
                div {
                    label for="refill_day" { "Day of month" }
                    input #refill_day type="number" min="1" max="31" inputmode="numeric" name="refill_day" value=(values.text("refill_day"));
                }
            }
        }
    }
}

fn allowlist_and_metadata(values: &Fields) -> Markup {
    html! {
        label for="ip_allowlist" { "IP allow-list (one address or network per line; empty allows any)" }
        textarea #ip_allowlist name="ip_allowlist" rows="3" { (values.text("ip_allowlist")) }
        label for="metadata" { "Metadata (a JSON object)" }
        textarea #metadata name="metadata" rows="3" spellcheck="false" { (values.text("metadata")) }
    }
}

pub async fn create(State(app): State<AppState>, form: SignedForm) -> Page {
    let SignedForm { signed, fields } = form;
    let made = match create_request(&fields) {
        Ok(request) => app
            .create_key(&signed.caller, request)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match made {
        Ok(issued) => Ok(secret_page(
            &signed,
            &issued,
            "Your new key",
            StatusCode::CREATED,
        )),
        Err(failure) if failure.status().is_client_error() => {
            let page = key_form(&app, &signed, &fields, Some(&failure.message())).await?;
            Ok(respond(failure.status(), page))
        }
        Err(failure) => Err(failure.into()),
    }
}

fn create_request(fields: &Fields) -> Result<keyward_app::NewKey, Failure> {
    let mut body = key_body(fields)?;
    body.insert("name".into(), json!(fields.text("name")));
    if let Some(owner) = fields.optional("owner_id") {
        body.insert("owner_id".into(), json!(owner));
    }
    if let Some(metadata) = fields.optional("metadata") {
        body.insert("metadata".into(), metadata_value(metadata)?);
    }
    if !credits_blank(fields) {
        body.insert("credits".into(), credits_value(fields)?);
    }
    body.retain(|_, v| !v.is_null());
    let request: CreateKeyRequest = from_form(body)?;
    request.into_new_key()
}

/// The fields creating and editing share, in the native API's spelling.
fn key_body(fields: &Fields) -> Result<Map<String, Value>, Failure> {
    let mut permissions: Vec<String> = fields.all("permissions").map(str::to_string).collect();
    permissions.extend(
        fields
            .text("more_permissions")
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    );
    let mut body = Map::new();
    body.insert("permissions".into(), json!(permissions));
    body.insert("ratelimits".into(), Value::Array(rate_limit_rows(fields)?));
    let allowlist: Vec<&str> = fields
        .text("ip_allowlist")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    body.insert("ip_allowlist".into(), json!(allowlist));
    body.insert(
        "expires_at".into(),
        fields
            .optional("expires_at")
            .map_or(Value::Null, |t| json!(utc_from_local_input(t))),
    );
    Ok(body)
}

fn rate_limit_rows(fields: &Fields) -> Result<Vec<Value>, Failure> {
    let mut rows = Vec::new();
    for i in 0.. {
        let name = format!("rl_name_{i}");
        if !fields.checked(&name) {
            break;
        }
        let Some(limit) = fields.optional(&format!("rl_limit_{i}")) else {
            continue;
        };
        rows.push(json!({
            "name": fields.optional(&name).unwrap_or("default"),
            "limit": number(limit, "ratelimits", "a rate limit")?,
            "duration_seconds": number(
                fields.optional(&format!("rl_seconds_{i}")).unwrap_or("60"),
                "ratelimits",
                "a rate limit's window",
            )?,
        }));
    }
    Ok(rows)
}

fn credits_blank(fields: &Fields) -> bool {
    fields.optional("credits_remaining").is_none()
}

fn credits_value(fields: &Fields) -> Result<Value, Failure> {
    let remaining = number(
        fields.text("credits_remaining"),
        "credits.remaining",
        "credits",
    )?;
    let refill = match fields.optional("refill_interval") {
        None => Value::Null,
        Some(interval) => {
            let amount = fields
                .optional("refill_amount")
                .ok_or_else(|| Failure::Validation {
                    field: "credits.refill.amount".into(),
                    message: "a refill needs an amount to refill to".into(),
                })?;
            let mut refill = json!({
                "amount": number(amount, "credits.refill.amount", "the refill")?,
                "interval": interval,
            });
            if let Some(day) = fields
                .optional("refill_day")
                .filter(|_| interval == "monthly")
            {
                refill["day"] = json!(number(day, "credits.refill.day", "the refill day")?);
            }
            refill
        }
    };
    Ok(json!({ "remaining": remaining, "refill": refill }))
}

fn metadata_value(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::Validation {
        field: "metadata".into(),
        message: format!("metadata must be a JSON object: {e}"),
    })
}

fn number(text: &str, field: &str, what: &str) -> Result<i64, Failure> {
    text.trim().parse().map_err(|_| Failure::Validation {
        field: field.into(),
        message: format!("{what} must be a whole number, not '{text}'"),
    })
}

/// A form's fields in the native request shape, refused as that shape refuses.
fn from_form<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(body)).map_err(|e| Failure::InvalidJson(e.to_string()))
}

/// A new secret, shown once: not in the address, the title or any cache (every console
/// answer is `no-store`), with a button to copy it.
fn secret_page(signed: &Signed, issued: &IssuedKey, title: &str, status: StatusCode) -> Response {
    let key = &issued.key;
    let body = html! {
        h1 { (title) }
        p.notice.warning role="alert" {
            strong { "Copy this secret now. " }
            "It is shown only once: Keyward keeps only a hash of it and cannot show it again."
        }
        div.secret {
            code #secret data-secret { (issued.secret.expose()) }
            button type="button" data-copy="secret" { "Copy" }
        }
        p.muted #copied role="status" {}
        p { "Key " strong { (key.name) } ", starting " code { (key.start) } "." }
        p { a.button href={ "/console/keys/" (key.id) } { "Go to the key's page" } }
    };
    respond(status, page(title, Some(&signed.nav("keys")), body))
}

// ---- A key's page ----

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    range: Option<String>,
    saved: Option<String>,
    revoked: Option<String>,
}

/// The chart's ranges: a label, a span in seconds and the bucket size.
const RANGES: [(&str, &str, i64, Granularity); 3] = [
    ("1h", "Last hour, by minute", 3600, Granularity::Minute),
    ("24h", "24 hours, by hour", 86_400, Granularity::Hour),
    ("30d", "30 days, by day", 30 * 86_400, Granularity::Day),
];

pub async fn show(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = query.map_err(|e| Failure::BadRequest(e.body_text()))?;
    let id = key_id(&id)?;
    let key = app.get_key(&signed.caller, id, false).await?;
    let news = if q.saved.is_some() {
        Some("Saved.")
    } else if q.revoked.is_some() {
        Some("The key is revoked: it no longer works.")
    } else {
        None
    };
    let range = q.range.as_deref().unwrap_or("24h");
    key_page(&app, &signed, &key, range, None, news)
        .await
        .map(|page| respond(StatusCode::OK, page))
}

fn key_id(text: &str) -> Result<KeyId, Failure> {
    text.parse()
        .map_err(|_| Failure::NotFound(keyward_core::Entity::ApiKey))
}

async fn key_page(
    app: &AppState,
    signed: &Signed,
    key: &ApiKey,
    range: &str,
    error: Option<&str>,
    news: Option<&str>,
) -> Result<Markup, Shown> {
    let (_, _, span, granularity) = RANGES
        .iter()
        .find(|(name, ..)| *name == range)
        .copied()
        .ok_or_else(|| Failure::BadRequest("range is 1h, 24h or 30d".into()))?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let series = app
        .verification_series(
            &signed.caller,
            SeriesRequest {
                key: Some(key.id),
                owner: None,
                group_by: GroupBy::Key,
                granularity,
                // Whole buckets: the oldest one starts a bucket after now - span.
                since: now - span + granularity.seconds(),
                until: now,
            },
        )
        .await?;
    let trail = app
        .audit_events(
            &signed.caller,
            AuditFilter {
                target_id: Some(key.id.0),
                limit: 20,
                ..AuditFilter::default()
            },
        )
        .await?;
    let owner = if signed.caller.is_user(key.owner_id) {
        "you".to_string()
    } else {
        app.get_user(&signed.caller, key.owner_id)
            .await
            .map_or_else(|_| key.owner_id.to_string(), |u: User| u.email)
    };
    let state = key.state(OffsetDateTime::now_utc());
    let body = html! {
        div.heading {
            h1 { (key.name) " " (state_badge(state.as_str())) }
        }
        (notice(error, news))
        dl.facts {
            dt { "Id" } dd { code { (key.id) } }
            dt { "Start" } dd { code { (key.start) "…" } }
            dt { "Owner" } dd { (owner) }
            dt { "Permissions" } dd { (permissions_text(key)) }
            dt { "Created" } dd { (when(Some(key.created_at))) }
            dt { "Expires" } dd { (when(key.expires_at)) }
            dt { "Last used" } dd { (when(key.last_used_at)) }
            dt { "Uses" } dd { (key.use_count) }
            dt { "Rate limits" } dd {
                @if key.limits.ratelimits.is_empty() { "none" }
                @for l in &key.limits.ratelimits { (l.name) ": " (l.limit) " per " (l.window_ms / 1000) " s" br; }
            }
            dt { "Credits" } dd #credits {
                @match &key.credits {
                    None => "unlimited",
                    Some(c) => { (c.remaining) @if let Some(r) = &c.refill { ", refilled to " (r.amount) " " (interval_text(r.interval)) } }
                }
            }
            dt { "IP allow-list" } dd {
                @let ips = key.limits.ip_allowlist.to_strings();
                @if ips.is_empty() { "any address" } @else { (ips.join(", ")) }
            }
            @if key.revoked_at.is_some() { dt { "Revoked" } dd { (when(key.revoked_at)) } }
        }
        section aria-labelledby="usage" {
            h2 #usage { "Usage" }
            nav.ranges aria-label="Range" {
                @for (name, label, ..) in RANGES {
                    @if name == range {
                        a href={ "?range=" (name) } aria-current="true" { (label) }
                    } @else {
                        a href={ "?range=" (name) } { (label) }
                    }
                }
            }
            (chart::usage(&series))
        }
        @if state != KeyState::Revoked {
            section aria-labelledby="edit" {
                h2 #edit { "Edit" }
                (edit_form(signed, key))
            }
            section aria-labelledby="rotate" {
                h2 #rotate { "Rotate" }
                p.hint { "A new secret replaces this one. The old one can keep working for a grace period, so that programs can move to the new one." }
                form.inline method="post" action={ "/console/keys/" (key.id) "/rotate" } {
                    (csrf_field(&signed.csrf))
                    label for="grace_seconds" { "Old secret keeps working for" }
                    select #grace_seconds name="grace_seconds" {
                        option value="0" { "no time (stops now)" }
                        option value="3600" { "1 hour" }
                        option value="86400" { "1 day" }
                        option value="604800" { "7 days" }
                    }
                    button type="submit" { "Rotate" }
                }
            }
            section aria-labelledby="revoke" {
                h2 #revoke { "Revoke" }
                p { a.button.danger href={ "/console/keys/" (key.id) "/revoke" } { "Revoke this key…" } }
            }
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            (events_table(&trail.events))
        }
    };
    Ok(page(&key.name, Some(&signed.nav("keys")), body))
}

fn interval_text(interval: RefillInterval) -> String {
    match interval {
        RefillInterval::Daily => "daily".into(),
        RefillInterval::Monthly { day } => format!("monthly on day {day}"),
    }
}

/// The key's current values as a form's fields, for the edit form.
fn current_values(key: &ApiKey) -> Fields {
    let mut pairs = vec![
        ("name".to_string(), key.name.clone()),
        (
            "ip_allowlist".to_string(),
            key.limits.ip_allowlist.to_strings().join("\n"),
        ),
        ("expires_at".to_string(), local_input_value(key.expires_at)),
        (
            "metadata".to_string(),
            serde_json::to_string_pretty(&key.metadata).unwrap_or_default(),
        ),
    ];
    if let Some(credits) = &key.credits {
        pairs.push(("credits_remaining".into(), credits.remaining.to_string()));
        if let Some(refill) = &credits.refill {
            pairs.push(("refill_amount".into(), refill.amount.to_string()));
            let (interval, day) = match refill.interval {
                RefillInterval::Daily => ("daily", String::new()),
                RefillInterval::Monthly { day } => ("monthly", day.to_string()),
            };
            pairs.push(("refill_interval".into(), interval.into()));
            pairs.push(("refill_day".into(), day));
        }
    }
    Fields::from_pairs(pairs)
}

fn edit_form(signed: &Signed, key: &ApiKey) -> Markup {
    let values = current_values(key);
    html! {
        form.stack method="post" action={ "/console/keys/" (key.id) } {
            (csrf_field(&signed.csrf))
            input type="hidden" name="credits_was" value=(credit_snapshot(&values));
            label for="name" { "Name" }
            input #name type="text" name="name" value=(key.name) required maxlength="200";
            label for="more_permissions" { "Permissions (one per line)" }
            textarea #more_permissions name="more_permissions" rows="3" spellcheck="false" { (key.grants.to_strings().join("\n")) }
            div.check {
                input #enabled type="checkbox" name="enabled" checked[key.enabled];
                label for="enabled" { "Enabled" }
            }
            (limit_fields(&Fields::default(), &key.limits.ratelimits))
            (credit_fields(&values))
            (allowlist_and_metadata(&values))
            label for="expires_at" { "Expires (UTC, leave empty for never)" }
            input #expires_at type="datetime-local" name="expires_at" value=(values.text("expires_at"));
            button type="submit" { "Save" }
        }
    }
}

pub async fn edit(State(app): State<AppState>, Path(id): Path<String>, form: SignedForm) -> Page {
    let SignedForm { signed, fields } = form;
    let id = key_id(&id)?;
    let saved = match edit_request(&fields) {
        Ok(patch) => app
            .update_key(&signed.caller, id, patch)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match saved {
        Ok(key) => Ok(Redirect::to(&format!("/console/keys/{}?saved=1", key.id)).into_response()),
        Err(failure) if failure.status().is_client_error() => {
            let key = app.get_key(&signed.caller, id, false).await?;
            let page = key_page(&app, &signed, &key, "24h", Some(&failure.message()), None).await?;
            Ok(respond(failure.status(), page))
        }
        Err(failure) => Err(failure.into()),
    }
}

fn edit_request(fields: &Fields) -> Result<keyward_app::KeyPatch, Failure> {
    let mut body = key_body(fields)?;
    body.insert("name".into(), json!(fields.text("name")));
    body.insert("enabled".into(), json!(fields.checked("enabled")));
    body.insert(
        "metadata".into(),
        metadata_value(fields.optional("metadata").unwrap_or("{}"))?,
    );
    if credit_snapshot(fields) != fields.text("credits_was") {
        let credits = if credits_blank(fields) {
            Value::Null
        } else {
            credits_value(fields)?
        };
        body.insert("credits".into(), credits);
    }
    let request: UpdateKeyRequest = from_form(body)?;
    request.into_patch(None)
}

pub async fn rotate(State(app): State<AppState>, Path(id): Path<String>, form: SignedForm) -> Page {
    let SignedForm { signed, fields } = form;
    let grace = number(
        fields.optional("grace_seconds").unwrap_or("0"),
        "grace_seconds",
        "the grace period",
    )?;
    let grace = u64::try_from(grace).map_err(|_| Failure::Validation {
        field: "grace_seconds".into(),
        message: "the grace period must not be negative".into(),
    })?;
    let (issued, _) = app
        .rotate_key(
            &signed.caller,
            key_id(&id)?,
            std::time::Duration::from_secs(grace),
        )
        .await?;
    Ok(secret_page(
        &signed,
        &issued,
        "The key's new secret",
        StatusCode::OK,
    ))
}

pub async fn confirm_revoke(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
) -> Page {
    let key = app.get_key(&signed.caller, key_id(&id)?, false).await?;
    let body = html! {
        h1 { "Revoke " (key.name) "?" }
        p { "The key stops working at once, on every node, and cannot be used again. This cannot be undone." }
        form.inline method="post" action={ "/console/keys/" (key.id) "/revoke" } {
            (csrf_field(&signed.csrf))
            button.danger type="submit" { "Revoke the key" }
            a href={ "/console/keys/" (key.id) } { "Cancel" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Revoke a key", Some(&signed.nav("keys")), body),
    ))
}

pub async fn revoke(State(app): State<AppState>, Path(id): Path<String>, form: SignedForm) -> Page {
    let key = app.revoke_key(&form.signed.caller, key_id(&id)?).await?;
    Ok(Redirect::to(&format!("/console/keys/{}?revoked=1", key.id)).into_response())
}

/// Audit events as a table (the key page's history and the audit log).
pub fn events_table(events: &[AuditEvent]) -> Markup {
    html! {
        @if events.is_empty() {
            p.empty { "Nothing recorded yet." }
        } @else {
            div.scroll tabindex="0" role="region" aria-label="Events" {
                table.events {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Action" } th scope="col" { "By" }
                        th scope="col" { "Target" } th scope="col" { "Through" } th scope="col" { "Changes" }
                    } }
                    tbody {
                        @for event in events {
                            tr {
                                td { (when(Some(event.time))) }
                                td { code { (event.action.as_str()) } }
                                td { (event.actor.kind()) @if let Some(id) = event.actor.id() { " " code.id { (id) } } }
                                td { (target_link(event.target)) }
                                td { (event.door.map_or("system", |d| d.as_str())) }
                                td.changes { (changes_text(event)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn target_link(target: Target) -> Markup {
    match target {
        Target::Key(id) => html! { "key " a href={ "/console/keys/" (id) } { code.id { (id) } } },
        other => html! { (other.kind()) @if let Some(id) = other.id() { " " code.id { (id) } } },
    }
}

fn changes_text(event: &AuditEvent) -> String {
    let mut fields: Vec<&str> = event.changes.keys().map(String::as_str).collect();
    fields.extend(event.details.keys().map(String::as_str));
    fields.join(", ")
}
