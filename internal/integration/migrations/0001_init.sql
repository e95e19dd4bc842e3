-- One row per claim created in degraded mode: the enrichment it still
-- needs. The row is written before the claim (under the claim id this
-- context chose), so no claim is ever created pending without a row.
-- state: pending (to do), done (enriched, by us or found complete),
-- failed (can never complete: unknown order, another customer's order,
-- claim closed or never created). Rows are kept once finished: they are
-- the record of what degraded mode did.
CREATE TABLE enrichments (
    claim_id     TEXT PRIMARY KEY,
    order_id     TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    -- verified: the order answered at creation and belongs to customer_id;
    -- otherwise enrichment checks it before attaching the order.
    verified     BOOLEAN NOT NULL DEFAULT FALSE,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    outcome      TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    -- lease_until: a process working on the row holds it until then, so
    -- concurrent rounds do not repeat each other's calls.
    lease_until  TIMESTAMP,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP
);

CREATE INDEX enrichments_state ON enrichments (state, created_at);
