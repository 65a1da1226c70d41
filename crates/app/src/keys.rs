//! Keys: create, read, list, change, rotate and revoke, with every rule about who may.
//!
//! Every change of an existing key goes through [`Keyward::change_key`]: read the key,
//! apply the edit, commit it on the condition that nobody changed the key since, with
//! its audit event; when somebody did, read again and redo the edit. Two concurrent
//! edits of one key (two attributes added, two access levels set) therefore both land.

use crate::no_escalation::check_may_grant;
use crate::{AppError, AppResult, Caller, Keyward, MAX_ATTEMPTS};
use keyward_core::audit::{note_change, Action, Changes, Target};
use keyward_core::limits::{
    validate_rate_limits, Credits, IpAllowlist, KeyLimits, RateLimit, Refill,
};
use keyward_core::principal::{ADMIN, KEYS_READ, KEYS_VERIFY, KEYS_WRITE};
use keyward_core::{
    validate, AccessLevel, ApiKey, Door, Entity, Grants, KeyId, KeySecret, KeyShape, Metadata,
    Page, Paged, Principal, ResourcePath, Secret, User, UserId,
};
use keyward_store::{KeyFilter, Mutation, StoreError};
use std::time::Duration;
use time::OffsetDateTime;

/// The longest grace period a rotation may give the old secret.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A request to create a key, in domain terms.
pub struct NewKey {
    pub name: String,
    /// `None`: what the credential in use holds.
    pub grants: Option<Grants>,
    pub expires_at: Option<OffsetDateTime>,
    pub metadata: Metadata,
    /// `None`: the caller's own user.
    pub owner: Option<UserId>,
    pub door: Door,
    pub shape: KeyShape,
    /// Rate limits and the addresses the key may be used from (none: unlimited).
    pub limits: KeyLimits,
    /// Usage credits; `None`: unlimited.
    pub credits: Option<CreditsSpec>,
}

/// Credits as a request gives them: a balance and an optional refill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditsSpec {
    pub remaining: u64,
    pub refill: Option<Refill>,
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
    /// Replaces the list (empty clears it).
    pub ratelimits: Option<Vec<RateLimit>>,
    pub ip_allowlist: Option<IpAllowlist>,
    /// `Some(None)` makes the key unlimited; `Some(Some(_))` sets its credits whole.
    pub credits: Option<Option<CreditsSpec>>,
    /// Change the key only if it is still the version read (its `updated_at`, which a
    /// door shows as an ETag): a client that reads, edits and writes back a whole
    /// field (metadata) then loses nobody else's change, and retries on refusal.
    pub if_version: Option<OffsetDateTime>,
}

/// A key just made or rotated, with the secret that is shown this once.
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: Secret,
}

/// Which attributes of a key's metadata to remove.
pub enum Removal<'a> {
    One(&'a str),
    All,
}

impl Keyward {
    /// Whether the caller may make keys through `door` at all: W3IPFS lets only an
    /// administrator's credential make keys. A door may ask before reading the request.
    pub fn check_may_create_keys(&self, caller: &Principal, door: Door) -> AppResult<()> {
        if door == Door::W3ipfs {
            caller.require_admin()?;
        }
        Ok(())
    }

    pub async fn create_key(&self, caller: &Caller, request: NewKey) -> AppResult<IssuedKey> {
        self.check_may_create_keys(caller, request.door)?;
        let owner = match request.owner {
            Some(id) if !caller.is_user(id) => self.user_in_tenant(caller.tenant_id(), id).await?,
            _ => User::clone(&caller.user),
        };
        caller.check_may_create_for(&owner)?;
        let grants = request
            .grants
            .unwrap_or_else(|| caller.default_grants_for(&owner));
        check_may_grant(caller, &grants, &owner).await?;
        let now = self.now();
        let expires_at = bounded_expiry(caller, request.expires_at, now)?;
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
            disabled_by: None,
            disabled_by_admin: false,
            limits: request.limits,
            credits: request.credits.map(|c| c.at(now)).transpose()?,
        };
        validate_rate_limits("ratelimits", &key.limits.ratelimits)?;
        let stored_secret = KeySecret {
            hash: self.verifier.hasher().hash(secret.expose()),
            key_id: key.id,
            expires_at: None,
        };
        let mut changes = key_changes(&blank_key(&key), &key);
        note_change(&mut changes, "owner_id", &None, &Some(key.owner_id));
        let event = self.event(
            caller,
            Action::KeyCreated,
            Target::Key(key.id),
            Some(key.owner_id),
            changes,
        );
        let done = self
            .store
            .commit(
                Mutation::CreateKey {
                    key: &key,
                    secret: &stored_secret,
                },
                &[event],
            )
            .await?;
        let key = ApiKey {
            seq: done.seq.unwrap_or_default(),
            ..key
        };
        tracing::info!(key_id = %key.id, owner = %key.owner_id, door = key.door.as_str(), "key created");
        Ok(IssuedKey { key, secret })
    }

    /// Creates a key for the caller and nobody else: for doors whose vendor lets no one,
    /// administrators included, make keys for another user (Octopus).
    pub async fn create_own_key(
        &self,
        caller: &Caller,
        owner: UserId,
        mut request: NewKey,
    ) -> AppResult<IssuedKey> {
        if !caller.is_user(owner) {
            return Err(AppError::forbidden(
                "you can only create API keys for your own user account",
            ));
        }
        request.owner = None;
        self.create_key(caller, request).await
    }

    /// A key the caller may see (`write`: may change).
    pub async fn get_key(&self, caller: &Principal, id: KeyId, write: bool) -> AppResult<ApiKey> {
        let key = self.store.key(caller.tenant_id(), id).await?;
        visible_key(caller, key, write)
    }

    /// A key by its `seq`, with [`Keyward::get_key`]'s rules.
    pub async fn key_by_seq(&self, caller: &Principal, seq: i64, write: bool) -> AppResult<ApiKey> {
        let key = self.store.key_by_seq(caller.tenant_id(), seq).await?;
        visible_key(caller, key, write)
    }

    /// The key whose public half (a pair's API key) is `public_id`.
    pub async fn key_by_public_id(
        &self,
        caller: &Principal,
        public_id: &str,
        write: bool,
    ) -> AppResult<ApiKey> {
        let key = self.store.key_by_public_id(public_id).await?;
        visible_key(caller, key, write)
    }

    /// The unrevoked key with this name made through `door` (the name is unique per
    /// tenant for doors that say so, such as Macrometa's keyids).
    pub async fn key_by_door_name(
        &self,
        caller: &Principal,
        door: Door,
        name: &str,
        write: bool,
    ) -> AppResult<ApiKey> {
        let key = self
            .store
            .key_by_door_name(caller.tenant_id(), door, name)
            .await?;
        visible_key(caller, key, write)
    }

    /// Permissions to offer when the caller makes a key of their own (the console's
    /// form): Keyward's own, the entries the caller holds, and for administrators those
    /// the tenant's users hold; each only if the no-escalation rule lets it through, so
    /// nothing is offered that creating the key would refuse.
    pub async fn grantable_permissions(&self, caller: &Principal) -> AppResult<Vec<String>> {
        let mut offered: std::collections::BTreeSet<String> =
            [&KEYS_READ, &KEYS_WRITE, &KEYS_VERIFY, &ADMIN]
                .iter()
                .map(|p| p.to_string())
                .collect();
        offered.extend(caller.user.effective_grants().to_strings());
        if let Some(key) = &caller.key {
            offered.extend(key.grants.to_strings());
        }
        if caller.acts_as_admin() {
            let users = self
                .store
                .list_users(caller.tenant_id(), Page::new(0, Page::MAX_LIMIT))
                .await?;
            for user in users.items {
                offered.extend(user.grants.to_strings());
            }
        }
        Ok(offered
            .into_iter()
            .filter(|entry| {
                Grants::parse(&[entry])
                    .is_ok_and(|grants| caller.check_may_grant(&grants, &caller.user).is_ok())
            })
            .collect())
    }

    /// Keys the caller may see: their own, or (administrators) any owner's.
    pub async fn list_keys(
        &self,
        caller: &Principal,
        mut filter: KeyFilter,
        page: Page,
    ) -> AppResult<Paged<ApiKey>> {
        caller.require(&KEYS_READ)?;
        if let Some(search) = &filter.search {
            if search.chars().any(char::is_control) || search.chars().count() > 200 {
                return Err(AppError::invalid(
                    "search",
                    "search is up to 200 characters, without control characters",
                ));
            }
        }
        filter.as_of = Some(self.now());
        if !caller.acts_as_admin() {
            match filter.owner {
                Some(owner) if !caller.is_user(owner) => {
                    return Err(AppError::forbidden("you may list only your own keys"))
                }
                _ => filter.owner = Some(caller.user.id),
            }
        }
        Ok(self
            .store
            .list_keys(caller.tenant_id(), filter, page)
            .await?)
    }

    pub async fn update_key(
        &self,
        caller: &Caller,
        id: KeyId,
        patch: KeyPatch,
    ) -> AppResult<ApiKey> {
        let name = patch.name.map(|n| validate::name("name", &n)).transpose()?;
        if let Some(grants) = &patch.grants {
            // Named grants are held to the rule even when they are what the key holds.
            let key = self.get_key(caller, id, true).await?;
            let owner = self.user_in_tenant(key.tenant_id, key.owner_id).await?;
            check_may_grant(caller, grants, &owner).await?;
        }
        let now = self.now();
        let expiry = patch
            .expires_at
            .map(|e| bounded_expiry(caller, e, now))
            .transpose()?;
        self.change_key(caller, id, |key| {
            if patch
                .if_version
                .is_some_and(|version| version != key.updated_at)
            {
                return Err(AppError::VersionMismatch);
            }
            if key.revoked_at.is_some() {
                return Err(AppError::invalid(
                    "state",
                    "a revoked key cannot be changed",
                ));
            }
            if let Some(name) = &name {
                key.name = name.clone();
            }
            if let Some(grants) = &patch.grants {
                key.grants = grants.clone();
            }
            if let Some(expiry) = expiry {
                key.expires_at = expiry;
            }
            if let Some(metadata) = &patch.metadata {
                key.metadata = metadata.clone();
            }
            if let Some(enabled) = patch.enabled {
                set_enabled(caller, key, enabled)?;
            }
            if let Some(ratelimits) = &patch.ratelimits {
                validate_rate_limits("ratelimits", ratelimits)?;
                key.limits.ratelimits = ratelimits.clone();
            }
            if let Some(allowlist) = &patch.ip_allowlist {
                key.limits.ip_allowlist = allowlist.clone();
            }
            if let Some(credits) = patch.credits {
                key.credits = credits.map(|c| c.at(now)).transpose()?;
            }
            Ok(())
        })
        .await
    }

    /// Revokes a key: refused from the next request on. Revoking twice is harmless.
    pub async fn revoke_key(&self, caller: &Caller, id: KeyId) -> AppResult<ApiKey> {
        let now = self.now();
        let key = self
            .change_key(caller, id, |key| {
                key.revoked_at.get_or_insert(now);
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %key.id, "key revoked");
        Ok(key)
    }

    /// Sets (`Some`) or removes (`None`) a key's explicit access grant at one path,
    /// under the same no-escalation rule as any other change of grants.
    pub async fn set_key_access(
        &self,
        caller: &Caller,
        id: KeyId,
        path: ResourcePath,
        level: Option<AccessLevel>,
    ) -> AppResult<ApiKey> {
        self.change_key(caller, id, |key| {
            match level {
                Some(level) => key.grants.set_access(path.clone(), level),
                None => {
                    key.grants.clear_access(&path);
                }
            }
            Ok(())
        })
        .await
    }

    /// Adds attributes to a key's metadata; the others stay (Macrometa's merge).
    pub async fn merge_key_metadata(
        &self,
        caller: &Caller,
        id: KeyId,
        added: Metadata,
    ) -> AppResult<ApiKey> {
        self.change_key(caller, id, |key| {
            let mut merged = key.metadata.clone();
            merged.extend(added.clone());
            key.metadata = validate::metadata(&serde_json::Value::Object(merged))?;
            Ok(())
        })
        .await
    }

    /// Removes one attribute, or all, from a key's metadata.
    pub async fn remove_key_metadata(
        &self,
        caller: &Caller,
        id: KeyId,
        removal: Removal<'_>,
    ) -> AppResult<ApiKey> {
        self.change_key(caller, id, |key| {
            match removal {
                Removal::One(name) => {
                    key.metadata.remove(name);
                }
                Removal::All => key.metadata.clear(),
            }
            Ok(())
        })
        .await
    }

    /// Gives a key a new secret; the old one keeps working for `grace` only.
    pub async fn rotate_key(
        &self,
        caller: &Caller,
        id: KeyId,
        grace: Duration,
    ) -> AppResult<(IssuedKey, OffsetDateTime)> {
        if grace > MAX_GRACE {
            return Err(AppError::invalid(
                "grace_seconds",
                "grace_seconds must be at most 30 days",
            ));
        }
        for _ in 0..MAX_ATTEMPTS {
            let before = self.get_key(caller, id, true).await?;
            if before.revoked_at.is_some() {
                return Err(AppError::invalid(
                    "state",
                    "a revoked key cannot be rotated",
                ));
            }
            // Rotation hands out a secret with the key's grants: through a key, only for
            // a key that one could have been given those grants by it.
            if let Some(excess) = caller
                .key
                .as_ref()
                .and_then(|k| before.grants.first_excess_over(&k.grants))
            {
                return Err(AppError::forbidden(format!(
                    "cannot rotate a key holding '{excess}': the key in use does not hold it"
                )));
            }
            let now = self.next_update_time(before.updated_at);
            let old_until = now + grace;
            let secret = before.shape.generate();
            let mut key = before.clone();
            key.start = key.shape.visible_start(secret.expose());
            key.updated_at = now;
            let stored_secret = KeySecret {
                hash: self.verifier.hasher().hash(secret.expose()),
                key_id: key.id,
                expires_at: None,
            };
            let mut changes = Changes::new();
            note_change(&mut changes, "start", &before.start, &key.start);
            changes.insert(
                "previous_secret_expires_at".into(),
                keyward_core::audit::FieldChange {
                    from: serde_json::Value::Null,
                    to: serde_json::to_value(rfc3339(old_until)).unwrap_or_default(),
                },
            );
            let event = self.event(
                caller,
                Action::KeyRotated,
                Target::Key(key.id),
                Some(key.owner_id),
                changes,
            );
            let change = Mutation::RotateKey {
                key: &key,
                secret: &stored_secret,
                old_until,
                read_at: before.updated_at,
            };
            let result = self.store.commit(change, &[event]).await;
            self.verifier.invalidate_key(key.id);
            match result {
                Ok(_) => {
                    tracing::info!(key_id = %key.id, grace_seconds = grace.as_secs(), "key rotated");
                    return Ok((IssuedKey { key, secret }, old_until));
                }
                Err(StoreError::Stale) => tokio::task::yield_now().await,
                Err(StoreError::NotFound) => return Err(AppError::NotFound(Entity::ApiKey)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(still_changing())
    }

    /// Reads a key the caller may change, applies `edit`, and commits the result with
    /// its audit event if nobody changed the key meanwhile (else starts again). A change
    /// of grants is held to the no-escalation rule against the key's owner; an edit that
    /// changes nothing writes nothing.
    async fn change_key(
        &self,
        caller: &Caller,
        id: KeyId,
        mut edit: impl FnMut(&mut ApiKey) -> AppResult<()>,
    ) -> AppResult<ApiKey> {
        for _ in 0..MAX_ATTEMPTS {
            let before = self.get_key(caller, id, true).await?;
            let mut key = before.clone();
            edit(&mut key)?;
            if key == before {
                return Ok(key);
            }
            if key.grants != before.grants {
                let owner = self.user_in_tenant(key.tenant_id, key.owner_id).await?;
                check_may_grant(caller, &key.grants, &owner).await?;
            }
            key.updated_at = self.next_update_time(before.updated_at);
            let event = self.event(
                caller,
                key_action(&before, &key),
                Target::Key(key.id),
                Some(key.owner_id),
                key_changes(&before, &key),
            );
            let change = Mutation::UpdateKey {
                key: &key,
                read_at: before.updated_at,
                with_credits: key.credits != before.credits,
            };
            let result = self.store.commit(change, &[event]).await;
            // Whatever happened, what this node cached about the key may be stale.
            self.verifier.invalidate_key(key.id);
            match result {
                Ok(_) => {
                    if let Some(credits) = key
                        .credits
                        .as_ref()
                        .filter(|_| key.credits != before.credits)
                    {
                        let set = keyward_store::CreditOp::Set;
                        self.counters
                            .credits_changed(&key, set, credits.remaining)
                            .await;
                    }
                    return Ok(key);
                }
                Err(StoreError::Stale) => tokio::task::yield_now().await,
                Err(StoreError::NotFound) => return Err(AppError::NotFound(Entity::ApiKey)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(still_changing())
    }
}

/// Disables or enables a key, recording who disabled it. A key an administrator
/// disabled stays disabled until an administrator enables it: its member cannot undo
/// the decision.
fn set_enabled(caller: &Caller, key: &mut ApiKey, enabled: bool) -> AppResult<()> {
    if key.enabled == enabled {
        return Ok(());
    }
    if enabled {
        if key.disabled_by_admin && !caller.acts_as_admin() {
            return Err(AppError::forbidden(
                "an administrator disabled this key: only an administrator may enable it",
            ));
        }
        key.disabled_by = None;
        key.disabled_by_admin = false;
    } else {
        key.disabled_by = Some(caller.user.id);
        key.disabled_by_admin = caller.acts_as_admin();
    }
    key.enabled = enabled;
    Ok(())
}

fn still_changing() -> AppError {
    AppError::Unavailable("the record kept changing while it was being saved; try again".into())
}

fn visible_key(caller: &Principal, key: Option<ApiKey>, write: bool) -> AppResult<ApiKey> {
    let key = key.ok_or(AppError::NotFound(Entity::ApiKey))?;
    caller.check_key_access(&key, write)?;
    Ok(key)
}

/// What a key's change is called in the audit log: a revocation, a change of state
/// alone, or any other update.
fn key_action(before: &ApiKey, after: &ApiKey) -> Action {
    if before.revoked_at.is_none() && after.revoked_at.is_some() {
        return Action::KeyRevoked;
    }
    let only_state = ApiKey {
        enabled: before.enabled,
        disabled_by: before.disabled_by,
        disabled_by_admin: before.disabled_by_admin,
        ..after.clone()
    } == ApiKey {
        updated_at: after.updated_at,
        ..before.clone()
    };
    match (before.enabled, after.enabled) {
        (false, true) if only_state => Action::KeyEnabled,
        (true, false) if only_state => Action::KeyDisabled,
        _ => Action::KeyUpdated,
    }
}

/// The fields that differ between two versions of a key, as the log shows them. The
/// secret is never part of a key's record, so it cannot appear here.
fn key_changes(before: &ApiKey, after: &ApiKey) -> Changes {
    let mut changes = Changes::new();
    note_change(&mut changes, "name", &before.name, &after.name);
    note_change(
        &mut changes,
        "permissions",
        &before.grants.to_strings(),
        &after.grants.to_strings(),
    );
    note_change(&mut changes, "metadata", &before.metadata, &after.metadata);
    note_change(&mut changes, "enabled", &before.enabled, &after.enabled);
    note_change(
        &mut changes,
        "expires_at",
        &before.expires_at.map(rfc3339),
        &after.expires_at.map(rfc3339),
    );
    note_change(
        &mut changes,
        "revoked_at",
        &before.revoked_at.map(rfc3339),
        &after.revoked_at.map(rfc3339),
    );
    note_change(&mut changes, "start", &before.start, &after.start);
    note_change(
        &mut changes,
        "ratelimits",
        &before.limits.ratelimits,
        &after.limits.ratelimits,
    );
    note_change(
        &mut changes,
        "ip_allowlist",
        &before.limits.ip_allowlist,
        &after.limits.ip_allowlist,
    );
    note_change(&mut changes, "credits", &before.credits, &after.credits);
    changes
}

impl CreditsSpec {
    /// The credits this gives a key at `now`: the current interval counts as refilled.
    pub fn at(self, now: OffsetDateTime) -> AppResult<Credits> {
        Ok(Credits::new(self.remaining, self.refill, now)?)
    }
}

/// What a key "was" before it was created, so that its creation lists every field.
fn blank_key(key: &ApiKey) -> ApiKey {
    ApiKey {
        name: String::new(),
        grants: Grants::default(),
        metadata: Metadata::new(),
        enabled: false,
        expires_at: None,
        start: String::new(),
        limits: Default::default(),
        credits: None,
        ..key.clone()
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// No key outlives the key that made it: through a key with an expiry, a new expiry
/// may not be later, and "never" becomes that key's expiry.
fn bounded_expiry(
    caller: &Principal,
    requested: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> AppResult<Option<OffsetDateTime>> {
    let requested = requested
        .map(|t| validate::expiry(t, now).map(crate::clock::as_stored))
        .transpose()?;
    let limit = caller.key.as_ref().and_then(|k| k.expires_at);
    match (requested, limit) {
        (Some(t), Some(limit)) if t > limit => Err(AppError::invalid(
            "expires_at",
            "expires_at may not be later than the expiry of the key making the request",
        )),
        (None, Some(limit)) => Ok(Some(limit)),
        (requested, _) => Ok(requested),
    }
}
