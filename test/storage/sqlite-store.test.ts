/**
 * The embedded SQLite store and its group-commit writer, on real database
 * files in a temporary folder. Expected rows and sums are written out by
 * hand from the records each test inserts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { dayWindows } from '../../src/billing/periods.js';
import { EMPTY_USAGE, type NormalizedUsage } from '../../src/metering/usage.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { WriteBatcher } from '../../src/storage/sqlite/write-batcher.js';
import {
  ConflictError,
  type OpenRequestRecord,
  type RateStrings,
  type RatingRecord,
  type Settlement,
  type TenantRecord,
  type UsageEventRecord,
} from '../../src/storage/store.js';

let folder: string;
let path: string;
const opened: SqliteStore[] = [];

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-store-'));
  path = join(folder, 'tollgate.db');
});

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close().catch(() => {});
  await rm(folder, { recursive: true, force: true });
});

function openStore(): SqliteStore {
  const store = new SqliteStore({ path });
  opened.push(store);
  return store;
}

async function closeStore(store: SqliteStore): Promise<void> {
  opened.splice(opened.indexOf(store), 1);
  await store.close();
}

const ACME: TenantRecord = {
  id: 'ten_acme',
  name: 'acme',
  timezone: 'Europe/Paris',
  createdAt: Date.parse('2026-01-01T00:00:00Z'),
};
const GLOBEX: TenantRecord = {
  id: 'ten_globex',
  name: 'globex',
  timezone: 'UTC',
  createdAt: Date.parse('2026-01-02T00:00:00Z'),
};

function request(
  id: string,
  fields: Partial<OpenRequestRecord> = {},
): OpenRequestRecord {
  return {
    id,
    tenantId: ACME.id,
    keyId: 'key_1',
    endUser: 'alice',
    model: 'gpt-4o',
    deploymentId: 'openai/gpt-4o',
    provider: 'openai',
    upstreamModel: 'gpt-4o',
    priceKey: 'gpt-4o',
    stream: false,
    servedAt: Date.parse('2026-03-10T12:00:00Z'),
    reservedInputTokens: 1_000,
    reservedOutputTokens: 500,
    reservedCost: '0.0075',
    instanceId: 'instance-1',
    tenantPriceKey: null,
    attempt: 1,
    ...fields,
  };
}

const GPT_4O_RATES: RateStrings = {
  input: '2.5',
  cacheRead: '1.25',
  cacheWrite: '2.5',
  cacheWrite1h: null,
  output: '10',
};

interface EventSpec {
  readonly id?: string;
  readonly attempt?: number;
  readonly usage?: Partial<NormalizedUsage>;
  readonly rates?: RateStrings;
  readonly charge?: string | null;
  readonly estimated?: boolean;
  readonly served?: boolean;
}

function settlement(
  open: OpenRequestRecord,
  specs: readonly EventSpec[] = [{}],
  state: Settlement['state'] = 'settled',
): Settlement {
  return {
    requestId: open.id,
    tenantId: open.tenantId,
    state,
    finishedAt: open.servedAt + 1_500,
    statusCode: 200,
    errorCode: null,
    upstreamRequestId: `up-${open.id}`,
    events: specs.map((spec) => {
      const attempt = spec.attempt ?? 1;
      const event: UsageEventRecord = {
        id: spec.id ?? `${open.id}:${attempt}`,
        requestId: open.id,
        attempt,
        tenantId: open.tenantId,
        endUser: open.endUser,
        model: open.model,
        deploymentId: open.deploymentId,
        provider: open.provider,
        upstreamModel: open.upstreamModel,
        servedAt: open.servedAt,
        usage: {
          ...EMPTY_USAGE,
          inputTokens: 100,
          outputTokens: 20,
          ...spec.usage,
        },
        estimated: spec.estimated ?? false,
        served: spec.served ?? true,
        source: 'gateway',
        rawUsage: { prompt_tokens: 100, completion_tokens: 20 },
      };
      const rates = spec.rates ?? GPT_4O_RATES;
      const charge = spec.charge === undefined ? '0.00045' : spec.charge;
      const rating: RatingRecord = {
        eventId: event.id,
        tenantId: open.tenantId,
        priceBookVersion: 'pb_0123456789abcdef',
        providerRateId: 'gpt-4o@2024-10-02',
        providerRates: rates,
        providerCost: charge,
        tenantRateId: 'gpt-4o@2024-10-02',
        tenantRates: rates,
        tenantCharge: charge,
        unknown: charge === null ? ['no_price'] : [],
        ratedAt: open.servedAt + 1_500,
      };
      return { event, rating };
    }),
  };
}

/** Opens and settles a request in one go. */
async function record(
  store: SqliteStore,
  open: OpenRequestRecord,
  specs?: readonly EventSpec[],
): Promise<void> {
  await store.openRequest(open);
  await store.settleRequest(settlement(open, specs));
}

/** A count read straight from the file, behind the store's back. */
function countRows(table: string): number {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as {
      n: number;
    };
    return row.n;
  } finally {
    db.close();
  }
}

describe('schema', () => {
  it('migrates a fresh file in WAL mode', async () => {
    const store = openStore();
    await store.createTenant(ACME);

    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma('user_version', { simple: true })).toBe(
        MIGRATIONS.length,
      );
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      const tables = (
        db
          .prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`)
          .all() as { name: string }[]
      ).map((t) => t.name);
      expect(tables).toEqual(
        expect.arrayContaining([
          'tenants',
          'api_keys',
          'requests',
          'usage_events',
          'ratings',
          'price_books',
          'webhook_events',
        ]),
      );
    } finally {
      db.close();
    }
  });

  it('reopens a migrated file without migrating it again', async () => {
    await closeStore(openStore());
    const again = openStore();
    await again.createTenant(ACME);
    expect(await again.findTenant('acme')).toEqual(ACME);
  });

  it('refuses a file from a newer Tollgate', () => {
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => new SqliteStore({ path })).toThrow(/newer than this/);
  });
});

describe('tenants', () => {
  it('are found by id or name, and names are unique', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    await store.createTenant(GLOBEX);
    expect(await store.findTenant(ACME.id)).toEqual(ACME);
    expect(await store.findTenant('globex')).toEqual(GLOBEX);
    expect(await store.findTenant('initech')).toBeUndefined();
    expect(await store.listTenants()).toEqual([ACME, GLOBEX]);
    await expect(
      store.createTenant({ ...ACME, id: 'ten_other' }),
    ).rejects.toBeInstanceOf(ConflictError);
  });

  it('finds by id first when a name equals another tenant id', async () => {
    const store = openStore();
    // Written straight to the store; createTenant refuses such names.
    const squatter = { ...ACME, id: 'ten_a', name: 'ten_b' };
    const owner = { ...GLOBEX, id: 'ten_b' };
    await store.createTenant(squatter);
    await store.createTenant(owner);
    expect(await store.findTenant('ten_b')).toEqual(owner);
  });
});

describe('the request ledger', () => {
  it('opens a request, then settles it with its event and rating', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const open = request('req_1', { stream: true, endUser: null });
    await store.openRequest(open);

    const pending = await store.findRequest({ tenantId: ACME.id }, 'req_1');
    expect(pending?.request).toMatchObject({ ...open, state: 'pending' });
    expect(pending?.events).toEqual([]);

    const settled = settlement(open, [
      {
        usage: { inputTokens: 100, cacheReadTokens: 50, outputTokens: 20 },
        charge: '0.0004625',
      },
    ]);
    await store.settleRequest(settled);

    const detail = await store.findRequest({ tenantId: ACME.id }, 'req_1');
    expect(detail?.request).toEqual({
      ...open,
      state: 'settled',
      finishedAt: settled.finishedAt,
      statusCode: 200,
      errorCode: null,
      upstreamRequestId: 'up-req_1',
      routing: null,
    });
    expect(detail?.events).toHaveLength(1);
    const [only] = settled.events;
    expect(detail?.events[0]?.event).toEqual(only?.event);
    expect(detail?.events[0]?.rating).toEqual(only?.rating);
  });

  it('refuses to settle a request twice, and keeps exactly one event', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const open = request('req_1');
    await record(store, open, [{ charge: '0.00045' }]);

    const again = settlement(open, [{ id: 'req_1:2', attempt: 2 }]);
    await expect(store.settleRequest(again)).rejects.toBeInstanceOf(
      ConflictError,
    );

    const detail = await store.findRequest({ tenantId: ACME.id }, 'req_1');
    expect(detail?.events.map((e) => e.event.id)).toEqual(['req_1:1']);
    expect(detail?.request.state).toBe('settled');
    expect(countRows('usage_events')).toBe(1);
    expect(countRows('ratings')).toBe(1);
  });

  it('refuses a usage event id a second time, forever', async () => {
    let store = openStore();
    await store.createTenant(ACME);
    await record(store, request('req_1'));

    // Another request carrying an event with the same id.
    const other = request('req_2');
    await store.openRequest(other);
    const copy = settlement(other, [{ id: 'req_1:1' }]);
    await expect(store.settleRequest(copy)).rejects.toBeInstanceOf(
      ConflictError,
    );
    // The failed settlement left nothing behind: req_2 is still open.
    expect((await store.listOpenRequests()).map((r) => r.id)).toEqual([
      'req_2',
    ]);

    // Not for a window: after a restart, still refused.
    await closeStore(store);
    store = openStore();
    await expect(store.settleRequest(copy)).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(countRows('usage_events')).toBe(1);
    // And the request can still be settled with its own id.
    await store.settleRequest(settlement(other));
    expect(countRows('usage_events')).toBe(2);
  });

  it('refuses a settlement naming another tenant', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    await store.createTenant(GLOBEX);
    const open = request('req_1');
    await store.openRequest(open);
    const forged = { ...settlement(open), tenantId: GLOBEX.id };
    await expect(store.settleRequest(forged)).rejects.toBeInstanceOf(
      ConflictError,
    );
    expect(countRows('usage_events')).toBe(0);
  });

  it('refuses a request id opened twice', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    await store.openRequest(request('req_1'));
    await expect(store.openRequest(request('req_1'))).rejects.toThrow();
    expect(countRows('requests')).toBe(1);
  });

  it('lists only the requests still pending', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const early = request('req_early', {
      servedAt: Date.parse('2026-03-10T11:00:00Z'),
      reservedCost: null,
    });
    const settled = request('req_settled');
    const failed = request('req_failed');
    const late = request('req_late', {
      servedAt: Date.parse('2026-03-10T13:00:00Z'),
      stream: true,
    });
    for (const open of [late, settled, failed, early]) {
      await store.openRequest(open);
    }
    await store.settleRequest(settlement(settled));
    await store.settleRequest(settlement(failed, [], 'failed'));

    // Oldest first, with every field as it was opened.
    expect(await store.listOpenRequests()).toEqual([early, late]);
  });

  it('tells limits to count recovered requests at their worst case, as open ones', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const opens = ['req_open', 'req_recovered', 'req_settled'].map((id) =>
      request(id),
    );
    for (const open of opens) await store.openRequest(open);
    const [, recovered, settled] = opens as [
      OpenRequestRecord,
      OpenRequestRecord,
      OpenRequestRecord,
    ];
    await store.settleRequest(settlement(recovered, [{}], 'recovered'));
    await store.settleRequest(settlement(settled));
    const rows = await store.limitScopeUsage({
      tenantId: recovered.tenantId,
      from: 0,
      to: Number.MAX_SAFE_INTEGER,
    });
    expect(
      Object.fromEntries(rows.map((row) => [row.requestId, row.pending])),
    ).toEqual({ req_open: true, req_recovered: true, req_settled: false });
  });

  it('shows a request only to its own tenant, or to an admin', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    await store.createTenant(GLOBEX);
    await record(store, request('req_1'));

    expect(
      await store.findRequest({ tenantId: GLOBEX.id }, 'req_1'),
    ).toBeUndefined();
    expect(
      (await store.findRequest({ tenantId: ACME.id }, 'req_1'))?.events,
    ).toHaveLength(1);
    expect(
      (await store.findRequest({ allTenants: true }, 'req_1'))?.request
        .tenantId,
    ).toBe(ACME.id);
    expect(
      await store.findRequest({ tenantId: ACME.id }, 'req_missing'),
    ).toBeUndefined();
  });

  it('keeps everything across close and reopen', async () => {
    let store = openStore();
    await store.createTenant(ACME);
    await record(store, request('req_1'), [{ charge: '0.00045' }]);
    await store.openRequest(request('req_2'));
    await store.savePriceBook('pb_0123456789abcdef', '{"models":[]}');
    const before = await store.findRequest({ tenantId: ACME.id }, 'req_1');
    await closeStore(store);

    store = openStore();
    expect(await store.findTenant('acme')).toEqual(ACME);
    expect(await store.findRequest({ tenantId: ACME.id }, 'req_1')).toEqual(
      before,
    );
    expect((await store.listOpenRequests()).map((r) => r.id)).toEqual([
      'req_2',
    ]);
    // Saving the same price book again is a no-op, not an error.
    await store.savePriceBook('pb_0123456789abcdef', '{"models":[]}');
  });

  it('refuses writes once closed', async () => {
    const store = openStore();
    await closeStore(store);
    await expect(store.createTenant(ACME)).rejects.toThrow();
    await expect(store.openRequest(request('req_1'))).rejects.toThrow();
  });
});

describe('summarizeUsage', () => {
  const at = (iso: string) => Date.parse(iso);
  const MARCH = {
    from: at('2026-03-01T00:00:00Z'),
    to: at('2026-04-01T00:00:00Z'),
  };

  /** Three gpt-4o events and one claude event for acme, one for globex. */
  async function seed(store: SqliteStore): Promise<void> {
    await store.createTenant(ACME);
    await store.createTenant(GLOBEX);
    await record(
      store,
      request('a1', { servedAt: at('2026-03-10T08:00:00Z') }),
      [{ usage: { inputTokens: 100, outputTokens: 10 } }],
    );
    await record(
      store,
      request('a2', { servedAt: at('2026-03-10T23:30:00Z'), endUser: 'bob' }),
      [
        {
          usage: { inputTokens: 200, cacheReadTokens: 50, outputTokens: 20 },
          estimated: true,
        },
      ],
    );
    // A retry: attempt 1 was not served to the client, attempt 2 was.
    await record(
      store,
      request('a3', { servedAt: at('2026-03-11T09:00:00Z') }),
      [
        {
          attempt: 1,
          usage: { inputTokens: 7, outputTokens: 0 },
          served: false,
        },
        { attempt: 2, usage: { inputTokens: 300, outputTokens: 30 } },
      ],
    );
    await record(
      store,
      request('a4', {
        servedAt: at('2026-03-11T10:00:00Z'),
        model: 'claude',
        endUser: null,
      }),
      [
        {
          usage: { inputTokens: 1_000, cacheWrite1hTokens: 5, outputTokens: 1 },
          rates: {
            input: null,
            cacheRead: null,
            cacheWrite: null,
            cacheWrite1h: null,
            output: null,
          },
          charge: null,
        },
      ],
    );
    await record(
      store,
      request('g1', {
        tenantId: GLOBEX.id,
        servedAt: at('2026-03-10T09:00:00Z'),
      }),
      [{ usage: { inputTokens: 4_000, outputTokens: 400 } }],
    );
    // Outside March on either side, for acme.
    await record(
      store,
      request('a0', { servedAt: at('2026-02-28T23:59:59.999Z') }),
    );
    await record(store, request('a5', { servedAt: MARCH.to }));
  }

  it('groups one tenant by model, keeping unknown charges apart', async () => {
    const store = openStore();
    await seed(store);
    const rows = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      ...MARCH,
      groupBy: ['model'],
    });
    expect(rows).toEqual([
      {
        model: 'claude',
        requests: 1,
        events: 1,
        estimatedEvents: 0,
        tokens: {
          input: 1_000,
          cacheRead: 0,
          cacheWrite: 0,
          cacheWrite1h: 5,
          output: 1,
          reasoning: 0,
        },
        providerRates: {
          input: null,
          cacheRead: null,
          cacheWrite: null,
          cacheWrite1h: null,
          output: null,
        },
        tenantRates: {
          input: null,
          cacheRead: null,
          cacheWrite: null,
          cacheWrite1h: null,
          output: null,
        },
        providerCostKnown: false,
        tenantChargeKnown: false,
      },
      {
        model: 'gpt-4o',
        // a1, a2 and a3's served attempt; a3's first attempt is an event
        // but not a request.
        requests: 3,
        events: 4,
        estimatedEvents: 1,
        tokens: {
          input: 100 + 200 + 7 + 300,
          cacheRead: 50,
          cacheWrite: 0,
          cacheWrite1h: 0,
          output: 10 + 20 + 0 + 30,
          reasoning: 0,
        },
        providerRates: GPT_4O_RATES,
        tenantRates: GPT_4O_RATES,
        providerCostKnown: true,
        tenantChargeKnown: true,
      },
    ]);
  });

  it('splits a group whose events were rated at different rates', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const cheaper = { ...GPT_4O_RATES, input: '2' };
    await record(store, request('r1'), [{ usage: { inputTokens: 10 } }]);
    await record(store, request('r2'), [
      { usage: { inputTokens: 20 }, rates: cheaper },
    ]);
    await record(store, request('r3'), [{ usage: { inputTokens: 40 } }]);
    const rows = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      ...MARCH,
      groupBy: ['model'],
    });
    const byInputRate = rows
      .map((r) => [r.tenantRates.input, r.tokens.input])
      .sort();
    expect(byInputRate).toEqual([
      ['2', 20],
      ['2.5', 50],
    ]);
  });

  it('groups by end user', async () => {
    const store = openStore();
    await seed(store);
    const rows = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      ...MARCH,
      groupBy: ['endUser'],
    });
    const tokens = rows.map((r) => [r.endUser, r.tokens.input, r.requests]);
    // null sorts first in SQLite; alice has a1 and both a3 attempts.
    expect(tokens).toEqual([
      [null, 1_000, 1],
      ['alice', 100 + 7 + 300, 2],
      ['bob', 200, 1],
    ]);
  });

  it("groups by day in the tenant's zone", async () => {
    const store = openStore();
    await seed(store);
    // Paris is +01:00 in early March: a2 at 23:30Z, still the 10th in UTC,
    // is 00:30 on the 11th there.
    const days = dayWindows(
      at('2026-03-10T00:00:00+01:00'),
      at('2026-03-12T00:00:00+01:00'),
      'Europe/Paris',
    );
    const rows = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      from: days[0]!.from,
      to: days.at(-1)!.to,
      groupBy: ['day', 'model'],
      days,
    });
    expect(rows.map((r) => [r.day, r.model, r.tokens.input])).toEqual([
      ['2026-03-10', 'gpt-4o', 100],
      ['2026-03-11', 'claude', 1_000],
      ['2026-03-11', 'gpt-4o', 200 + 7 + 300],
    ]);
  });

  it('needs day windows to group by day', async () => {
    const store = openStore();
    await expect(async () =>
      store.summarizeUsage({
        scope: { tenantId: ACME.id },
        ...MARCH,
        groupBy: ['day'],
      }),
    ).rejects.toThrow(/days/);
  });

  it('groups by tenant for an admin, and scopes a tenant to itself', async () => {
    const store = openStore();
    await seed(store);
    const all = await store.summarizeUsage({
      scope: { allTenants: true },
      ...MARCH,
      groupBy: ['tenant'],
    });
    const perTenant = new Map<string | undefined, number>();
    for (const row of all) {
      perTenant.set(
        row.tenantId,
        (perTenant.get(row.tenantId) ?? 0) + row.tokens.input,
      );
    }
    expect(Object.fromEntries(perTenant)).toEqual({
      [ACME.id]: 100 + 200 + 7 + 300 + 1_000,
      [GLOBEX.id]: 4_000,
    });

    const globex = await store.summarizeUsage({
      scope: { tenantId: GLOBEX.id },
      ...MARCH,
      groupBy: ['tenant'],
    });
    expect(globex.map((r) => [r.tenantId, r.tokens.input])).toEqual([
      [GLOBEX.id, 4_000],
    ]);
  });

  it('counts [from, to): the first instant in, the last one out', async () => {
    const store = openStore();
    await seed(store);
    const february = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      from: at('2026-02-01T00:00:00Z'),
      to: MARCH.from,
      groupBy: [],
    });
    expect(february.map((r) => r.requests)).toEqual([1]);
    const april = await store.summarizeUsage({
      scope: { tenantId: ACME.id },
      from: MARCH.to,
      to: at('2026-05-01T00:00:00Z'),
      groupBy: [],
    });
    expect(april.map((r) => r.requests)).toEqual([1]);
  });
});

describe('the webhook outbox', () => {
  const T0 = Date.parse('2026-05-15T12:00:00Z');
  const event = (id: string, createdAt = T0) => ({
    id,
    tenantId: ACME.id,
    type: 'limit.threshold',
    body: `{"id":"${id}"}`,
    createdAt,
  });

  it('queues an id once, whatever became of the first', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    expect(await store.enqueueWebhook(event('e1'))).toBe(true);
    expect(await store.enqueueWebhook(event('e1'))).toBe(false);
    const [taken] = await store.claimWebhooks(T0, 1000, 10);
    await store.finishWebhookAttempt({ id: 'e1', at: T0, delivered: true });
    expect(taken).toEqual({ ...event('e1'), attempt: 1 });
    expect(await store.enqueueWebhook(event('e1'))).toBe(false);
    expect(await store.claimWebhooks(T0 + 60_000, 1000, 10)).toEqual([]);
  });

  it('leases what it hands out, and counts each attempt', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    await store.enqueueWebhook(event('e2', T0 + 1));
    await store.enqueueWebhook(event('e1', T0));
    await store.enqueueWebhook(event('later', T0 + 5_000));

    const first = await store.claimWebhooks(T0 + 10, 1000, 10);
    expect(first.map((e) => [e.id, e.attempt])).toEqual([
      ['e1', 1],
      ['e2', 1],
    ]);
    // Leased until T0 + 1010: no other worker gets them before.
    expect(await store.claimWebhooks(T0 + 1009, 1000, 10)).toEqual([]);
    // A worker that died mid-attempt: the lease runs out.
    const again = await store.claimWebhooks(T0 + 1010, 1000, 1);
    expect(again.map((e) => [e.id, e.attempt])).toEqual([['e1', 2]]);

    await store.finishWebhookAttempt({
      id: 'e1',
      at: T0 + 1020,
      delivered: false,
      error: 'HTTP 500',
      retryAt: T0 + 3000,
    });
    await store.finishWebhookAttempt({
      id: 'e2',
      at: T0 + 1020,
      delivered: false,
      error: 'HTTP 500',
      retryAt: null,
    });
    expect(await store.claimWebhooks(T0 + 2999, 1000, 10)).toEqual([]);
    expect(
      (await store.claimWebhooks(T0 + 5000, 1000, 10)).map((e) => [
        e.id,
        e.attempt,
      ]),
    ).toEqual([
      ['e1', 3],
      ['later', 1],
    ]);
    // e2 was given up on: kept, failed, never handed out again.
    const db = new Database(path, { readonly: true });
    try {
      expect(
        db
          .prepare('SELECT state, attempts, last_error FROM webhook_events')
          .all(),
      ).toEqual(
        expect.arrayContaining([
          { state: 'failed', attempts: 1, last_error: 'HTTP 500' },
        ]),
      );
    } finally {
      db.close();
    }
  });
});

describe('WriteBatcher', () => {
  function setUp() {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id TEXT PRIMARY KEY)');
    const insert = db.prepare('INSERT INTO t (id) VALUES (?)');
    const batcher = new WriteBatcher(db);
    return { db, insert, batcher };
  }

  it('waits out a lock held elsewhere without stalling the event loop', async () => {
    const { db, insert } = setUp();
    db.pragma('busy_timeout = 50');
    const batcher = new WriteBatcher(db, { busyWaitMs: 5_000 });
    // Another connection, as an operator's sqlite3 shell, holds the lock.
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const started = Date.now();
    let landed = false;
    const write = batcher
      .write(() => insert.run('after-the-lock'))
      .then(() => {
        landed = true;
      });
    // While it waits, timers still fire on time: nothing blocks for long.
    const gaps: number[] = [];
    let last = Date.now();
    for (let i = 0; i < 10; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      gaps.push(Date.now() - last);
      last = Date.now();
    }
    expect(landed).toBe(false);
    // SQLite's own wait is 50 ms; a 20 ms timer is never late by more.
    expect(Math.max(...gaps)).toBeLessThan(20 + 50 + 40);
    other.exec('COMMIT');
    await write;
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(countRows('t')).toBe(1);
    other.close();
    batcher.close();
    db.close();
  });

  it('fails the writes once a lock is held past busyWaitMs', async () => {
    const { db, insert } = setUp();
    db.pragma('busy_timeout = 10');
    const batcher = new WriteBatcher(db, { busyWaitMs: 300 });
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    const started = Date.now();
    const failed = await batcher
      .write(() => insert.run('never'))
      .then(
        () => undefined,
        (error: unknown) => error as { code?: string },
      );
    const waited = Date.now() - started;
    expect(failed?.code).toMatch(/^SQLITE_BUSY/);
    expect(waited).toBeGreaterThanOrEqual(300);
    expect(waited).toBeLessThan(300 + 1_000);
    other.exec('ROLLBACK');
    // The lock gone, writes go through again at once.
    await batcher.write(() => insert.run('now'));
    expect(countRows('t')).toBe(1);
    other.close();
    batcher.close();
    db.close();
  });

  it('commits many concurrent writes in one batch', async () => {
    const { db, insert, batcher } = setUp();
    const flush = vi.spyOn(batcher, 'flush');
    const inTransaction: boolean[] = [];
    const writes = Array.from({ length: 50 }, (_, i) =>
      batcher.write(() => {
        inTransaction.push(db.inTransaction);
        insert.run(`row-${i}`);
      }),
    );
    await Promise.all(writes);
    expect(flush).toHaveBeenCalledTimes(1);
    expect(inTransaction).toHaveLength(50);
    expect(inTransaction.every(Boolean)).toBe(true);
    expect(countRows('t')).toBe(50);
    batcher.close();
    db.close();
  });

  it('rejects a failing write alone; the rest of the batch commits', async () => {
    const { db, insert, batcher } = setUp();
    insert.run('taken');
    const results = await Promise.allSettled(
      ['a', 'b', 'taken', 'c'].map((id) =>
        batcher.write(() => {
          // Each write makes two rows; the failing one must leave neither.
          insert.run(`${id}-first`);
          insert.run(id);
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    const rejected = results[2];
    expect(rejected?.status === 'rejected' && String(rejected.reason)).toMatch(
      /UNIQUE/,
    );
    const ids = (
      db.prepare('SELECT id FROM t ORDER BY id').all() as {
        id: string;
      }[]
    ).map((r) => r.id);
    expect(ids).toEqual([
      'a',
      'a-first',
      'b',
      'b-first',
      'c',
      'c-first',
      'taken',
    ]);
    batcher.close();
    db.close();
  });

  it('resolves a write only once another connection can read it', async () => {
    const { db, insert, batcher } = setUp();
    await batcher.write(() => insert.run('durable'));
    expect(countRows('t')).toBe(1);
    batcher.close();
    db.close();
  });

  it('commits what is queued when closed, then refuses writes', async () => {
    const { db, insert, batcher } = setUp();
    const queued = batcher.write(() => insert.run('queued'));
    batcher.close();
    await expect(queued).resolves.toBeUndefined();
    expect(countRows('t')).toBe(1);
    await expect(batcher.write(() => insert.run('late'))).rejects.toThrow(
      /closed/,
    );
    db.close();
  });

  it('lets the store settle concurrent requests with one conflict', async () => {
    const store = openStore();
    await store.createTenant(ACME);
    const opens = Array.from({ length: 20 }, (_, i) => request(`req_${i}`));
    await Promise.all(opens.map((open) => store.openRequest(open)));
    expect(await store.listOpenRequests()).toHaveLength(20);

    const settlements = opens.map((open, i) =>
      // req_7 tries to record req_3's event id.
      settlement(open, i === 7 ? [{ id: 'req_3:1' }] : [{}]),
    );
    const results = await Promise.allSettled(
      settlements.map((s) => store.settleRequest(s)),
    );
    const refused = results.flatMap((r, i) =>
      r.status === 'rejected' ? [[i, r.reason instanceof ConflictError]] : [],
    );
    expect(refused).toEqual([[7, true]]);
    expect(countRows('usage_events')).toBe(19);
    expect((await store.listOpenRequests()).map((r) => r.id)).toEqual([
      'req_7',
    ]);
  });
});
