-- Usage analytics (issue 22): verifications counted by tenant, key, owner and outcome
-- code, in buckets of one minute, one hour and one day (`granularity` is the width in
-- seconds, `bucket` the start in Unix seconds). Each node's batched flush adds to the
-- three buckets of each count with one upsert, so nodes' counts add up and nothing
-- rolls up later. Verifications of secrets that match no key (NOT_FOUND, MALFORMED)
-- are the tenant's, with the nil UUID as key and owner. Kept per granularity for the
-- retention the server is given; pruned by bucket. (SQLite: WITHOUT ROWID, so that the
-- primary key is the table and a flush's upsert finds and updates a row in one tree.)
CREATE TABLE verification_counts (
    granularity BIGINT NOT NULL,
    bucket      BIGINT NOT NULL,
    tenant_id   BLOB NOT NULL,
    key_id      BLOB NOT NULL,
    owner_id    BLOB NOT NULL,
    code        TEXT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, granularity, key_id, bucket, code)
) WITHOUT ROWID;
CREATE INDEX verification_counts_by_time ON verification_counts (tenant_id, granularity, bucket);
CREATE INDEX verification_counts_by_owner ON verification_counts (tenant_id, granularity, owner_id, bucket);
CREATE INDEX verification_counts_to_prune ON verification_counts (granularity, bucket);
