/**
 * The meter: its warnings (usage above the reserved worst case), and how
 * it settles and recovers requests that took several attempts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Meter } from '../../src/metering/meter.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { createLogger } from '../../src/observability/logger.js';
import { PriceBook } from '../../src/pricing/price-book.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { OpenRequestRecord } from '../../src/storage/store.js';

let folder: string;
let store: SqliteStore;
let lines: string[];
let meter: Meter;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-meter-'));
  store = new SqliteStore({ path: join(folder, 'tollgate.db') });
  await store.createTenant({
    id: 'ten_a',
    name: 'a',
    timezone: 'UTC',
    createdAt: 0,
  });
  lines = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  meter = new Meter(
    store,
    PriceBook.create(shippedCatalog()),
    createLogger('warn', sink),
  );
});

afterEach(async () => {
  await store.close();
  await rm(folder, { recursive: true, force: true });
});

function open(id: string): OpenRequestRecord {
  return {
    id,
    tenantId: 'ten_a',
    keyId: 'key_1',
    endUser: null,
    model: 'gpt-4o',
    deploymentId: 'gpt-4o/openai',
    provider: 'openai',
    upstreamModel: 'gpt-4o',
    priceKey: 'gpt-4o',
    stream: false,
    servedAt: Date.now(),
    reservedInputTokens: 100,
    reservedOutputTokens: 50,
    reservedCost: null,
    instanceId: 'gw_1',
  };
}

async function settleWith(id: string, input: number, output: number) {
  const record = open(id);
  await meter.open(record);
  await meter.settle(record, {
    attempt: 1,
    usage: {
      kind: 'reported',
      usage: { ...EMPTY_USAGE, inputTokens: input, outputTokens: output },
      raw: {},
    },
    statusCode: 200,
    errorCode: null,
    upstreamRequestId: null,
  });
  await new Promise((resolve) => setImmediate(resolve));
}

describe('Meter.settle', () => {
  it('is quiet when usage stays within the reservation', async () => {
    await settleWith('req_1', 100, 50);
    expect(lines.join('')).not.toContain('exceeded the worst case');
  });

  it.each([
    ['input', 101, 50],
    ['output', 100, 51],
  ])('warns when %s goes past the reservation', async (_what, i, o) => {
    await settleWith('req_2', i, o);
    const warning = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => String(line['msg']).includes('exceeded the worst case'));
    expect(warning).toMatchObject({
      requestId: 'req_2',
      inputTokens: i,
      reservedInputTokens: 100,
      outputTokens: o,
      reservedOutputTokens: 50,
    });
  });
});

describe('Meter.settle across attempts', () => {
  // Operator prices the test states, per 1M tokens.
  const book = PriceBook.create(shippedCatalog(), [
    { key: 'cheap', prices: [rates('1', '2')] },
    { key: 'dear', prices: [rates('10', '20')] },
    { key: 'route:chat', prices: [rates('5', '6')] },
  ]);
  const usage = (input: number, output: number) => ({
    kind: 'reported' as const,
    usage: { ...EMPTY_USAGE, inputTokens: input, outputTokens: output },
    raw: {},
  });
  const dear = {
    deploymentId: 'chat/dear',
    provider: 'dear',
    upstreamModel: 'dear-model',
    priceKey: 'dear',
  };

  it('records a billed earlier attempt as provider cost only, and charges the tenant for the answer', async () => {
    const metered = new Meter(store, book, createLogger('silent'));
    const record = { ...open('req_f'), priceKey: 'cheap' };
    await metered.open(record);
    await metered.settle(
      record,
      {
        attempt: 2,
        deployment: dear,
        usage: usage(1_000, 100),
        statusCode: 200,
        errorCode: null,
        upstreamRequestId: null,
      },
      {
        earlier: [
          {
            attempt: 1,
            usage: usage(1_000, 10),
            statusCode: 200,
            errorCode: 'content_filter',
            upstreamRequestId: null,
          },
        ],
        routing: '{"plan":["chat/cheap","chat/dear"]}',
      },
    );
    const detail = await store.findRequest({ allTenants: true }, 'req_f');
    expect(detail?.request.deploymentId).toBe('chat/dear');
    expect(detail?.request.routing).toBe('{"plan":["chat/cheap","chat/dear"]}');
    const [first, second] = detail?.events ?? [];
    // Attempt 1 at cheap: 1,000 × $1/M + 10 × $2/M = 0.00102, charged to nobody.
    expect(first?.event).toMatchObject({ attempt: 1, served: false });
    expect(first?.event.deploymentId).toBe('gpt-4o/openai');
    expect(first?.rating?.providerCost).toBe('0.00102');
    expect(first?.rating?.tenantCharge).toBe('0');
    // Attempt 2 at dear: 1,000 × $10/M + 100 × $20/M = 0.012, the tenant's.
    expect(second?.event).toMatchObject({
      attempt: 2,
      served: true,
      deploymentId: 'chat/dear',
    });
    expect(second?.rating?.providerCost).toBe('0.012');
    expect(second?.rating?.tenantCharge).toBe('0.012');
  });

  it("charges the route's price whichever deployment served", async () => {
    const metered = new Meter(store, book, createLogger('silent'));
    const record = {
      ...open('req_r'),
      priceKey: 'cheap',
      tenantPriceKey: 'route:chat',
    };
    await metered.open(record);
    const { rating } = await metered.settle(record, {
      attempt: 1,
      usage: usage(2_000, 1_000),
      statusCode: 200,
      errorCode: null,
      upstreamRequestId: null,
    });
    const detail = await store.findRequest({ allTenants: true }, 'req_r');
    // Provider: 2,000 × $1/M + 1,000 × $2/M = 0.004; tenant at $5/M and $6/M: 0.016.
    expect(detail?.events[0]?.rating?.providerCost).toBe('0.004');
    expect(detail?.events[0]?.rating?.tenantCharge).toBe('0.016');
    // Admission settles the tenant's charge.
    expect(rating?.total?.toFixed()).toBe('0.016');
  });

  it('recovers a crashed request as the attempt in flight, at its deployment', async () => {
    const metered = new Meter(store, book, createLogger('silent'));
    const record = { ...open('req_c'), priceKey: 'cheap' };
    await metered.open(record);
    await metered.beginAttempt(record, 2, dear);
    const recovered = await metered.recover(() =>
      Promise.resolve(new Set(['gw_1'])),
    );
    expect(recovered).toBe(1);
    const detail = await store.findRequest({ allTenants: true }, 'req_c');
    expect(detail?.request).toMatchObject({ state: 'recovered', attempt: 2 });
    expect(detail?.events).toHaveLength(1);
    expect(detail?.events[0]?.event).toMatchObject({
      id: 'req_c:2',
      attempt: 2,
      deploymentId: 'chat/dear',
      estimated: true,
    });
    // The reserved 100 input and 50 output at dear: 0.001 + 0.001.
    expect(detail?.events[0]?.rating?.providerCost).toBe('0.002');
  });

  it('refuses to begin an attempt before the one in flight', async () => {
    const record = open('req_b');
    await meter.open(record);
    await meter.beginAttempt(record, 3, dear);
    await expect(meter.beginAttempt(record, 2, dear)).rejects.toThrow(
      /not open before attempt 2/,
    );
  });

  it('moves attempt 1 to another deployment when the first was passed by', async () => {
    const record = open('req_p');
    await meter.open(record);
    await meter.beginAttempt(record, 1, dear);
    const detail = await store.findRequest({ allTenants: true }, 'req_p');
    expect(detail?.request).toMatchObject({
      attempt: 1,
      deploymentId: 'chat/dear',
      priceKey: 'dear',
    });
  });
});

function rates(input: string, output: string) {
  return {
    effectiveFrom: '2020-01-01',
    input,
    output,
    cacheRead: input,
    cacheWrite: input,
    source: 'test',
  };
}
