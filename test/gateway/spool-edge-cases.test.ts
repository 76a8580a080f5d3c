/**
 * Edge cases, found in review, of the settlement spool and ledger-outage handling, with the
 * `openai` SDK over real HTTP, two gateways on one SQLite database.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import {
  GATED_USAGE,
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';
import { testPrices } from '../helpers/test-prices.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function configInput(upstreamUrl: string, db: string): ConfigInput {
  return {
    server: { port: 0, shutdownGraceMs: 5_000 },
    database: { path: db },
    logging: { level: 'silent' },
    providers: {
      sim: { type: 'openai-compatible', baseUrl: upstreamUrl, apiKey: 'k' },
    },
    models: {
      chat: {
        deployments: [
          { provider: 'sim', model: 'gpt-4o', prices: testPrices('2.5', '10') },
        ],
      },
    },
    limits: [{ id: 'tokens', tokens: 1_000_000, per: 'day' }],
  };
}

function refusing(outage: { failing: boolean }, methods: (keyof Store)[]) {
  return (store: Store): Store =>
    new Proxy(store, {
      get(target, property) {
        if (outage.failing && methods.some((m) => m === property)) {
          return () =>
            Promise.reject(
              Object.assign(new Error('disk I/O error'), {
                code: 'SQLITE_IOERR',
              }),
            );
        }
        const value: unknown = Reflect.get(target, property);
        return typeof value === 'function'
          ? (value as (...args: unknown[]) => unknown).bind(target)
          : value;
      },
    });
}

async function setUp(): Promise<{
  db: string;
  key: string;
  upstream: GatedUpstream;
}> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-review-spool-'));
  cleanup.push(() => rm(folder, { recursive: true, force: true }));
  const upstream = await startGatedUpstream();
  cleanup.push(() => upstream.close());
  const db = join(folder, 'tollgate.db');
  const store = new SqliteStore({ path: db });
  const tenant = await createTenant(store, { name: 'spool-review' });
  const { key } = await createApiKey(store, tenant, {});
  await store.close();
  return { db, key, upstream };
}

async function start(
  db: string,
  upstream: GatedUpstream,
  outage?: { failing: boolean; methods: (keyof Store)[] },
): Promise<Gateway> {
  const gateway = await startGateway({
    config: parseConfig(configInput(upstream.url, db), 'review config'),
    ...(outage && {
      store: refusing(outage, outage.methods)(new SqliteStore({ path: db })),
    }),
    logger: createLogger('silent'),
    spool: { retry: { firstMs: 20, maxMs: 100 } },
  });
  cleanup.push(() => gateway.close());
  return gateway;
}

const clientOf = (gateway: Gateway, key: string) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: key, maxRetries: 0 });

function row(db: string, requestId: string) {
  const reader = new Database(db, { readonly: true });
  try {
    return reader
      .prepare(
        `SELECT q.state, e.input_tokens, e.output_tokens, e.estimated, e.source
           FROM requests q LEFT JOIN usage_events e ON e.request_id = q.id
          WHERE q.id = ?`,
      )
      .get(requestId) as
      | {
          state: string;
          input_tokens: number;
          output_tokens: number;
          estimated: number;
          source: string;
        }
      | undefined;
  } finally {
    reader.close();
  }
}

async function waitFor(check: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('two gateways on one database, through a ledger outage', () => {
  it(
    // Once a bug: during a ledger outage the spool keeps gateway A
    // serving, but A's heartbeat cannot be written either; once it is 30 s
    // stale (InstanceRegistry's default), any gateway sharing the database
    // (here: one that starts) takes A for dead, although A runs on the
    // same host and its pid is alive (#isDead checks staleness before the
    // pid), and recovers A's in-flight request at its worst case. A's own
    // exact settlement is then refused as a conflict and dropped: the
    // tenant is billed the worst case (estimated) for a request that was
    // served normally with known usage. Correct: a live process is not
    // recovered (on this host the live pid should win over a stale
    // heartbeat; across hosts, staleness should not count time the ledger
    // itself was unreachable), so the ledger ends with the exact usage.
    'a live gateway whose heartbeat lapsed in an outage keeps its in-flight request',
    async () => {
      const { db, key, upstream } = await setUp();
      const a = await start(db, upstream);
      const pending = clientOf(a, key)
        .chat.completions.create({
          model: 'chat',
          max_tokens: 100,
          messages: [{ role: 'user', content: 'Hello there' }],
        })
        .withResponse();
      await waitFor(() => upstream.arrived === 1);

      // A's heartbeats failed for a minute (what a ledger outage does to
      // them); the ledger is back now.
      const writer = new Database(db);
      writer
        .prepare(
          'UPDATE instances SET heartbeat_at = ? WHERE stopped_at IS NULL',
        )
        .run(Date.now() - 60_000);
      writer.close();

      // Another gateway on the same database starts (or its 15 s tick runs).
      await start(db, upstream);

      upstream.open();
      const { data, response } = await pending;
      expect(data.usage?.completion_tokens).toBe(GATED_USAGE.completion_tokens);
      const id = response.headers.get('x-request-id') ?? '';
      expect(row(db, id)).toMatchObject({
        state: 'settled',
        input_tokens: GATED_USAGE.prompt_tokens,
        output_tokens: GATED_USAGE.completion_tokens,
        estimated: 0,
        source: 'gateway',
      });
    },
  );
});

describe('spool edge cases (hold)', () => {
  it('a spool that cannot be written leaves the request to recovery, served, with health at 0', async () => {
    const { db, key, upstream } = await setUp();
    const outage = { failing: true, methods: ['settleRequest' as const] };
    const a = await start(db, upstream, outage);
    // Once it runs, the spool's place is taken by a file: every append
    // fails, as on a full or read-only disk (the tests run as root, so
    // chmod would not do).
    await writeFile(`${db}.spool`, 'not a directory');
    upstream.open();
    const { data, response } = await clientOf(a, key)
      .chat.completions.create({
        model: 'chat',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'Hello there' }],
      })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe('ok');
    const id = response.headers.get('x-request-id') ?? '';
    expect(row(db, id)?.state).toBe('pending');
    const health = (await (await fetch(`${a.url}/health`)).json()) as {
      status: string;
      spooled: number;
    };
    expect(health).toMatchObject({ status: 'ok', spooled: 0 });
    // Back, and restarted: recovery settles it at its worst case.
    outage.failing = false;
    await a.close();
    await rm(`${db}.spool`);
    const b = await start(db, upstream);
    void b;
    expect(row(db, id)).toMatchObject({
      state: 'recovered',
      estimated: 1,
      source: 'recovery',
    });
  });

  it('a spooled settlement is drained once the store is back, health back to 0', async () => {
    const { db, key, upstream } = await setUp();
    const outage = { failing: true, methods: ['settleRequest' as const] };
    const a = await start(db, upstream, outage);
    upstream.open();
    const { response } = await clientOf(a, key)
      .chat.completions.create({
        model: 'chat',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'Hello there' }],
      })
      .withResponse();
    const id = response.headers.get('x-request-id') ?? '';
    const spooled = async () =>
      ((await (await fetch(`${a.url}/health`)).json()) as { spooled: number })
        .spooled;
    expect(await spooled()).toBe(1);
    outage.failing = false;
    const until = Date.now() + 5_000;
    while ((await spooled()) > 0 && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await spooled()).toBe(0);
    expect(row(db, id)).toMatchObject({
      state: 'settled',
      input_tokens: GATED_USAGE.prompt_tokens,
      estimated: 0,
    });
  });
});
