/**
 * The embedded store: SQLite in WAL mode through better-sqlite3.
 *
 * Reads run directly on the connection. Writes go through a `WriteBatcher`
 * (group commit), and resolve once committed; with `synchronous = FULL`
 * that means synced to disk.
 */
import Database from 'better-sqlite3';

import type { TokenClass } from '../../metering/usage.js';
import {
  ConflictError,
  type ApiKeyRecord,
  type AttemptStart,
  type InstanceRecord,
  type LimitScopeQuery,
  type StoredLimit,
  type LimitScopeRow,
  type OpenRequestRecord,
  type RateStrings,
  type RatedUsageRow,
  type RatingRecord,
  type RequestDetail,
  type Settlement,
  type Store,
  type TenantRecord,
  type TenantScope,
  type UsageEventRecord,
  type UsageQuery,
  type WebhookDelivery,
  type WebhookEventRecord,
  type WebhookOutcome,
} from '../store.js';
import { MIGRATIONS } from './migrations.js';
import { WriteBatcher } from './write-batcher.js';

export interface SqliteStoreOptions {
  /** A file path, or `:memory:` for a throwaway store. */
  readonly path: string;
  readonly synchronous?: 'full' | 'normal';
  /**
   * How long a write waits for the lock another connection holds before
   * it fails (write-batcher.ts); the event loop stays free meanwhile.
   */
  readonly busyWaitMs?: number;
}

type Row = Record<string, unknown>;

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #writer: WriteBatcher;

  constructor(options: SqliteStoreOptions) {
    this.#db = new Database(options.path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(
      `synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`,
    );
    this.#db.pragma('foreign_keys = ON');
    // At start, before anything is served, a migration may wait as long
    // as it must for another gateway's.
    this.#db.pragma('busy_timeout = 5000');
    migrate(this.#db);
    // From then on SQLite's own wait blocks the event loop: kept short,
    // for reads meeting a writer's brief lock. Writes wait out a longer
    // lock asynchronously, in the batcher.
    this.#db.pragma('busy_timeout = 50');
    this.#writer = new WriteBatcher(this.#db, {
      ...(options.busyWaitMs !== undefined && {
        busyWaitMs: options.busyWaitMs,
      }),
    });
  }

  async createTenant(tenant: TenantRecord): Promise<void> {
    const insert = this.#prepare(
      `INSERT INTO tenants (id, name, timezone, created_at)
       VALUES (?, ?, ?, ?)`,
    );
    await this.#writer.write(() => {
      try {
        insert.run(tenant.id, tenant.name, tenant.timezone, tenant.createdAt);
      } catch (error) {
        throw asConflict(error, `tenant "${tenant.name}" already exists`);
      }
    });
  }

  findTenant(idOrName: string): Promise<TenantRecord | undefined> {
    const row = this.#prepare(
      `SELECT * FROM tenants WHERE id = ? OR name = ?
         ORDER BY id = ? DESC LIMIT 1`,
    ).get(idOrName, idOrName, idOrName) as Row | undefined;
    return Promise.resolve(row && toTenant(row));
  }

  listTenants(): Promise<TenantRecord[]> {
    const rows = this.#prepare(
      'SELECT * FROM tenants ORDER BY created_at, id',
    ).all() as Row[];
    return Promise.resolve(rows.map(toTenant));
  }

  async createApiKey(key: ApiKeyRecord): Promise<void> {
    const insert = this.#prepare(
      `INSERT INTO api_keys
         (id, tenant_id, name, secret_hash, models, created_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    );
    await this.#writer.write(() => {
      insert.run(
        key.id,
        key.tenantId,
        key.name,
        key.secretHash,
        key.models && JSON.stringify(key.models),
        key.createdAt,
        key.revokedAt,
      );
    });
  }

  findApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const row = this.#statements().findKey.get(id) as Row | undefined;
    return Promise.resolve(row && toApiKey(row));
  }

  listApiKeys(tenantId: string): Promise<ApiKeyRecord[]> {
    const rows = this.#prepare(
      'SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id',
    ).all(tenantId) as Row[];
    return Promise.resolve(rows.map(toApiKey));
  }

  async revokeApiKey(
    tenantId: string,
    keyId: string,
    at: number,
  ): Promise<boolean> {
    const update = this.#prepare(
      `UPDATE api_keys SET revoked_at = ?
       WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL`,
    );
    let changed = false;
    await this.#writer.write(() => {
      changed = update.run(at, keyId, tenantId).changes === 1;
    });
    return changed;
  }

  async openRequest(request: OpenRequestRecord): Promise<void> {
    const { openRequest } = this.#statements();
    await this.#writer.write(() => {
      try {
        openRequest.run({
          ...request,
          stream: request.stream ? 1 : 0,
          reservations: request.reservations ?? null,
          tenantPriceKey: request.tenantPriceKey ?? null,
          attempt: request.attempt ?? 1,
        });
      } catch (error) {
        throw asConflict(error, `request ${request.id} was recorded before`);
      }
    });
  }

  async settleRequest(settlement: Settlement): Promise<void> {
    const { closeRequest, insertEvent, insertRating } = this.#statements();
    await this.#writer.write(() => {
      const closed = closeRequest.run({
        id: settlement.requestId,
        tenantId: settlement.tenantId,
        state: settlement.state,
        finishedAt: settlement.finishedAt,
        statusCode: settlement.statusCode,
        errorCode: settlement.errorCode,
        upstreamRequestId: settlement.upstreamRequestId,
        routing: settlement.routing ?? null,
        served: settlement.served ? 1 : 0,
        attempt: settlement.served?.attempt ?? null,
        deploymentId: settlement.served?.deploymentId ?? null,
        provider: settlement.served?.provider ?? null,
        upstreamModel: settlement.served?.upstreamModel ?? null,
        priceKey: settlement.served?.priceKey ?? null,
      });
      if (closed.changes !== 1) {
        throw new ConflictError(
          `request ${settlement.requestId} is not open; it was settled before`,
        );
      }
      for (const { event, rating } of settlement.events) {
        try {
          insertEvent.run(eventParams(event));
        } catch (error) {
          throw asConflict(error, `usage event ${event.id} exists already`);
        }
        insertRating.run(ratingParams(rating));
      }
    });
  }

  async beginAttempt(start: AttemptStart): Promise<void> {
    const update = this.#prepare(
      `UPDATE requests
       SET attempt = @attempt, deployment_id = @deploymentId,
           provider = @provider, upstream_model = @upstreamModel,
           price_key = @priceKey
       WHERE id = @requestId AND tenant_id = @tenantId AND state = 'pending'
         AND attempt <= @attempt`,
    );
    await this.#writer.write(() => {
      const changed = update.run({ ...start });
      if (changed.changes !== 1) {
        throw new ConflictError(
          `request ${start.requestId} is not open before attempt ` +
            `${start.attempt}`,
        );
      }
    });
  }

  listOpenRequests(): Promise<OpenRequestRecord[]> {
    const rows = this.#prepare(
      `SELECT * FROM requests WHERE state = 'pending' ORDER BY served_at`,
    ).all() as Row[];
    return Promise.resolve(rows.map(toOpenRequest));
  }

  limitScopeUsage(query: LimitScopeQuery): Promise<LimitScopeRow[]> {
    const clauses = ['q.tenant_id = ?', 'q.served_at >= ?', 'q.served_at < ?'];
    const params: unknown[] = [query.tenantId, query.from, query.to];
    if (query.keyId !== undefined) {
      clauses.push('q.key_id = ?');
      params.push(query.keyId);
    }
    if (query.endUser !== undefined) {
      clauses.push('q.end_user IS ?');
      params.push(query.endUser);
    }
    if (query.model !== undefined) {
      clauses.push('q.model = ?');
      params.push(query.model);
    }
    const rows = this.#prepare(
      `SELECT q.id, q.state, q.served_at, q.reserved_cost,
                q.reserved_input_tokens, q.reserved_output_tokens,
                e.input_tokens, e.cache_read_tokens, e.cache_write_tokens,
                e.cache_write_1h_tokens, e.output_tokens,
                e.id AS event_id, r.tenant_charge
         FROM requests q
         LEFT JOIN usage_events e ON e.request_id = q.id AND e.served = 1
         LEFT JOIN ratings r ON r.event_id = e.id AND r.seq = (
           SELECT MAX(seq) FROM ratings WHERE event_id = e.id)
         WHERE ${clauses.join(' AND ')}
         ORDER BY q.id`,
    ).all(...params) as Row[];
    const byRequest = new Map<
      string,
      Mutable<LimitScopeRow> & { tokens: Mutable<LimitScopeRow['tokens']> }
    >();
    for (const row of rows) {
      const id = row['id'] as string;
      let entry = byRequest.get(id);
      if (!entry) {
        entry = {
          requestId: id,
          // Recovery settled it at its worst case, as its reservation
          // counted it: counted so again, whatever classes the estimate
          // was written in.
          pending: row['state'] === 'pending' || row['state'] === 'recovered',
          servedAt: row['served_at'] as number,
          tokens: {
            inputTokens: 0,
            cacheReadTokens: 0,
            cacheWriteTokens: 0,
            cacheWrite1hTokens: 0,
            outputTokens: 0,
          },
          reservedInputTokens: row['reserved_input_tokens'] as number,
          reservedOutputTokens: row['reserved_output_tokens'] as number,
          charges: [],
          reservedCost: row['reserved_cost'] as string | null,
        };
        byRequest.set(id, entry);
      }
      if (row['event_id'] !== null) {
        const tokens = entry.tokens;
        tokens.inputTokens += row['input_tokens'] as number;
        tokens.cacheReadTokens += row['cache_read_tokens'] as number;
        tokens.cacheWriteTokens += row['cache_write_tokens'] as number;
        tokens.cacheWrite1hTokens += row['cache_write_1h_tokens'] as number;
        tokens.outputTokens += row['output_tokens'] as number;
        entry.charges = [
          ...entry.charges,
          row['tenant_charge'] as string | null,
        ];
      }
    }
    return Promise.resolve([...byRequest.values()]);
  }

  findRequest(
    scope: TenantScope,
    requestId: string,
  ): Promise<RequestDetail | undefined> {
    const [tenantClause, tenantParams] = scopeClause(scope, 'tenant_id');
    const row = this.#prepare(
      `SELECT * FROM requests WHERE id = ? AND ${tenantClause}`,
    ).get(requestId, ...tenantParams) as Row | undefined;
    if (!row) return Promise.resolve(undefined);

    const events = this.#prepare(
      `SELECT e.*, r.event_id AS r_event_id, r.price_book_version,
                r.provider_rate_id, r.p_input, r.p_cache_read, r.p_cache_write,
                r.p_cache_write_1h, r.p_output, r.provider_cost,
                r.tenant_rate_id, r.t_input, r.t_cache_read, r.t_cache_write,
                r.t_cache_write_1h, r.t_output, r.tenant_charge, r.unknown,
                r.rated_at
         FROM usage_events e
         LEFT JOIN ratings r ON r.event_id = e.id AND r.seq = (
           SELECT MAX(seq) FROM ratings WHERE event_id = e.id)
         WHERE e.request_id = ? AND e.tenant_id = ?
         ORDER BY e.attempt`,
    ).all(requestId, row['tenant_id']) as Row[];
    return Promise.resolve({
      request: {
        ...toOpenRequest(row),
        state: row['state'] as RequestDetail['request']['state'],
        finishedAt: row['finished_at'] as number | null,
        statusCode: row['status_code'] as number | null,
        errorCode: row['error_code'] as string | null,
        upstreamRequestId: row['upstream_request_id'] as string | null,
        routing: row['routing'] as string | null,
      },
      events: events.map((e) => ({
        event: toEvent(e),
        rating: e['r_event_id'] === null ? undefined : toRating(e),
      })),
    });
  }

  summarizeUsage(query: UsageQuery): Promise<RatedUsageRow[]> {
    // A throw inside the executor becomes a rejection, not a sync throw.
    return new Promise((resolve) => resolve(this.#summarizeUsage(query)));
  }

  #summarizeUsage(query: UsageQuery): RatedUsageRow[] {
    const groups: string[] = [];
    const select: string[] = [];
    const params: unknown[] = [];
    let join = '';
    for (const dimension of query.groupBy) {
      switch (dimension) {
        case 'tenant':
          groups.push('e.tenant_id');
          select.push('e.tenant_id AS tenant_id');
          break;
        case 'model':
          groups.push('e.model');
          select.push('e.model AS model');
          break;
        case 'endUser':
          groups.push('e.end_user');
          select.push('e.end_user AS end_user');
          break;
        case 'day':
          if (!query.days) throw new Error('grouping by day needs days');
          join = `JOIN json_each(?) d
                    ON e.served_at >= d.value ->> '$.from'
                   AND e.served_at < d.value ->> '$.to'`;
          params.push(JSON.stringify(query.days));
          groups.push(`d.value ->> '$.day'`);
          select.push(`d.value ->> '$.day' AS day`);
          break;
      }
    }
    const [tenantClause, tenantParams] = scopeClause(
      query.scope,
      'e.tenant_id',
    );
    params.push(...tenantParams, query.from, query.to);

    const rateColumns = [
      'p_input',
      'p_cache_read',
      'p_cache_write',
      'p_cache_write_1h',
      'p_output',
      't_input',
      't_cache_read',
      't_cache_write',
      't_cache_write_1h',
      't_output',
    ].map((c) => `r.${c}`);
    const groupColumns = [
      ...groups,
      ...rateColumns,
      'r.provider_cost IS NULL',
      'r.tenant_charge IS NULL',
    ];

    const rows = this.#prepare(
      `SELECT ${[...select, ...rateColumns].join(', ')},
                r.provider_cost IS NULL AS provider_unknown,
                r.tenant_charge IS NULL AS tenant_unknown,
                SUM(e.served) AS requests,
                COUNT(*) AS events,
                SUM(e.estimated) AS estimated_events,
                SUM(e.input_tokens) AS input_tokens,
                SUM(e.cache_read_tokens) AS cache_read_tokens,
                SUM(e.cache_write_tokens) AS cache_write_tokens,
                SUM(e.cache_write_1h_tokens) AS cache_write_1h_tokens,
                SUM(e.output_tokens) AS output_tokens,
                SUM(e.reasoning_tokens) AS reasoning_tokens
         FROM usage_events e
         JOIN ratings r ON r.event_id = e.id AND r.seq = (
           SELECT MAX(seq) FROM ratings WHERE event_id = e.id)
         ${join}
         WHERE ${tenantClause} AND e.served_at >= ? AND e.served_at < ?
           ${query.servedOnly ? 'AND e.served = 1' : ''}
         GROUP BY ${groupColumns.join(', ')}
         ORDER BY ${groups.length > 0 ? groups.join(', ') : '1'}`,
    ).all(...params) as Row[];

    return rows.map((row): RatedUsageRow => ({
      ...(query.groupBy.includes('tenant') && {
        tenantId: row['tenant_id'] as string,
      }),
      ...(query.groupBy.includes('model') && {
        model: row['model'] as string,
      }),
      ...(query.groupBy.includes('endUser') && {
        endUser: row['end_user'] as string | null,
      }),
      ...(query.groupBy.includes('day') && { day: row['day'] as string }),
      requests: row['requests'] as number,
      events: row['events'] as number,
      estimatedEvents: row['estimated_events'] as number,
      tokens: {
        input: row['input_tokens'] as number,
        cacheRead: row['cache_read_tokens'] as number,
        cacheWrite: row['cache_write_tokens'] as number,
        cacheWrite1h: row['cache_write_1h_tokens'] as number,
        output: row['output_tokens'] as number,
        reasoning: row['reasoning_tokens'] as number,
      },
      providerRates: rates(row, 'p_'),
      tenantRates: rates(row, 't_'),
      providerCostKnown: row['provider_unknown'] === 0,
      tenantChargeKnown: row['tenant_unknown'] === 0,
    }));
  }

  async registerInstance(instance: InstanceRecord): Promise<void> {
    const insert = this.#prepare(
      `INSERT INTO instances (id, host, pid, started_at, heartbeat_at,
         stopped_at)
       VALUES (@id, @host, @pid, @startedAt, @heartbeatAt, @stoppedAt)`,
    );
    await this.#writer.write(() => {
      insert.run(instance);
    });
  }

  async heartbeatInstance(id: string, at: number): Promise<void> {
    const update = this.#prepare(
      `UPDATE instances SET heartbeat_at = ? WHERE id = ?`,
    );
    await this.#writer.write(() => {
      update.run(at, id);
    });
  }

  async stopInstance(id: string, at: number): Promise<void> {
    const update = this.#prepare(
      `UPDATE instances SET stopped_at = ?, heartbeat_at = ? WHERE id = ?`,
    );
    await this.#writer.write(() => {
      update.run(at, at, id);
    });
  }

  findInstances(ids: readonly string[]): Promise<InstanceRecord[]> {
    if (ids.length === 0) return Promise.resolve([]);
    const rows = this.#prepare(
      `SELECT * FROM instances WHERE id IN (SELECT value FROM json_each(?))`,
    ).all(JSON.stringify(ids)) as Row[];
    return Promise.resolve(
      rows.map((row) => ({
        id: row['id'] as string,
        host: row['host'] as string,
        pid: row['pid'] as number,
        startedAt: row['started_at'] as number,
        heartbeatAt: row['heartbeat_at'] as number,
        stoppedAt: row['stopped_at'] as number | null,
      })),
    );
  }

  async enqueueWebhook(event: WebhookEventRecord): Promise<boolean> {
    const insert = this.#prepare(
      `INSERT OR IGNORE INTO webhook_events
         (id, tenant_id, type, body, created_at, state, attempts,
          next_attempt_at)
       VALUES (@id, @tenantId, @type, @body, @createdAt, 'pending', 0,
          @createdAt)`,
    );
    let added = false;
    await this.#writer.write(() => {
      added = insert.run(event).changes === 1;
    });
    return added;
  }

  async claimWebhooks(
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<WebhookDelivery[]> {
    // Polled often: a read first, so an idle queue costs no write.
    const due = this.#prepare(
      `SELECT 1 FROM webhook_events
       WHERE state = 'pending' AND next_attempt_at <= ? LIMIT 1`,
    );
    if (due.get(now) === undefined) return [];
    const claim = this.#prepare(
      `UPDATE webhook_events
       SET attempts = attempts + 1, next_attempt_at = @leasedUntil
       WHERE id IN (
         SELECT id FROM webhook_events
         WHERE state = 'pending' AND next_attempt_at <= @now
         ORDER BY next_attempt_at, id LIMIT @limit)
       RETURNING *`,
    );
    let rows: Row[] = [];
    await this.#writer.write(() => {
      rows = claim.all({ now, leasedUntil: now + leaseMs, limit }) as Row[];
    });
    return rows
      .map((row) => ({
        id: row['id'] as string,
        tenantId: row['tenant_id'] as string,
        type: row['type'] as string,
        body: row['body'] as string,
        createdAt: row['created_at'] as number,
        attempt: row['attempts'] as number,
      }))
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  async finishWebhookAttempt(outcome: WebhookOutcome): Promise<void> {
    const delivered = this.#prepare(
      `UPDATE webhook_events
       SET state = 'delivered', delivered_at = @at, last_attempt_at = @at,
           last_error = NULL
       WHERE id = @id AND state != 'delivered'`,
    );
    // Another worker may have delivered it once this one's lease ran out.
    const failed = this.#prepare(
      `UPDATE webhook_events
       SET state = IIF(@retryAt IS NULL, 'failed', 'pending'),
           next_attempt_at = COALESCE(@retryAt, next_attempt_at),
           last_attempt_at = @at, last_error = @error
       WHERE id = @id AND state = 'pending'`,
    );
    await this.#writer.write(() => {
      if (outcome.delivered) {
        delivered.run({ id: outcome.id, at: outcome.at });
      } else {
        failed.run({
          id: outcome.id,
          at: outcome.at,
          retryAt: outcome.retryAt,
          error: outcome.error,
        });
      }
    });
  }

  listLimits(): Promise<StoredLimit[]> {
    const rows = this.#prepare(
      'SELECT id, definition, updated_at FROM limits ORDER BY id',
    ).all() as Row[];
    return Promise.resolve(
      rows.map((row) => ({
        id: row['id'] as string,
        definition: row['definition'] as string,
        updatedAt: row['updated_at'] as number,
      })),
    );
  }

  putLimit(limit: StoredLimit): Promise<void> {
    const upsert = this.#prepare(
      `INSERT INTO limits (id, definition, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE
         SET definition = excluded.definition, updated_at = excluded.updated_at`,
    );
    return this.#writer.write(() => {
      upsert.run(limit.id, limit.definition, limit.updatedAt);
    });
  }

  async deleteLimit(id: string): Promise<boolean> {
    const remove = this.#prepare('DELETE FROM limits WHERE id = ?');
    let removed = false;
    await this.#writer.write(() => {
      removed = remove.run(id).changes > 0;
    });
    return removed;
  }

  async savePriceBook(version: string, content: string): Promise<void> {
    const insert = this.#prepare(
      `INSERT INTO price_books (version, content, created_at)
       VALUES (?, ?, ?) ON CONFLICT (version) DO NOTHING`,
    );
    await this.#writer.write(() => {
      insert.run(version, content, Date.now());
    });
  }

  close(): Promise<void> {
    this.#writer.close();
    this.#db.close();
    return Promise.resolve();
  }

  readonly #prepared = new Map<string, Database.Statement>();

  /**
   * A statement for this SQL, prepared once: preparing costs more than
   * running the small queries on the request path.
   */
  #prepare(sql: string): Database.Statement {
    let statement = this.#prepared.get(sql);
    if (!statement) {
      statement = this.#db.prepare(sql);
      this.#prepared.set(sql, statement);
    }
    return statement;
  }

  #cached: ReturnType<typeof prepareHotStatements> | undefined;

  /** Statements on the request path, prepared once. */
  #statements() {
    this.#cached ??= prepareHotStatements(this.#db);
    return this.#cached;
  }
}

function prepareHotStatements(db: Database.Database) {
  return {
    findKey: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
    openRequest: db.prepare(
      `INSERT INTO requests (
         id, tenant_id, key_id, end_user, model, deployment_id, provider,
         upstream_model, price_key, stream, served_at, reserved_input_tokens,
         reserved_output_tokens, reserved_cost, instance_id, reservations,
         tenant_price_key, attempt, state)
       VALUES (
         @id, @tenantId, @keyId, @endUser, @model, @deploymentId, @provider,
         @upstreamModel, @priceKey, @stream, @servedAt, @reservedInputTokens,
         @reservedOutputTokens, @reservedCost, @instanceId, @reservations,
         @tenantPriceKey, @attempt, 'pending')`,
    ),
    closeRequest: db.prepare(
      `UPDATE requests
       SET state = @state, finished_at = @finishedAt, status_code = @statusCode,
           error_code = @errorCode, upstream_request_id = @upstreamRequestId,
           routing = @routing,
           attempt = CASE WHEN @served THEN @attempt ELSE attempt END,
           deployment_id = CASE WHEN @served THEN @deploymentId
                           ELSE deployment_id END,
           provider = CASE WHEN @served THEN @provider ELSE provider END,
           upstream_model = CASE WHEN @served THEN @upstreamModel
                            ELSE upstream_model END,
           price_key = CASE WHEN @served THEN @priceKey ELSE price_key END
       WHERE id = @id AND tenant_id = @tenantId AND state = 'pending'`,
    ),
    insertEvent: db.prepare(
      `INSERT INTO usage_events (
         id, request_id, attempt, tenant_id, end_user, model, deployment_id,
         provider, upstream_model, served_at, input_tokens, cache_read_tokens,
         cache_write_tokens, cache_write_1h_tokens, output_tokens,
         reasoning_tokens, units, estimated, served, source, raw_usage)
       VALUES (
         @id, @requestId, @attempt, @tenantId, @endUser, @model, @deploymentId,
         @provider, @upstreamModel, @servedAt, @inputTokens, @cacheReadTokens,
         @cacheWriteTokens, @cacheWrite1hTokens, @outputTokens,
         @reasoningTokens, @units, @estimated, @served, @source, @rawUsage)`,
    ),
    insertRating: db.prepare(
      `INSERT INTO ratings (
         event_id, seq, tenant_id, price_book_version, provider_rate_id,
         p_input, p_cache_read, p_cache_write, p_cache_write_1h, p_output,
         provider_cost, tenant_rate_id, t_input, t_cache_read, t_cache_write,
         t_cache_write_1h, t_output, tenant_charge, unknown, rated_at)
       VALUES (
         @eventId, 1, @tenantId, @priceBookVersion, @providerRateId,
         @p_input, @p_cache_read, @p_cache_write, @p_cache_write_1h, @p_output,
         @providerCost, @tenantRateId, @t_input, @t_cache_read, @t_cache_write,
         @t_cache_write_1h, @t_output, @tenantCharge, @unknown, @ratedAt)`,
    ),
  };
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the database is at schema ${current}, newer than this Tollgate ` +
        `(${MIGRATIONS.length}); upgrade Tollgate`,
    );
  }
  db.transaction(() => {
    MIGRATIONS.slice(current).forEach((sql, i) => {
      db.exec(sql);
      db.pragma(`user_version = ${current + i + 1}`);
    });
  })();
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function scopeClause(
  scope: TenantScope,
  column: string,
): [string, readonly unknown[]] {
  return 'tenantId' in scope
    ? [`${column} = ?`, [scope.tenantId]]
    : ['1 = 1', []];
}

function asConflict(error: unknown, message: string): unknown {
  return error instanceof Error &&
    'code' in error &&
    typeof error.code === 'string' &&
    error.code.startsWith('SQLITE_CONSTRAINT')
    ? new ConflictError(message)
    : error;
}

const CLASS_COLUMNS: Record<TokenClass, string> = {
  input: 'input',
  cacheRead: 'cache_read',
  cacheWrite: 'cache_write',
  cacheWrite1h: 'cache_write_1h',
  output: 'output',
};

function rates(row: Row, prefix: 'p_' | 't_'): RateStrings {
  return {
    input: row[`${prefix}input`] as string | null,
    cacheRead: row[`${prefix}cache_read`] as string | null,
    cacheWrite: row[`${prefix}cache_write`] as string | null,
    cacheWrite1h: row[`${prefix}cache_write_1h`] as string | null,
    output: row[`${prefix}output`] as string | null,
  };
}

function rateParams(prefix: 'p_' | 't_', values: RateStrings) {
  const params: Record<string, string | null> = {};
  for (const [tokenClass, column] of Object.entries(CLASS_COLUMNS)) {
    params[`${prefix}${column}`] = values[tokenClass as TokenClass];
  }
  return params;
}

function eventParams(event: UsageEventRecord) {
  return {
    id: event.id,
    requestId: event.requestId,
    attempt: event.attempt,
    tenantId: event.tenantId,
    endUser: event.endUser,
    model: event.model,
    deploymentId: event.deploymentId,
    provider: event.provider,
    upstreamModel: event.upstreamModel,
    servedAt: event.servedAt,
    inputTokens: event.usage.inputTokens,
    cacheReadTokens: event.usage.cacheReadTokens,
    cacheWriteTokens: event.usage.cacheWriteTokens,
    cacheWrite1hTokens: event.usage.cacheWrite1hTokens,
    outputTokens: event.usage.outputTokens,
    reasoningTokens: event.usage.reasoningTokens,
    units: JSON.stringify(event.usage.units),
    estimated: event.estimated ? 1 : 0,
    served: event.served ? 1 : 0,
    source: event.source,
    rawUsage:
      event.rawUsage === undefined ? null : JSON.stringify(event.rawUsage),
  };
}

function ratingParams(rating: RatingRecord) {
  return {
    eventId: rating.eventId,
    tenantId: rating.tenantId,
    priceBookVersion: rating.priceBookVersion,
    providerRateId: rating.providerRateId,
    ...rateParams('p_', rating.providerRates),
    providerCost: rating.providerCost,
    tenantRateId: rating.tenantRateId,
    ...rateParams('t_', rating.tenantRates),
    tenantCharge: rating.tenantCharge,
    unknown: JSON.stringify(rating.unknown),
    ratedAt: rating.ratedAt,
  };
}

function toTenant(row: Row): TenantRecord {
  return {
    id: row['id'] as string,
    name: row['name'] as string,
    timezone: row['timezone'] as string,
    createdAt: row['created_at'] as number,
  };
}

function toApiKey(row: Row): ApiKeyRecord {
  const models = row['models'] as string | null;
  return {
    id: row['id'] as string,
    tenantId: row['tenant_id'] as string,
    name: row['name'] as string | null,
    secretHash: row['secret_hash'] as Buffer,
    models: models === null ? null : (JSON.parse(models) as string[]),
    createdAt: row['created_at'] as number,
    revokedAt: row['revoked_at'] as number | null,
  };
}

function toOpenRequest(row: Row): OpenRequestRecord {
  return {
    id: row['id'] as string,
    tenantId: row['tenant_id'] as string,
    keyId: row['key_id'] as string,
    endUser: row['end_user'] as string | null,
    model: row['model'] as string,
    deploymentId: row['deployment_id'] as string,
    provider: row['provider'] as string,
    upstreamModel: row['upstream_model'] as string,
    priceKey: row['price_key'] as string,
    stream: row['stream'] === 1,
    servedAt: row['served_at'] as number,
    reservedInputTokens: row['reserved_input_tokens'] as number,
    reservedOutputTokens: row['reserved_output_tokens'] as number,
    reservedCost: row['reserved_cost'] as string | null,
    instanceId: row['instance_id'] as string,
    ...(typeof row['reservations'] === 'string' && {
      reservations: row['reservations'],
    }),
    tenantPriceKey: row['tenant_price_key'] as string | null,
    attempt: row['attempt'] as number,
  };
}

function toEvent(row: Row): UsageEventRecord {
  const raw = row['raw_usage'] as string | null;
  return {
    id: row['id'] as string,
    requestId: row['request_id'] as string,
    attempt: row['attempt'] as number,
    tenantId: row['tenant_id'] as string,
    endUser: row['end_user'] as string | null,
    model: row['model'] as string,
    deploymentId: row['deployment_id'] as string,
    provider: row['provider'] as string,
    upstreamModel: row['upstream_model'] as string,
    servedAt: row['served_at'] as number,
    usage: {
      inputTokens: row['input_tokens'] as number,
      cacheReadTokens: row['cache_read_tokens'] as number,
      cacheWriteTokens: row['cache_write_tokens'] as number,
      cacheWrite1hTokens: row['cache_write_1h_tokens'] as number,
      outputTokens: row['output_tokens'] as number,
      reasoningTokens: row['reasoning_tokens'] as number,
      units: JSON.parse(row['units'] as string) as Record<string, number>,
    },
    estimated: row['estimated'] === 1,
    served: row['served'] === 1,
    source: row['source'] as UsageEventRecord['source'],
    rawUsage: raw === null ? undefined : (JSON.parse(raw) as unknown),
  };
}

function toRating(row: Row): RatingRecord {
  return {
    eventId: row['r_event_id'] as string,
    tenantId: row['tenant_id'] as string,
    priceBookVersion: row['price_book_version'] as string,
    providerRateId: row['provider_rate_id'] as string | null,
    providerRates: rates(row, 'p_'),
    providerCost: row['provider_cost'] as string | null,
    tenantRateId: row['tenant_rate_id'] as string | null,
    tenantRates: rates(row, 't_'),
    tenantCharge: row['tenant_charge'] as string | null,
    unknown: JSON.parse(row['unknown'] as string) as string[],
    ratedAt: row['rated_at'] as number,
  };
}
