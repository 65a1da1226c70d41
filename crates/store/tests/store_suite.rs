//! The `Store` contract, written once and run against both backends.
//!
//! Every test below is an `async fn(DynStore)`; `on_every_backend!` turns each into
//! `sqlite::<name>` (a fresh database file in a temporary directory) and
//! `postgres::<name>` (a fresh database, dropped afterwards). PostgreSQL is never
//! skipped: when it cannot be reached the test fails and says why.
//!
//! The PostgreSQL server is named by `KEYWARD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); its user must be allowed to create
//! and drop databases.

use keyward_core::audit::{Action, Actor, AuditEvent, AuditFilter, FieldChange, Target};
use keyward_core::limits::{Credits, IpAllowlist, KeyLimits, RateLimit, Refill, RefillInterval};
use keyward_core::{
    ApiKey, Door, Grants, KeyHasher, KeyId, KeySecret, KeyShape, KeyState, Metadata, Page,
    ResourceKind, Role, Secret, ServerSecret, Space, SpaceId, Tenant, TenantId, User, UserId,
};
use keyward_store::testing::UnauditedWrites;
use keyward_store::{
    Change, ChangeEvent, ChangeFeed, Constraint, CreditChange, CreditOp, CreditUse, DynStore,
    KeyFilter, KeyUsage, Mutation, PostgresStore, SqliteStore, StoreError, StoreResult,
};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::any::Any;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use time::{Duration, OffsetDateTime};

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `test` in its own task, so that a failing assertion still lets the caller
/// clean up, then closes the store. Returns the test's panic, if it panicked.
async fn run_and_close<F, Fut>(store: DynStore, test: F) -> Option<Box<dyn Any + Send>>
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(test(store.clone())).await;
    store.close().await;
    match outcome {
        Ok(()) => None,
        Err(err) => Some(err.try_into_panic().unwrap_or_else(|err| {
            eprintln!("test task did not finish: {err}");
            Box::new("test task did not finish")
        })),
    }
}

async fn run_on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keyward.db");
    let store = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("cannot open SQLite store at {}: {e}", path.display()));
    if let Some(panic) = run_and_close(Arc::new(store), test).await {
        std::panic::resume_unwind(panic);
    }
}

async fn run_on_postgres<F, Fut>(test: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let admin_url = std::env::var("KEYWARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
    let admin = PgConnectOptions::from_str(&admin_url)
        .unwrap_or_else(|e| panic!("KEYWARD_TEST_POSTGRES_URL is not a PostgreSQL URL: {e}"));
    let database = format!("keyward_test_{}", uuid::Uuid::new_v4().simple());

    let mut conn = admin.connect().await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required by this suite but is not reachable at {}:{} as '{}': {e}\n\
             Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) \
             main start`) or point KEYWARD_TEST_POSTGRES_URL at a server whose user may \
             create databases.",
            admin.get_host(),
            admin.get_port(),
            admin.get_username(),
        )
    });
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {database}: {e}"));
    conn.close().await.ok();

    let store = match PostgresStore::connect(&with_database(&admin_url, &database)).await {
        Ok(store) => store,
        Err(e) => {
            drop_database(&admin, &database).await;
            panic!("cannot open PostgreSQL store in {database}: {e}");
        }
    };
    let outcome = run_and_close(Arc::new(store), test).await;
    drop_database(&admin, &database).await;
    if let Some(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Best effort: a leftover database is litter, not a failure.
async fn drop_database(admin: &PgConnectOptions, database: &str) {
    let result = async {
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        conn.close().await
    }
    .await;
    if let Err(e) = result {
        eprintln!("warning: could not drop test database {database}: {e}");
    }
}

/// The admin URL with its database (path) replaced, query string kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!(
        "{}/{database}{query}",
        &base[..authority_start.max(authority_end)]
    )
}

/// Declares each listed `async fn(DynStore)` as a test on each backend:
/// `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_on_sqlite(super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::run_on_postgres(super::$name).await;
                }
            )*
        }
    };
}

on_every_backend!(
    create_keys_in_bulk_is_all_or_nothing,
    ping_answers,
    tenant_creation_and_lookups,
    tenant_creation_is_all_or_nothing,
    tenant_names_are_unique,
    create_user_assigns_increasing_seq,
    emails_are_unique_per_tenant,
    usernames_are_unique_per_tenant,
    user_lookups,
    list_users_pages,
    update_user_round_trips,
    update_user_refuses_unknown_and_conflicts,
    create_key_and_lookups,
    key_names_are_unique_per_owner_among_live_keys,
    octopus_door_keys_may_share_a_name,
    spaces_and_keys_by_seq,
    list_keys_newest_first_with_filters_and_totals,
    update_key_round_trips_every_mutable_field,
    update_key_refuses_unknown_keys_and_taken_names,
    tenants_are_isolated,
    rotation_keeps_the_old_secret_for_the_grace_period,
    rotation_with_past_grace_drops_the_old_secret,
    rotating_an_unknown_key_is_not_found,
    lookup_secret_returns_key_owner_and_expiry,
    record_usage_adds_counts_and_keeps_newest_time,
    record_usage_of_many_keys_at_once,
    concurrent_writes_lose_nothing,
    timestamps_round_trip_at_microsecond_precision,
    spaces_are_created_and_found_by_name,
    resources_are_registered_once_per_space_and_kind,
    macrometa_keyids_are_unique_per_tenant_among_live_keys,
    key_and_owner_changes_are_announced_on_commit,
    a_change_and_its_events_commit_together_or_not_at_all,
    a_change_of_a_record_changed_since_it_was_read_is_stale,
    declaring_a_known_resource_changes_and_records_nothing,
    audit_events_filter_page_and_stay_in_their_tenant,
    old_audit_events_are_pruned,
    limits_and_credits_round_trip,
    credit_flushes_and_changes_interleave_without_losing_any,
    verification_counts_add_up_across_flushes_and_granularities,
);

/// The one user with an email, whatever the tenant, as a login without a tenant finds
/// it (the suite's users have emails of their own).
trait OneByEmail {
    fn user_by_email(
        &self,
        email: &str,
    ) -> impl std::future::Future<Output = StoreResult<Option<User>>>;
}

impl OneByEmail for DynStore {
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let mut users = self.users_by_email(email, 2).await?;
        assert!(users.len() <= 1, "{email} has accounts in several tenants");
        Ok(users.pop())
    }
}

// ---------------------------------------------------------------------------------------
// Domain values
// ---------------------------------------------------------------------------------------

static HASHER: LazyLock<KeyHasher> = LazyLock::new(|| KeyHasher::new(&ServerSecret::generate()));

/// Now, cut to the microsecond the store keeps.
fn now() -> OffsetDateTime {
    micro(OffsetDateTime::now_utc())
}

fn micro(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000)
        .expect("a valid nanosecond")
}

fn grants(entries: &[&str]) -> Grants {
    Grants::parse(entries).expect("valid grants")
}

fn metadata(value: serde_json::Value) -> Metadata {
    value.as_object().expect("a JSON object").clone()
}

struct NewTenant {
    tenant: Tenant,
    space: Space,
    admin: User,
}

fn new_tenant(name: &str, admin_email: &str) -> NewTenant {
    let at = now();
    let tenant = Tenant {
        id: TenantId::generate(),
        name: name.to_string(),
        created_at: at,
    };
    let space = Space {
        id: SpaceId::generate(),
        tenant_id: tenant.id,
        seq: 0,
        name: "Default".to_string(),
        created_at: at,
    };
    let mut admin = new_user(tenant.id, admin_email, "admin");
    admin.role = Role::Admin;
    admin.grants = Grants::default();
    NewTenant {
        tenant,
        space,
        admin,
    }
}

/// Creates a tenant and returns it with its administrator as stored (seq assigned).
async fn tenant(store: &DynStore, name: &str) -> (Tenant, User) {
    let t = new_tenant(name, &format!("admin@{name}.example"));
    store
        .create_tenant(&t.tenant, &t.space, &t.admin)
        .await
        .expect("create tenant");
    let admin = store
        .user(t.tenant.id, t.admin.id)
        .await
        .expect("read admin")
        .expect("admin exists");
    (t.tenant, admin)
}

fn new_user(tenant: TenantId, email: &str, username: &str) -> User {
    let at = now();
    User {
        id: UserId::generate(),
        tenant_id: tenant,
        seq: 0,
        email: email.to_string(),
        username: username.to_string(),
        display_name: format!("{username} (display)"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
            .to_string(),
        role: Role::Member,
        active: true,
        grants: grants(&["data.read", "fabric/_system:ro"]),
        created_at: at,
        updated_at: at,
        session_epoch: 0,
        ratelimits: Vec::new(),
    }
}

async fn user(store: &DynStore, tenant: TenantId, username: &str) -> User {
    store
        .create_user(&new_user(
            tenant,
            &format!("{username}@{tenant}.example"),
            username,
        ))
        .await
        .expect("create user")
}

struct NewKey {
    key: ApiKey,
    secret: Secret,
    stored: KeySecret,
}

fn new_key(owner: &User, name: &str, door: Door, shape: KeyShape) -> NewKey {
    let at = now();
    let secret = shape.generate();
    let key = ApiKey {
        id: KeyId::generate(),
        tenant_id: owner.tenant_id,
        owner_id: owner.id,
        seq: 0,
        name: name.to_string(),
        door,
        shape,
        start: shape.visible_start(secret.expose()),
        public_id: (shape == KeyShape::Pair).then(keyward_core::keyfmt::generate_public_id),
        grants: grants(&["data.read"]),
        metadata: Metadata::new(),
        enabled: true,
        created_at: at,
        updated_at: at,
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
        hash: HASHER.hash(secret.expose()),
        key_id: key.id,
        expires_at: None,
    };
    NewKey {
        key,
        secret,
        stored,
    }
}

/// Creates a native key and returns it as stored (seq assigned) with its secret.
async fn key(store: &DynStore, owner: &User, name: &str) -> (ApiKey, Secret) {
    key_through(store, owner, name, Door::Native).await
}

async fn key_through(store: &DynStore, owner: &User, name: &str, door: Door) -> (ApiKey, Secret) {
    let new = new_key(owner, name, door, KeyShape::Native);
    let key = store
        .create_key(&new.key, &new.stored)
        .await
        .expect("create key");
    (key, new.secret)
}

async fn read_key(store: &DynStore, key: &ApiKey) -> ApiKey {
    store
        .key(key.tenant_id, key.id)
        .await
        .expect("read key")
        .expect("key exists")
}

async fn revoke(store: &DynStore, key: &ApiKey) -> ApiKey {
    let revoked = ApiKey {
        revoked_at: Some(now()),
        updated_at: now(),
        ..key.clone()
    };
    store.update_key(&revoked).await.expect("revoke key");
    revoked
}

fn names(keys: &[ApiKey]) -> Vec<&str> {
    keys.iter().map(|k| k.name.as_str()).collect()
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: StoreResult<T>, rule: Constraint) {
    match result {
        Err(StoreError::Conflict(got)) if got == rule => {}
        other => panic!("expected Conflict({rule:?}), got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: StoreResult<T>) {
    match result {
        Err(StoreError::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Tenants and spaces
// ---------------------------------------------------------------------------------------

async fn ping_answers(store: DynStore) {
    store.ping().await.expect("ping");
}

async fn tenant_creation_and_lookups(store: DynStore) {
    assert_eq!(store.tenant_count().await.unwrap(), 0);
    let t = new_tenant("acme", "root@acme.example");
    store
        .create_tenant(&t.tenant, &t.space, &t.admin)
        .await
        .unwrap();

    assert_eq!(store.tenant_count().await.unwrap(), 1);
    assert_eq!(
        store.tenant(t.tenant.id).await.unwrap(),
        Some(t.tenant.clone())
    );
    assert_eq!(
        store.tenant_by_name("acme").await.unwrap(),
        Some(t.tenant.clone())
    );
    assert_eq!(store.tenant(TenantId::generate()).await.unwrap(), None);
    assert_eq!(store.tenant_by_name("ACME").await.unwrap(), None);
    assert_eq!(store.tenant_by_name("nobody").await.unwrap(), None);

    // The first space and administrator came with it.
    let spaces = store
        .list_spaces(t.tenant.id, Page::new(0, 10))
        .await
        .unwrap();
    assert_eq!(spaces.total, 1);
    assert_eq!(spaces.items.len(), 1);
    let space = &spaces.items[0];
    assert!(space.seq > 0, "space seq is assigned: {}", space.seq);
    assert_eq!(
        space,
        &Space {
            seq: space.seq,
            ..t.space.clone()
        }
    );

    let admin = store
        .user_by_email("root@acme.example")
        .await
        .unwrap()
        .expect("admin exists");
    assert!(admin.seq > 0);
    assert_eq!(
        admin,
        User {
            seq: admin.seq,
            ..t.admin.clone()
        }
    );
    assert!(admin.is_admin());

    let (second, _) = tenant(&store, "globex").await;
    assert_eq!(store.tenant_count().await.unwrap(), 2);
    assert_eq!(store.tenant_by_name("globex").await.unwrap(), Some(second));
}

async fn tenant_creation_is_all_or_nothing(store: DynStore) {
    let first = new_tenant("acme", "shared@example.com");
    store
        .create_tenant(&first.tenant, &first.space, &first.admin)
        .await
        .unwrap();

    // The tenant and space rows would insert; the administrator's id is taken (an
    // email is unique per tenant only, so the same email would go in).
    let mut second = new_tenant("globex", "shared@example.com");
    second.admin.id = first.admin.id;
    let refused = store
        .create_tenant(&second.tenant, &second.space, &second.admin)
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(store.tenant_count().await.unwrap(), 1);
    assert_eq!(store.tenant(second.tenant.id).await.unwrap(), None);
    assert_eq!(store.tenant_by_name("globex").await.unwrap(), None);
    let spaces = store
        .list_spaces(second.tenant.id, Page::new(0, 10))
        .await
        .unwrap();
    assert_eq!((spaces.items.len(), spaces.total), (0, 0));
    assert_eq!(
        store.user(second.tenant.id, second.admin.id).await.unwrap(),
        None
    );
    // The one user with that email is still the first tenant's.
    let owner = store
        .user_by_email("shared@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.tenant_id, first.tenant.id);

    // Nothing was left behind: the same tenant and space go in with an administrator
    // of their own.
    let retry = NewTenant {
        admin: User {
            id: UserId::generate(),
            email: "boss@globex.example".into(),
            ..second.admin.clone()
        },
        ..second
    };
    store
        .create_tenant(&retry.tenant, &retry.space, &retry.admin)
        .await
        .expect("retry with a new administrator");
    assert_eq!(store.tenant_count().await.unwrap(), 2);
    assert_eq!(
        store.tenant_by_name("globex").await.unwrap(),
        Some(retry.tenant)
    );
}

async fn tenant_names_are_unique(store: DynStore) {
    tenant(&store, "acme").await;
    let again = new_tenant("acme", "other@acme.example");
    assert_conflict(
        store
            .create_tenant(&again.tenant, &again.space, &again.admin)
            .await,
        Constraint::TenantName,
    );
    assert_eq!(store.tenant_count().await.unwrap(), 1);
    assert_eq!(
        store.user_by_email("other@acme.example").await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------

async fn create_user_assigns_increasing_seq(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let mut last = admin.seq;
    for i in 0..5 {
        let new = new_user(acme.id, &format!("u{i}@acme.example"), &format!("u{i}"));
        let created = store.create_user(&new).await.unwrap();
        assert!(created.seq > last, "seq {} after {last}", created.seq);
        last = created.seq;
        // Everything but seq is what was given, and it reads back the same.
        assert_eq!(
            created,
            User {
                seq: created.seq,
                ..new
            }
        );
        assert_eq!(
            store.user(acme.id, created.id).await.unwrap(),
            Some(created)
        );
    }
}

/// An email is unique within its tenant; another tenant may have an account with the
/// same email (its administrator must not learn that the address is taken elsewhere).
async fn emails_are_unique_per_tenant(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let at_acme = store
        .create_user(&new_user(acme.id, "jo@example.com", "jo"))
        .await
        .unwrap();

    assert_conflict(
        store
            .create_user(&new_user(acme.id, "jo@example.com", "jo2"))
            .await,
        Constraint::Email,
    );
    let at_globex = store
        .create_user(&new_user(globex.id, "jo@example.com", "jo"))
        .await
        .unwrap();
    let listed = store
        .list_users(globex.id, Page::new(0, 100))
        .await
        .unwrap();
    assert_eq!(listed.total, 2, "globex's administrator and its own jo");
    let both = store.users_by_email("jo@example.com", 10).await.unwrap();
    assert_eq!(both, [at_acme.clone(), at_globex.clone()]);
    assert_eq!(
        store
            .user_by_email_in(globex.id, "jo@example.com")
            .await
            .unwrap(),
        Some(at_globex)
    );
    assert_eq!(
        store
            .user_by_email_in(acme.id, "jo@example.com")
            .await
            .unwrap(),
        Some(at_acme)
    );
}

async fn usernames_are_unique_per_tenant(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    store
        .create_user(&new_user(acme.id, "jo@acme.example", "jo"))
        .await
        .unwrap();

    assert_conflict(
        store
            .create_user(&new_user(acme.id, "jo2@acme.example", "jo"))
            .await,
        Constraint::Username,
    );
    // Another tenant may have its own "jo".
    let other = store
        .create_user(&new_user(globex.id, "jo@globex.example", "jo"))
        .await
        .expect("same username in another tenant");
    assert_eq!(
        store.user_by_username(globex.id, "jo").await.unwrap(),
        Some(other)
    );
}

async fn user_lookups(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let jo = user(&store, acme.id, "jo").await;

    assert_eq!(store.user(acme.id, jo.id).await.unwrap(), Some(jo.clone()));
    assert_eq!(
        store.user_by_email(&jo.email).await.unwrap(),
        Some(jo.clone())
    );
    assert_eq!(
        store.user_by_username(acme.id, "jo").await.unwrap(),
        Some(jo.clone())
    );
    assert_eq!(
        store.user_by_seq(acme.id, jo.seq).await.unwrap(),
        Some(jo.clone())
    );

    // Unknown values and other tenants find nothing.
    assert_eq!(store.user(acme.id, UserId::generate()).await.unwrap(), None);
    assert_eq!(store.user(globex.id, jo.id).await.unwrap(), None);
    assert_eq!(
        store.user_by_email("nobody@acme.example").await.unwrap(),
        None
    );
    assert_eq!(
        store.user_by_username(acme.id, "nobody").await.unwrap(),
        None
    );
    assert_eq!(store.user_by_username(globex.id, "jo").await.unwrap(), None);
    assert_eq!(
        store.user_by_seq(acme.id, jo.seq + 1000).await.unwrap(),
        None
    );
    assert_eq!(store.user_by_seq(globex.id, jo.seq).await.unwrap(), None);
}

async fn list_users_pages(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let mut all = vec![admin];
    for i in 0..6 {
        all.push(user(&store, acme.id, &format!("u{i}")).await);
    }
    user(&store, globex.id, "elsewhere").await;

    let first = store.list_users(acme.id, Page::new(0, 3)).await.unwrap();
    assert_eq!(first.total, 7);
    assert_eq!(first.items, all[0..3].to_vec(), "ordered by seq");
    let second = store.list_users(acme.id, Page::new(3, 3)).await.unwrap();
    assert_eq!(second.total, 7);
    assert_eq!(second.items, all[3..6].to_vec());
    let last = store.list_users(acme.id, Page::new(6, 3)).await.unwrap();
    assert_eq!(last.total, 7);
    assert_eq!(last.items, all[6..].to_vec());
    let past = store.list_users(acme.id, Page::new(50, 3)).await.unwrap();
    assert_eq!((past.items.len(), past.total), (0, 7));
    let everything = store.list_users(acme.id, Page::new(0, 1000)).await.unwrap();
    assert_eq!(everything.items, all);

    let none = store
        .list_users(TenantId::generate(), Page::new(0, 10))
        .await
        .unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
}

async fn update_user_round_trips(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;

    let changed = User {
        email: "joanna@acme.example".into(),
        username: "joanna".into(),
        display_name: "Joanna Ö'Brien".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".into(),
        role: Role::Admin,
        active: false,
        grants: grants(&["data.*", "fabric/_system:rw", "fabric/*:none"]),
        updated_at: now() + Duration::seconds(5),
        session_epoch: 3,
        ratelimits: Vec::new(),
        ..jo.clone()
    };
    store.update_user(&changed).await.unwrap();
    assert_eq!(
        store.user(acme.id, jo.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store.user_by_email("joanna@acme.example").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.user_by_email(&jo.email).await.unwrap(), None);
    assert_eq!(
        store.user_by_username(acme.id, "joanna").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(store.user_by_username(acme.id, "jo").await.unwrap(), None);
    // seq and created_at are not the caller's to change.
    let tampered = User {
        seq: 9999,
        created_at: now() + Duration::days(1),
        ..changed.clone()
    };
    store.update_user(&tampered).await.unwrap();
    assert_eq!(store.user(acme.id, jo.id).await.unwrap(), Some(changed));
}

async fn update_user_refuses_unknown_and_conflicts(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let jo = user(&store, acme.id, "jo").await;

    assert_not_found(
        store
            .update_user(&new_user(acme.id, "ghost@acme.example", "ghost"))
            .await,
    );
    // A user is only changed within its own tenant.
    assert_not_found(
        store
            .update_user(&User {
                tenant_id: globex.id,
                display_name: "moved".into(),
                ..jo.clone()
            })
            .await,
    );
    assert_conflict(
        store
            .update_user(&User {
                email: admin.email.clone(),
                ..jo.clone()
            })
            .await,
        Constraint::Email,
    );
    assert_conflict(
        store
            .update_user(&User {
                username: admin.username.clone(),
                ..jo.clone()
            })
            .await,
        Constraint::Username,
    );
    assert_eq!(store.user(acme.id, jo.id).await.unwrap(), Some(jo));
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

async fn create_key_and_lookups(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;

    let mut new = new_key(&jo, "deploy", Door::Native, KeyShape::Native);
    new.key.grants = grants(&["pinning.unpin", "data.*", "fabric/_system:rw"]);
    new.key.metadata = metadata(serde_json::json!({"env": "prod", "team": {"id": 7}}));
    new.key.expires_at = Some(now() + Duration::days(30));
    let created = store.create_key(&new.key, &new.stored).await.unwrap();
    assert!(created.seq > 0);
    let expected = ApiKey {
        seq: created.seq,
        ..new.key.clone()
    };
    assert_eq!(created, expected);

    // Grants come back in their canonical (sorted) order, which `Grants` equality sees.
    let stored = read_key(&store, &created).await;
    assert_eq!(stored.grants.to_strings(), expected.grants.to_strings());
    let expected = ApiKey {
        grants: Grants::parse(&expected.grants.to_strings()).unwrap(),
        ..expected
    };
    assert_eq!(stored, expected);
    assert_eq!(
        store
            .key_by_name(acme.id, Some(jo.id), "deploy")
            .await
            .unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.key_by_name(acme.id, None, "deploy").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .key_by_name(acme.id, Some(admin.id), "deploy")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.key_by_name(acme.id, None, "other").await.unwrap(),
        None
    );
    assert_eq!(store.key(acme.id, KeyId::generate()).await.unwrap(), None);

    // A key + secret pair is found by its public half.
    let pair = new_key(&jo, "pinning", Door::W3ipfs, KeyShape::Pair);
    let public_id = pair.key.public_id.clone().expect("pairs have a public id");
    let pair_key = store.create_key(&pair.key, &pair.stored).await.unwrap();
    assert!(pair_key.seq > created.seq, "seq increases");
    assert_eq!(
        store.key_by_public_id(&public_id).await.unwrap(),
        Some(pair_key.clone())
    );
    assert_eq!(store.key_by_public_id("0000").await.unwrap(), None);
    assert_eq!(
        store
            .lookup_secret(&HASHER.hash(pair.secret.expose()))
            .await
            .unwrap()
            .map(|m| m.key),
        Some(pair_key)
    );
}

/// `count` native keys of `owner`, named `{prefix}-0`, `{prefix}-1`, ..., stored in one
/// `create_keys` call.
async fn keys_in_bulk(store: &DynStore, owner: &User, prefix: &str, count: usize) -> Vec<NewKey> {
    let batch: Vec<NewKey> = (0..count)
        .map(|i| {
            new_key(
                owner,
                &format!("{prefix}-{i}"),
                Door::Native,
                KeyShape::Native,
            )
        })
        .collect();
    let rows: Vec<(ApiKey, KeySecret)> = batch
        .iter()
        .map(|n| (n.key.clone(), n.stored.clone()))
        .collect();
    store.create_keys(&rows).await.unwrap();
    batch
}

async fn create_keys_in_bulk_is_all_or_nothing(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let batch = keys_in_bulk(&store, &jo, "bulk", 3).await;
    for new in &batch {
        let found = store
            .lookup_secret(&HASHER.hash(new.secret.expose()))
            .await
            .unwrap()
            .expect("a bulk-created key is found by its secret");
        assert_eq!(found.key.id, new.key.id);
        assert!(found.key.seq > 0);
    }

    // A clash on the last row leaves none of the batch behind.
    let fresh = new_key(&jo, "bulk-fresh", Door::Native, KeyShape::Native);
    let clash = new_key(&jo, "bulk-0", Door::Native, KeyShape::Native);
    let rows = vec![
        (fresh.key.clone(), fresh.stored.clone()),
        (clash.key.clone(), clash.stored.clone()),
    ];
    assert!(store.create_keys(&rows).await.is_err());
    assert_eq!(store.key(acme.id, fresh.key.id).await.unwrap(), None);
    assert!(store.create_keys(&[]).await.is_ok());
}

async fn key_names_are_unique_per_owner_among_live_keys(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (first, _) = key(&store, &jo, "ci").await;

    let dup = new_key(&jo, "ci", Door::Native, KeyShape::Octopus);
    assert_conflict(
        store.create_key(&dup.key, &dup.stored).await,
        Constraint::KeyName,
    );
    // The refused key left nothing behind, not even its secret.
    assert_eq!(store.key(acme.id, dup.key.id).await.unwrap(), None);
    assert!(store
        .lookup_secret(&dup.stored.hash)
        .await
        .unwrap()
        .is_none());

    // Another owner may use the name.
    let (admins, _) = key(&store, &admin, "ci").await;
    assert_eq!(
        store
            .key_by_name(acme.id, Some(admin.id), "ci")
            .await
            .unwrap(),
        Some(admins)
    );

    // Once revoked, the name is free again, and the live key is the one found by name.
    revoke(&store, &first).await;
    assert_eq!(
        store.key_by_name(acme.id, Some(jo.id), "ci").await.unwrap(),
        None
    );
    let (second, _) = key(&store, &jo, "ci").await;
    assert_ne!(second.id, first.id);
    assert_eq!(
        store.key_by_name(acme.id, Some(jo.id), "ci").await.unwrap(),
        Some(second.clone())
    );
    // And again: several revoked keys may share a name.
    revoke(&store, &second).await;
    key(&store, &jo, "ci").await;
    let all = store
        .list_keys(
            acme.id,
            KeyFilter {
                owner: Some(jo.id),
                include_revoked: true,
                ..KeyFilter::default()
            },
            Page::new(0, 10),
        )
        .await
        .unwrap();
    assert_eq!(names(&all.items), ["ci", "ci", "ci"]);
}

/// Octopus lets a user hold several keys with one Purpose; other doors keep the rule.
async fn octopus_door_keys_may_share_a_name(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (first, _) = key_through(&store, &jo, "ci", Door::Octopus).await;
    let (second, _) = key_through(&store, &jo, "ci", Door::Octopus).await;
    assert_ne!(first.seq, second.seq);
    // A native key may take the name beside them, but a second native one may not.
    key(&store, &jo, "ci").await;
    let dup = new_key(&jo, "ci", Door::Native, KeyShape::Native);
    assert_conflict(
        store.create_key(&dup.key, &dup.stored).await,
        Constraint::KeyName,
    );
    let all = store
        .list_keys(
            acme.id,
            KeyFilter {
                owner: Some(jo.id),
                ..KeyFilter::default()
            },
            Page::new(0, 10),
        )
        .await
        .unwrap();
    assert_eq!(all.total, 3);
}

async fn spaces_and_keys_by_seq(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let spaces = store.list_spaces(acme.id, Page::new(0, 10)).await.unwrap();
    let space = spaces.items[0].clone();
    assert_eq!(
        store.space_by_seq(acme.id, space.seq).await.unwrap(),
        Some(space.clone())
    );
    assert_eq!(
        store.space_by_seq(globex.id, space.seq).await.unwrap(),
        None
    );
    assert_eq!(
        store.space_by_seq(acme.id, space.seq + 1000).await.unwrap(),
        None
    );

    let (k, _) = key(&store, &admin, "ci").await;
    assert!(k.seq > 0);
    assert_eq!(
        store.key_by_seq(acme.id, k.seq).await.unwrap(),
        Some(k.clone())
    );
    assert_eq!(store.key_by_seq(globex.id, k.seq).await.unwrap(), None);
    assert_eq!(store.key_by_seq(acme.id, k.seq + 1000).await.unwrap(), None);
    // A revoked key is still found: it is history the owner may look at.
    let revoked = revoke(&store, &k).await;
    assert_eq!(
        store.key_by_seq(acme.id, k.seq).await.unwrap(),
        Some(revoked)
    );
}

async fn list_keys_newest_first_with_filters_and_totals(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let (globex, globex_admin) = tenant(&store, "globex").await;
    let jo = user(&store, acme.id, "jo").await;

    key_through(&store, &jo, "k1", Door::Native).await;
    key_through(&store, &admin, "k2", Door::Octopus).await;
    let (k3, _) = key_through(&store, &jo, "k3", Door::Macrometa).await;
    key_through(&store, &jo, "k4", Door::Native).await;
    let (k5, _) = key_through(&store, &admin, "k5", Door::Native).await;
    key_through(&store, &globex_admin, "elsewhere", Door::Native).await;
    revoke(&store, &k3).await;

    let list = |filter: KeyFilter, page: Page| {
        let store = store.clone();
        async move { store.list_keys(acme.id, filter, page).await.unwrap() }
    };
    let all = Page::new(0, 100);

    let live = list(KeyFilter::default(), all).await;
    assert_eq!(names(&live.items), ["k5", "k4", "k2", "k1"]);
    assert_eq!(live.total, 4);
    assert_eq!(live.items[0], read_key(&store, &k5).await);

    let everything = list(
        KeyFilter {
            include_revoked: true,
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(names(&everything.items), ["k5", "k4", "k3", "k2", "k1"]);
    assert_eq!(everything.total, 5);
    assert!(everything.items[2].revoked_at.is_some());

    let jos = list(
        KeyFilter {
            owner: Some(jo.id),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!((names(&jos.items), jos.total), (vec!["k4", "k1"], 2));

    let jos_all = list(
        KeyFilter {
            owner: Some(jo.id),
            include_revoked: true,
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(
        (names(&jos_all.items), jos_all.total),
        (vec!["k4", "k3", "k1"], 3)
    );

    let native = list(
        KeyFilter {
            door: Some(Door::Native),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(
        (names(&native.items), native.total),
        (vec!["k5", "k4", "k1"], 3)
    );

    let jos_native = list(
        KeyFilter {
            owner: Some(jo.id),
            door: Some(Door::Native),
            include_revoked: true,
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(
        (names(&jos_native.items), jos_native.total),
        (vec!["k4", "k1"], 2)
    );

    let macrometa = list(
        KeyFilter {
            door: Some(Door::Macrometa),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!((macrometa.items.len(), macrometa.total), (0, 0));
    let macrometa_all = list(
        KeyFilter {
            door: Some(Door::Macrometa),
            include_revoked: true,
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(
        (names(&macrometa_all.items), macrometa_all.total),
        (vec!["k3"], 1)
    );
    let w3ipfs = list(
        KeyFilter {
            door: Some(Door::W3ipfs),
            include_revoked: true,
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!((w3ipfs.items.len(), w3ipfs.total), (0, 0));

    // Paging keeps the total of the whole listing.
    let page1 = list(KeyFilter::default(), Page::new(0, 2)).await;
    assert_eq!((names(&page1.items), page1.total), (vec!["k5", "k4"], 4));
    let page2 = list(KeyFilter::default(), Page::new(2, 2)).await;
    assert_eq!((names(&page2.items), page2.total), (vec!["k2", "k1"], 4));
    let page3 = list(KeyFilter::default(), Page::new(4, 2)).await;
    assert_eq!((page3.items.len(), page3.total), (0, 4));
    let odd = list(
        KeyFilter {
            include_revoked: true,
            ..KeyFilter::default()
        },
        Page::new(1, 3),
    )
    .await;
    assert_eq!((names(&odd.items), odd.total), (vec!["k4", "k3", "k2"], 5));

    // An owner from another tenant, or another tenant altogether, sees none of these.
    let foreign_owner = list(
        KeyFilter {
            owner: Some(globex_admin.id),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!((foreign_owner.items.len(), foreign_owner.total), (0, 0));
    let globex_keys = store
        .list_keys(globex.id, KeyFilter::default(), all)
        .await
        .unwrap();
    assert_eq!(
        (names(&globex_keys.items), globex_keys.total),
        (vec!["elsewhere"], 1)
    );

    // Search is by a part of the name or start, ignoring case; LIKE's wildcards in
    // the text are taken literally.
    let search = |text: &str, state: Option<KeyState>| KeyFilter {
        search: Some(text.to_string()),
        state,
        as_of: Some(OffsetDateTime::now_utc()),
        ..KeyFilter::default()
    };
    let k4 = list(search("K4", None), all).await;
    assert_eq!((names(&k4.items), k4.total), (vec!["k4"], 1));
    let wildcard = list(search("%", None), all).await;
    assert_eq!((wildcard.items.len(), wildcard.total), (0, 0));
    // As a wildcard, `_` would match the names "k1" to "k5".
    let underscore = list(search("k_", None), all).await;
    assert_eq!(underscore.total, 0, "{:?}", names(&underscore.items));
    // A state filter: revoked ones are found without asking for history.
    let revoked = list(search("k", Some(KeyState::Revoked)), all).await;
    assert_eq!((names(&revoked.items), revoked.total), (vec!["k3"], 1));
    let active = list(
        KeyFilter {
            state: Some(KeyState::Active),
            as_of: Some(OffsetDateTime::now_utc()),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(names(&active.items), ["k5", "k4", "k2", "k1"]);
    let expired = list(
        KeyFilter {
            state: Some(KeyState::Expired),
            as_of: Some(OffsetDateTime::now_utc()),
            ..KeyFilter::default()
        },
        all,
    )
    .await;
    assert_eq!(expired.total, 0);
}

async fn update_key_round_trips_every_mutable_field(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (created, _) = key(&store, &jo, "before").await;

    // Entries given in canonical order, so that `Grants` compares equal after reading.
    let new_grants = grants(&[
        "data.*",
        "pinning.unpin",
        "*:none",
        "fabric/*:ro",
        "fabric/_system:rw",
        "fabric/_system/collection/users:none",
    ]);
    assert_eq!(Grants::parse(&new_grants.to_strings()).unwrap(), new_grants);
    let changed = ApiKey {
        name: "after".into(),
        start: "kw_ZZZZ".into(),
        grants: new_grants,
        metadata: metadata(serde_json::json!({
            "env": "prod",
            "owner": {"team": "infra", "ids": [1, 2, 3]},
            "ratio": 0.25,
            "flag": true,
            "nothing": null,
            "unicode": "clé ✓",
        })),
        enabled: false,
        updated_at: now() + Duration::seconds(1),
        expires_at: Some(now() + Duration::days(90)),
        revoked_at: Some(now() + Duration::seconds(2)),
        ..created.clone()
    };
    store.update_key(&changed).await.unwrap();
    let stored = read_key(&store, &created).await;
    assert_eq!(stored, changed);
    assert_eq!(
        stored.grants.to_strings(),
        [
            "data.*",
            "pinning.unpin",
            "*:none",
            "fabric/*:ro",
            "fabric/_system:rw",
            "fabric/_system/collection/users:none",
        ]
    );

    // And back: every optional field cleared, everything else changed again.
    let restored = ApiKey {
        name: "restored".into(),
        grants: Grants::default(),
        metadata: Metadata::new(),
        enabled: true,
        updated_at: now() + Duration::seconds(3),
        expires_at: None,
        revoked_at: None,
        ..changed.clone()
    };
    store.update_key(&restored).await.unwrap();
    assert_eq!(read_key(&store, &created).await, restored);

    // Fields the store owns are not taken from the update.
    let tampered = ApiKey {
        seq: 12345,
        owner_id: UserId::generate(),
        door: Door::Octopus,
        shape: KeyShape::Octopus,
        public_id: Some("f00".into()),
        created_at: now() - Duration::days(1),
        last_used_at: Some(now()),
        use_count: 99,
        ..restored.clone()
    };
    store.update_key(&tampered).await.unwrap();
    assert_eq!(read_key(&store, &created).await, restored);
}

async fn update_key_refuses_unknown_keys_and_taken_names(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let jo = user(&store, acme.id, "jo").await;
    let (a, _) = key(&store, &jo, "a").await;
    let (b, _) = key(&store, &jo, "b").await;

    let ghost = new_key(&jo, "ghost", Door::Native, KeyShape::Native).key;
    assert_not_found(store.update_key(&ghost).await);
    assert_not_found(
        store
            .update_key(&ApiKey {
                tenant_id: globex.id,
                enabled: false,
                ..a.clone()
            })
            .await,
    );
    assert_conflict(
        store
            .update_key(&ApiKey {
                name: "a".into(),
                ..b.clone()
            })
            .await,
        Constraint::KeyName,
    );
    assert_eq!(read_key(&store, &a).await, a);
    assert_eq!(read_key(&store, &b).await, b);

    // Un-revoking a key whose name was reused in the meantime is a conflict too.
    let revoked = revoke(&store, &a).await;
    let (a2, _) = key(&store, &jo, "a").await;
    assert_conflict(
        store
            .update_key(&ApiKey {
                revoked_at: None,
                ..revoked.clone()
            })
            .await,
        Constraint::KeyName,
    );
    assert_eq!(read_key(&store, &a).await, revoked);
    assert_eq!(read_key(&store, &a2).await, a2);
}

async fn tenants_are_isolated(store: DynStore) {
    let (acme, acme_admin) = tenant(&store, "acme").await;
    let (globex, globex_admin) = tenant(&store, "globex").await;
    let (secret_key, secret) = key(&store, &acme_admin, "shared-name").await;
    let (globex_key, _) = key(&store, &globex_admin, "shared-name").await;

    assert_eq!(store.key(globex.id, secret_key.id).await.unwrap(), None);
    assert_eq!(store.key(acme.id, globex_key.id).await.unwrap(), None);
    assert_eq!(
        store
            .key_by_name(globex.id, Some(acme_admin.id), "shared-name")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .key_by_name(globex.id, None, "shared-name")
            .await
            .unwrap()
            .map(|k| k.id),
        Some(globex_key.id)
    );
    assert_eq!(
        store
            .key_by_name(acme.id, None, "shared-name")
            .await
            .unwrap()
            .map(|k| k.id),
        Some(secret_key.id)
    );
    assert_eq!(store.user(globex.id, acme_admin.id).await.unwrap(), None);
    assert_eq!(
        store.user_by_seq(globex.id, acme_admin.seq).await.unwrap(),
        None
    );

    // Changes addressed through the wrong tenant touch nothing.
    assert_not_found(
        store
            .update_key(&ApiKey {
                tenant_id: globex.id,
                revoked_at: Some(now()),
                ..secret_key.clone()
            })
            .await,
    );
    let replacement = KeyShape::Native.generate();
    let rotated = ApiKey {
        tenant_id: globex.id,
        start: KeyShape::Native.visible_start(replacement.expose()),
        updated_at: now(),
        ..secret_key.clone()
    };
    assert_not_found(
        store
            .rotate_key(
                &rotated,
                &KeySecret {
                    hash: HASHER.hash(replacement.expose()),
                    key_id: secret_key.id,
                    expires_at: None,
                },
                now(),
            )
            .await,
    );
    assert_eq!(read_key(&store, &secret_key).await, secret_key);
    let found = store
        .lookup_secret(&HASHER.hash(secret.expose()))
        .await
        .unwrap()
        .expect("the original secret still works");
    assert_eq!(found.secret_expires_at, None);
    assert!(store
        .lookup_secret(&HASHER.hash(replacement.expose()))
        .await
        .unwrap()
        .is_none());
}

// ---------------------------------------------------------------------------------------
// Secrets, rotation and usage
// ---------------------------------------------------------------------------------------

/// A rotation of `key` to a new native secret, as the server would build it.
fn rotation(key: &ApiKey, at: OffsetDateTime) -> (ApiKey, KeySecret, Secret) {
    let secret = KeyShape::Native.generate();
    let rotated = ApiKey {
        start: KeyShape::Native.visible_start(secret.expose()),
        updated_at: at,
        ..key.clone()
    };
    let stored = KeySecret {
        hash: HASHER.hash(secret.expose()),
        key_id: key.id,
        expires_at: None,
    };
    (rotated, stored, secret)
}

async fn rotation_keeps_the_old_secret_for_the_grace_period(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (created, old_secret) = key(&store, &jo, "rotating").await;

    let at = now() + Duration::seconds(1);
    let old_until = at + Duration::hours(24);
    let (rotated, stored, new_secret) = rotation(&created, at);
    store
        .rotate_key(&rotated, &stored, old_until)
        .await
        .unwrap();

    assert_eq!(read_key(&store, &created).await, rotated);
    let new = store
        .lookup_secret(&HASHER.hash(new_secret.expose()))
        .await
        .unwrap()
        .expect("the new secret works");
    assert_eq!(new.key, rotated);
    assert_eq!(new.secret_expires_at, None);
    let old = store
        .lookup_secret(&HASHER.hash(old_secret.expose()))
        .await
        .unwrap()
        .expect("the old secret works during the grace period");
    assert_eq!(old.key, rotated);
    assert_eq!(old.secret_expires_at, Some(old_until));

    // Rotating again never extends the first secret's grace period, and cuts the
    // second one's to the new deadline.
    let at2 = at + Duration::seconds(1);
    let (rotated2, stored2, newest_secret) = rotation(&rotated, at2);
    store
        .rotate_key(&rotated2, &stored2, old_until + Duration::hours(24))
        .await
        .unwrap();
    let expiry = |secret: Secret| {
        let store = store.clone();
        async move {
            store
                .lookup_secret(&HASHER.hash(secret.expose()))
                .await
                .unwrap()
                .map(|m| m.secret_expires_at)
        }
    };
    assert_eq!(expiry(old_secret.clone()).await, Some(Some(old_until)));
    assert_eq!(
        expiry(new_secret.clone()).await,
        Some(Some(old_until + Duration::hours(24)))
    );
    assert_eq!(expiry(newest_secret.clone()).await, Some(None));

    let at3 = at2 + Duration::seconds(1);
    let earlier = at3 + Duration::minutes(5);
    let (rotated3, stored3, latest_secret) = rotation(&rotated2, at3);
    store
        .rotate_key(&rotated3, &stored3, earlier)
        .await
        .unwrap();
    assert_eq!(expiry(old_secret).await, Some(Some(earlier)));
    assert_eq!(expiry(new_secret).await, Some(Some(earlier)));
    assert_eq!(expiry(newest_secret).await, Some(Some(earlier)));
    assert_eq!(expiry(latest_secret).await, Some(None));
    assert_eq!(read_key(&store, &created).await, rotated3);
}

async fn rotation_with_past_grace_drops_the_old_secret(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;

    // A grace period ending exactly at the rotation: the old secret is gone at once.
    let (a, a_old) = key(&store, &jo, "now").await;
    let at = now() + Duration::seconds(1);
    let (rotated, stored, a_new) = rotation(&a, at);
    store.rotate_key(&rotated, &stored, at).await.unwrap();
    assert!(store
        .lookup_secret(&HASHER.hash(a_old.expose()))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .lookup_secret(&HASHER.hash(a_new.expose()))
        .await
        .unwrap()
        .is_some());

    // Ending before it: gone too.
    let (b, b_old) = key(&store, &jo, "past").await;
    let (rotated, stored, b_new) = rotation(&b, at);
    store
        .rotate_key(&rotated, &stored, at - Duration::hours(1))
        .await
        .unwrap();
    assert!(store
        .lookup_secret(&HASHER.hash(b_old.expose()))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .lookup_secret(&HASHER.hash(b_new.expose()))
            .await
            .unwrap()
            .map(|m| m.key),
        Some(rotated.clone())
    );

    // A secret whose grace period ran out by the next rotation is dropped then.
    let (c, c_first) = key(&store, &jo, "twice").await;
    let (rotated, stored, c_second) = rotation(&c, at);
    store
        .rotate_key(&rotated, &stored, at + Duration::seconds(10))
        .await
        .unwrap();
    let later = at + Duration::seconds(20);
    let (rotated2, stored2, c_third) = rotation(&rotated, later);
    store
        .rotate_key(&rotated2, &stored2, later + Duration::hours(1))
        .await
        .unwrap();
    assert!(store
        .lookup_secret(&HASHER.hash(c_first.expose()))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .lookup_secret(&HASHER.hash(c_second.expose()))
            .await
            .unwrap()
            .map(|m| m.secret_expires_at),
        Some(Some(later + Duration::hours(1)))
    );
    assert!(store
        .lookup_secret(&HASHER.hash(c_third.expose()))
        .await
        .unwrap()
        .is_some());
}

async fn rotating_an_unknown_key_is_not_found(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let ghost = new_key(&jo, "ghost", Door::Native, KeyShape::Native).key;
    let (rotated, stored, secret) = rotation(&ghost, now());
    assert_not_found(store.rotate_key(&rotated, &stored, now()).await);
    assert!(store
        .lookup_secret(&HASHER.hash(secret.expose()))
        .await
        .unwrap()
        .is_none());
}

async fn lookup_secret_returns_key_owner_and_expiry(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (created, secret) = key(&store, &jo, "lookup").await;

    let found = store
        .lookup_secret(&HASHER.hash(secret.expose()))
        .await
        .unwrap()
        .expect("the secret finds its key");
    assert_eq!(found.key, created);
    assert_eq!(found.owner, jo);
    assert_eq!(found.secret_expires_at, None);

    // The owner is read as it is now, not as it was when the key was made.
    let renamed = User {
        display_name: "Jo Renamed".into(),
        active: false,
        updated_at: now() + Duration::seconds(1),
        ..jo.clone()
    };
    store.update_user(&renamed).await.unwrap();
    let found = store
        .lookup_secret(&HASHER.hash(secret.expose()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.owner, renamed);

    // A secret stored with its own expiry reports it.
    let mut expiring = new_key(&jo, "expiring", Door::Octopus, KeyShape::Octopus);
    let until = now() + Duration::minutes(10);
    expiring.stored.expires_at = Some(until);
    let expiring_key = store
        .create_key(&expiring.key, &expiring.stored)
        .await
        .unwrap();
    let found = store
        .lookup_secret(&HASHER.hash(expiring.secret.expose()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key, expiring_key);
    assert_eq!(found.secret_expires_at, Some(until));

    // Revoked and disabled keys are still found: deciding is the caller's job.
    let revoked = revoke(&store, &created).await;
    let found = store
        .lookup_secret(&HASHER.hash(secret.expose()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key, revoked);

    assert!(store
        .lookup_secret(&HASHER.hash("kw_not-a-stored-secret"))
        .await
        .unwrap()
        .is_none());
    let other_server = KeyHasher::new(&ServerSecret::generate());
    assert!(store
        .lookup_secret(&other_server.hash(secret.expose()))
        .await
        .unwrap()
        .is_none());
}

async fn record_usage_adds_counts_and_keeps_newest_time(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (a, _) = key(&store, &jo, "a").await;
    let (b, _) = key(&store, &jo, "b").await;
    let (c, _) = key(&store, &jo, "c").await;

    store.record_usage(&[]).await.unwrap();
    assert_eq!(read_key(&store, &a).await, a);

    let t1 = now();
    let t2 = t1 + Duration::seconds(30);
    let t3 = t1 + Duration::seconds(60);
    store
        .record_usage(&[
            KeyUsage {
                key_id: a.id,
                last_used_at: t2,
                uses: 3,
            },
            KeyUsage {
                key_id: b.id,
                last_used_at: t1,
                uses: 1,
            },
        ])
        .await
        .unwrap();
    let got = read_key(&store, &a).await;
    assert_eq!((got.use_count, got.last_used_at), (3, Some(t2)));
    let got = read_key(&store, &b).await;
    assert_eq!((got.use_count, got.last_used_at), (1, Some(t1)));

    // An older report adds its count but does not move last_used_at back; a newer one
    // moves it on; several entries for one key in a batch all count.
    store
        .record_usage(&[
            KeyUsage {
                key_id: a.id,
                last_used_at: t1,
                uses: 2,
            },
            KeyUsage {
                key_id: b.id,
                last_used_at: t3,
                uses: 4,
            },
            KeyUsage {
                key_id: b.id,
                last_used_at: t2,
                uses: 5,
            },
        ])
        .await
        .unwrap();
    let got = read_key(&store, &a).await;
    assert_eq!((got.use_count, got.last_used_at), (5, Some(t2)));
    let got = read_key(&store, &b).await;
    assert_eq!((got.use_count, got.last_used_at), (10, Some(t3)));
    // Usage of one key leaves the others alone, and nothing else of the key changes.
    assert_eq!(read_key(&store, &c).await, c);
    assert_eq!(
        read_key(&store, &a).await,
        ApiKey {
            use_count: 5,
            last_used_at: Some(t2),
            ..a.clone()
        }
    );

    // Usage of a key that no longer exists is dropped without failing the batch.
    store
        .record_usage(&[
            KeyUsage {
                key_id: KeyId::generate(),
                last_used_at: t3,
                uses: 7,
            },
            KeyUsage {
                key_id: c.id,
                last_used_at: t3,
                uses: 1,
            },
        ])
        .await
        .unwrap();
    let got = read_key(&store, &c).await;
    assert_eq!((got.use_count, got.last_used_at), (1, Some(t3)));

    // Counts and last use travel with the key to lookups and listings.
    let listed = store
        .list_keys(acme.id, KeyFilter::default(), Page::new(0, 10))
        .await
        .unwrap();
    let counts: Vec<(&str, i64)> = listed
        .items
        .iter()
        .map(|k| (k.name.as_str(), k.use_count))
        .collect();
    assert_eq!(counts, [("c", 1), ("b", 10), ("a", 5)]);
}

/// A flush larger than one statement's worth of rows (512) records every key, each
/// with its own count and time, duplicates summed across statements' boundaries.
async fn record_usage_of_many_keys_at_once(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let batch = keys_in_bulk(&store, &jo, "k", 1201).await;
    let t0 = now();
    let mut usage: Vec<KeyUsage> = batch
        .iter()
        .enumerate()
        .map(|(i, n)| KeyUsage {
            key_id: n.key.id,
            last_used_at: t0 + Duration::seconds(i as i64),
            uses: i as i64 + 1,
        })
        .collect();
    // The first key again, at the end of the batch: later, and counted too.
    usage.push(KeyUsage {
        key_id: batch[0].key.id,
        last_used_at: t0 + Duration::seconds(5000),
        uses: 10,
    });
    store.record_usage(&usage).await.unwrap();
    for (i, new) in batch.iter().enumerate() {
        let got = read_key(&store, &new.key).await;
        let expected = match i {
            0 => (11, t0 + Duration::seconds(5000)),
            _ => (i as i64 + 1, t0 + Duration::seconds(i as i64)),
        };
        assert_eq!(
            (got.use_count, got.last_used_at),
            (expected.0, Some(expected.1)),
            "key {i}"
        );
    }
}

async fn concurrent_writes_lose_nothing(store: DynStore) {
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (hot, _) = key(&store, &jo, "hot").await;

    let mut tasks = Vec::new();
    for worker in 0..8 {
        let store = store.clone();
        let jo = jo.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                store
                    .record_usage(&[KeyUsage {
                        key_id: hot.id,
                        last_used_at: now(),
                        uses: 1,
                    }])
                    .await
                    .expect("record usage");
                let new = new_key(
                    &jo,
                    &format!("w{worker}-{i}"),
                    Door::Native,
                    KeyShape::Native,
                );
                let created = store
                    .create_key(&new.key, &new.stored)
                    .await
                    .expect("create key");
                seqs.push(created.seq);
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.expect("worker"));
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 80, "every key got its own seq");
    assert_eq!(read_key(&store, &hot).await.use_count, 80);
    let listed = store
        .list_keys(acme.id, KeyFilter::default(), Page::new(0, 1))
        .await
        .unwrap();
    assert_eq!(listed.total, 81);
}

async fn timestamps_round_trip_at_microsecond_precision(store: DynStore) {
    use time::macros::datetime;

    let moments = [
        datetime!(2024-02-29 23:59:59.999_999 UTC),
        datetime!(2001-01-01 00:00:00.000_001 UTC),
        datetime!(1970-01-01 00:00:00 UTC),
        datetime!(1969-12-31 23:59:59.999_999 UTC),
        // Another offset is the same instant, read back in UTC.
        datetime!(2030-06-15 12:34:56.123_456 +05:30),
        datetime!(9999-12-31 23:59:59.999_999 UTC),
    ];
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;

    for (i, at) in moments.into_iter().enumerate() {
        let mut new = new_key(&jo, &format!("t{i}"), Door::Native, KeyShape::Native);
        new.key.created_at = at;
        new.key.updated_at = at;
        new.key.expires_at = Some(at);
        new.key.revoked_at = Some(at);
        new.stored.expires_at = Some(at);
        let created = store.create_key(&new.key, &new.stored).await.unwrap();
        let stored = read_key(&store, &created).await;
        assert_eq!(stored.created_at, at, "created_at {at}");
        assert_eq!(stored.updated_at, at);
        assert_eq!(stored.expires_at, Some(at));
        assert_eq!(stored.revoked_at, Some(at));
        assert_eq!(stored.created_at.offset(), time::UtcOffset::UTC);
        let found = store
            .lookup_secret(&new.stored.hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.secret_expires_at, Some(at));

        store
            .record_usage(&[KeyUsage {
                key_id: created.id,
                last_used_at: at,
                uses: 1,
            }])
            .await
            .unwrap();
        assert_eq!(read_key(&store, &created).await.last_used_at, Some(at));

        let mut u = new_user(acme.id, &format!("t{i}@acme.example"), &format!("t{i}"));
        u.created_at = at;
        u.updated_at = at;
        let u = store.create_user(&u).await.unwrap();
        let back = store.user(acme.id, u.id).await.unwrap().unwrap();
        assert_eq!((back.created_at, back.updated_at), (at, at));
    }

    // Microseconds that differ stay apart: last_used_at moves on by one microsecond.
    let (k, _) = key(&store, &jo, "tick").await;
    let t = now();
    for at in [t, t + Duration::microseconds(1)] {
        store
            .record_usage(&[KeyUsage {
                key_id: k.id,
                last_used_at: at,
                uses: 1,
            }])
            .await
            .unwrap();
    }
    assert_eq!(
        read_key(&store, &k).await.last_used_at,
        Some(t + Duration::microseconds(1))
    );

    let t = new_tenant("timely", "root@timely.example");
    let tenant_at = datetime!(2025-07-04 01:02:03.456_789 UTC);
    let tenant_record = Tenant {
        created_at: tenant_at,
        ..t.tenant.clone()
    };
    store
        .create_tenant(&tenant_record, &t.space, &t.admin)
        .await
        .unwrap();
    assert_eq!(
        store.tenant(t.tenant.id).await.unwrap().unwrap().created_at,
        tenant_at
    );
}

// ---------------------------------------------------------------------------------------
// Spaces, their resources, and per-door key names
// ---------------------------------------------------------------------------------------

fn new_space(tenant: TenantId, name: &str) -> Space {
    Space {
        id: SpaceId::generate(),
        tenant_id: tenant,
        seq: 0,
        name: name.to_string(),
        created_at: now(),
    }
}

async fn spaces_are_created_and_found_by_name(store: DynStore) {
    let (t, _) = tenant(&store, "acme").await;
    let (other, _) = tenant(&store, "other").await;
    let made = store
        .create_space(&new_space(t.id, "_system"))
        .await
        .expect("create space");
    assert!(made.seq > 0);
    let found = store.space_by_name(t.id, "_system").await.unwrap().unwrap();
    assert_eq!(found, made);
    assert!(store
        .space_by_name(other.id, "_system")
        .await
        .unwrap()
        .is_none());
    assert!(store.space_by_name(t.id, "nope").await.unwrap().is_none());
    assert_conflict(
        store.create_space(&new_space(t.id, "_system")).await,
        Constraint::SpaceName,
    );
    store
        .create_space(&new_space(other.id, "_system"))
        .await
        .expect("the same name in another tenant");
    let listed = store.list_spaces(t.id, Page::new(0, 10)).await.unwrap();
    assert_eq!(listed.total, 2, "Default and _system");
}

async fn resources_are_registered_once_per_space_and_kind(store: DynStore) {
    let (t, _) = tenant(&store, "acme").await;
    let a = store.create_space(&new_space(t.id, "a")).await.unwrap();
    let b = store.create_space(&new_space(t.id, "b")).await.unwrap();
    for name in ["users", "orders", "users"] {
        store
            .register_resource(a.id, ResourceKind::Collection, name)
            .await
            .expect("register");
    }
    store
        .register_resource(a.id, ResourceKind::Stream, "c8globals.s1")
        .await
        .unwrap();
    assert_eq!(
        store
            .list_resources(a.id, ResourceKind::Collection)
            .await
            .unwrap(),
        ["orders", "users"]
    );
    assert_eq!(
        store
            .list_resources(a.id, ResourceKind::Stream)
            .await
            .unwrap(),
        ["c8globals.s1"]
    );
    assert!(store
        .list_resources(b.id, ResourceKind::Collection)
        .await
        .unwrap()
        .is_empty());
}

async fn macrometa_keyids_are_unique_per_tenant_among_live_keys(store: DynStore) {
    let (t, admin) = tenant(&store, "acme").await;
    let member = user(&store, t.id, "member").await;
    let (first, _) = key_through(&store, &admin, "id1", Door::Macrometa).await;
    // Another owner in the same tenant may not take the keyid: the rule is per tenant.
    let clash = new_key(&member, "id1", Door::Macrometa, KeyShape::Native);
    assert_conflict(
        store.create_key(&clash.key, &clash.stored).await,
        Constraint::MacrometaKeyid,
    );
    // Other doors keep their per-owner names.
    let third = user(&store, t.id, "third").await;
    key_through(&store, &third, "id1", Door::Native).await;
    let found = store
        .key_by_door_name(t.id, Door::Macrometa, "id1")
        .await
        .unwrap()
        .expect("found by keyid");
    assert_eq!(found.id, first.id);
    // A revoked keyid is free again, and no longer found.
    revoke(&store, &first).await;
    assert!(store
        .key_by_door_name(t.id, Door::Macrometa, "id1")
        .await
        .unwrap()
        .is_none());
    let (again, _) = key_through(&store, &member, "id1", Door::Macrometa).await;
    let (other, other_admin) = tenant(&store, "other").await;
    key_through(&store, &other_admin, "id1", Door::Macrometa).await;
    let found = store
        .key_by_door_name(t.id, Door::Macrometa, "id1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, again.id);
    assert_ne!(other.id, t.id);
}

// ---------------------------------------------------------------------------------------
// Change feed
// ---------------------------------------------------------------------------------------

async fn next_change(feed: &mut ChangeFeed) -> ChangeEvent {
    tokio::time::timeout(std::time::Duration::from_secs(5), feed.recv())
        .await
        .expect("a change is announced within 5 s")
        .expect("the feed stays open")
}

async fn key_and_owner_changes_are_announced_on_commit(store: DynStore) {
    let mut feed = store.subscribe_changes().await.expect("subscribe");
    let mut second = store.subscribe_changes().await.expect("subscribe again");
    let (acme, _) = tenant(&store, "acme").await;
    let jo = user(&store, acme.id, "jo").await;
    let (k, _) = key(&store, &jo, "k").await;
    revoke(&store, &k).await;
    assert_eq!(
        next_change(&mut feed).await,
        ChangeEvent::Changed(Change::Key(k.id))
    );
    assert_eq!(
        next_change(&mut second).await,
        ChangeEvent::Changed(Change::Key(k.id))
    );
    let (k2, _) = key(&store, &jo, "k2").await;
    let (rotated, stored, _) = rotation(&k2, now());
    store
        .rotate_key(&rotated, &stored, now())
        .await
        .expect("rotate");
    assert_eq!(
        next_change(&mut feed).await,
        ChangeEvent::Changed(Change::Key(k2.id))
    );
    let renamed = User {
        display_name: "Jo R.".into(),
        ..jo.clone()
    };
    store.update_user(&renamed).await.expect("update user");
    assert_eq!(
        next_change(&mut feed).await,
        ChangeEvent::Changed(Change::Owner(jo.id))
    );
    // A refused change is not announced: the next announcement is the later one.
    let unknown = ApiKey {
        id: KeyId::generate(),
        ..k2.clone()
    };
    assert_not_found(store.update_key(&unknown).await);
    revoke(&store, &k2).await;
    assert_eq!(
        next_change(&mut feed).await,
        ChangeEvent::Changed(Change::Key(k2.id))
    );
}

// ---------------------------------------------------------------------------------------
// The one write path and the audit log
// ---------------------------------------------------------------------------------------

fn event(tenant: TenantId, action: Action, target: Target, at: OffsetDateTime) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        time: at,
        tenant_id: Some(tenant),
        actor: Actor::System,
        door: Some(Door::Native),
        remote_ip: Some("192.0.2.7".parse().unwrap()),
        action,
        target,
        changes: Default::default(),
        details: Default::default(),
        actor_user: None,
        target_owner: None,
    }
}

fn page_filter(limit: u32) -> AuditFilter {
    AuditFilter {
        limit,
        ..AuditFilter::default()
    }
}

async fn events_of(store: &DynStore, tenant: TenantId, filter: &AuditFilter) -> Vec<AuditEvent> {
    store
        .audit_events(Some(tenant), filter)
        .await
        .expect("read the audit log")
        .events
}

async fn a_change_and_its_events_commit_together_or_not_at_all(store: DynStore) {
    let (t, admin) = tenant(&store, "acme").await;
    let new = new_key(&admin, "k", Door::Native, KeyShape::Native);
    let mut created = event(t.id, Action::KeyCreated, Target::Key(new.key.id), now());
    created.changes.insert(
        "name".into(),
        FieldChange {
            from: serde_json::Value::Null,
            to: "k".into(),
        },
    );
    let done = store
        .commit(
            Mutation::CreateKey {
                key: &new.key,
                secret: &new.stored,
            },
            std::slice::from_ref(&created),
        )
        .await
        .expect("commit");
    assert!(done.applied && done.seq.is_some());
    assert_eq!(
        events_of(&store, t.id, &page_filter(10)).await,
        [created.clone()]
    );

    // An event that cannot be written (its id is taken) takes its change down with it.
    let second = new_key(&admin, "second", Door::Native, KeyShape::Native);
    let clash = AuditEvent {
        target: Target::Key(second.key.id),
        ..created.clone()
    };
    let refused = store
        .commit(
            Mutation::CreateKey {
                key: &second.key,
                secret: &second.stored,
            },
            &[clash],
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(store.key(t.id, second.key.id).await.unwrap().is_none());
    // And a change that cannot be made writes no event.
    let dup = new_key(&admin, "k", Door::Native, KeyShape::Native);
    let dup_event = event(t.id, Action::KeyCreated, Target::Key(dup.key.id), now());
    assert_conflict(
        store
            .commit(
                Mutation::CreateKey {
                    key: &dup.key,
                    secret: &dup.stored,
                },
                &[dup_event],
            )
            .await,
        Constraint::KeyName,
    );
    assert_eq!(events_of(&store, t.id, &page_filter(10)).await.len(), 1);
}

async fn a_change_of_a_record_changed_since_it_was_read_is_stale(store: DynStore) {
    let (t, admin) = tenant(&store, "acme").await;
    let (k, _) = key(&store, &admin, "k").await;
    let first = ApiKey {
        name: "first".into(),
        updated_at: k.updated_at + Duration::microseconds(1),
        ..k.clone()
    };
    store
        .commit(
            Mutation::UpdateKey {
                key: &first,
                read_at: k.updated_at,
                with_credits: false,
            },
            &[],
        )
        .await
        .expect("the first writer wins");
    let second = ApiKey {
        name: "second".into(),
        updated_at: k.updated_at + Duration::microseconds(2),
        ..k.clone()
    };
    let late = event(t.id, Action::KeyUpdated, Target::Key(k.id), now());
    match store
        .commit(
            Mutation::UpdateKey {
                key: &second,
                read_at: k.updated_at,
                with_credits: false,
            },
            &[late],
        )
        .await
    {
        Err(StoreError::Stale) => {}
        other => panic!("expected Stale, got {other:?}"),
    }
    assert_eq!(read_key(&store, &k).await.name, "first");
    assert!(events_of(&store, t.id, &page_filter(10)).await.is_empty());
    let gone = ApiKey {
        id: KeyId::generate(),
        ..k.clone()
    };
    assert_not_found(
        store
            .commit(
                Mutation::UpdateKey {
                    key: &gone,
                    read_at: k.updated_at,
                    with_credits: false,
                },
                &[],
            )
            .await,
    );
    let jo = user(&store, t.id, "jo").await;
    let renamed = User {
        display_name: "Jo".into(),
        ..jo.clone()
    };
    let stale_read = jo.updated_at - Duration::seconds(1);
    match store
        .commit(
            Mutation::UpdateUser {
                user: &renamed,
                read_at: stale_read,
            },
            &[],
        )
        .await
    {
        Err(StoreError::Stale) => {}
        other => panic!("expected Stale for a user, got {other:?}"),
    }
}

async fn declaring_a_known_resource_changes_and_records_nothing(store: DynStore) {
    let (t, _) = tenant(&store, "acme").await;
    let space = store
        .space_by_name(t.id, "Default")
        .await
        .unwrap()
        .expect("the tenant's space");
    let declare = || Mutation::DeclareResource {
        space: space.id,
        kind: ResourceKind::Collection,
        name: "orders",
        at: now(),
    };
    let recorded = event(
        t.id,
        Action::ResourceDeclared,
        Target::Space(space.id),
        now(),
    );
    let first = store
        .commit(declare(), std::slice::from_ref(&recorded))
        .await
        .unwrap();
    assert!(first.applied);
    let again = AuditEvent {
        id: uuid::Uuid::now_v7(),
        ..recorded
    };
    let second = store.commit(declare(), &[again]).await.unwrap();
    assert!(!second.applied);
    assert_eq!(events_of(&store, t.id, &page_filter(10)).await.len(), 1);
}

async fn audit_events_filter_page_and_stay_in_their_tenant(store: DynStore) {
    let (acme, admin) = tenant(&store, "acme").await;
    let (globex, _) = tenant(&store, "globex").await;
    let jo = user(&store, acme.id, "jo").await;
    let (k, _) = key(&store, &admin, "k").await;
    let base = now() - Duration::hours(1);
    let mut written = Vec::new();
    for i in 0..6 {
        let mut e = event(
            acme.id,
            Action::KeyUpdated,
            Target::Key(k.id),
            base + Duration::minutes(i),
        );
        if i % 3 == 0 {
            e.action = Action::LoginSucceeded;
            e.actor = Actor::User(jo.id);
            e.actor_user = Some(jo.id);
            e.target = Target::User(jo.id);
        }
        written.push(e);
    }
    store.commit(Mutation::Nothing, &written).await.unwrap();
    let elsewhere = event(globex.id, Action::KeyUpdated, Target::Key(k.id), base);
    store.commit(Mutation::Nothing, &[elsewhere]).await.unwrap();

    let all = events_of(&store, acme.id, &page_filter(100)).await;
    let mut newest_first = written.clone();
    newest_first.reverse();
    assert_eq!(all, newest_first, "newest first, and only the tenant's");

    let logins = AuditFilter {
        action: Some(Action::LoginSucceeded),
        ..page_filter(100)
    };
    assert_eq!(events_of(&store, acme.id, &logins).await.len(), 2);
    let by_jo = AuditFilter {
        involving: Some(jo.id),
        ..page_filter(100)
    };
    assert_eq!(events_of(&store, acme.id, &by_jo).await.len(), 2);
    let window = AuditFilter {
        since: Some(base + Duration::minutes(1)),
        until: Some(base + Duration::minutes(3)),
        ..page_filter(100)
    };
    assert_eq!(
        events_of(&store, acme.id, &window).await,
        [written[2].clone(), written[1].clone()]
    );
    let about = AuditFilter {
        target_id: Some(jo.id.0),
        ..page_filter(100)
    };
    assert_eq!(events_of(&store, acme.id, &about).await.len(), 2);

    // Pages of 4 then 2, joined by the cursor.
    let first = store
        .audit_events(Some(acme.id), &page_filter(4))
        .await
        .unwrap();
    assert_eq!(first.events, newest_first[..4]);
    let next = AuditFilter {
        before: first.next,
        ..page_filter(4)
    };
    let second = store.audit_events(Some(acme.id), &next).await.unwrap();
    assert_eq!(second.events, newest_first[4..]);
    assert_eq!(second.next, None);
}

async fn old_audit_events_are_pruned(store: DynStore) {
    let (t, admin) = tenant(&store, "acme").await;
    let (k, _) = key(&store, &admin, "k").await;
    let old = event(
        t.id,
        Action::KeyUpdated,
        Target::Key(k.id),
        now() - Duration::days(400),
    );
    let recent = event(t.id, Action::KeyUpdated, Target::Key(k.id), now());
    store
        .commit(Mutation::Nothing, &[old, recent.clone()])
        .await
        .unwrap();
    let pruned = store
        .prune_audit(now() - Duration::days(365))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(events_of(&store, t.id, &page_filter(10)).await, [recent]);
}

// ---------------------------------------------------------------------------------------
// Limits and credits
// ---------------------------------------------------------------------------------------

fn credits_at(remaining: u64, refill: Option<Refill>, at: OffsetDateTime) -> Credits {
    Credits::new(remaining, refill, at).expect("valid credits")
}

/// A key with limits and credits as stored, and a user's shared limits.
async fn limits_and_credits_round_trip(store: DynStore) {
    let (_, admin) = tenant(&store, "acme").await;
    let mut new = new_key(&admin, "limited", Door::Native, KeyShape::Native);
    new.key.limits = KeyLimits {
        ratelimits: vec![RateLimit {
            name: "requests".into(),
            limit: 100,
            window_ms: 60_000,
            auto_apply: true,
        }],
        ip_allowlist: IpAllowlist::parse("ip_allowlist", &["10.0.0.0/8", "2001:db8::/32"]).unwrap(),
    };
    let daily = Refill {
        amount: 50,
        interval: RefillInterval::Daily,
    };
    new.key.credits = Some(credits_at(40, Some(daily), now()));
    let key = store.create_key(&new.key, &new.stored).await.unwrap();
    let read = read_key(&store, &key).await;
    assert_eq!(read.limits, new.key.limits);
    assert_eq!(read.credits, new.key.credits);
    let found = store
        .lookup_secret(&new.stored.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key.credits, new.key.credits);

    let mut user = admin.clone();
    user.ratelimits = new.key.limits.ratelimits.clone();
    user.updated_at = micro(admin.updated_at + Duration::microseconds(1));
    store
        .commit(
            Mutation::UpdateUser {
                user: &user,
                read_at: admin.updated_at,
            },
            &[],
        )
        .await
        .unwrap();
    let read = store
        .user(admin.tenant_id, admin.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.ratelimits, user.ratelimits);
    assert_eq!(found.owner.ratelimits, Vec::new(), "read before the change");
}

/// Flushes subtract what nodes spent, refills apply once per interval, and changes
/// through the API apply to the balance as stored: in any order, nothing is lost and
/// nothing goes below zero.
async fn credit_flushes_and_changes_interleave_without_losing_any(store: DynStore) {
    let (_, admin) = tenant(&store, "acme").await;
    let day = time::macros::datetime!(2026-12-03 10:00 UTC);
    let daily = Refill {
        amount: 100,
        interval: RefillInterval::Daily,
    };
    let mut new = new_key(&admin, "metered", Door::Native, KeyShape::Native);
    new.key.credits = Some(credits_at(30, Some(daily), day));
    let key = store.create_key(&new.key, &new.stored).await.unwrap();
    let spend = |spent: u64, refill: Option<(OffsetDateTime, u64)>| CreditUse {
        key_id: key.id,
        spent,
        refill,
    };
    let today = RefillInterval::Daily.start_of_interval(day);
    store
        .record_credits(&[spend(10, Some((today, 100)))])
        .await
        .unwrap();
    assert_eq!(read_key(&store, &key).await.credits.unwrap().remaining, 20);
    // More than is left: the balance stops at zero.
    store
        .record_credits(&[spend(25, Some((today, 100)))])
        .await
        .unwrap();
    assert_eq!(read_key(&store, &key).await.credits.unwrap().remaining, 0);
    // A node refilled for the next day and spent 7 of it; a second flush naming the
    // same interval does not refill again.
    let tomorrow = today + Duration::days(1);
    store
        .record_credits(&[
            spend(7, Some((tomorrow, 100))),
            spend(3, Some((tomorrow, 100))),
        ])
        .await
        .unwrap();
    let after = read_key(&store, &key).await.credits.unwrap();
    assert_eq!(after.remaining, 90);
    assert_eq!(after.refilled_at, Some(tomorrow));

    // Changes through the API, against the stored balance.
    let mut current = read_key(&store, &key).await;
    for (op, value, expected) in [
        (CreditOp::Increment, 5, 95),
        (CreditOp::Decrement, 500, 0),
        (CreditOp::Set, 42, 42),
    ] {
        let changed = ApiKey {
            updated_at: micro(current.updated_at + Duration::microseconds(1)),
            ..current.clone()
        };
        let done = store
            .commit(
                Mutation::ChangeCredits {
                    key: &changed,
                    read_at: current.updated_at,
                    change: CreditChange {
                        op,
                        value,
                        refill_amount: None,
                        refilled_at: None,
                    },
                },
                &[],
            )
            .await
            .unwrap();
        assert_eq!(done.credits_left, Some(expected), "{op:?}");
        current = read_key(&store, &key).await;
        assert_eq!(current.credits.as_ref().unwrap().remaining, expected as u64);
    }
    // A flush after the change subtracts from the new balance.
    store
        .record_credits(&[spend(2, Some((tomorrow, 100)))])
        .await
        .unwrap();
    assert_eq!(read_key(&store, &key).await.credits.unwrap().remaining, 40);
    // A change against a stale read is refused, not applied.
    let stale = store
        .commit(
            Mutation::ChangeCredits {
                key: &current,
                read_at: key.updated_at,
                change: CreditChange {
                    op: CreditOp::Set,
                    value: 1,
                    refill_amount: None,
                    refilled_at: None,
                },
            },
            &[],
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    // Keys without credits are left alone by flushes.
    let (plain, _) = key_of(&store, &admin).await;
    store
        .record_credits(&[CreditUse {
            key_id: plain.id,
            spent: 5,
            refill: None,
        }])
        .await
        .unwrap();
    assert_eq!(read_key(&store, &plain).await.credits, None);
}

async fn key_of(store: &DynStore, owner: &User) -> (ApiKey, Secret) {
    key(store, owner, "plain").await
}

/// Two nodes' flushes of the same key, minute and code add up; each count lands in its
/// minute, hour and day bucket; reads group by key, owner or nothing; the recent use
/// of listed keys is read at once; pruning takes one granularity's old buckets only.
async fn verification_counts_add_up_across_flushes_and_granularities(store: DynStore) {
    use keyward_core::analytics::{BucketRange, Granularity, GroupBy, Retention};
    use keyward_core::VerifyCode;
    use keyward_store::{CountsQuery, UsageBatch, VerificationCount};
    let (tenant, admin) = tenant(&store, "acme").await;
    let new = new_key(&admin, "counted", Door::Native, KeyShape::Native);
    let key = store.create_key(&new.key, &new.stored).await.unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let minute = Granularity::Minute.bucket(now);
    let count = |minute: i64, code: VerifyCode, count: u64, keyed: bool| VerificationCount {
        tenant_id: tenant.id,
        key_id: keyed.then_some(key.id),
        owner_id: keyed.then_some(admin.id),
        minute,
        code,
        count,
    };
    let node_a = [
        count(minute, VerifyCode::Valid, 5, true),
        count(minute - 60, VerifyCode::RateLimited, 2, true),
        count(minute, VerifyCode::NotFound, 3, false),
    ];
    let node_b = [count(minute, VerifyCode::Valid, 7, true)];
    for counts in [&node_a[..], &node_b[..]] {
        let batch = UsageBatch {
            verifications: counts,
            ..UsageBatch::default()
        };
        store.record_flush(batch).await.unwrap();
    }
    let range =
        |g: Granularity| BucketRange::new(g, now - 3_600, now, &Retention::default(), now).unwrap();
    let total = |rows: &[keyward_store::CountRow], code| -> u64 {
        rows.iter()
            .filter(|r| r.code == code)
            .map(|r| r.count)
            .sum()
    };
    for g in Granularity::ALL {
        let query = CountsQuery {
            tenant: tenant.id,
            key: None,
            owner: None,
            range: range(g),
            group_by: GroupBy::Code,
        };
        let rows = store.verification_counts(&query).await.unwrap();
        assert_eq!(total(&rows, VerifyCode::Valid), 12, "{g:?}");
        assert_eq!(total(&rows, VerifyCode::RateLimited), 2, "{g:?}");
        assert_eq!(total(&rows, VerifyCode::NotFound), 3, "{g:?}");
        assert!(rows.iter().all(|r| r.group.is_none()));
    }
    let by_key = CountsQuery {
        tenant: tenant.id,
        key: Some(key.id),
        owner: None,
        range: range(Granularity::Minute),
        group_by: GroupBy::Key,
    };
    let rows = store.verification_counts(&by_key).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.group == Some(key.id.0)));
    let valid = rows.iter().find(|r| r.code == VerifyCode::Valid).unwrap();
    assert_eq!((valid.bucket, valid.count), (minute, 12));
    let by_owner = CountsQuery {
        owner: Some(admin.id),
        key: None,
        group_by: GroupBy::Owner,
        ..by_key
    };
    let rows = store.verification_counts(&by_owner).await.unwrap();
    assert_eq!(total(&rows, VerifyCode::Valid), 12);
    assert_eq!(total(&rows, VerifyCode::NotFound), 0, "no owner's");

    let recent = store
        .recent_use(
            tenant.id,
            &[key.id],
            Granularity::Hour.bucket(now) - 23 * 3_600,
            Granularity::Day.bucket(now) - 29 * 86_400,
        )
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].1.day.get(VerifyCode::Valid), 12);
    assert_eq!(recent[0].1.month.total(), 14);

    let pruned = store
        .prune_verifications(Granularity::Minute, minute)
        .await
        .unwrap();
    assert_eq!(pruned, 1, "the minute before this one");
    let query = CountsQuery {
        tenant: tenant.id,
        key: None,
        owner: None,
        range: range(Granularity::Hour),
        group_by: GroupBy::Code,
    };
    let rows = store.verification_counts(&query).await.unwrap();
    assert_eq!(total(&rows, VerifyCode::RateLimited), 2, "hours are kept");
}
