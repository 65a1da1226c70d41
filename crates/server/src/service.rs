//! Keyward's operations, shared by every door. Each takes a principal and a request in
//! domain terms, asks the core, touches the store, and keeps this node's cache right.
//! Doors translate their vendor's wire format onto these and decide nothing themselves.

use crate::error::Failure;
use crate::jwt::Sessions;
use crate::verifier::{Verdict, Verifier};
use keyward_core::principal::{default_member_grants, KEYS_VERIFY};
use keyward_core::{
    password, validate, AccessLevel, ApiKey, CoreError, Door, Grants, KeyId, KeySecret, KeyShape,
    Metadata, Page, Paged, Principal, Query, ResourceKind, ResourcePath, Role, Secret, Space,
    SpaceId, Tenant, TenantId, User, UserId, VerifyCode,
};
use keyward_store::{DynStore, KeyFilter};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The longest grace period a rotation may give the old secret.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct Keyward {
    pub store: DynStore,
    pub verifier: Verifier,
    pub sessions: Sessions,
    /// Tenants never change once made, so every node may keep them.
    tenants: quick_cache::sync::Cache<TenantId, Arc<Tenant>>,
}

/// How many tenants a node keeps in memory.
const TENANT_CACHE: usize = 10_000;

/// A request to create a key, in domain terms.
pub struct NewKey {
    pub name: String,
    /// `None`: what the credential in use holds.
    pub grants: Option<Grants>,
    pub expires_at: Option<OffsetDateTime>,
    pub metadata: Metadata,
    /// `None`: the principal's own user.
    pub owner: Option<UserId>,
    pub door: Door,
    pub shape: KeyShape,
}

/// Changes to a key; `None` leaves a field as it is.
#[derive(Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub grants: Option<Grants>,
    /// `Some(None)` clears the expiry.
    pub expires_at: Option<Option<OffsetDateTime>>,
    pub metadata: Option<Metadata>,
    pub enabled: Option<bool>,
}

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
}

/// A key just made or rotated, with the secret that is shown this once.
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: Secret,
}

/// A credential as presented, before it is checked: borrowed from the request's headers
/// (every authenticated request has one, so it is not copied), owned only when it had
/// to be decoded (a key in the query string).
pub enum Credential<'a> {
    Session(Cow<'a, str>),
    Key(Cow<'a, str>),
    /// A key + secret pair (W3IPFS): the public half names the key, the secret proves it.
    Pair {
        public_id: Cow<'a, str>,
        secret: Cow<'a, str>,
    },
}

impl Keyward {
    pub fn new(store: DynStore, verifier: Verifier, sessions: Sessions) -> Self {
        Keyward {
            store,
            verifier,
            sessions,
            tenants: quick_cache::sync::Cache::new(TENANT_CACHE),
        }
    }

    /// A tenant by id, from memory after the first read.
    pub async fn tenant(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, Failure> {
        if let Some(tenant) = self.tenants.get(&id) {
            return Ok(Some(tenant));
        }
        let Some(tenant) = self.store.tenant(id).await? else {
            return Ok(None);
        };
        let tenant = Arc::new(tenant);
        self.tenants.insert(id, tenant.clone());
        Ok(Some(tenant))
    }

    // ---- Authentication ----

    /// Checks an email and password and opens a session.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(User, String, OffsetDateTime), Failure> {
        let user = match validate::email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        self.check_password(user, password).await
    }

    /// Checks a username within a named tenant (Macrometa's `{tenant, username}` form).
    pub async fn login_in_tenant(
        &self,
        tenant: &str,
        username: &str,
        password: &str,
    ) -> Result<(User, String, OffsetDateTime), Failure> {
        let user = match self.store.tenant_by_name(tenant).await? {
            Some(t) => self.store.user_by_username(t.id, username).await?,
            None => None,
        };
        self.check_password(user, password).await
    }

    async fn check_password(
        &self,
        user: Option<User>,
        password: &str,
    ) -> Result<(User, String, OffsetDateTime), Failure> {
        let password = password.to_string();
        // Argon2 takes tens of milliseconds of CPU: keep it off the async workers. An
        // unknown user costs the same time as a known one.
        let user = tokio::task::spawn_blocking(move || match user {
            Some(user) if password::verify_password(&password, &user.password_hash) => Some(user),
            Some(_) => None,
            None => {
                password::burn_verification_time(&password);
                None
            }
        })
        .await
        .map_err(|e| Failure::Internal(e.to_string()))?;
        let user = user
            .filter(|u| u.active)
            .ok_or_else(|| Failure::Unauthorized("wrong email or password".into()))?;
        let (token, expires_at) = self.sessions.issue(user.id, user.tenant_id);
        Ok((user, token, expires_at))
    }

    pub async fn authenticate(&self, credential: Credential<'_>) -> Result<Principal, Failure> {
        match credential {
            Credential::Session(token) => self.principal_from_session(&token).await,
            Credential::Key(secret) => self.principal_from_key(&secret).await,
            Credential::Pair { public_id, secret } => {
                self.principal_from_pair(&public_id, &secret).await
            }
        }
    }

    async fn principal_from_session(&self, token: &str) -> Result<Principal, Failure> {
        let claims = self.sessions.check(token).ok_or_else(|| {
            Failure::Unauthorized("the session token is invalid or expired".into())
        })?;
        let user = self
            .store
            .user(claims.tid, claims.sub)
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| {
                Failure::Unauthorized("the session's user is gone or disabled".into())
            })?;
        Ok(Principal {
            user: Arc::new(user),
            key: None,
        })
    }

    async fn principal_from_key(&self, secret: &str) -> Result<Principal, Failure> {
        principal_from_verdict(&self.verifier.verify(secret, None, None).await?)
    }

    /// Authenticates a key + secret pair: the secret must verify and belong to the key
    /// the public half names. A secret that matches no key, or another key, gets one
    /// message, so the answer does not tell which half was wrong.
    pub async fn principal_from_pair(
        &self,
        public_id: &str,
        secret: &str,
    ) -> Result<Principal, Failure> {
        const MISMATCH: &str = "the API key and secret do not match";
        let verdict = self.verifier.verify(secret, None, None).await?;
        let principal = match verdict.code {
            VerifyCode::Malformed | VerifyCode::NotFound => {
                return Err(Failure::Unauthorized(MISMATCH.into()))
            }
            _ => principal_from_verdict(&verdict)?,
        };
        let named = principal.key.as_ref().and_then(|k| k.public_id.as_deref());
        if named == Some(public_id) {
            Ok(principal)
        } else {
            Err(Failure::Unauthorized(MISMATCH.into()))
        }
    }

    /// The key whose public half (a pair's API key) is `public_id`, if the principal may
    /// see it (`write`: may change it).
    pub async fn key_by_public_id(
        &self,
        principal: &Principal,
        public_id: &str,
        write: bool,
    ) -> Result<ApiKey, Failure> {
        let key = self
            .store
            .key_by_public_id(public_id)
            .await?
            .ok_or_else(|| Failure::NotFound("API key".into()))?;
        principal.check_key_access(&key, write)?;
        Ok(key)
    }

    // ---- Keys ----

    pub async fn create_key(
        &self,
        principal: &Principal,
        request: NewKey,
    ) -> Result<IssuedKey, Failure> {
        let owner = match request.owner {
            Some(id) if !principal.is_user(id) => {
                self.user_in_tenant(principal.tenant_id(), id).await?
            }
            _ => User::clone(&principal.user),
        };
        principal.check_may_create_for(&owner)?;
        let grants = request
            .grants
            .unwrap_or_else(|| principal.default_grants_for(&owner));
        principal.check_may_grant(&grants, &owner)?;
        let now = stored_now();
        let expires_at = bounded_expiry(principal, request.expires_at, now)?;
        let secret = request.shape.generate();
        let key = ApiKey {
            id: KeyId::generate(),
            tenant_id: owner.tenant_id,
            owner_id: owner.id,
            seq: 0,
            name: validate::name("name", &request.name)?,
            door: request.door,
            shape: request.shape,
            start: request.shape.visible_start(secret.expose()),
            public_id: (request.shape == KeyShape::Pair)
                .then(keyward_core::keyfmt::generate_public_id),
            grants,
            metadata: request.metadata,
            enabled: true,
            created_at: now,
            updated_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
            use_count: 0,
        };
        let stored_secret = KeySecret {
            hash: self.verifier.hasher().hash(secret.expose()),
            key_id: key.id,
            expires_at: None,
        };
        let key = self.store.create_key(&key, &stored_secret).await?;
        tracing::info!(key_id = %key.id, owner = %key.owner_id, door = key.door.as_str(), "key created");
        Ok(IssuedKey { key, secret })
    }

    /// Creates a key for the caller and nobody else: for doors whose vendor lets no one,
    /// administrators included, make keys for another user (Octopus).
    pub async fn create_own_key(
        &self,
        principal: &Principal,
        owner: UserId,
        mut request: NewKey,
    ) -> Result<IssuedKey, Failure> {
        if !principal.is_user(owner) {
            return Err(Failure::Forbidden(
                "you can only create API keys for your own user account".into(),
            ));
        }
        request.owner = None;
        self.create_key(principal, request).await
    }

    /// A key by its `seq`, with [`Keyward::get_key`]'s rules.
    pub async fn key_by_seq(
        &self,
        principal: &Principal,
        seq: i64,
        write: bool,
    ) -> Result<ApiKey, Failure> {
        let key = self
            .store
            .key_by_seq(principal.tenant_id(), seq)
            .await?
            .ok_or_else(|| Failure::NotFound("API key".into()))?;
        principal.check_key_access(&key, write)?;
        Ok(key)
    }

    /// A key the principal may see (`write`: may change).
    pub async fn get_key(
        &self,
        principal: &Principal,
        id: KeyId,
        write: bool,
    ) -> Result<ApiKey, Failure> {
        let key = self
            .store
            .key(principal.tenant_id(), id)
            .await?
            .ok_or_else(|| Failure::NotFound("API key".into()))?;
        principal.check_key_access(&key, write)?;
        Ok(key)
    }

    /// Keys the principal may see: their own, or (administrators) any owner's.
    pub async fn list_keys(
        &self,
        principal: &Principal,
        mut filter: KeyFilter,
        page: Page,
    ) -> Result<Paged<ApiKey>, Failure> {
        principal.require(&keyward_core::principal::KEYS_READ)?;
        if !principal.acts_as_admin() {
            match filter.owner {
                Some(owner) if !principal.is_user(owner) => {
                    return Err(Failure::Forbidden("you may list only your own keys".into()))
                }
                _ => filter.owner = Some(principal.user.id),
            }
        }
        Ok(self
            .store
            .list_keys(principal.tenant_id(), filter, page)
            .await?)
    }

    pub async fn update_key(
        &self,
        principal: &Principal,
        id: KeyId,
        patch: KeyPatch,
    ) -> Result<ApiKey, Failure> {
        let mut key = self.get_key(principal, id, true).await?;
        if key.revoked_at.is_some() {
            return Err(CoreError::invalid("state", "a revoked key cannot be changed").into());
        }
        let now = stored_now();
        if let Some(name) = patch.name {
            key.name = validate::name("name", &name)?;
        }
        if let Some(grants) = patch.grants {
            let owner = self.user_in_tenant(key.tenant_id, key.owner_id).await?;
            principal.check_may_grant(&grants, &owner)?;
            key.grants = grants;
        }
        if let Some(expiry) = patch.expires_at {
            key.expires_at = bounded_expiry(principal, expiry, now)?;
        }
        if let Some(metadata) = patch.metadata {
            key.metadata = metadata;
        }
        if let Some(enabled) = patch.enabled {
            key.enabled = enabled;
        }
        key.updated_at = now;
        self.save_key(&key).await?;
        Ok(key)
    }

    /// Revokes a key: refused from the next request on. Revoking twice is harmless.
    pub async fn revoke_key(&self, principal: &Principal, id: KeyId) -> Result<ApiKey, Failure> {
        let mut key = self.get_key(principal, id, true).await?;
        if key.revoked_at.is_none() {
            let now = stored_now();
            key.revoked_at = Some(now);
            key.updated_at = now;
            self.save_key(&key).await?;
            tracing::info!(key_id = %key.id, "key revoked");
        }
        Ok(key)
    }

    /// Saves a changed key and forgets its cached verdicts on this node.
    pub async fn save_key(&self, key: &ApiKey) -> Result<(), Failure> {
        let result = self.store.update_key(key).await;
        self.verifier.invalidate_key(key.id);
        result.map_err(|e| match e {
            keyward_store::StoreError::NotFound => Failure::NotFound("API key".into()),
            other => other.into(),
        })
    }

    /// Gives a key a new secret; the old one keeps working for `grace` only.
    pub async fn rotate_key(
        &self,
        principal: &Principal,
        id: KeyId,
        grace: Duration,
    ) -> Result<(IssuedKey, OffsetDateTime), Failure> {
        if grace > MAX_GRACE {
            return Err(CoreError::invalid(
                "grace_seconds",
                "grace_seconds must be at most 30 days",
            )
            .into());
        }
        let mut key = self.get_key(principal, id, true).await?;
        if key.revoked_at.is_some() {
            return Err(CoreError::invalid("state", "a revoked key cannot be rotated").into());
        }
        // Rotation hands out a secret with the key's grants: through a key, only for a
        // key that one could have been given those grants by it.
        if let Some(excess) = principal
            .key
            .as_ref()
            .and_then(|k| key.grants.first_excess_over(&k.grants))
        {
            return Err(Failure::Forbidden(format!(
                "cannot rotate a key holding '{excess}': the key in use does not hold it"
            )));
        }
        let now = stored_now();
        let old_until = now + grace;
        let secret = key.shape.generate();
        key.start = key.shape.visible_start(secret.expose());
        key.updated_at = now;
        let stored_secret = KeySecret {
            hash: self.verifier.hasher().hash(secret.expose()),
            key_id: key.id,
            expires_at: None,
        };
        let result = self.store.rotate_key(&key, &stored_secret, old_until).await;
        self.verifier.invalidate_key(key.id);
        result?;
        tracing::info!(key_id = %key.id, grace_seconds = grace.as_secs(), "key rotated");
        Ok((IssuedKey { key, secret }, old_until))
    }

    /// Verifies a key presented to the principal's service, within its tenant.
    pub async fn verify_key(
        &self,
        principal: &Principal,
        presented: &str,
        query: Option<&Query>,
    ) -> Result<Verdict, Failure> {
        principal.require(&KEYS_VERIFY)?;
        Ok(self
            .verifier
            .verify(presented, Some(principal.tenant_id()), query)
            .await?)
    }

    /// The principal's unrevoked key with this name made through `door` (the name is
    /// unique per tenant for doors that say so, such as Macrometa's keyids).
    pub async fn key_by_door_name(
        &self,
        principal: &Principal,
        door: Door,
        name: &str,
        write: bool,
    ) -> Result<ApiKey, Failure> {
        let key = self
            .store
            .key_by_door_name(principal.tenant_id(), door, name)
            .await?
            .ok_or_else(|| Failure::NotFound("API key".into()))?;
        principal.check_key_access(&key, write)?;
        Ok(key)
    }

    /// Sets (`Some`) or removes (`None`) a key's explicit access grant at one path,
    /// under the same no-escalation rule as any other change of grants.
    pub async fn set_key_access(
        &self,
        principal: &Principal,
        id: KeyId,
        path: ResourcePath,
        level: Option<AccessLevel>,
    ) -> Result<ApiKey, Failure> {
        let key = self.get_key(principal, id, true).await?;
        let mut grants = key.grants.clone();
        match level {
            Some(level) => grants.set_access(path, level),
            None => {
                grants.clear_access(&path);
            }
        }
        let patch = KeyPatch {
            grants: Some(grants),
            ..KeyPatch::default()
        };
        self.update_key(principal, id, patch).await
    }

    // ---- Spaces and the names of their resources ----

    /// Every space of the tenant (a tenant has few).
    pub async fn all_spaces(&self, principal: &Principal) -> Result<Vec<Space>, Failure> {
        let page = Page::new(0, Page::MAX_LIMIT);
        Ok(self
            .store
            .list_spaces(principal.tenant_id(), page)
            .await?
            .items)
    }

    pub async fn space(&self, principal: &Principal, name: &str) -> Result<Space, Failure> {
        self.store
            .space_by_name(principal.tenant_id(), name)
            .await?
            .ok_or_else(|| Failure::NotFound("space".into()))
    }

    /// The space with this name, created on first use: for spaces a door promises in
    /// every tenant (Macrometa's `_system`). Concurrent first uses get the same space.
    pub async fn ensure_space(&self, principal: &Principal, name: &str) -> Result<Space, Failure> {
        if let Some(space) = self
            .store
            .space_by_name(principal.tenant_id(), name)
            .await?
        {
            return Ok(space);
        }
        match self.insert_space(principal.tenant_id(), name).await {
            Err(Failure::Validation { .. }) => self.space(principal, name).await,
            other => other,
        }
    }

    /// Creates a space; administrators only. A taken name is a `space name` conflict.
    pub async fn create_space(&self, principal: &Principal, name: &str) -> Result<Space, Failure> {
        principal.require_admin()?;
        self.insert_space(principal.tenant_id(), name).await
    }

    async fn insert_space(&self, tenant: TenantId, name: &str) -> Result<Space, Failure> {
        let space = Space {
            id: SpaceId::generate(),
            tenant_id: tenant,
            seq: 0,
            name: validate::name("space", name)?,
            created_at: stored_now(),
        };
        Ok(self.store.create_space(&space).await?)
    }

    /// Records a resource name in a space, so listings show it. Only names are kept.
    pub async fn declare_resource(
        &self,
        principal: &Principal,
        space: &Space,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(), Failure> {
        principal.require(&keyward_core::principal::KEYS_WRITE)?;
        if space.tenant_id != principal.tenant_id() {
            return Err(Failure::NotFound("space".into()));
        }
        Ok(self.store.register_resource(space.id, kind, name).await?)
    }

    pub async fn list_resources(
        &self,
        space: &Space,
        kind: ResourceKind,
    ) -> Result<Vec<String>, Failure> {
        Ok(self.store.list_resources(space.id, kind).await?)
    }

    // ---- Users ----

    pub async fn create_user(
        &self,
        principal: &Principal,
        request: NewUser,
    ) -> Result<User, Failure> {
        principal.require_admin()?;
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
        let now = stored_now();
        let user = User {
            id: UserId::generate(),
            tenant_id: principal.tenant_id(),
            seq: 0,
            email,
            username,
            display_name,
            password_hash: hash_password(request.password).await?,
            role: request.role,
            active: true,
            grants,
            created_at: now,
            updated_at: now,
        };
        Ok(self.store.create_user(&user).await?)
    }

    pub async fn list_users(
        &self,
        principal: &Principal,
        page: Page,
    ) -> Result<Paged<User>, Failure> {
        principal.require_admin()?;
        Ok(self.store.list_users(principal.tenant_id(), page).await?)
    }

    /// A user of the principal's tenant: administrators see all, members themselves.
    pub async fn get_user(&self, principal: &Principal, id: UserId) -> Result<User, Failure> {
        if !principal.is_user(id) {
            principal.require_admin()?;
        }
        self.user_in_tenant(principal.tenant_id(), id).await
    }

    /// A user by `seq`, with [`Keyward::get_user`]'s rules. A member learns nothing
    /// about other numbers, not even whether they exist.
    pub async fn user_by_seq(&self, principal: &Principal, seq: i64) -> Result<User, Failure> {
        if principal.user.seq != seq {
            principal.require_admin()?;
        }
        self.store
            .user_by_seq(principal.tenant_id(), seq)
            .await?
            .ok_or_else(|| Failure::NotFound("user".into()))
    }

    // ---- Spaces ----

    /// The spaces of the principal's tenant; any user of the tenant may see them.
    pub async fn list_spaces(
        &self,
        principal: &Principal,
        page: Page,
    ) -> Result<Paged<Space>, Failure> {
        Ok(self.store.list_spaces(principal.tenant_id(), page).await?)
    }

    pub async fn space_by_seq(&self, principal: &Principal, seq: i64) -> Result<Space, Failure> {
        self.store
            .space_by_seq(principal.tenant_id(), seq)
            .await?
            .ok_or_else(|| Failure::NotFound("space".into()))
    }

    pub async fn update_user(
        &self,
        principal: &Principal,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User, Failure> {
        principal.require_admin()?;
        let mut user = self.user_in_tenant(principal.tenant_id(), id).await?;
        if let Some(name) = patch.display_name {
            user.display_name = validate::name("display_name", &name)?;
        }
        if let Some(password) = patch.password {
            validate::password(&password)?;
            user.password_hash = hash_password(password).await?;
        }
        if let Some(role) = patch.role {
            user.role = role;
        }
        if let Some(active) = patch.active {
            user.active = active;
        }
        if let Some(grants) = patch.grants {
            user.grants = grants;
        }
        if principal.is_user(id) && (!user.active || user.role != Role::Admin) {
            return Err(Failure::Forbidden(
                "you cannot demote or disable yourself".into(),
            ));
        }
        user.updated_at = stored_now();
        let result = self.store.update_user(&user).await;
        self.verifier.invalidate_owner(user.id);
        result?;
        Ok(user)
    }

    pub async fn user_in_tenant(&self, tenant: TenantId, id: UserId) -> Result<User, Failure> {
        self.store
            .user(tenant, id)
            .await?
            .ok_or_else(|| Failure::NotFound("user".into()))
    }
}

/// No key outlives the key that made it: through a key with an expiry, a new expiry
/// may not be later, and "never" becomes that key's expiry.
fn bounded_expiry(
    principal: &Principal,
    requested: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, Failure> {
    let requested = requested
        .map(|t| validate::expiry(as_stored(t), now))
        .transpose()?;
    let limit = principal.key.as_ref().and_then(|k| k.expires_at);
    match (requested, limit) {
        (Some(t), Some(limit)) if t > limit => Err(CoreError::invalid(
            "expires_at",
            "expires_at may not be later than the expiry of the key making the request",
        )
        .into()),
        (None, Some(limit)) => Ok(Some(limit)),
        (requested, _) => Ok(requested),
    }
}

/// A time as the store keeps it (UTC, whole microseconds), so that what a write
/// answers is what later reads show.
fn as_stored(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("a truncated nanosecond is in range")
}

fn stored_now() -> OffsetDateTime {
    as_stored(OffsetDateTime::now_utc())
}

async fn hash_password(password: String) -> Result<String, Failure> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| Failure::Internal(e.to_string()))
}

/// The principal a verified key authenticates, or why it cannot.
pub fn principal_from_verdict(verdict: &Verdict) -> Result<Principal, Failure> {
    verdict
        .principal()
        .ok_or_else(|| Failure::Unauthorized(refusal_message(verdict.code).into()))
}

/// Why a key was refused, for a 401's message.
pub fn refusal_message(code: VerifyCode) -> &'static str {
    match code {
        VerifyCode::Valid => "valid",
        VerifyCode::Malformed => "the API key is malformed",
        VerifyCode::NotFound => "the API key is not known",
        VerifyCode::Expired => "the API key has expired",
        VerifyCode::Revoked => "the API key has been revoked",
        VerifyCode::Disabled => "the API key is disabled",
        VerifyCode::InsufficientPermissions => "the API key lacks a required permission",
    }
}
