//! Logins, sessions and credentials: who a request is from.

use crate::verifier::Verdict;
use crate::{AppError, AppResult, Keyward, Origin};
use keyward_core::audit::{Action, Actor, AuditEvent, Target};
use keyward_core::{password, validate, ClientAddress, Principal, User, VerifyCode};
use keyward_store::Mutation;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use time::OffsetDateTime;

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

/// How many failed logins are allowed within a window, per account and per client
/// address, before more attempts are refused without checking the password. They are
/// counted from the audit log, so every node counts the same failures.
#[derive(Clone, Copy, Debug)]
pub struct LoginThrottle {
    pub per_account: u32,
    pub per_address: u32,
    pub window: std::time::Duration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            per_account: 10,
            per_address: 100,
            window: std::time::Duration::from_secs(15 * 60),
        }
    }
}

/// A session just opened.
pub struct Session {
    pub user: User,
    pub token: String,
    pub expires_at: OffsetDateTime,
}

const WRONG_LOGIN: &str = "wrong email or password";

impl Keyward {
    /// Checks an email and password and opens a session. An email is unique per tenant:
    /// when it has accounts in several, the login must name the tenant (`tenant`).
    pub async fn login(
        &self,
        origin: Origin,
        tenant: Option<&str>,
        email: &str,
        password: &str,
    ) -> AppResult<Session> {
        let user = match (validate::email(email), tenant) {
            (Err(_), _) => None,
            // A name no tenant can have (control characters, which the databases
            // may refuse to compare) names no tenant.
            (Ok(_), Some(tenant)) if validate::name("tenant", tenant).is_err() => None,
            (Ok(email), Some(tenant)) => match self.store.tenant_by_name(tenant).await? {
                Some(t) => self.store.user_by_email_in(t.id, &email).await?,
                None => None,
            },
            (Ok(email), None) => {
                let mut users = self.store.users_by_email(&email, 2).await?;
                if users.len() > 1 {
                    return Err(AppError::invalid(
                        "tenant",
                        "this email has accounts in several tenants: name the tenant",
                    ));
                }
                users.pop()
            }
        };
        self.check_password(origin, email, user, password).await
    }

    /// Checks a username within a named tenant (Macrometa's `{tenant, username}` form).
    pub async fn login_in_tenant(
        &self,
        origin: Origin,
        tenant: &str,
        username: &str,
        password: &str,
    ) -> AppResult<Session> {
        let impossible = validate::name("tenant", tenant).is_err()
            || validate::name("username", username).is_err();
        let user = match impossible {
            true => None,
            false => match self.store.tenant_by_name(tenant).await? {
                Some(t) => self.store.user_by_username(t.id, username).await?,
                None => None,
            },
        };
        self.check_password(origin, username, user, password).await
    }

    async fn check_password(
        &self,
        origin: Origin,
        tried: &str,
        user: Option<User>,
        password: &str,
    ) -> AppResult<Session> {
        if let Some(retry_after_seconds) = self.throttled(origin, user.as_ref()).await? {
            self.record_login(origin, tried, user.as_ref(), Action::LoginThrottled)
                .await?;
            return Err(AppError::Throttled {
                retry_after_seconds,
            });
        }
        let password = password.to_string();
        let candidate = user.clone();
        // Argon2 takes tens of milliseconds of CPU and 19 MiB: on the password pool, off
        // the async workers. An unknown user costs the same time as a known one.
        let matched = self
            .passwords
            .run(move || match candidate {
                Some(user) => password::verify_password(&password, &user.password_hash),
                None => {
                    password::burn_verification_time(&password);
                    false
                }
            })
            .await?;
        let user = match user {
            Some(user) if matched && user.active => user,
            refused => {
                self.record_login(origin, tried, refused.as_ref(), Action::LoginFailed)
                    .await?;
                return Err(AppError::Unauthenticated(WRONG_LOGIN.into()));
            }
        };
        self.record_login(origin, tried, Some(&user), Action::LoginSucceeded)
            .await?;
        let (token, expires_at) =
            self.sessions
                .issue(user.id, user.tenant_id, user.session_epoch, self.now());
        Ok(Session {
            user,
            token,
            expires_at,
        })
    }

    /// Whether this attempt must wait, and for how many seconds: when the account, or
    /// the address it comes from, has had as many failed logins within the window as
    /// the throttle allows, until the oldest of those leaves the window.
    async fn throttled(&self, origin: Origin, user: Option<&User>) -> AppResult<Option<u32>> {
        let policy = self.logins;
        let now = self.now();
        let since = now - policy.window;
        let address = origin.remote_ip.map(|ip| ip.to_string());
        let mut checks = Vec::new();
        if let Some(user) = user {
            checks.push((keyward_store::Recent::Target(user.id.0), policy.per_account));
        }
        if let Some(address) = &address {
            checks.push((keyward_store::Recent::Address(address), policy.per_address));
        }
        for (about, limit) in checks {
            let failures = self
                .store
                .recent_events(Action::LoginFailed, about, since, limit)
                .await?;
            if failures.len() as u32 >= limit.max(1) {
                let oldest = failures.last().copied().unwrap_or(now);
                let wait = (oldest + policy.window - now).whole_seconds().max(1);
                return Ok(Some(u32::try_from(wait).unwrap_or(u32::MAX)));
            }
        }
        Ok(None)
    }

    /// Records a login attempt: the email or username tried, never the password.
    async fn record_login(
        &self,
        origin: Origin,
        tried: &str,
        user: Option<&User>,
        action: Action,
    ) -> AppResult<()> {
        let mut details = serde_json::Map::new();
        details.insert(
            "login".into(),
            Value::String(tried.chars().take(200).collect()),
        );
        let event = AuditEvent {
            id: uuid::Uuid::now_v7(),
            time: self.now(),
            tenant_id: user.map(|u| u.tenant_id),
            actor: user.map_or(Actor::Anonymous, |u| Actor::User(u.id)),
            door: Some(origin.door),
            remote_ip: origin.remote_ip,
            action,
            target: user.map_or(Target::Nobody, |u| Target::User(u.id)),
            changes: Default::default(),
            details,
            actor_user: user.map(|u| u.id),
            target_owner: user.map(|u| u.id),
        };
        self.store.commit(Mutation::Nothing, &[event]).await?;
        Ok(())
    }

    /// Who a credential authenticates. A key's limits are charged (`limits.rs`):
    /// `client` is where the request came from, for a key's IP allow-list.
    pub async fn authenticate(
        &self,
        credential: Credential<'_>,
        client: ClientAddress<'_>,
    ) -> AppResult<Principal> {
        match credential {
            Credential::Session(token) => self.principal_from_session(&token).await,
            Credential::Key(secret) => {
                let verdict = self.verifier.verify(&secret, None, None, client).await?;
                self.admit_key(&verdict).await
            }
            Credential::Pair { public_id, secret } => {
                self.principal_from_pair(&public_id, &secret, client).await
            }
        }
    }

    async fn principal_from_session(&self, token: &str) -> AppResult<Principal> {
        let claims = self.sessions.check(token).ok_or_else(|| {
            AppError::Unauthenticated("the session token is invalid or expired".into())
        })?;
        let user = self
            .store
            .user(claims.tid, claims.sub)
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| {
                AppError::Unauthenticated("the session's user is gone or disabled".into())
            })?;
        // Logout, a new password, a role change and deactivation end every session
        // issued before them; the user is read from the store on every request, so this
        // holds on every node at once.
        if claims.ep != user.session_epoch {
            return Err(AppError::Unauthenticated(
                "the session has ended; log in again".into(),
            ));
        }
        Ok(Principal {
            user: Arc::new(user),
            key: None,
        })
    }

    /// Verifies a key for a credential, through the cache (the HTTP layer's memory of a
    /// connection's last key uses the same verdicts); [`Keyward::admit_key`] then
    /// charges its limits.
    pub async fn verify_credential(
        &self,
        secret: &str,
        client: ClientAddress<'_>,
    ) -> AppResult<Verdict> {
        Ok(self.verifier.verify(secret, None, None, client).await?)
    }

    /// Authenticates a key + secret pair: the secret must verify and belong to the key
    /// the public half names. A secret that matches no key, or another key, gets one
    /// message, so the answer does not tell which half was wrong.
    async fn principal_from_pair(
        &self,
        public_id: &str,
        secret: &str,
        client: ClientAddress<'_>,
    ) -> AppResult<Principal> {
        const MISMATCH: &str = "the API key and secret do not match";
        let verdict = self.verifier.verify(secret, None, None, client).await?;
        let named = verdict.matched().and_then(|m| m.key.public_id.as_deref());
        if matches!(verdict.code, VerifyCode::Malformed | VerifyCode::NotFound) {
            self.verifier.count(&verdict, verdict.code, None);
            return Err(AppError::Unauthenticated(MISMATCH.into()));
        }
        // Both halves must match before the key is charged, or its refusal told: a
        // secret with another key's public half counts as matching no key.
        if named != Some(public_id) {
            self.verifier
                .count(&verdict.unmatched(), VerifyCode::NotFound, None);
            return Err(AppError::Unauthenticated(MISMATCH.into()));
        }
        self.admit_key(&verdict).await
    }
}

/// The principal a verified key authenticates, or why it cannot.
pub fn principal_from_verdict(verdict: &Verdict) -> AppResult<Principal> {
    if verdict.code == VerifyCode::Forbidden {
        return Err(AppError::Forbidden(refusal_message(verdict.code).into()));
    }
    verdict
        .principal()
        .ok_or_else(|| AppError::Unauthenticated(refusal_message(verdict.code).into()))
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
        VerifyCode::Forbidden => "the API key may not be used from this address",
        VerifyCode::RateLimited => "the API key's rate limit is exceeded",
        VerifyCode::UsageExceeded => "the API key's usage credits are spent",
    }
}

impl Keyward {
    /// Ends every session of the caller's user (the one in use included). Keys are
    /// not sessions: a request made with a key has none to end.
    pub async fn logout(&self, caller: &crate::Caller) -> AppResult<()> {
        if caller.key.is_some() {
            return Err(AppError::invalid(
                "credential",
                "logout ends login sessions; this request was made with an API key",
            ));
        }
        self.end_sessions(caller).await
    }

    /// Checks a credential presented to the caller (Macrometa's `key/validate`): whose
    /// it is, if it is valid in the caller's tenant. Anyone may check their own; checking
    /// another's takes `keyward.keys.verify`. A credential of another tenant is as
    /// invalid as an unknown one.
    pub async fn validate_credential(
        &self,
        caller: &crate::Caller,
        presented: Credential<'_>,
    ) -> AppResult<Principal> {
        let caller_address = caller.remote_ip;
        let principal = self.authenticate(presented, &|| caller_address).await?;
        if principal.tenant_id() != caller.tenant_id() {
            return Err(AppError::Unauthenticated("the API key is not known".into()));
        }
        if !caller.is_user(principal.user.id) {
            caller.require(&keyward_core::principal::KEYS_VERIFY)?;
        }
        Ok(principal)
    }
}
