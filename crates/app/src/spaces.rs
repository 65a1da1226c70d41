//! Spaces (Macrometa's fabrics, Octopus's spaces) and the names of the resources inside
//! them, with the rules of who sees which.

use crate::{AppError, AppResult, Caller, Keyward};
use keyward_core::audit::{note_change, Action, Changes, Target};
use keyward_core::principal::KEYS_WRITE;
use keyward_core::{
    validate, AccessLevel, Entity, Grants, Page, Paged, Principal, ResourceKind, ResourcePath,
    Space, SpaceId,
};
use keyward_store::{Mutation, StoreError};

/// The space Macrometa promises in every tenant, created on first use, and the only one
/// from which other spaces may be created.
pub const SYSTEM_SPACE: &str = "_system";

/// The resource path of a space's own access level: `fabric/<name>` (`*`: the default
/// for every space).
pub fn space_path(name: &str) -> AppResult<ResourcePath> {
    resource_path(&["fabric", name])
}

/// A resource path from its segments, with a clear refusal naming the bad one.
pub fn resource_path(segments: &[&str]) -> AppResult<ResourcePath> {
    ResourcePath::from_segments(segments).map_err(|_| {
        AppError::invalid(
            "name",
            format!(
                "'{}' is not a valid name: use letters, digits, '_', '-', '.' or '@', or '*'",
                segments.last().copied().unwrap_or_default()
            ),
        )
    })
}

impl Keyward {
    /// The spaces of the caller's tenant; any user of the tenant may see them.
    pub async fn list_spaces(&self, caller: &Principal, page: Page) -> AppResult<Paged<Space>> {
        Ok(self.store.list_spaces(caller.tenant_id(), page).await?)
    }

    /// Every space of the tenant (a tenant has few).
    pub async fn all_spaces(&self, caller: &Principal) -> AppResult<Vec<Space>> {
        let page = Page::new(0, Page::MAX_LIMIT);
        Ok(self.list_spaces(caller, page).await?.items)
    }

    pub async fn space_by_seq(&self, caller: &Principal, seq: i64) -> AppResult<Space> {
        self.store
            .space_by_seq(caller.tenant_id(), seq)
            .await?
            .ok_or(AppError::NotFound(Entity::Space))
    }

    /// The space with this name: the system space is created on first use, any other
    /// must exist.
    pub async fn open_space(&self, caller: &Caller, name: &str) -> AppResult<Space> {
        if let Some(space) = self.store.space_by_name(caller.tenant_id(), name).await? {
            return Ok(space);
        }
        if name != SYSTEM_SPACE {
            return Err(AppError::NotFound(Entity::Space));
        }
        // Concurrent first uses get the same space: the loser reads the winner's.
        match self.insert_space(caller, name).await {
            Err(AppError::Conflict(crate::Field::SpaceName)) => self
                .store
                .space_by_name(caller.tenant_id(), name)
                .await?
                .ok_or(AppError::NotFound(Entity::Space)),
            other => other,
        }
    }

    /// A space the caller may read (at least `ro` on `fabric/<name>`).
    pub async fn readable_space(&self, caller: &Caller, name: &str) -> AppResult<Space> {
        let space = self.open_space(caller, name).await?;
        caller.require_access(&space_path(name)?, AccessLevel::Ro)?;
        Ok(space)
    }

    /// The spaces the caller may read.
    pub async fn visible_spaces(&self, caller: &Caller) -> AppResult<Vec<Space>> {
        Ok(self
            .all_spaces(caller)
            .await?
            .into_iter()
            .filter(|s| space_path(&s.name).is_ok_and(|p| caller.access_at(&p) >= AccessLevel::Ro))
            .collect())
    }

    /// Creates a space, asked from within `from` (which must be the system space);
    /// administrators only.
    pub async fn create_space_from(
        &self,
        caller: &Caller,
        from: &str,
        name: &str,
    ) -> AppResult<Space> {
        self.readable_space(caller, from).await?;
        if from != SYSTEM_SPACE {
            return Err(AppError::forbidden(
                "operation only allowed in system database",
            ));
        }
        space_path(name)?;
        self.create_space(caller, name).await
    }

    /// Creates a space; administrators only. A taken name is a `space name` conflict.
    pub async fn create_space(&self, caller: &Caller, name: &str) -> AppResult<Space> {
        caller.require_admin()?;
        self.insert_space(caller, name).await
    }

    async fn insert_space(&self, caller: &Caller, name: &str) -> AppResult<Space> {
        let space = Space {
            id: SpaceId::generate(),
            tenant_id: caller.tenant_id(),
            seq: 0,
            name: validate::name("space", name)?,
            created_at: self.now(),
        };
        let mut changes = Changes::new();
        note_change(&mut changes, "name", &None, &Some(space.name.as_str()));
        let event = self.event(
            caller,
            Action::SpaceCreated,
            Target::Space(space.id),
            None,
            changes,
        );
        let done = self
            .store
            .commit(Mutation::CreateSpace(&space), &[event])
            .await?;
        Ok(Space {
            seq: done.seq.unwrap_or_default(),
            ..space
        })
    }

    /// What a key made through Macrometa's door gets: the creator's level on each space
    /// that exists now; spaces made later start at none.
    pub async fn space_snapshot_grants(&self, caller: &Caller) -> AppResult<Grants> {
        self.open_space(caller, SYSTEM_SPACE).await?;
        let paths: Vec<ResourcePath> = self
            .all_spaces(caller)
            .await?
            .iter()
            .filter_map(|s| space_path(&s.name).ok())
            .collect();
        Ok(caller.default_grants_for(&caller.user).snapshot_at(&paths))
    }

    /// Records a resource name in a space, so listings show it. Only names are kept.
    pub async fn declare_resource(
        &self,
        caller: &Caller,
        space: &Space,
        kind: ResourceKind,
        name: &str,
    ) -> AppResult<()> {
        caller.require(&KEYS_WRITE)?;
        if space.tenant_id != caller.tenant_id() {
            return Err(AppError::NotFound(Entity::Space));
        }
        let mut changes = Changes::new();
        note_change(
            &mut changes,
            "resource",
            &None,
            &Some(format!("{}/{name}", kind.as_str())),
        );
        let event = self.event(
            caller,
            Action::ResourceDeclared,
            Target::Space(space.id),
            None,
            changes,
        );
        let change = Mutation::DeclareResource {
            space: space.id,
            kind,
            name,
            at: self.now(),
        };
        match self.store.commit(change, &[event]).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(AppError::NotFound(Entity::Space)),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn list_resources(
        &self,
        space: &Space,
        kind: ResourceKind,
    ) -> AppResult<Vec<String>> {
        Ok(self.store.list_resources(space.id, kind).await?)
    }

    /// The names of a space's resources of one kind that the caller may read.
    pub async fn visible_resources(
        &self,
        caller: &Caller,
        space: &Space,
        kind: ResourceKind,
    ) -> AppResult<Vec<String>> {
        let mut visible = Vec::new();
        for name in self.list_resources(space, kind).await? {
            let path = resource_path(&["fabric", &space.name, kind.as_str(), &name])?;
            if caller.access_at(&path) >= AccessLevel::Ro {
                visible.push(name);
            }
        }
        Ok(visible)
    }
}
