-- An email is unique within its tenant, not across tenants: an administrator must not
-- learn that an address has an account in another tenant. SQLite cannot drop a
-- column's UNIQUE, so the table is rebuilt inside the migration's transaction, where
-- foreign keys cannot be turned off: they are deferred instead, so that the keys whose
-- owners are briefly gone find them again before the commit checks.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE users_before_0008 AS SELECT * FROM users;
DROP TABLE users;
CREATE TABLE users (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB NOT NULL UNIQUE,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id),
    email          TEXT NOT NULL,
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    grants         TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    session_epoch  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, username),
    UNIQUE (tenant_id, email)
);
INSERT INTO users (seq, id, tenant_id, email, username, display_name, password_hash,
    role, active, grants, created_at, updated_at, session_epoch)
SELECT seq, id, tenant_id, email, username, display_name, password_hash, role, active,
    grants, created_at, updated_at, session_epoch FROM users_before_0008;
DROP TABLE users_before_0008;
CREATE INDEX users_by_email ON users (email);
