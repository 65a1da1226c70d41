//! Who is asking, and what that lets them do to keys and users.
//!
//! A principal is a user, acting either through a session (JWT) or through one of their
//! keys. Through a key, the user is restricted to what the key holds. Keyward's own
//! actions are permissions too, so keys can be scoped to them:
//!
//! | permission            | lets the holder                                  |
//! |-----------------------|--------------------------------------------------|
//! | `keyward.keys.read`   | list and read their keys                         |
//! | `keyward.keys.write`  | create, change, rotate and revoke their keys     |
//! | `keyward.keys.verify` | verify keys presented to them                    |
//! | `keyward.admin`       | with the admin role: act on the whole tenant     |

use crate::error::{CoreError, CoreResult, Entity};
use crate::ids::{TenantId, UserId};
use crate::model::{ApiKey, User};
use crate::perm::{AccessLevel, Grants, Permission, ResourcePath};
use std::sync::Arc;

pub static KEYS_READ: Permission = Permission::constant("keyward.keys.read");
pub static KEYS_WRITE: Permission = Permission::constant("keyward.keys.write");
pub static KEYS_VERIFY: Permission = Permission::constant("keyward.keys.verify");
pub static ADMIN: Permission = Permission::constant("keyward.admin");

/// What a new member holds unless an administrator says otherwise: their own keys.
pub fn default_member_grants() -> Grants {
    Grants::parse(&["keyward.keys.*"]).expect("a valid literal")
}

/// Shared with the verifier's cache, so that authenticating a request copies nothing.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: Arc<User>,
    /// Set when the request authenticated with a key rather than a session.
    pub key: Option<Arc<ApiKey>>,
}

impl Principal {
    pub fn tenant_id(&self) -> TenantId {
        self.user.tenant_id
    }

    /// Whether the principal holds a permission: the user must, and so must the key.
    pub fn holds(&self, permission: &Permission) -> bool {
        self.user.effective_grants().allows(permission)
            && self
                .key
                .as_ref()
                .is_none_or(|k| k.grants.allows(permission))
    }

    pub fn require(&self, permission: &Permission) -> CoreResult<()> {
        if self.holds(permission) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!(
                "this credential lacks the permission '{permission}'"
            )))
        }
    }

    /// An administrator acting as one: admin role, and a credential that carries it.
    pub fn acts_as_admin(&self) -> bool {
        self.user.is_admin() && self.holds(&ADMIN)
    }

    pub fn require_admin(&self) -> CoreResult<()> {
        if self.acts_as_admin() {
            Ok(())
        } else {
            Err(CoreError::Forbidden(
                "only an administrator may do this".to_string(),
            ))
        }
    }

    /// May the principal see (`write = false`) or change a key? Keys of other users are
    /// invisible to members, so they get "not found" rather than a hint they exist.
    pub fn check_key_access(&self, key: &ApiKey, write: bool) -> CoreResult<()> {
        if key.tenant_id != self.tenant_id() {
            return Err(CoreError::NotFound(Entity::ApiKey));
        }
        if key.owner_id != self.user.id && !self.acts_as_admin() {
            return Err(CoreError::NotFound(Entity::ApiKey));
        }
        self.require(if write { &KEYS_WRITE } else { &KEYS_READ })
    }

    /// May the principal create keys for `owner`? Members only for themselves.
    pub fn check_may_create_for(&self, owner: &User) -> CoreResult<()> {
        if owner.tenant_id != self.tenant_id() {
            return Err(CoreError::NotFound(Entity::User));
        }
        if owner.id != self.user.id {
            self.require_admin()?;
        }
        self.require(&KEYS_WRITE)
    }

    /// What a new key gets when the request names no permissions: what the credential
    /// in use holds (a key's grants, or the user's), within what the owner holds.
    pub fn default_grants_for(&self, owner: &User) -> Grants {
        match &self.key {
            Some(key) => key.grants.clone(),
            None => owner.effective_grants().clone(),
        }
    }

    /// The no-escalation rule: a key gets nothing that the principal, the credential in
    /// use or the key's owner lacks.
    pub fn check_may_grant(&self, grants: &Grants, owner: &User) -> CoreResult<()> {
        let holders = [
            Some(self.user.effective_grants()),
            self.key.as_ref().map(|k| &k.grants),
            Some(owner.effective_grants()),
        ];
        for holder in holders.into_iter().flatten() {
            if let Some(excess) = grants.first_excess_over(holder) {
                return Err(CoreError::Forbidden(format!(
                    "cannot grant '{excess}': it exceeds what you or the key's owner hold"
                )));
            }
        }
        Ok(())
    }

    /// The access the principal has at a resource: the user's level, further limited by
    /// the key's when the request came with a key.
    pub fn access_at(&self, path: &ResourcePath) -> AccessLevel {
        let user = self.user.effective_grants().level_at(path);
        match &self.key {
            Some(key) => user.min(key.grants.level_at(path)),
            None => user,
        }
    }

    /// Refuses unless the principal has at least `level` at `path`.
    pub fn require_access(&self, path: &ResourcePath, level: AccessLevel) -> CoreResult<()> {
        if self.access_at(path) >= level {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!(
                "this credential lacks '{level}' access to '{path}'"
            )))
        }
    }

    pub fn is_user(&self, id: UserId) -> bool {
        self.user.id == id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::KeyId;
    use crate::keyfmt::KeyShape;
    use crate::model::{Door, Role};
    use time::OffsetDateTime;

    fn user(role: Role, grants: &[&str]) -> User {
        let now = OffsetDateTime::now_utc();
        User {
            id: UserId::generate(),
            tenant_id: TenantId::generate(),
            seq: 1,
            email: "a@example.com".into(),
            username: "a".into(),
            display_name: "a".into(),
            password_hash: String::new(),
            role,
            active: true,
            grants: Grants::parse(grants).unwrap(),
            created_at: now,
            updated_at: now,
            session_epoch: 0,
            ratelimits: Vec::new(),
        }
    }

    fn key_of(owner: &User, grants: &[&str]) -> ApiKey {
        let now = OffsetDateTime::now_utc();
        ApiKey {
            id: KeyId::generate(),
            tenant_id: owner.tenant_id,
            owner_id: owner.id,
            seq: 1,
            name: "k".into(),
            door: Door::Native,
            shape: KeyShape::Native,
            start: "kw_".into(),
            public_id: None,
            grants: Grants::parse(grants).unwrap(),
            metadata: Default::default(),
            enabled: true,
            created_at: now,
            updated_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            use_count: 0,
            disabled_by: None,
            disabled_by_admin: false,
            limits: Default::default(),
            credits: None,
        }
    }

    fn path(text: &str) -> ResourcePath {
        ResourcePath::parse(text).unwrap()
    }

    #[test]
    fn access_is_the_lesser_of_user_and_key() {
        let member = user(Role::Member, &["fabric/_system:ro"]);
        let session = Principal {
            user: Arc::new(member.clone()),
            key: None,
        };
        assert_eq!(session.access_at(&path("fabric/_system")), AccessLevel::Ro);
        assert_eq!(session.access_at(&path("fabric/other")), AccessLevel::None);
        // A key holding more than its owner still gets only the owner's level.
        let through_key = Principal {
            user: Arc::new(member.clone()),
            key: Some(Arc::new(key_of(&member, &["fabric/*:rw"]))),
        };
        assert_eq!(
            through_key.access_at(&path("fabric/_system")),
            AccessLevel::Ro
        );
        let admin = user(Role::Admin, &[]);
        let limited = Principal {
            user: Arc::new(admin.clone()),
            key: Some(Arc::new(key_of(
                &admin,
                &["fabric/_system:rw", "fabric/_system/collection/c:none"],
            ))),
        };
        assert_eq!(limited.access_at(&path("fabric/_system")), AccessLevel::Rw);
        assert_eq!(
            limited.access_at(&path("fabric/_system/collection/c")),
            AccessLevel::None
        );
        assert!(limited
            .require_access(&path("fabric/_system/collection/c"), AccessLevel::Ro)
            .is_err());
        assert!(limited
            .require_access(&path("fabric/_system"), AccessLevel::Rw)
            .is_ok());
    }
}
