//! The audit log's record: who changed what, through which door, from where.
//!
//! An event is built by the application layer and committed by the store in the same
//! transaction as the change it records, so neither exists without the other. Events
//! never carry a secret or a password: a changed password is recorded as changed, no
//! more, and a key's secret never reaches an event at all.

use crate::ids::{KeyId, SpaceId, TenantId, UserId};
use crate::model::Door;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use time::OffsetDateTime;
use uuid::Uuid;

/// Who acted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum Actor {
    /// A person through a session.
    User(UserId),
    /// A program (or person) through one of its keys.
    Key(KeyId),
    /// Keyward itself: start-up, retention, a command run on the server's machine.
    System,
    /// Nobody known: a login attempt for an email that names no user.
    Anonymous,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::User(_) => "user",
            Actor::Key(_) => "key",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    pub fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User(id) => Some(id.0),
            Actor::Key(id) => Some(id.0),
            Actor::System | Actor::Anonymous => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<Uuid>) -> Option<Actor> {
        match (kind, id) {
            ("user", Some(id)) => Some(Actor::User(UserId(id))),
            ("key", Some(id)) => Some(Actor::Key(KeyId(id))),
            ("system", None) => Some(Actor::System),
            ("anonymous", None) => Some(Actor::Anonymous),
            _ => None,
        }
    }
}

/// What was acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "lowercase")]
pub enum Target {
    Key(KeyId),
    User(UserId),
    Tenant(TenantId),
    Space(SpaceId),
    /// A login attempt for an email that names no user.
    Nobody,
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Key(_) => "key",
            Target::User(_) => "user",
            Target::Tenant(_) => "tenant",
            Target::Space(_) => "space",
            Target::Nobody => "nobody",
        }
    }

    pub fn id(&self) -> Option<Uuid> {
        match self {
            Target::Key(id) => Some(id.0),
            Target::User(id) => Some(id.0),
            Target::Tenant(id) => Some(id.0),
            Target::Space(id) => Some(id.0),
            Target::Nobody => None,
        }
    }

    pub fn from_parts(kind: &str, id: Option<Uuid>) -> Option<Target> {
        match (kind, id) {
            ("key", Some(id)) => Some(Target::Key(KeyId(id))),
            ("user", Some(id)) => Some(Target::User(UserId(id))),
            ("tenant", Some(id)) => Some(Target::Tenant(TenantId(id))),
            ("space", Some(id)) => Some(Target::Space(SpaceId(id))),
            ("nobody", None) => Some(Target::Nobody),
            _ => None,
        }
    }
}

/// What happened. The wire name (`key.created`, ...) is what filters and clients use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    KeyCreated,
    KeyUpdated,
    KeyRotated,
    KeyRevoked,
    KeyEnabled,
    KeyDisabled,
    KeyCreditsChanged,
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserPasswordChanged,
    UserLoggedOut,
    TenantCreated,
    SpaceCreated,
    ResourceDeclared,
    KeysImported,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
}

impl Action {
    pub const ALL: [Action; 19] = [
        Action::KeyCreated,
        Action::KeyUpdated,
        Action::KeyRotated,
        Action::KeyRevoked,
        Action::KeyEnabled,
        Action::KeyDisabled,
        Action::KeyCreditsChanged,
        Action::UserCreated,
        Action::UserUpdated,
        Action::UserDeactivated,
        Action::UserPasswordChanged,
        Action::UserLoggedOut,
        Action::TenantCreated,
        Action::SpaceCreated,
        Action::ResourceDeclared,
        Action::KeysImported,
        Action::LoginSucceeded,
        Action::LoginFailed,
        Action::LoginThrottled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::KeyCreated => "key.created",
            Action::KeyUpdated => "key.updated",
            Action::KeyRotated => "key.rotated",
            Action::KeyCreditsChanged => "key.credits_changed",
            Action::KeyRevoked => "key.revoked",
            Action::KeyEnabled => "key.enabled",
            Action::KeyDisabled => "key.disabled",
            Action::UserCreated => "user.created",
            Action::UserUpdated => "user.updated",
            Action::UserDeactivated => "user.deactivated",
            Action::UserPasswordChanged => "user.password_changed",
            Action::UserLoggedOut => "user.logged_out",
            Action::TenantCreated => "tenant.created",
            Action::SpaceCreated => "space.created",
            Action::ResourceDeclared => "space.resource_declared",
            Action::KeysImported => "keys.imported",
            Action::LoginSucceeded => "login.succeeded",
            Action::LoginFailed => "login.failed",
            Action::LoginThrottled => "login.throttled",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One field's value before and after a change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub from: Value,
    pub to: Value,
}

/// The fields a change touched, by name, in a stable order.
pub type Changes = BTreeMap<String, FieldChange>;

/// Records `field` if `from` and `to` differ.
pub fn note_change<T: Serialize + PartialEq>(changes: &mut Changes, field: &str, from: &T, to: &T) {
    if from != to {
        changes.insert(
            field.to_string(),
            FieldChange {
                from: serde_json::to_value(from).unwrap_or(Value::Null),
                to: serde_json::to_value(to).unwrap_or(Value::Null),
            },
        );
    }
}

/// What stands in for a secret or a password in a change: that it changed, not what to.
pub const HIDDEN: &str = "(hidden)";

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// `None` only for a failed login with an email that names no tenant.
    pub tenant_id: Option<TenantId>,
    pub actor: Actor,
    /// The door the request came through; `None` for Keyward's own actions.
    #[serde(serialize_with = "door_name")]
    pub door: Option<Door>,
    pub remote_ip: Option<IpAddr>,
    pub action: Action,
    pub target: Target,
    pub changes: Changes,
    /// Facts about the event that are not changes (the email a failed login tried).
    pub details: Map<String, Value>,
    /// The user behind the actor (the key's owner for a key): members see what they did.
    #[serde(skip)]
    pub actor_user: Option<UserId>,
    /// The user the target belongs to (a key's owner, a user itself): members see what
    /// was done to their own keys and account.
    #[serde(skip)]
    pub target_owner: Option<UserId>,
}

fn door_name<S: serde::Serializer>(door: &Option<Door>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(door.map_or("system", Door::as_str))
}

/// Which events a reading of the log returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub action: Option<Action>,
    pub actor_id: Option<Uuid>,
    pub target_id: Option<Uuid>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    /// Only events this user made or that concern what they own (members' view).
    pub involving: Option<UserId>,
    /// Only events older than this position (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: u32,
}

/// A page of events and where the next one starts, if there is one.
#[derive(Clone, Debug)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub next: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_their_wire_names() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
        }
        assert_eq!(Action::parse("key.exploded"), None);
    }

    #[test]
    fn only_differences_are_noted() {
        let mut changes = Changes::new();
        note_change(&mut changes, "name", &"a", &"a");
        note_change(&mut changes, "enabled", &true, &false);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes["enabled"].from, Value::Bool(true));
        assert_eq!(changes["enabled"].to, Value::Bool(false));
    }

    #[test]
    fn actors_and_targets_round_trip_their_parts() {
        let user = Actor::User(UserId::generate());
        assert_eq!(Actor::from_parts(user.kind(), user.id()), Some(user));
        assert_eq!(Actor::from_parts("system", None), Some(Actor::System));
        assert_eq!(Actor::from_parts("key", None), None);
        let key = Target::Key(KeyId::generate());
        assert_eq!(Target::from_parts(key.kind(), key.id()), Some(key));
    }
}
