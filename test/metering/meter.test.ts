/**
 * The meter's warnings: usage above the reserved worst case is reported.
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
