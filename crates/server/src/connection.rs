//! What one client connection remembers between its requests: the key its last request
//! authenticated with, so that the next request presenting the very same
//! `Authorization` header skips parsing, hashing and looking the key up again.
//!
//! A service calling Keyward sends the same key on every request of a kept-alive
//! connection; this makes that case cost a constant-time comparison instead of a keyed
//! hash and a cache lookup. What is remembered is checked as strictly as a cached
//! verification: the key's state, expiry and the cache's TTL are decided again on every
//! request, and any invalidation on this node (a revoke, rotation or change made here
//! or heard from another node) voids every connection's memory at once, through
//! [`Verifier::generation`].
//!
//! The memory lives in a task-local value around each HTTP/1 connection's task
//! ([`scope`]), so that no request pays for it, and it holds the header's text, zeroized
//! when forgotten, for as long as the connection is open. Requests outside such a scope
//! (HTTP/2 streams run on tasks of their own; tests that call the router directly)
//! simply verify as usual.

use keyward_app::verifier::{Recall, Verdict, Verifier};
use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;

/// What the server knows of a connection when it accepts it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Connection {
    /// The address of the connection's peer, for the audit log.
    pub peer: Option<IpAddr>,
    /// How long a request's body may take to arrive once its head has.
    pub body_read_timeout: Option<std::time::Duration>,
}

/// What a connection keeps for its requests.
struct Memory {
    /// The last key verified on this connection, while it stands.
    remembered: RefCell<Option<Recall>>,
    this: Connection,
}

tokio::task_local! {
    // One task-local, not one per field: each is a future wrapped around the
    // connection, and scripts/bench --instructions counts from its poll.
    static MEMORY: Memory;
}

/// Runs one connection's future with a memory of its own.
pub fn scope<F: Future>(connection: F) -> impl Future<Output = F::Output> {
    scope_with(Connection::default(), connection)
}

/// Runs one connection's future with a memory of its own, knowing what the server knows
/// of the connection.
pub fn scope_with<F: Future>(this: Connection, connection: F) -> impl Future<Output = F::Output> {
    let memory = Memory {
        remembered: RefCell::new(None),
        this,
    };
    MEMORY.scope(memory, connection)
}

/// The address of the connection the current request came on, if known.
pub fn peer_ip() -> Option<IpAddr> {
    MEMORY.try_with(|memory| memory.this.peer).ok().flatten()
}

/// How long the current request's body may take, if the connection says.
pub fn body_read_timeout() -> Option<std::time::Duration> {
    MEMORY
        .try_with(|memory| memory.this.body_read_timeout)
        .ok()
        .flatten()
}

/// The verdict for `credential` (an `Authorization` header's bytes) from this
/// connection's memory, if it holds that credential and it still stands.
pub fn recall(
    verifier: &Verifier,
    credential: &[u8],
    client: keyward_core::ClientAddress<'_>,
) -> Option<Verdict> {
    MEMORY
        .try_with(|memory| {
            let remembered = memory.remembered.borrow();
            verifier.recall(remembered.as_ref()?, credential, client)
        })
        .ok()
        .flatten()
}

/// Remembers the verdict a full verification gave for `credential`, verified at
/// `generation`; anything not worth remembering (a refusal) clears the memory.
pub fn remember(verifier: &Verifier, credential: &str, verdict: &Verdict, generation: u64) {
    let _outside_a_connection = MEMORY.try_with(|memory| {
        *memory.remembered.borrow_mut() = verifier.remember(credential, verdict, generation);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::{KeyHasher, ServerSecret};

    /// A connection remembers within its own scope only: not outside any, and not in
    /// another connection's.
    #[tokio::test]
    async fn each_connection_remembers_for_itself() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = keyward_store::open(&url).await.unwrap();
        let (_, owner) = keyward_app::create_tenant(&store, "t", "a@t.test", "password-1")
            .await
            .unwrap();
        let hasher = KeyHasher::new(&ServerSecret::generate());
        let (key, stored, secret) = keyward_app::import::bench_key(&hasher, &owner, "k".into());
        keyward_store::testing::UnauditedWrites::create_key(&*store, &key, &stored)
            .await
            .unwrap();
        let verifier = std::sync::Arc::new(Verifier::new(hasher, store, 10));
        let header = format!("Bearer {}", secret.expose());

        let remember_here = |verifier: std::sync::Arc<Verifier>, header: String| async move {
            let generation = verifier.generation();
            let verdict = verifier
                .verify(&header[7..], None, None, &|| None)
                .await
                .unwrap();
            remember(&verifier, &header, &verdict, generation);
            recall(&verifier, header.as_bytes(), &|| None).is_some()
        };
        assert!(
            !remember_here(verifier.clone(), header.clone()).await,
            "no scope"
        );
        assert!(scope(remember_here(verifier.clone(), header.clone())).await);
        let elsewhere = scope(async { recall(&verifier, header.as_bytes(), &|| None).is_some() });
        assert!(!elsewhere.await, "another connection");
    }
}
