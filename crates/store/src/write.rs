//! The one write path: every change of state the application makes is one [`Mutation`],
//! committed with its audit events by [`crate::WriteStore::commit`].
//!
//! Changes of existing records are conditional: they name the `updated_at` they read,
//! and a record changed since then answers [`crate::StoreError::Stale`] instead of
//! being overwritten. The application reads again and redoes its change, so two
//! concurrent edits of one key (two attributes added at once) both land.

use keyward_core::{ApiKey, KeySecret, ResourceKind, Space, SpaceId, Tenant, User};
use time::OffsetDateTime;

/// A change of state, as the store applies it.
#[derive(Clone, Copy, Debug)]
pub enum Mutation<'a> {
    /// No record changes: the events alone (a login attempt).
    Nothing,
    /// A tenant with its first space and first administrator.
    CreateTenant {
        tenant: &'a Tenant,
        space: &'a Space,
        admin: &'a User,
    },
    /// A space; `Committed::seq` is its number.
    CreateSpace(&'a Space),
    /// Records that a resource exists in a space. If it was already recorded nothing
    /// changes, the events are not written, and `Committed::applied` is false.
    DeclareResource {
        space: SpaceId,
        kind: ResourceKind,
        name: &'a str,
        at: OffsetDateTime,
    },
    /// A user; `Committed::seq` is their number.
    CreateUser(&'a User),
    /// Saves a user's mutable fields if their `updated_at` is still `read_at`.
    UpdateUser {
        user: &'a User,
        read_at: OffsetDateTime,
    },
    /// A key with its first secret, durably; `Committed::seq` is its number.
    CreateKey {
        key: &'a ApiKey,
        secret: &'a KeySecret,
    },
    /// Many keys with their first secrets, all or none (bulk imports and load tests,
    /// where a commit per key would be the bottleneck).
    ImportKeys(&'a [(ApiKey, KeySecret)]),
    /// Saves a key's mutable fields (name, grants, metadata, state, expiry, start) if its
    /// `updated_at` is still `read_at`.
    UpdateKey {
        key: &'a ApiKey,
        read_at: OffsetDateTime,
        /// Also sets the key's credits whole (to `key.credits`), spent count and all.
        with_credits: bool,
    },
    /// Changes a key's credits against the balance as stored (whatever the nodes have
    /// flushed since it was read) and saves its new `updated_at`, if its `updated_at`
    /// is still `read_at`; `Committed::credits_left` is the new balance.
    ChangeCredits {
        key: &'a ApiKey,
        read_at: OffsetDateTime,
        change: CreditChange,
    },
    /// Saves `key` (its new visible start), adds `secret`, and makes every older secret
    /// stop working at `old_until` (dropping those already past), if the key's
    /// `updated_at` is still `read_at`.
    RotateKey {
        key: &'a ApiKey,
        secret: &'a KeySecret,
        old_until: OffsetDateTime,
        read_at: OffsetDateTime,
    },
}

/// A change of a key's credits by the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditChange {
    pub op: CreditOp,
    pub value: u64,
    /// When the key's refill is due (not yet applied), its amount: the change applies
    /// to the refilled balance.
    pub refill_amount: Option<u64>,
    /// The interval the balance now counts as refilled for, when that changes.
    pub refilled_at: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditOp {
    Set,
    Increment,
    Decrement,
}

impl CreditOp {
    pub const ALL: [CreditOp; 3] = [CreditOp::Set, CreditOp::Increment, CreditOp::Decrement];

    /// The name the API, the audit log and the Redis script use.
    pub fn as_str(self) -> &'static str {
        match self {
            CreditOp::Set => "set",
            CreditOp::Increment => "increment",
            CreditOp::Decrement => "decrement",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

/// What a commit made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The number the store gave a created key, user or space.
    pub seq: Option<i64>,
    /// False only when there was nothing to change (a resource already declared).
    pub applied: bool,
    /// A key's credits left after [`Mutation::ChangeCredits`].
    pub credits_left: Option<i64>,
}

impl Committed {
    pub(crate) fn done() -> Committed {
        Committed {
            seq: None,
            applied: true,
            credits_left: None,
        }
    }

    pub(crate) fn created(seq: i64) -> Committed {
        Committed {
            seq: Some(seq),
            applied: true,
            credits_left: None,
        }
    }

    pub(crate) fn credits_left(left: i64) -> Committed {
        Committed {
            seq: None,
            applied: true,
            credits_left: Some(left),
        }
    }
}
