/**
 * Soft thresholds and their webhooks: a local receiver checks each
 * signature itself (HMAC-SHA256 over `<t>.<body>`, computed here with
 * node:crypto), and gets each threshold once per window as usage crosses
 * it, again after failures, and across a restart on the same database.
 * Expected event bodies are written out by hand.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Admission } from '../../src/admission/admission.js';
import { limitSchema, type LimitConfig } from '../../src/admission/limits.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { ThresholdWatcher } from '../../src/admission/thresholds.js';
import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { parseDecimal } from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { WebhookWorker } from '../../src/webhooks/webhook-worker.js';
import { startGatedUpstream } from '../helpers/gated-upstream.js';
import { startTestGateway } from '../helpers/test-gateway.js';

const SECRET = 'whsec_5b1f0c9e4d7a-never-in-a-log';
const TENANT = { id: 'ten_acme', name: 'acme', timezone: 'UTC', createdAt: 0 };
/** Admission's clock: in the month that began 2026-05-01 00:00 UTC. */
const NOW = Date.UTC(2026, 4, 15, 12, 0, 0);
const MAY = {
  id: String(Date.UTC(2026, 4, 1)),
  start: '2026-05-01T00:00:00.000Z',
  end: '2026-06-01T00:00:00.000Z',
};

let folder: string;
let path: string;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-thresholds-'));
  path = join(folder, 'tollgate.db');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(folder, { recursive: true, force: true });
});

interface Hit {
  readonly eventId: string | undefined;
  readonly body: string;
  readonly signature: string;
  readonly status: number;
  readonly at: number;
}

/**
 * A webhook endpoint on loopback; `answer` gives each hit's status, from
 * the first hit, numbered 1.
 */
async function startReceiver(answer: (hit: number) => number = () => 200) {
  const hits: Hit[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const status = answer(hits.length + 1);
      hits.push({
        eventId: request.headers['tollgate-event-id'] as string | undefined,
        body: Buffer.concat(chunks).toString('utf8'),
        signature: String(request.headers['tollgate-signature']),
        status,
        at: Date.now(),
      });
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  const receiver = {
    url: `http://127.0.0.1:${port}/hooks/limits?token=path-secret`,
    hits,
    /** The events the receiver took (a 2xx), parsed. */
    accepted: () =>
      hits
        .filter((hit) => hit.status < 300)
        .map((hit) => JSON.parse(hit.body) as Record<string, unknown>),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  cleanups.push(receiver.close);
  return receiver;
}

/** Verifies a `t=…,v1=…` signature as a receiver would. */
function verify(header: string, body: string, secret = SECRET): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!match) return false;
  const [, t = '', v1 = ''] = match;
  if (Math.abs(Date.now() / 1000 - Number(t)) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(v1, 'hex'));
}

async function until(what: string, condition: () => boolean, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Log lines, kept to search for secrets. */
function captureLogs() {
  const lines: string[] = [];
  const logger = createLogger(
    'trace',
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
  return { logger, text: () => lines.join('') };
}

/** The outbox as the database holds it. */
function outbox(
  file = path,
): { id: string; state: string; attempts: number }[] {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare('SELECT id, state, attempts FROM webhook_events ORDER BY id')
      .all() as { id: string; state: string; attempts: number }[];
  } finally {
    db.close();
  }
}

/**
 * How many events the outbox has marked delivered: the worker has seen
 * the 2xx (a receiver's count alone would race a worker stopped just
 * after it, whose attempt would stay pending, and be sent again).
 */
function delivered(file = path): number {
  return outbox(file).filter((row) => row.state === 'delivered').length;
}

const TOKENS = limitSchema.parse({
  id: 'monthly-tokens',
  tokens: 1000,
  per: 'month',
  thresholds: [50, 80, 100],
});

/**
 * What a gateway process runs for thresholds: admission, the watcher and
 * the webhook worker, on the SQLite file `path`.
 */
async function startProcess(
  url: string,
  options: {
    limits?: LimitConfig[];
    maxAttempts?: number;
    logger?: ReturnType<typeof createLogger>;
  } = {},
) {
  const logger = options.logger ?? createLogger('silent');
  const store = new SqliteStore({ path });
  if (!(await store.findTenant(TENANT.id))) await store.createTenant(TENANT);
  const worker = new WebhookWorker(store, {
    url,
    secret: SECRET,
    timeoutMs: 2_000,
    maxAttempts: options.maxAttempts ?? 10,
    logger,
    retryBaseMs: 40,
    pollMs: 10,
    random: () => 0,
  });
  const admission = new Admission(
    new MemoryCounterStore(() => NOW),
    options.limits ?? [TOKENS],
    logger,
    {
      now: () => NOW,
      observer: new ThresholdWatcher(store, {
        now: () => NOW,
        onQueued: () => worker.wake(),
      }),
    },
  );
  worker.start();
  let n = 0;
  const close = async () => {
    await worker.stop();
    await store.close();
  };
  cleanups.push(close);
  return {
    /** Admits and settles one request that used `tokens`. */
    async use(tokens: number, cost: string | null = null) {
      n += 1;
      const requestId = `req_${n}`;
      await admission.admit({
        requestId,
        tenant: TENANT,
        keyId: 'key_1',
        endUser: null,
        model: 'gpt-4o',
        worstInputTokens: tokens,
        worstOutputTokens: 0,
        worstCost: cost === null ? null : parseDecimal(cost),
      });
      await admission.settle(requestId, {
        tokens: { ...EMPTY_USAGE, inputTokens: tokens },
        cost: cost === null ? null : parseDecimal(cost),
      });
    },
    close: async () => {
      cleanups.splice(cleanups.indexOf(close), 1);
      await close();
    },
  };
}

function tokenEvent(percent: number, used: string) {
  return {
    id: `monthly-tokens|t=ten_acme|${MAY.id}|${percent}`,
    type: 'limit.threshold',
    limit: 'monthly-tokens',
    tenant: 'ten_acme',
    scope: 't=ten_acme',
    window: { start: MAY.start, end: MAY.end },
    percent,
    measure: 'tokens',
    used,
    max: '1000',
    at: '2026-05-15T12:00:00.000Z',
  };
}

describe('thresholds of a limit', () => {
  it('send 50, 80 and 100 % once each, signed, as usage crosses them', async () => {
    const receiver = await startReceiver();
    const proc = await startProcess(receiver.url);

    await proc.use(400); // 40 %
    await proc.use(200); // 60 %: past 50
    await until('50 %', () => receiver.hits.length === 1);
    await proc.use(250); // 85 %: past 80
    await until('80 %', () => receiver.hits.length === 2);
    await proc.use(150); // 100 %
    await proc.use(0); // still 100 %: nothing new
    await until('100 %', () => delivered() === 3);
    await proc.close();

    expect(receiver.accepted()).toEqual([
      tokenEvent(50, '600'),
      tokenEvent(80, '850'),
      tokenEvent(100, '1000'),
    ]);
    for (const hit of receiver.hits) {
      expect(verify(hit.signature, hit.body)).toBe(true);
      expect(verify(hit.signature, hit.body, 'another secret')).toBe(false);
      expect(hit.eventId).toBe((JSON.parse(hit.body) as { id: string }).id);
    }
    expect(outbox().map((row) => [row.state, row.attempts])).toEqual([
      ['delivered', 1],
      ['delivered', 1],
      ['delivered', 1],
    ]);
  });

  it('send the 100 % of a notifying budget, admitted past it, in USD', async () => {
    const receiver = await startReceiver();
    const budget = limitSchema.parse({
      id: 'budget',
      budgetUsd: '2',
      per: 'month',
      onExceed: 'notify',
      thresholds: [50],
    });
    const proc = await startProcess(receiver.url, { limits: [budget] });

    await proc.use(10, '0.75');
    await proc.use(10, '0.5'); // 1.25 USD: 62.5 %
    await until('50 %', () => receiver.hits.length === 1);
    await proc.use(10, '1'); // 2.25 USD, admitted: 112.5 %
    await until('100 %', () => delivered() === 2);
    await proc.close();

    const event = (percent: number, used: string) => ({
      id: `budget|t=ten_acme|${MAY.id}|${percent}`,
      type: 'limit.threshold',
      limit: 'budget',
      tenant: 'ten_acme',
      scope: 't=ten_acme',
      window: { start: MAY.start, end: MAY.end },
      percent,
      measure: 'budget',
      used,
      max: '2',
      at: '2026-05-15T12:00:00.000Z',
    });
    expect(receiver.accepted()).toEqual([
      event(50, '1.25'),
      event(100, '2.25'),
    ]);
  });

  it('reach the receiver on the third attempt after two failures', async () => {
    const receiver = await startReceiver((hit) => (hit <= 2 ? 500 : 204));
    const logs = captureLogs();
    const proc = await startProcess(receiver.url, { logger: logs.logger });

    await proc.use(500);
    await until('a 2xx', () => delivered() === 1);
    await proc.close();

    const [first, second, third] = receiver.hits;
    expect(receiver.hits.map((hit) => hit.status)).toEqual([500, 500, 204]);
    expect(new Set(receiver.hits.map((hit) => hit.body)).size).toBe(1);
    expect(receiver.hits.every((hit) => verify(hit.signature, hit.body))).toBe(
      true,
    );
    // Backoff from 40 ms, doubling, jitter at its least (half): at least
    // 20 ms before the second attempt and 40 ms before the third.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(20);
    expect(third!.at - second!.at).toBeGreaterThanOrEqual(40);
    expect(outbox()).toEqual([
      {
        id: `monthly-tokens|t=ten_acme|${MAY.id}|50`,
        state: 'delivered',
        attempts: 3,
      },
    ]);

    expect(logs.text()).toContain('webhook delivery failed');
    expect(logs.text()).toContain('webhook delivered');
    expect(logs.text()).not.toContain(SECRET);
    // Nor the endpoint's path, which may hold a token of its own.
    expect(logs.text()).not.toContain('path-secret');
  });

  it('give up after maxAttempts and keep the event, failed', async () => {
    const receiver = await startReceiver(() => 503);
    const logs = captureLogs();
    const proc = await startProcess(receiver.url, {
      maxAttempts: 3,
      logger: logs.logger,
    });

    await proc.use(500);
    await until('the last attempt', () => outbox()[0]?.state === 'failed');
    await proc.close();

    expect(receiver.hits).toHaveLength(3);
    expect(outbox()).toEqual([
      {
        id: `monthly-tokens|t=ten_acme|${MAY.id}|50`,
        state: 'failed',
        attempts: 3,
      },
    ]);
    expect(logs.text()).toContain('given up after 3 attempts');
    expect(logs.text()).not.toContain(SECRET);
  });

  it('neither fire again nor get lost across a restart', async () => {
    let accepting = true;
    const receiver = await startReceiver(() => (accepting ? 200 : 500));

    const before = await startProcess(receiver.url);
    await before.use(600); // 60 %
    await until('50 %', () => delivered() === 1);
    accepting = false;
    await before.use(250); // 85 %, but the receiver fails
    await until('a failed 80 %', () => receiver.hits.length >= 2);
    await before.close();
    expect(outbox().map((row) => row.state)).toEqual(['delivered', 'pending']);

    // A new process on the same file, whose counter climbs past 50 and
    // 80 % again (as if rebuilt from the ledger), then to 100 %.
    accepting = true;
    const after = await startProcess(receiver.url);
    await after.use(850);
    await after.use(150);
    await until('100 %', () => delivered() === 3);
    await after.close();

    expect(receiver.accepted().map((event) => event['percent'])).toEqual(
      expect.arrayContaining([50, 80, 100]),
    );
    expect(receiver.accepted()).toHaveLength(3);
    // The 80 % event is the one queued before the restart, not a new one.
    expect(receiver.accepted().find((e) => e['percent'] === 80)).toEqual(
      tokenEvent(80, '850'),
    );
    expect(outbox().map((row) => row.state)).toEqual([
      'delivered',
      'delivered',
      'delivered',
    ]);
  });
});

describe('the configuration', () => {
  const base: ConfigInput = {
    providers: { sim: { type: 'simulated' } },
    models: { m: { deployments: [{ provider: 'sim', model: 'x' }] } },
  };

  it('refuses thresholds without a webhook endpoint', () => {
    expect(() =>
      parseConfig(
        {
          ...base,
          limits: [{ id: 'l', tokens: 10, per: 'day', thresholds: [50] }],
        },
        'test',
      ),
    ).toThrow(/configure webhooks/);
    expect(() =>
      parseConfig(
        {
          ...base,
          limits: [{ id: 'l', tokens: 10, per: 'day', onExceed: 'notify' }],
        },
        'test',
      ),
    ).toThrow(/configure webhooks/);
  });

  it('refuses webhooks without a secret, saying how to give one', () => {
    expect(() =>
      parseConfig(
        { ...base, webhooks: { url: 'https://example.com/h' } },
        'test',
      ),
    ).toThrow(
      "✖ webhooks need a secret to sign with, e.g. secret: { env: 'TOLLGATE_WEBHOOK_SECRET' }\n" +
        '  → at webhooks.secret',
    );
  });

  it('refuses thresholds on a concurrency limit, which has no window', () => {
    expect(() =>
      parseConfig(
        {
          ...base,
          webhooks: { url: 'https://example.com/h', secret: 's' },
          limits: [{ id: 'l', concurrent: 2, thresholds: [50] }],
        },
        'test',
      ),
    ).toThrow(/no window for a threshold/);
  });
});

describe('through a gateway', () => {
  it('a notifying token limit sends 50, 80 and 100 % from real requests', async () => {
    const env = 'TOLLGATE_TEST_WEBHOOK_SECRET';
    process.env[env] = SECRET;
    cleanups.push(() => {
      delete process.env[env];
      return Promise.resolve();
    });
    const receiver = await startReceiver();
    const gated = await startGatedUpstream();
    cleanups.push(() => gated.close());
    gated.open();
    const logs = captureLogs();
    const t = await startTestGateway({
      logger: logs.logger,
      config: {
        providers: {
          gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
        },
        models: {
          'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
        },
        // Each answer uses 15 tokens: 4 requests fill it.
        limits: [
          {
            id: 'tokens',
            tokens: 60,
            per: 'month',
            onExceed: 'notify',
            thresholds: [50, 80],
          },
        ],
        webhooks: { url: receiver.url, secret: { env } },
      },
    });
    let closed = false;
    cleanups.push(async () => {
      if (!closed) await t.close();
    });
    const chat = () =>
      t.tenant.client.chat.completions.create({
        model: 'gpt-4o',
        max_tokens: 100,
        messages: [{ role: 'user', content: 'Hi' }],
      });

    await chat(); // 15 tokens: 25 %
    await chat(); // 30: 50 %
    await until('50 %', () => receiver.hits.length === 1);
    await chat(); // 45: 75 %
    await chat(); // 60: 80 and 100 %
    await until('80 and 100 %', () => delivered(t.dbPath) === 3);
    await chat(); // 75: 125 %, served, nothing new
    await t.gateway.close();
    // Queued, delivered or not: nothing but the three.
    expect(
      outbox(t.dbPath).map((row) => [row.id.split('|').pop(), row.state]),
    ).toEqual([
      ['100', 'delivered'],
      ['50', 'delivered'],
      ['80', 'delivered'],
    ]);
    closed = true;
    await t.close();

    const now = new Date();
    const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    const scope = `t=${t.tenant.id}`;
    const byPercent = receiver
      .accepted()
      .sort((a, b) => Number(a['percent']) - Number(b['percent']));
    expect(
      byPercent.map(({ at, ...event }) => {
        expect(Date.parse(at as string)).toBeGreaterThan(start);
        return event;
      }),
    ).toEqual(
      [
        [50, '30'],
        [80, '60'],
        [100, '60'],
      ].map(([percent, used]) => ({
        id: `tokens|${scope}|${start}|${percent}`,
        type: 'limit.threshold',
        limit: 'tokens',
        tenant: t.tenant.id,
        scope,
        window: {
          start: new Date(start).toISOString(),
          end: new Date(end).toISOString(),
        },
        percent,
        measure: 'tokens',
        used,
        max: '60',
      })),
    );
    expect(receiver.hits.every((hit) => verify(hit.signature, hit.body))).toBe(
      true,
    );
    expect(logs.text()).toContain('webhook delivered');
    expect(logs.text()).not.toContain(SECRET);
  });
});
