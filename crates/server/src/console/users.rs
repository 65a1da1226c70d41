//! People in the console: administrators list, create and change users; everyone has a
//! profile page with their own password and keys (as Octopus users do in its portal).
//!
//! Like the key pages, forms become the native API's request shapes.

use super::keys::events_table;
use super::layout::{csrf_field, notice, page, when};
use super::session::{clear_cookie, Fields, Signed, SignedForm, SESSION_COOKIE};
use super::{respond, Page, Shown};
use crate::error::Failure;
use crate::native::{CreateUserRequest, UpdateUserRequest};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use keyward_core::audit::AuditFilter;
use keyward_core::{Page as Paging, Role, User, UserId};
use keyward_store::KeyFilter;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::{json, Map, Value};

const PER_PAGE: u64 = 50;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<u64>,
    created: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    signed: Signed,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = query.map_err(|e| Failure::BadRequest(e.body_text()))?;
    let news = q.created.is_some().then_some("The user was created.");
    users_page(
        &app,
        &signed,
        q.page.unwrap_or(1),
        &Fields::default(),
        None,
        news,
        StatusCode::OK,
    )
    .await
}

async fn users_page(
    app: &AppState,
    signed: &Signed,
    page_number: u64,
    values: &Fields,
    error: Option<&str>,
    news: Option<&str>,
    status: StatusCode,
) -> Page {
    let page_number = page_number.max(1);
    let paging = Paging::new((page_number - 1) * PER_PAGE, PER_PAGE);
    let users = app.list_users(&signed.caller, paging).await?;
    let shown_to = paging.offset + users.items.len() as u64;
    let body = html! {
        h1 { "Users" }
        (notice(error, news))
        div.scroll tabindex="0" role="region" aria-label="Users" {
            table #users {
                thead { tr {
                    th scope="col" { "Email" } th scope="col" { "Name" } th scope="col" { "Role" }
                    th scope="col" { "Active" } th scope="col" { "Created" }
                } }
                tbody {
                    @for user in &users.items {
                        tr {
                            td { a href={ "/console/users/" (user.id) } { (user.email) } }
                            td { (user.display_name) }
                            td { (user.role.as_str()) }
                            td { @if user.active { "yes" } @else { span.badge.disabled { "deactivated" } } }
                            td { (when(Some(user.created_at))) }
                        }
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if page_number > 1 { a href={ "/console/users?page=" (page_number - 1) } rel="prev" { "← Previous" } }
            @if shown_to < users.total { a href={ "/console/users?page=" (page_number + 1) } rel="next" { "Next →" } }
        }
        section aria-labelledby="new-user" {
            h2 #new-user { "Add a user" }
            form.stack method="post" action="/console/users" {
                (csrf_field(&signed.csrf))
                label for="email" { "Email" }
                input #email type="email" name="email" value=(values.text("email")) required autocomplete="off";
                label for="display_name" { "Name" }
                input #display_name type="text" name="display_name" value=(values.text("display_name"));
                label for="password" { "Password (at least 8 characters)" }
                input #password type="password" name="password" required autocomplete="new-password";
                (role_select(values.optional("role").and_then(Role::parse).unwrap_or(Role::Member)))
                label for="permissions" { "Permissions (one per line; empty gives a member their own keys)" }
                textarea #permissions name="permissions" rows="3" spellcheck="false" { (values.text("permissions")) }
                button type="submit" { "Add user" }
            }
        }
    };
    Ok(respond(
        status,
        page("Users", Some(&signed.nav("users")), body),
    ))
}

fn role_select(current: Role) -> Markup {
    html! {
        label for="role" { "Role" }
        select #role name="role" {
            option value="member" selected[current == Role::Member] { "member" }
            option value="admin" selected[current == Role::Admin] { "admin" }
        }
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

pub async fn create(State(app): State<AppState>, form: SignedForm) -> Page {
    let SignedForm { signed, fields } = form;
    let mut body = Map::new();
    for name in ["email", "password", "display_name", "role"] {
        if let Some(value) = fields.optional(name) {
            body.insert(name.into(), json!(value));
        }
    }
    let permissions = lines(fields.text("permissions"));
    if !permissions.is_empty() {
        body.insert("permissions".into(), json!(permissions));
    }
    let made = match from_form::<CreateUserRequest>(body).and_then(|r| r.into_new_user()) {
        Ok(request) => app
            .create_user(&signed.caller, request)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match made {
        Ok(_) => Ok(Redirect::to("/console/users?created=1").into_response()),
        Err(failure) if failure.status().is_client_error() && signed.caller.acts_as_admin() => {
            users_page(
                &app,
                &signed,
                1,
                &fields,
                Some(&failure.message()),
                None,
                failure.status(),
            )
            .await
        }
        Err(failure) => Err(failure.into()),
    }
}

fn from_form<T: serde::de::DeserializeOwned>(body: Map<String, Value>) -> Result<T, Failure> {
    serde_json::from_value(Value::Object(body)).map_err(|e| Failure::InvalidJson(e.to_string()))
}

fn user_id(text: &str) -> Result<UserId, Failure> {
    text.parse()
        .map_err(|_| Failure::NotFound(keyward_core::Entity::User))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    saved: Option<String>,
}

pub async fn show(
    State(app): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let Query(q) = query.map_err(|e| Failure::BadRequest(e.body_text()))?;
    signed.caller.require_admin().map_err(Failure::from)?;
    let user = app.get_user(&signed.caller, user_id(&id)?).await?;
    let news = q.saved.is_some().then_some("Saved.");
    Ok(respond(
        StatusCode::OK,
        user_page(&app, &signed, &user, None, news).await?,
    ))
}

async fn user_page(
    app: &AppState,
    signed: &Signed,
    user: &User,
    error: Option<&str>,
    news: Option<&str>,
) -> Result<maud::Markup, Shown> {
    let trail = app
        .audit_events(
            &signed.caller,
            AuditFilter {
                target_id: Some(user.id.0),
                limit: 20,
                ..AuditFilter::default()
            },
        )
        .await?;
    let body = html! {
        h1 { (user.email) }
        (notice(error, news))
        p { a href={ "/console/keys?owner=" (user.id) } { "This user's keys" } }
        form.stack method="post" action={ "/console/users/" (user.id) } {
            (csrf_field(&signed.csrf))
            label for="display_name" { "Name" }
            input #display_name type="text" name="display_name" value=(user.display_name);
            (role_select(user.role))
            label for="permissions" { "Permissions (one per line; an administrator holds everything)" }
            textarea #permissions name="permissions" rows="4" spellcheck="false" { (user.grants.to_strings().join("\n")) }
            div.check {
                input #active type="checkbox" name="active" checked[user.active];
                label for="active" { "Active (a deactivated user cannot log in, and their keys stop working)" }
            }
            label for="password" { "New password (leave empty to keep it)" }
            input #password type="password" name="password" autocomplete="new-password";
            button type="submit" { "Save" }
        }
        section aria-labelledby="history" {
            h2 #history { "History" }
            (events_table(&trail.events))
        }
    };
    Ok(page(&user.email, Some(&signed.nav("users")), body))
}

pub async fn edit(State(app): State<AppState>, Path(id): Path<String>, form: SignedForm) -> Page {
    let SignedForm { signed, fields } = form;
    let id = user_id(&id)?;
    let mut body = Map::new();
    body.insert("display_name".into(), json!(fields.text("display_name")));
    body.insert("role".into(), json!(fields.text("role")));
    body.insert("active".into(), json!(fields.checked("active")));
    body.insert(
        "permissions".into(),
        json!(lines(fields.text("permissions"))),
    );
    if let Some(password) = fields.optional("password") {
        body.insert("password".into(), json!(password));
    }
    let saved = match from_form::<UpdateUserRequest>(body).and_then(|r| r.into_patch()) {
        Ok(patch) => app
            .update_user(&signed.caller, id, patch)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match saved {
        Ok(user) => {
            Ok(Redirect::to(&format!("/console/users/{}?saved=1", user.id)).into_response())
        }
        Err(failure) if failure.status().is_client_error() && signed.caller.acts_as_admin() => {
            let user = app.get_user(&signed.caller, id).await?;
            let page = user_page(&app, &signed, &user, Some(&failure.message()), None).await?;
            Ok(respond(failure.status(), page))
        }
        Err(failure) => Err(failure.into()),
    }
}

// ---- Profile ----

pub async fn profile(State(app): State<AppState>, signed: Signed) -> Page {
    profile_page(&app, &signed, None, StatusCode::OK).await
}

async fn profile_page(
    app: &AppState,
    signed: &Signed,
    error: Option<&str>,
    status: StatusCode,
) -> Page {
    let me = &signed.caller.user;
    let filter = KeyFilter {
        owner: Some(me.id),
        ..KeyFilter::default()
    };
    let keys = app
        .list_keys(&signed.caller, filter, Paging::new(0, 10))
        .await?;
    let body = html! {
        h1 { "Your profile" }
        (notice(error, None))
        dl.facts {
            dt { "Email" } dd { (me.email) }
            dt { "Name" } dd { (me.display_name) }
            dt { "Role" } dd { (me.role.as_str()) }
            dt { "Permissions" } dd { (me.effective_grants().to_strings().join(", ")) }
        }
        section aria-labelledby="my-keys" {
            h2 #my-keys { "Your keys" }
            @if keys.items.is_empty() {
                p.empty { "No keys yet — " a href="/console/keys/new" { "create one" } "." }
            } @else {
                ul {
                    @for key in &keys.items {
                        li { a href={ "/console/keys/" (key.id) } { (key.name) } " " code { (key.start) "…" } }
                    }
                }
                p { a href={ "/console/keys?owner=" (me.id) } { "All " (keys.total) " of your keys" } " · " a href="/console/keys/new" { "Create a key" } }
            }
        }
        section aria-labelledby="password-heading" {
            h2 #password-heading { "Change your password" }
            p.hint { "Changing it logs you out everywhere, this browser included." }
            form.stack method="post" action="/console/profile/password" {
                (csrf_field(&signed.csrf))
                input type="hidden" name="username" value=(me.email) autocomplete="username";
                label for="current_password" { "Current password" }
                input #current_password type="password" name="current_password" required autocomplete="current-password";
                label for="new_password" { "New password (at least 8 characters)" }
                input #new_password type="password" name="new_password" required autocomplete="new-password";
                label for="confirm_password" { "New password again" }
                input #confirm_password type="password" name="confirm_password" required autocomplete="new-password";
                button type="submit" { "Change password" }
            }
        }
    };
    Ok(respond(
        status,
        page("Your profile", Some(&signed.nav("profile")), body),
    ))
}

pub async fn change_password(
    State(app): State<AppState>,
    headers: axum::http::HeaderMap,
    form: SignedForm,
) -> Page {
    let SignedForm { signed, fields } = form;
    let new = fields.text("new_password");
    if new != fields.text("confirm_password") {
        let message = "The two new passwords differ.";
        return profile_page(
            &app,
            &signed,
            Some(message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    match app
        .change_own_password(
            &signed.caller,
            fields.text("current_password"),
            new.to_string(),
        )
        .await
        .map_err(Failure::from)
    {
        Ok(_) => {
            // Every session of theirs has ended, this one too: forget its cookie.
            let mut response = Redirect::to("/console/login?password_changed=1").into_response();
            clear_cookie(&mut response, SESSION_COOKIE, &headers, &app);
            Ok(response)
        }
        Err(failure) if failure.status().is_client_error() => {
            profile_page(&app, &signed, Some(&failure.message()), failure.status()).await
        }
        Err(failure) => Err(failure.into()),
    }
}
