//! Octopus's JSON shapes: resource ids, resources, the paged collection envelope, and
//! the error body. Pure functions of core values; no I/O.

use crate::error::Failure;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyward_core::{ApiKey, Page, Space, User};
use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};

/// What clients send to mean "everything" (int32 max).
pub const TAKE_ALL: u64 = 2_147_483_647;
pub const DEFAULT_TAKE: u64 = 30;

pub const USERS: &str = "Users-";
pub const SPACES: &str = "Spaces-";
pub const API_KEYS: &str = "APIKeys-";

/// The number in an id like `Users-12`; the prefix is matched without regard to case.
pub fn parse_seq(id: &str, prefix: &str) -> Option<i64> {
    let head = id.get(..prefix.len())?;
    let digits = &id[prefix.len()..];
    if !head.eq_ignore_ascii_case(prefix) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// Octopus's timestamp form: ISO-8601, milliseconds, explicit offset.
pub fn timestamp(t: OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+00:00"
    );
    t.to_offset(UtcOffset::UTC)
        .format(FORMAT)
        .expect("UTC times format")
}

fn user_path(seq: i64) -> String {
    format!("/api/users/{USERS}{seq}")
}

pub fn user(user: &User, requestor: &User) -> Value {
    let path = user_path(user.seq);
    json!({
        "Id": format!("{USERS}{}", user.seq),
        "Username": user.username,
        "DisplayName": user.display_name,
        "IsActive": user.active,
        "IsService": false,
        "EmailAddress": user.email,
        "CanPasswordBeEdited": true,
        "IsRequestor": user.id == requestor.id,
        "Identities": [],
        "Created": timestamp(user.created_at),
        "Links": {
            "Self": path,
            "ApiKeys": format!("{path}/apikeys{{/id}}{{?skip,take}}"),
        },
    })
}

/// A key as listed: the secret is never there, only whether there is one.
pub fn key(key: &ApiKey, owner_seq: i64) -> Value {
    key_with(
        key,
        owner_seq,
        json!({"HasValue": true, "NewValue": null, "Hint": null}),
    )
}

/// A key just created: the only answer that carries the secret, as a plain string.
pub fn created_key(key: &ApiKey, owner_seq: i64, secret: &str) -> Value {
    key_with(key, owner_seq, Value::String(secret.to_string()))
}

fn key_with(key: &ApiKey, owner_seq: i64, api_key: Value) -> Value {
    let owner = user_path(owner_seq);
    json!({
        "Id": format!("{API_KEYS}{}", key.seq),
        "Purpose": key.name,
        "UserId": format!("{USERS}{owner_seq}"),
        "ApiKey": api_key,
        "Created": timestamp(key.created_at),
        "Expires": key.expires_at.map(timestamp),
        "Links": {
            "Self": format!("{owner}/apikeys/{API_KEYS}{}", key.seq),
            "User": owner,
        },
    })
}

pub fn space(space: &Space, is_default: bool) -> Value {
    let id = format!("{SPACES}{}", space.seq);
    json!({
        "Id": id,
        "Name": space.name,
        "Slug": space.name.to_lowercase(),
        "Description": null,
        "IsDefault": is_default,
        "IsPrivate": false,
        "TaskQueueStopped": false,
        "SpaceManagersTeams": [],
        "SpaceManagersTeamMembers": [],
        "Icon": null,
        "Links": {
            "Self": format!("/api/spaces/{id}"),
            "SpaceHome": format!("/api/{id}"),
            "Web": format!("/app#/{id}"),
        },
    })
}

/// A space's root document (`/api/Spaces-1`), which clients fetch to enter a space.
pub fn space_home(space: &Space) -> Value {
    let id = format!("{SPACES}{}", space.seq);
    json!({
        "Id": id,
        "Name": space.name,
        "Links": { "Self": format!("/api/{id}"), "Space": format!("/api/spaces/{id}") },
    })
}

/// The root document. Clients read these links instead of building paths.
pub fn root(installation_id: uuid::Uuid) -> Value {
    json!({
        "Application": "Octopus Deploy",
        "Version": "2024.1.0",
        "ApiVersion": "3.0.0",
        "InstallationId": installation_id,
        "IsEarlyAccessProgram": false,
        "HasLongTermSupport": false,
        "ServedBy": "Keyward",
        "Links": {
            "Self": "/api",
            "CurrentUser": "/api/users/me",
            "Users": "/api/users{/id}{?skip,take,ids,filter}",
            "Spaces": "/api/spaces{/id}{?name,skip,ids,take,partialName}",
            "SpaceHome": "/api/{spaceId}",
        },
    })
}

/// Octopus's paged envelope. `Page.Next` is present only when there is a next page:
/// the .NET client tests for the key, not for its value.
pub fn collection(item_type: &str, path: &str, items: Vec<Value>, total: u64, page: Page) -> Value {
    let take = page.limit;
    let pages = total.div_ceil(take).max(1);
    let at = |skip: u64| format!("{path}?skip={skip}&take={take}");
    let mut links = json!({
        "Self": path,
        "Template": format!("{path}{{?skip,take}}"),
        "Page.All": format!("{path}?skip=0&take={TAKE_ALL}"),
        "Page.Current": at(page.offset),
        "Page.Last": at((pages - 1) * take),
    });
    let next = page.offset.saturating_add(take);
    if next < total {
        links["Page.Next"] = Value::String(at(next));
    }
    json!({
        "ItemType": item_type,
        "TotalResults": total,
        "ItemsPerPage": take,
        "NumberOfPages": pages,
        "LastPageNumber": pages - 1,
        "Items": items,
        "Links": links,
    })
}

/// A failure in Octopus's shape: validation problems under a general `ErrorMessage`
/// with the details in `Errors`; everything else says what went wrong directly.
#[derive(Debug)]
pub struct OctopusError(pub Failure);

impl<E: Into<Failure>> From<E> for OctopusError {
    fn from(err: E) -> Self {
        OctopusError(err.into())
    }
}

impl IntoResponse for OctopusError {
    fn into_response(self) -> Response {
        render(self.0)
    }
}

/// The one mapping from a failure to Octopus's status and body.
pub fn render(failure: Failure) -> Response {
    failure.log();
    let status = match &failure {
        Failure::Validation { .. } => StatusCode::BAD_REQUEST,
        other => other.status(),
    };
    failure.with_retry_after(body(status, in_octopus_terms(&failure)))
}

pub fn method_not_allowed() -> Response {
    body(
        StatusCode::METHOD_NOT_ALLOWED,
        "this method is not allowed on this resource".into(),
    )
}

fn body(status: StatusCode, detail: String) -> Response {
    let (message, errors) = match status {
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => (
            "There was a problem with your request.".to_string(),
            vec![detail],
        ),
        StatusCode::UNAUTHORIZED => (
            "You must be logged in to perform this action. Please provide a valid API key or \
             log in again."
                .to_string(),
            vec![detail],
        ),
        _ => (detail, Vec::new()),
    };
    let body = json!({
        "ErrorMessage": message,
        "Errors": errors,
        "FullException": null,
        "HelpText": null,
        "HelpLink": null,
        "ParsedHelpLinks": [],
        "Details": null,
    });
    (status, axum::Json(body)).into_response()
}

/// The core names a key's name and expiry `name` and `expires_at`; Octopus's users
/// wrote `Purpose` and `Expires`.
fn in_octopus_terms(failure: &Failure) -> String {
    let message = failure.message();
    match failure {
        Failure::Validation { field, .. } if field == "name" => {
            message.replacen("name", "Purpose", 1)
        }
        Failure::Validation { field, .. } if field == "expires_at" => {
            message.replacen("expires_at", "Expires", 1)
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_seq("Users-12", USERS), Some(12));
        assert_eq!(parse_seq("users-3", USERS), Some(3));
        assert_eq!(parse_seq("APIKEYS-7", API_KEYS), Some(7));
        for bad in [
            "Users-",
            "Users-0",
            "Users--1",
            "Users-1x",
            "Spaces-1",
            "x",
            "Users-99999999999999999999",
            "Üsers-1",
        ] {
            assert_eq!(parse_seq(bad, USERS), None, "{bad}");
        }
    }

    #[test]
    fn envelope_pages() {
        let one = collection("User", "/api/users", vec![], 31, Page::new(0, 30));
        assert_eq!(one["NumberOfPages"], 2);
        assert_eq!(one["LastPageNumber"], 1);
        assert_eq!(one["Links"]["Page.Next"], "/api/users?skip=30&take=30");
        let last = collection("User", "/api/users", vec![], 31, Page::new(30, 30));
        assert!(last["Links"].get("Page.Next").is_none());
        let empty = collection("User", "/api/users", vec![], 0, Page::new(0, TAKE_ALL));
        assert_eq!(empty["NumberOfPages"], 1);
        assert_eq!(empty["LastPageNumber"], 0);
        assert_eq!(empty["ItemsPerPage"], Page::MAX_LIMIT);
    }

    #[test]
    fn timestamps_have_an_offset() {
        let t = OffsetDateTime::from_unix_timestamp(1_613_658_349).unwrap();
        assert_eq!(timestamp(t), "2021-02-18T14:25:49.000+00:00");
    }
}
