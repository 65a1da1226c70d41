-- Octopus Deploy lets one user hold several keys with the same Purpose (the key's
-- name), so keys made through the Octopus door are left out of the per-owner rule.
-- Macrometa keyids have their own, tenant-wide rule (0002), so a member's native key
-- does not block a keyid of the same name.
DROP INDEX api_keys_live_name;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, owner_id, name)
    WHERE revoked_at IS NULL AND door NOT IN ('octopus', 'macrometa');
