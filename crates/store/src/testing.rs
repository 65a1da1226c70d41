//! Writes without audit events, for tests, benchmarks and fixtures that need records in
//! a store and no application around it. Keyward itself never uses these: every change
//! it makes goes through [`crate::WriteStore::commit`] with its events.

use crate::write::Mutation;
use crate::{Store, StoreError, StoreResult};
use async_trait::async_trait;
use keyward_core::{ApiKey, KeySecret, ResourceKind, Space, SpaceId, Tenant, User};
use time::OffsetDateTime;

#[async_trait]
pub trait UnauditedWrites {
    async fn create_tenant(&self, tenant: &Tenant, space: &Space, admin: &User) -> StoreResult<()>;
    async fn create_space(&self, space: &Space) -> StoreResult<Space>;
    async fn register_resource(
        &self,
        space: SpaceId,
        kind: ResourceKind,
        name: &str,
    ) -> StoreResult<()>;
    async fn create_user(&self, user: &User) -> StoreResult<User>;
    /// Saves whatever the user's record now holds, whoever changed it since.
    async fn update_user(&self, user: &User) -> StoreResult<()>;
    async fn create_key(&self, key: &ApiKey, secret: &KeySecret) -> StoreResult<ApiKey>;
    async fn create_keys(&self, keys: &[(ApiKey, KeySecret)]) -> StoreResult<()>;
    /// Saves whatever the key's record now holds, whoever changed it since.
    async fn update_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn rotate_key(
        &self,
        key: &ApiKey,
        secret: &KeySecret,
        old_until: OffsetDateTime,
    ) -> StoreResult<()>;
}

#[async_trait]
impl<S: Store + ?Sized> UnauditedWrites for S {
    async fn create_tenant(&self, tenant: &Tenant, space: &Space, admin: &User) -> StoreResult<()> {
        let change = Mutation::CreateTenant {
            tenant,
            space,
            admin,
        };
        self.commit(change, &[]).await.map(|_| ())
    }

    async fn create_space(&self, space: &Space) -> StoreResult<Space> {
        let done = self.commit(Mutation::CreateSpace(space), &[]).await?;
        Ok(Space {
            seq: done.seq.unwrap_or_default(),
            ..space.clone()
        })
    }

    async fn register_resource(
        &self,
        space: SpaceId,
        kind: ResourceKind,
        name: &str,
    ) -> StoreResult<()> {
        let change = Mutation::DeclareResource {
            space,
            kind,
            name,
            at: OffsetDateTime::now_utc(),
        };
        self.commit(change, &[]).await.map(|_| ())
    }

    async fn create_user(&self, user: &User) -> StoreResult<User> {
        let done = self.commit(Mutation::CreateUser(user), &[]).await?;
        Ok(User {
            seq: done.seq.unwrap_or_default(),
            ..user.clone()
        })
    }

    async fn update_user(&self, user: &User) -> StoreResult<()> {
        let stored = self
            .user(user.tenant_id, user.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let change = Mutation::UpdateUser {
            user,
            read_at: stored.updated_at,
        };
        self.commit(change, &[]).await.map(|_| ())
    }

    async fn create_key(&self, key: &ApiKey, secret: &KeySecret) -> StoreResult<ApiKey> {
        let done = self
            .commit(Mutation::CreateKey { key, secret }, &[])
            .await?;
        Ok(ApiKey {
            seq: done.seq.unwrap_or_default(),
            ..key.clone()
        })
    }

    async fn create_keys(&self, keys: &[(ApiKey, KeySecret)]) -> StoreResult<()> {
        self.commit(Mutation::ImportKeys(keys), &[])
            .await
            .map(|_| ())
    }

    async fn update_key(&self, key: &ApiKey) -> StoreResult<()> {
        let stored = self
            .key(key.tenant_id, key.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let change = Mutation::UpdateKey {
            key,
            read_at: stored.updated_at,
            with_credits: false,
        };
        self.commit(change, &[]).await.map(|_| ())
    }

    async fn rotate_key(
        &self,
        key: &ApiKey,
        secret: &KeySecret,
        old_until: OffsetDateTime,
    ) -> StoreResult<()> {
        let stored = self
            .key(key.tenant_id, key.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let change = Mutation::RotateKey {
            key,
            secret,
            old_until,
            read_at: stored.updated_at,
        };
        self.commit(change, &[]).await.map(|_| ())
    }
}
