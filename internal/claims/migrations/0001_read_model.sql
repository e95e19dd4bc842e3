-- The query side: one row per claim, written only by the projector (and
-- replaced whole by a rebuild). Columns an out-of-order event may find
-- unset are nullable: a ClaimAssigned handled before its ClaimCreated
-- leaves the creation facts empty until ClaimCreated arrives.
CREATE TABLE claims (
    id                  TEXT PRIMARY KEY,
    customer_id         TEXT NOT NULL DEFAULT '',
    claim_type          TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL DEFAULT '',
    description         TEXT NOT NULL DEFAULT '',
    product_id          TEXT NOT NULL DEFAULT '',
    order_id            TEXT NOT NULL DEFAULT '',
    agent_id            TEXT NOT NULL DEFAULT '',
    resolution          TEXT NOT NULL DEFAULT '',
    enrichment          TEXT,
    enrichment_status   TEXT NOT NULL DEFAULT '',
    enrichment_version  BIGINT NOT NULL DEFAULT 0,
    created_at          TIMESTAMP,
    updated_at          TIMESTAMP,
    assigned_at         TIMESTAMP,
    started_at          TIMESTAMP,
    resolved_at         TIMESTAMP,
    closed_at           TIMESTAMP,
    resolve_ms          BIGINT,
    version             BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX claims_status ON claims (status, created_at);
CREATE INDEX claims_customer ON claims (customer_id, created_at);
CREATE INDEX claims_agent ON claims (agent_id, created_at);
CREATE INDEX claims_type ON claims (claim_type, created_at);
CREATE INDEX claims_created ON claims (created_at, id);
