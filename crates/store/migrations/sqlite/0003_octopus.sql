-- Octopus Deploy lets one user hold several keys with the same Purpose (the key's
-- name), so keys made through the Octopus door are left out of the per-owner rule.
DROP INDEX api_keys_live_name;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (tenant_id, owner_id, name)
    WHERE revoked_at IS NULL AND door <> 'octopus';
