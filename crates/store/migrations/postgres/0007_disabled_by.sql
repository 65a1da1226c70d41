-- Who disabled a key, and whether they did it as an administrator: a key an
-- administrator disabled can be enabled again only by an administrator.
ALTER TABLE api_keys ADD COLUMN disabled_by UUID;
ALTER TABLE api_keys ADD COLUMN disabled_by_admin BOOLEAN NOT NULL DEFAULT FALSE;
