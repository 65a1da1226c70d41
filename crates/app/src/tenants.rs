//! Creating a tenant: at a node's first start, or by `keyward tenant create` on the
//! server's machine. Not an operation of any door, so Keyward itself is its actor.

use crate::clock::as_stored;
use crate::users::hash_password;
use crate::{AppError, AppResult};
use keyward_core::audit::{note_change, Action, Actor, AuditEvent, Changes, Target};
use keyward_core::{principal, validate, Role, Space, SpaceId, Tenant, TenantId, User, UserId};
use keyward_store::{DynStore, Mutation};
use time::OffsetDateTime;

/// The space every tenant starts with.
pub const DEFAULT_SPACE: &str = "Default";

/// Creates a tenant with a default space and an administrator, all or nothing, and
/// records the three in the audit log.
pub async fn create_tenant(
    store: &DynStore,
    name: &str,
    admin_email: &str,
    admin_password: &str,
) -> AppResult<(Tenant, User)> {
    let name = validate::name("tenant", name)?;
    let email = validate::email(admin_email)?;
    validate::password(admin_password)
        .map_err(|e| AppError::invalid("password", format!("administrator password: {e}")))?;
    let now = as_stored(OffsetDateTime::now_utc());
    let tenant = Tenant {
        id: TenantId::generate(),
        name,
        created_at: now,
    };
    let space = Space {
        id: SpaceId::generate(),
        tenant_id: tenant.id,
        seq: 0,
        name: DEFAULT_SPACE.to_string(),
        created_at: now,
    };
    let admin = User {
        id: UserId::generate(),
        tenant_id: tenant.id,
        seq: 0,
        username: "root".to_string(),
        display_name: "Administrator".to_string(),
        email,
        password_hash: hash_password(admin_password.to_string()).await?,
        role: Role::Admin,
        active: true,
        grants: principal::default_member_grants(),
        created_at: now,
        updated_at: now,
        session_epoch: 0,
        ratelimits: Vec::new(),
    };
    let event = |action, target, owner, changes| AuditEvent {
        id: uuid::Uuid::now_v7(),
        time: now,
        tenant_id: Some(tenant.id),
        actor: Actor::System,
        door: None,
        remote_ip: None,
        action,
        target,
        changes,
        details: Default::default(),
        actor_user: None,
        target_owner: owner,
    };
    let named = |field: &str, value: &str| {
        let mut changes = Changes::new();
        note_change(&mut changes, field, &None, &Some(value));
        changes
    };
    let events = [
        event(
            Action::TenantCreated,
            Target::Tenant(tenant.id),
            None,
            named("name", &tenant.name),
        ),
        event(
            Action::SpaceCreated,
            Target::Space(space.id),
            None,
            named("name", &space.name),
        ),
        event(
            Action::UserCreated,
            Target::User(admin.id),
            Some(admin.id),
            named("email", &admin.email),
        ),
    ];
    let change = Mutation::CreateTenant {
        tenant: &tenant,
        space: &space,
        admin: &admin,
    };
    store.commit(change, &events).await?;
    Ok((tenant, admin))
}
