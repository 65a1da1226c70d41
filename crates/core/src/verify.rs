//! The verification decision: given what a lookup found for a presented secret, is the
//! key good right now, and does it hold what is asked of it?

use crate::model::ApiKey;
use crate::perm::Grants;
use crate::query::Query;
use time::OffsetDateTime;

/// The outcome of verifying a key, as reported by `/v0/keys/verify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerifyCode {
    Valid,
    NotFound,
    Malformed,
    Expired,
    Revoked,
    Disabled,
    InsufficientPermissions,
    /// The key may not be used from the client's address.
    Forbidden,
    /// One of the key's (or its owner's) rate limits is spent for now.
    RateLimited,
    /// The key's credits are spent.
    UsageExceeded,
}

/// Where the request being verified comes from, worked out only when a key restricts
/// addresses (it may read headers).
pub type ClientAddress<'a> = &'a (dyn Fn() -> Option<std::net::IpAddr> + Sync);

impl VerifyCode {
    pub const COUNT: usize = 10;
    /// Every code, in the order of [`VerifyCode::index`].
    pub const ALL: [VerifyCode; Self::COUNT] = [
        VerifyCode::Valid,
        VerifyCode::NotFound,
        VerifyCode::Malformed,
        VerifyCode::Expired,
        VerifyCode::Revoked,
        VerifyCode::Disabled,
        VerifyCode::InsufficientPermissions,
        VerifyCode::Forbidden,
        VerifyCode::RateLimited,
        VerifyCode::UsageExceeded,
    ];

    /// A dense index, for counters kept in arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The code as a field or label name: `rate_limited`.
    pub fn field_name(self) -> &'static str {
        match self {
            VerifyCode::Valid => "valid",
            VerifyCode::NotFound => "not_found",
            VerifyCode::Malformed => "malformed",
            VerifyCode::Expired => "expired",
            VerifyCode::Revoked => "revoked",
            VerifyCode::Disabled => "disabled",
            VerifyCode::InsufficientPermissions => "insufficient_permissions",
            VerifyCode::Forbidden => "forbidden",
            VerifyCode::RateLimited => "rate_limited",
            VerifyCode::UsageExceeded => "usage_exceeded",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VerifyCode::Valid => "VALID",
            VerifyCode::NotFound => "NOT_FOUND",
            VerifyCode::Malformed => "MALFORMED",
            VerifyCode::Expired => "EXPIRED",
            VerifyCode::Revoked => "REVOKED",
            VerifyCode::Disabled => "DISABLED",
            VerifyCode::InsufficientPermissions => "INSUFFICIENT_PERMISSIONS",
            VerifyCode::Forbidden => "FORBIDDEN",
            VerifyCode::RateLimited => "RATE_LIMITED",
            VerifyCode::UsageExceeded => "USAGE_EXCEEDED",
        }
    }

    pub fn is_valid(self) -> bool {
        self == VerifyCode::Valid
    }
}

#[cfg(test)]
mod code_tests {
    use super::VerifyCode;

    #[test]
    fn every_code_has_its_index_and_round_trips() {
        for (i, code) in VerifyCode::ALL.into_iter().enumerate() {
            assert_eq!(code.index(), i);
            assert_eq!(VerifyCode::parse(code.as_str()), Some(code));
            assert_eq!(code.field_name().to_uppercase(), code.as_str());
        }
    }
}

/// What the store (or the cache) knows about a presented secret.
#[derive(Clone, Debug)]
pub struct Found<'a> {
    pub key: &'a ApiKey,
    /// When the presented secret stops working: set for a secret replaced by rotation.
    pub secret_expires_at: Option<OffsetDateTime>,
    pub owner_active: bool,
    /// What the owner holds now; a key never acts beyond it, even if the owner lost
    /// grants after the key was made.
    pub owner_grants: &'a Grants,
}

/// Checks state in a fixed order (revoked, expired, disabled), then the client's
/// address against the key's allow-list, then the query, which must hold for the key's
/// grants and for its owner's. Rate limits and credits come after, in the application's
/// limiter, as they need counters.
pub fn decide(
    found: &Found<'_>,
    now: OffsetDateTime,
    required: Option<&Query>,
    client: ClientAddress<'_>,
) -> VerifyCode {
    use crate::model::KeyState;
    match found.key.state(now) {
        KeyState::Revoked => return VerifyCode::Revoked,
        KeyState::Expired => return VerifyCode::Expired,
        KeyState::Disabled => return VerifyCode::Disabled,
        KeyState::Active => {}
    }
    if found.secret_expires_at.is_some_and(|t| t <= now) {
        return VerifyCode::Expired;
    }
    if !found.owner_active {
        return VerifyCode::Disabled;
    }
    let allowlist = &found.key.limits.ip_allowlist;
    if !allowlist.is_empty() && !allowlist.allows(client()) {
        return VerifyCode::Forbidden;
    }
    let satisfied = required.is_none_or(|query| {
        query.is_satisfied(&|r| r.is_met_by(&found.key.grants) && r.is_met_by(found.owner_grants))
    });
    if satisfied {
        VerifyCode::Valid
    } else {
        VerifyCode::InsufficientPermissions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{KeyId, TenantId, UserId};
    use crate::keyfmt::KeyShape;
    use crate::model::Door;
    use time::Duration;

    fn key(grants: &[&str]) -> ApiKey {
        let now = OffsetDateTime::now_utc();
        ApiKey {
            id: KeyId::generate(),
            tenant_id: TenantId::generate(),
            owner_id: UserId::generate(),
            seq: 1,
            name: "k".into(),
            door: Door::Native,
            shape: KeyShape::Native,
            start: "kw_abcd".into(),
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

    fn run(
        key: &ApiKey,
        owner: &[&str],
        secret_expiry: Option<OffsetDateTime>,
        q: &str,
    ) -> VerifyCode {
        let owner = Grants::parse(owner).unwrap();
        let found = Found {
            key,
            secret_expires_at: secret_expiry,
            owner_active: true,
            owner_grants: &owner,
        };
        let query = (!q.is_empty()).then(|| Query::parse(q).unwrap());
        decide(&found, OffsetDateTime::now_utc(), query.as_ref(), &|| None)
    }

    #[test]
    fn states_in_order() {
        let now = OffsetDateTime::now_utc();
        let mut k = key(&["a"]);
        assert_eq!(run(&k, &["*"], None, ""), VerifyCode::Valid);
        k.enabled = false;
        assert_eq!(run(&k, &["*"], None, ""), VerifyCode::Disabled);
        k.expires_at = Some(now - Duration::seconds(1));
        assert_eq!(run(&k, &["*"], None, ""), VerifyCode::Expired);
        k.revoked_at = Some(now);
        assert_eq!(run(&k, &["*"], None, ""), VerifyCode::Revoked);
    }

    #[test]
    fn rotated_secret_expires_after_grace() {
        let now = OffsetDateTime::now_utc();
        let k = key(&["a"]);
        let later = Some(now + Duration::seconds(60));
        assert_eq!(run(&k, &["*"], later, ""), VerifyCode::Valid);
        let past = Some(now - Duration::seconds(1));
        assert_eq!(run(&k, &["*"], past, ""), VerifyCode::Expired);
    }

    #[test]
    fn query_must_hold_for_key_and_owner() {
        let k = key(&["a", "b"]);
        assert_eq!(run(&k, &["*"], None, "a AND b"), VerifyCode::Valid);
        assert_eq!(
            run(&k, &["*"], None, "a AND c"),
            VerifyCode::InsufficientPermissions
        );
        // The owner lost `b` after the key was made: the key loses it too.
        assert_eq!(
            run(&k, &["a"], None, "b"),
            VerifyCode::InsufficientPermissions
        );
    }
}
