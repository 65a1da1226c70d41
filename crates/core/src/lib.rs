//! Keyward's core: the domain with no I/O. Everything that decides lives here.

pub mod analytics;
pub mod audit;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod keyfmt;
pub mod limits;
pub mod model;
pub mod password;
pub mod perm;
pub mod principal;
pub mod query;
pub mod random;
pub mod secret;
pub mod validate;
pub mod verify;

pub use error::{CoreError, CoreResult, Entity};
pub use ids::{KeyId, SpaceId, TenantId, UserId};
pub use keyfmt::KeyShape;
pub use model::{
    ApiKey, Door, KeySecret, KeyState, Metadata, Page, Paged, ResourceKind, Role, Space, Tenant,
    User,
};
pub use perm::{AccessLevel, Grants, Permission, ResourcePath};
pub use principal::Principal;
pub use query::{Query, Requirement};
pub use secret::{InnerHash, KeyHasher, Secret, SecretHash, ServerSecret};
pub use verify::{decide, ClientAddress, Found, VerifyCode};
