-- Times are microseconds since the Unix epoch (UTC); grants and metadata are JSON text.
CREATE TABLE tenants (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE spaces (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          BLOB NOT NULL UNIQUE,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE users (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB NOT NULL UNIQUE,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL UNIQUE,
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    grants         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (tenant_id, username)
);

CREATE TABLE api_keys (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            BLOB NOT NULL UNIQUE,
    tenant_id     BLOB NOT NULL REFERENCES tenants (id),
    owner_id      BLOB NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    door          TEXT NOT NULL,
    shape         TEXT NOT NULL,
    start         TEXT NOT NULL,
    public_id     TEXT UNIQUE,
    grants        TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    use_count     INTEGER NOT NULL DEFAULT 0
);

-- A name is unique per owner among keys that are not revoked.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, owner_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, seq);
CREATE INDEX api_keys_by_owner ON api_keys (owner_id, seq);

-- Only keyed hashes of secrets; a key has two while a rotation's grace period runs.
CREATE TABLE key_secrets (
    hash        BLOB PRIMARY KEY NOT NULL,
    key_id      BLOB NOT NULL REFERENCES api_keys (id),
    expires_at  INTEGER
);
CREATE INDEX key_secrets_by_key ON key_secrets (key_id);
