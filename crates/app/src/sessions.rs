//! Login sessions: short-lived HS256 JWTs signed with a key derived from the server
//! secret, so every node of a cluster can check a token any node issued.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyward_core::{ServerSecret, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The user's tenant.
    pub tid: TenantId,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    /// The user's session epoch when the token was issued; a later epoch ends it.
    /// Tokens issued before epochs existed read as epoch 0.
    #[serde(default)]
    pub ep: i64,
}

const ISSUER: &str = "keyward";

pub struct Sessions {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Sessions {
    pub fn new(secret: &ServerSecret, ttl: Duration) -> Self {
        let key = secret.derive("keyward/jwt/v1");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Sessions {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
            ttl,
        }
    }

    /// A token for the user and when it expires.
    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        epoch: i64,
        now: OffsetDateTime,
    ) -> (String, OffsetDateTime) {
        let expires = now + self.ttl;
        let claims = Claims {
            sub: user,
            tid: tenant,
            iat: now.unix_timestamp(),
            exp: expires.unix_timestamp(),
            iss: ISSUER.into(),
            ep: epoch,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, expires)
    }

    /// The claims of a token that is well formed, signed by us and not expired.
    pub fn check(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// Whether a bearer credential looks like a JWT rather than an API key.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|&b| b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_check_and_foreign_ones_do_not() {
        let sessions = Sessions::new(&ServerSecret::generate(), Duration::from_secs(60));
        let other = Sessions::new(&ServerSecret::generate(), Duration::from_secs(60));
        let (token, _) = sessions.issue(
            UserId::generate(),
            TenantId::generate(),
            0,
            OffsetDateTime::now_utc(),
        );
        assert!(looks_like_jwt(&token));
        assert!(sessions.check(&token).is_some());
        assert!(other.check(&token).is_none());
        assert!(sessions.check("eyJ.x.y").is_none());
    }
}
