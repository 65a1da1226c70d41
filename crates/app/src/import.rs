//! Keys in bulk, for load tests (`keyward bench-load`): only an operator with the data
//! directory can run it, and each batch is one audit event.

use crate::AppResult;
use keyward_core::audit::{Action, Actor, AuditEvent, Target};
use keyward_core::{ApiKey, Door, KeyHasher, KeyId, KeySecret, KeyShape, Metadata, Secret, User};
use keyward_store::{DynStore, Mutation};
use serde_json::Value;
use time::OffsetDateTime;

/// A native key of `owner` named `name`, with its secret and the hash to store.
pub fn bench_key(hasher: &KeyHasher, owner: &User, name: String) -> (ApiKey, KeySecret, Secret) {
    let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
        .expect("a whole second is a valid time");
    let secret = KeyShape::Native.generate();
    let key = ApiKey {
        id: KeyId::generate(),
        tenant_id: owner.tenant_id,
        owner_id: owner.id,
        seq: 0,
        name,
        door: Door::Native,
        shape: KeyShape::Native,
        start: KeyShape::Native.visible_start(secret.expose()),
        public_id: None,
        // What a member holds by default, so the key may also verify other keys.
        grants: keyward_core::principal::default_member_grants(),
        metadata: Metadata::new(),
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
    };
    let stored = KeySecret {
        hash: hasher.hash(secret.expose()),
        key_id: key.id,
        expires_at: None,
    };
    (key, stored, secret)
}

/// Stores a batch of keys of one owner, all or none, with one `keys.imported` event.
pub async fn import_keys(
    store: &DynStore,
    owner: &User,
    keys: &[(ApiKey, KeySecret)],
) -> AppResult<()> {
    let mut details = serde_json::Map::new();
    details.insert("count".into(), Value::from(keys.len()));
    let event = AuditEvent {
        id: uuid::Uuid::now_v7(),
        time: OffsetDateTime::now_utc(),
        tenant_id: Some(owner.tenant_id),
        actor: Actor::System,
        door: None,
        remote_ip: None,
        action: Action::KeysImported,
        target: Target::User(owner.id),
        changes: Default::default(),
        details,
        actor_user: None,
        target_owner: Some(owner.id),
    };
    store.commit(Mutation::ImportKeys(keys), &[event]).await?;
    Ok(())
}
