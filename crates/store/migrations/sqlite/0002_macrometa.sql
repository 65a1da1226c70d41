-- A Macrometa keyid names one live key in its tenant, whoever owns it. The database
-- enforces it, so two concurrent creations cannot both succeed.
CREATE UNIQUE INDEX api_keys_macrometa_keyid ON api_keys (tenant_id, name)
    WHERE door = 'macrometa' AND revoked_at IS NULL;

-- Names of the resources inside a space that access grants refer to (Macrometa's
-- collections and streams). Only names: Keyward stores no documents.
CREATE TABLE space_resources (
    space_id    BLOB NOT NULL REFERENCES spaces (id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (space_id, kind, name)
);
