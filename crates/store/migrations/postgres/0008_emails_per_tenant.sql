-- An email is unique within its tenant, not across tenants: an administrator must not
-- learn that an address has an account in another tenant.
ALTER TABLE users DROP CONSTRAINT users_email_key;
ALTER TABLE users ADD CONSTRAINT users_tenant_id_email_key UNIQUE (tenant_id, email);
CREATE INDEX users_by_email ON users (email);
