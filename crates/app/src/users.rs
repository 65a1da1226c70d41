//! Users: create, read, list and change them (administrators), and see oneself.

use crate::no_escalation::check_may_grant;
use crate::{AppError, AppResult, Caller, Keyward, MAX_ATTEMPTS};
use keyward_core::audit::{note_change, Action, Changes, FieldChange, Target, HIDDEN};
use keyward_core::limits::{validate_rate_limits, RateLimit};
use keyward_core::principal::default_member_grants;
use keyward_core::{
    password, validate, Entity, Grants, Page, Paged, Principal, Role, TenantId, User, UserId,
};
use keyward_store::{Mutation, StoreError};

pub struct NewUser {
    pub email: String,
    pub password: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub role: Role,
    pub grants: Option<Grants>,
}

#[derive(Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub password: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    pub grants: Option<Grants>,
    /// Rate limits shared by all of the user's keys (replaces the list; empty clears).
    pub ratelimits: Option<Vec<RateLimit>>,
}

impl Keyward {
    pub async fn create_user(&self, caller: &Caller, request: NewUser) -> AppResult<User> {
        caller.require_admin()?;
        let email = validate::email(&request.email)?;
        validate::password(&request.password)?;
        let username = match request.username {
            Some(name) => validate::name("username", &name)?,
            None => email.clone(),
        };
        let display_name = match request.display_name {
            Some(name) => validate::name("display_name", &name)?,
            None => username.clone(),
        };
        let grants = match request.role {
            Role::Admin => Grants::all(),
            Role::Member => request.grants.unwrap_or_else(default_member_grants),
        };
        // Nobody makes a user who holds more than they do: an administrator's role is
        // everything, so only a credential that holds everything may give it.
        check_may_grant(caller, &grants, &caller.user).await?;
        let now = self.now();
        let user = User {
            id: UserId::generate(),
            tenant_id: caller.tenant_id(),
            seq: 0,
            email,
            username,
            display_name,
            password_hash: self.hash_password(request.password).await?,
            role: request.role,
            active: true,
            grants,
            created_at: now,
            updated_at: now,
            session_epoch: 0,
            ratelimits: Vec::new(),
        };
        let event = self.event(
            caller,
            Action::UserCreated,
            Target::User(user.id),
            Some(user.id),
            creation_changes(&user),
        );
        let done = self
            .store
            .commit(Mutation::CreateUser(&user), &[event])
            .await?;
        Ok(User {
            seq: done.seq.unwrap_or_default(),
            ..user
        })
    }

    pub async fn list_users(&self, caller: &Principal, page: Page) -> AppResult<Paged<User>> {
        caller.require_admin()?;
        Ok(self.store.list_users(caller.tenant_id(), page).await?)
    }

    /// A user of the caller's tenant: administrators see all, members themselves.
    pub async fn get_user(&self, caller: &Principal, id: UserId) -> AppResult<User> {
        if !caller.is_user(id) {
            caller.require_admin()?;
        }
        self.user_in_tenant(caller.tenant_id(), id).await
    }

    /// A user by `seq`, with [`Keyward::get_user`]'s rules. A member learns nothing
    /// about other numbers, not even whether they exist.
    pub async fn user_by_seq(&self, caller: &Principal, seq: i64) -> AppResult<User> {
        if caller.user.seq != seq {
            caller.require_admin()?;
        }
        self.store
            .user_by_seq(caller.tenant_id(), seq)
            .await?
            .ok_or(AppError::NotFound(Entity::User))
    }

    pub async fn update_user(
        &self,
        caller: &Caller,
        id: UserId,
        patch: UserPatch,
    ) -> AppResult<User> {
        caller.require_admin()?;
        self.patch_user(caller, id, patch).await
    }

    /// A user changes their own password, proving the current one (the Octopus portal
    /// and the console's profile page). It ends every session of theirs, this one
    /// included, as any password change does.
    pub async fn change_own_password(
        &self,
        caller: &Caller,
        current: &str,
        new: String,
    ) -> AppResult<User> {
        if caller.key.is_some() {
            return Err(AppError::invalid(
                "credential",
                "a password is changed from a login session, not with an API key",
            ));
        }
        let (current, hash) = (current.to_string(), caller.user.password_hash.clone());
        let matched = self
            .passwords
            .run(move || password::verify_password(&current, &hash))
            .await?;
        if !matched {
            return Err(AppError::invalid(
                "current_password",
                "the current password is wrong",
            ));
        }
        let patch = UserPatch {
            password: Some(new),
            ..UserPatch::default()
        };
        self.patch_user(caller, caller.user.id, patch).await
    }

    /// Applies a patch within the checks every change of a user makes (no escalation,
    /// no self-demotion); the caller's right to make it is checked before.
    async fn patch_user(&self, caller: &Caller, id: UserId, patch: UserPatch) -> AppResult<User> {
        let display_name = patch
            .display_name
            .map(|n| validate::name("display_name", &n))
            .transpose()?;
        let password_hash = match patch.password {
            Some(password) => {
                validate::password(&password)?;
                Some(self.hash_password(password).await?)
            }
            None => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let before = self.user_in_tenant(caller.tenant_id(), id).await?;
            let mut user = before.clone();
            if let Some(name) = &display_name {
                user.display_name = name.clone();
            }
            if let Some(hash) = &password_hash {
                user.password_hash = hash.clone();
            }
            if let Some(role) = patch.role {
                if role != user.role {
                    // A role change recomputes what the user holds: a demoted
                    // administrator keeps none of an administrator's grants (nor do
                    // their keys, which verification holds to their owner's).
                    user.grants = match role {
                        Role::Admin => Grants::all(),
                        Role::Member => default_member_grants(),
                    };
                }
                user.role = role;
            }
            if let Some(active) = patch.active {
                user.active = active;
            }
            if let Some(ratelimits) = &patch.ratelimits {
                // What limits a user is for administrators to say, not the user.
                caller.require_admin()?;
                validate_rate_limits("ratelimits", ratelimits)?;
                user.ratelimits = ratelimits.clone();
            }
            if let Some(grants) = &patch.grants {
                user.grants = grants.clone();
            }
            // (Only an administrator may edit users, and a member only their password.)
            if caller.is_user(id) && (user.active != before.active || user.role != before.role) {
                return Err(AppError::forbidden("you cannot demote or disable yourself"));
            }
            // Nothing escalates through users: a credential may change only a user who
            // holds no more than it does (changing another's password would let it
            // act as them), and may leave them holding no more than it does.
            check_may_grant(caller, before.effective_grants(), &caller.user)
                .await
                .map_err(|_| {
                    AppError::forbidden(
                        "this user holds more than the credential in use: only a credential \
                         that holds as much may change them",
                    )
                })?;
            check_may_grant(caller, user.effective_grants(), &caller.user).await?;
            if user == before {
                return Ok(user);
            }
            // A new password, a new role or a deactivation ends the user's sessions
            // (and a reactivation does not revive them).
            if user.password_hash != before.password_hash
                || user.role != before.role
                || (before.active && !user.active)
            {
                user.session_epoch = before.session_epoch + 1;
            }
            user.updated_at = self.next_update_time(before.updated_at);
            let event = self.event(
                caller,
                user_action(&before, &user),
                Target::User(user.id),
                Some(user.id),
                user_changes(&before, &user),
            );
            let change = Mutation::UpdateUser {
                user: &user,
                read_at: before.updated_at,
            };
            let result = self.store.commit(change, &[event]).await;
            self.verifier.invalidate_owner(user.id);
            match result {
                Ok(_) => return Ok(user),
                Err(StoreError::Stale) => tokio::task::yield_now().await,
                Err(StoreError::NotFound) => return Err(AppError::NotFound(Entity::User)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(AppError::Unavailable(
            "the user kept changing while it was being saved; try again".into(),
        ))
    }

    pub(crate) async fn user_in_tenant(&self, tenant: TenantId, id: UserId) -> AppResult<User> {
        self.store
            .user(tenant, id)
            .await?
            .ok_or(AppError::NotFound(Entity::User))
    }

    /// The owner of a key, by name as the tenant knows them (a username).
    pub async fn owner_of(
        &self,
        caller: &Principal,
        key: &keyward_core::ApiKey,
    ) -> AppResult<User> {
        if caller.is_user(key.owner_id) {
            return Ok(User::clone(&caller.user));
        }
        self.user_in_tenant(key.tenant_id, key.owner_id).await
    }
}

fn user_action(before: &User, after: &User) -> Action {
    if before.active && !after.active {
        Action::UserDeactivated
    } else if before.password_hash != after.password_hash {
        Action::UserPasswordChanged
    } else {
        Action::UserUpdated
    }
}

/// The fields that differ, as the log shows them: a password only as changed.
fn user_changes(before: &User, after: &User) -> Changes {
    let mut changes = Changes::new();
    note_change(
        &mut changes,
        "display_name",
        &before.display_name,
        &after.display_name,
    );
    note_change(
        &mut changes,
        "role",
        &before.role.as_str(),
        &after.role.as_str(),
    );
    note_change(&mut changes, "active", &before.active, &after.active);
    note_change(
        &mut changes,
        "permissions",
        &before.grants.to_strings(),
        &after.grants.to_strings(),
    );
    note_change(
        &mut changes,
        "ratelimits",
        &before.ratelimits,
        &after.ratelimits,
    );
    if before.password_hash != after.password_hash {
        changes.insert(
            "password".into(),
            FieldChange {
                from: HIDDEN.into(),
                to: HIDDEN.into(),
            },
        );
    }
    changes
}

fn creation_changes(user: &User) -> Changes {
    let mut changes = Changes::new();
    let none: Option<&str> = None;
    note_change(&mut changes, "email", &none, &Some(user.email.as_str()));
    note_change(
        &mut changes,
        "username",
        &none,
        &Some(user.username.as_str()),
    );
    note_change(
        &mut changes,
        "display_name",
        &none,
        &Some(user.display_name.as_str()),
    );
    note_change(&mut changes, "role", &none, &Some(user.role.as_str()));
    note_change(
        &mut changes,
        "permissions",
        &None,
        &Some(user.grants.to_strings()),
    );
    changes
}

impl Keyward {
    /// Hashes a new password on the password pool (see `passwords.rs`).
    async fn hash_password(&self, password: String) -> AppResult<String> {
        self.passwords
            .run(move || password::hash_password(&password))
            .await
    }
}

/// Hashes a password outside any request (a tenant's first administrator).
pub(crate) async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

impl Keyward {
    /// Ends every session of the caller's user, with a `user.logged_out` event.
    pub(crate) async fn end_sessions(&self, caller: &Caller) -> AppResult<()> {
        for _ in 0..MAX_ATTEMPTS {
            let before = self
                .user_in_tenant(caller.tenant_id(), caller.user.id)
                .await?;
            let user = User {
                session_epoch: before.session_epoch + 1,
                updated_at: self.next_update_time(before.updated_at),
                ..before.clone()
            };
            let event = self.event(
                caller,
                Action::UserLoggedOut,
                Target::User(user.id),
                Some(user.id),
                Changes::new(),
            );
            let change = Mutation::UpdateUser {
                user: &user,
                read_at: before.updated_at,
            };
            match self.store.commit(change, &[event]).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Stale) => tokio::task::yield_now().await,
                Err(err) => return Err(err.into()),
            }
        }
        Err(AppError::Unavailable(
            "the user kept changing while their sessions were ended; try again".into(),
        ))
    }

    /// A user of the caller's tenant by username: administrators see all, members
    /// only themselves.
    pub async fn user_by_username(&self, caller: &Principal, username: &str) -> AppResult<User> {
        if caller.user.username != username {
            caller.require_admin()?;
        }
        self.store
            .user_by_username(caller.tenant_id(), username)
            .await?
            .ok_or(AppError::NotFound(Entity::User))
    }
}
