/**
 * Schema migrations for the SQLite store, applied in order and recorded in
 * `PRAGMA user_version`. A migration is never edited once released; a
 * change is a new migration.
 */

export const MIGRATIONS: readonly string[] = [
  /* 1: tenants, keys, the request ledger, usage events and ratings. */ `
  CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    timezone    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT,
    secret_hash  BLOB NOT NULL,
    models       TEXT,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
  ) STRICT;
  CREATE INDEX api_keys_tenant ON api_keys(tenant_id);

  CREATE TABLE requests (
    id                      TEXT PRIMARY KEY,
    tenant_id               TEXT NOT NULL REFERENCES tenants(id),
    key_id                  TEXT NOT NULL,
    end_user                TEXT,
    model                   TEXT NOT NULL,
    deployment_id           TEXT NOT NULL,
    provider                TEXT NOT NULL,
    upstream_model          TEXT NOT NULL,
    price_key               TEXT NOT NULL,
    stream                  INTEGER NOT NULL,
    served_at               INTEGER NOT NULL,
    reserved_input_tokens   INTEGER NOT NULL,
    reserved_output_tokens  INTEGER NOT NULL,
    reserved_cost           TEXT,
    instance_id             TEXT NOT NULL,
    state                   TEXT NOT NULL CHECK (state IN
                              ('pending', 'settled', 'failed', 'recovered')),
    finished_at             INTEGER,
    status_code             INTEGER,
    error_code              TEXT,
    upstream_request_id     TEXT
  ) STRICT;
  CREATE INDEX requests_pending ON requests(state) WHERE state = 'pending';
  CREATE INDEX requests_tenant_time ON requests(tenant_id, served_at);

  -- Raw usage, one row per upstream attempt; never updated or deleted.
  CREATE TABLE usage_events (
    id                     TEXT PRIMARY KEY,
    request_id             TEXT NOT NULL,
    attempt                INTEGER NOT NULL,
    tenant_id              TEXT NOT NULL REFERENCES tenants(id),
    end_user               TEXT,
    model                  TEXT NOT NULL,
    deployment_id          TEXT NOT NULL,
    provider               TEXT NOT NULL,
    upstream_model         TEXT NOT NULL,
    served_at              INTEGER NOT NULL,
    input_tokens           INTEGER NOT NULL,
    cache_read_tokens      INTEGER NOT NULL,
    cache_write_tokens     INTEGER NOT NULL,
    cache_write_1h_tokens  INTEGER NOT NULL,
    output_tokens          INTEGER NOT NULL,
    reasoning_tokens       INTEGER NOT NULL,
    units                  TEXT NOT NULL,
    estimated              INTEGER NOT NULL,
    served                 INTEGER NOT NULL,
    source                 TEXT NOT NULL,
    raw_usage              TEXT,
    UNIQUE (request_id, attempt)
  ) STRICT;
  CREATE INDEX usage_events_tenant_time ON usage_events(tenant_id, served_at);

  -- A price applied to an event. Re-rating adds a row with a higher seq.
  CREATE TABLE ratings (
    event_id            TEXT NOT NULL REFERENCES usage_events(id),
    seq                 INTEGER NOT NULL,
    tenant_id           TEXT NOT NULL,
    price_book_version  TEXT NOT NULL,
    provider_rate_id    TEXT,
    p_input             TEXT,
    p_cache_read        TEXT,
    p_cache_write       TEXT,
    p_cache_write_1h    TEXT,
    p_output            TEXT,
    provider_cost       TEXT,
    tenant_rate_id      TEXT,
    t_input             TEXT,
    t_cache_read        TEXT,
    t_cache_write       TEXT,
    t_cache_write_1h    TEXT,
    t_output            TEXT,
    tenant_charge       TEXT,
    unknown             TEXT NOT NULL,
    rated_at            INTEGER NOT NULL,
    PRIMARY KEY (event_id, seq)
  ) STRICT;

  CREATE TABLE price_books (
    version     TEXT PRIMARY KEY,
    content     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  ) STRICT;
  `,

  /* 2: gateway processes, so recovery settles only a dead one's requests. */ `
  CREATE TABLE instances (
    id            TEXT PRIMARY KEY,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
  ) STRICT;
  `,

  /* 3: the webhook outbox, retried until delivered; ids are deterministic. */ `
  CREATE TABLE webhook_events (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    type             TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN
                       ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_error       TEXT,
    delivered_at     INTEGER
  ) STRICT;
  CREATE INDEX webhook_events_due ON webhook_events(next_attempt_at)
    WHERE state = 'pending';
  `,

  /* 4: limits managed through the admin API and CLI, beside the config's. */ `
  CREATE TABLE limits (
    id          TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
  ) STRICT;
  `,

  /* 5: the limit reservations a request holds, released if its process dies. */ `
  ALTER TABLE requests ADD COLUMN reservations TEXT;
  `,

  /* 6: routing: the attempt in flight, the route's tenant price, the record. */ `
  ALTER TABLE requests ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE requests ADD COLUMN tenant_price_key TEXT;
  ALTER TABLE requests ADD COLUMN routing TEXT;
  `,
];
