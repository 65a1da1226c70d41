-- Times are microseconds since the Unix epoch (UTC); grants and metadata are JSON text.
-- Kept column for column like the SQLite schema, so one body of SQL serves both.
CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE spaces (
    seq         BIGSERIAL PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    tenant_id   UUID NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE users (
    seq            BIGSERIAL PRIMARY KEY,
    id             UUID NOT NULL UNIQUE,
    tenant_id      UUID NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL UNIQUE,
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    grants         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (tenant_id, username)
);

CREATE TABLE api_keys (
    seq           BIGSERIAL PRIMARY KEY,
    id            UUID NOT NULL UNIQUE,
    tenant_id     UUID NOT NULL REFERENCES tenants (id),
    owner_id      UUID NOT NULL REFERENCES users (id),
    name          TEXT NOT NULL,
    door          TEXT NOT NULL,
    shape         TEXT NOT NULL,
    start         TEXT NOT NULL,
    public_id     TEXT UNIQUE,
    grants        TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT,
    use_count     BIGINT NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, owner_id, name)
    WHERE revoked_at IS NULL;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, seq);
CREATE INDEX api_keys_by_owner ON api_keys (owner_id, seq);

CREATE TABLE key_secrets (
    hash        BYTEA PRIMARY KEY,
    key_id      UUID NOT NULL REFERENCES api_keys (id),
    expires_at  BIGINT
);
CREATE INDEX key_secrets_by_key ON key_secrets (key_id);
