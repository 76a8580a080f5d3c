/**
 * The settlement spool (src/metering/settlement-spool.ts) over a real
 * SQLite store: what the meter spools when the store refuses a
 * settlement, how a drain puts it into the ledger exactly once, and what
 * survives a crash: a torn last line, a crash mid-drain, a dead
 * instance's file claimed by one gateway only.
 */
import {
  appendFile,
  mkdtemp,
  readdir,
  readFile,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { Meter } from '../../src/metering/meter.js';
import { SettlementSpool } from '../../src/metering/settlement-spool.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { createLogger } from '../../src/observability/logger.js';
import { PriceBook } from '../../src/pricing/price-book.js';
import { shippedCatalog } from '../../src/pricing/shipped-catalog.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import {
  ConflictError,
  type OpenRequestRecord,
  type Settlement,
  type Store,
} from '../../src/storage/store.js';
import { testPrices } from '../helpers/test-prices.js';
import { usd } from '../helpers/usd.js';

/** The rates this file prices `test-model` at, USD per 1M tokens. */
const RATES = { input: '3', output: '15' };

let folder: string;
let spoolDirectory: string;
let store: SqliteStore;
let outage: { failing: boolean };
let failingStore: Store;
let lines: string[];
let logger: ReturnType<typeof createLogger>;
const spools: SettlementSpool[] = [];

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-spool-'));
  spoolDirectory = join(folder, 'tollgate.db.spool');
  store = new SqliteStore({ path: join(folder, 'tollgate.db') });
  await store.createTenant({
    id: 'ten_a',
    name: 'a',
    timezone: 'UTC',
    createdAt: 0,
  });
  outage = { failing: true };
  failingStore = refusingSettlements(store, outage);
  lines = [];
  logger = createLogger(
    'info',
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    }),
  );
});

afterEach(async () => {
  for (const spool of spools.splice(0)) await spool.close();
  await store.close();
  await rm(folder, { recursive: true, force: true });
});

/** A store whose settlements fail, as a full disk fails them, on cue. */
function refusingSettlements(target: Store, state: { failing: boolean }) {
  return new Proxy(target, {
    get(object, property) {
      if (property === 'settleRequest' && state.failing) {
        return () =>
          Promise.reject(
            Object.assign(new Error('database or disk is full'), {
              code: 'SQLITE_FULL',
            }),
          );
      }
      const value: unknown = Reflect.get(object, property);
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(object)
        : value;
    },
  });
}

function spoolOf(
  instanceId: string,
  options: { directory?: string | null; ledger?: Store } = {},
): SettlementSpool {
  const spool = new SettlementSpool(options.ledger ?? failingStore, {
    directory:
      options.directory === undefined ? spoolDirectory : options.directory,
    instanceId,
    logger,
    retry: { firstMs: 10, maxMs: 40 },
  });
  spools.push(spool);
  return spool;
}

function meterOf(ledger: Store, spool?: SettlementSpool): Meter {
  const book = PriceBook.create(shippedCatalog(), [
    { key: 'test-model', prices: testPrices(RATES.input, RATES.output) },
  ]);
  return new Meter(ledger, book, logger, spool ? { spool } : {});
}

function record(id: string, instanceId = 'gw_a'): OpenRequestRecord {
  return {
    id,
    tenantId: 'ten_a',
    keyId: 'key_1',
    endUser: null,
    model: 'test',
    deploymentId: 'test/sim',
    provider: 'sim',
    upstreamModel: 'test-model',
    priceKey: 'test-model',
    stream: false,
    servedAt: Date.now(),
    reservedInputTokens: 1_000,
    reservedOutputTokens: 500,
    reservedCost: null,
    instanceId,
  };
}

/** Opens a request and settles it through `meter` with these counts. */
async function serve(
  meter: Meter,
  id: string,
  counts: { input: number; cached: number; output: number },
  instanceId?: string,
) {
  const open = record(id, instanceId);
  await meter.open(open);
  return meter.settle(open, {
    attempt: 1,
    usage: {
      kind: 'reported',
      usage: {
        ...EMPTY_USAGE,
        inputTokens: counts.input,
        cacheReadTokens: counts.cached,
        outputTokens: counts.output,
      },
      raw: { prompt_tokens: counts.input + counts.cached },
    },
    statusCode: 200,
    errorCode: null,
    upstreamRequestId: 'up_1',
  });
}

/** An instance registry's answer: these instances are gone. */
function gone(...dead: string[]) {
  return (ids: readonly string[]) =>
    Promise.resolve(new Set(ids.filter((id) => dead.includes(id))));
}

async function spoolFiles(): Promise<string[]> {
  return (await readdir(spoolDirectory).catch(() => [])).sort();
}

async function spooledLines(file: string): Promise<Settlement[]> {
  const text = await readFile(join(spoolDirectory, file), 'utf8');
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { settlement: Settlement }).settlement);
}

async function stateOf(id: string) {
  return (await store.findRequest({ tenantId: 'ten_a' }, id))?.request.state;
}

describe('the ledger a spool relies on', () => {
  it('refuses a second settlement of a request, and keeps the first', async () => {
    const meter = meterOf(failingStore, spoolOf('gw_a'));
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 });
    const [file] = await spoolFiles();
    const [settlement] = await spooledLines(file!);

    await store.settleRequest(settlement!);
    await expect(store.settleRequest(settlement!)).rejects.toBeInstanceOf(
      ConflictError,
    );
    const detail = await store.findRequest({ tenantId: 'ten_a' }, 'req_1');
    expect(detail?.events).toHaveLength(1);
  });
});

describe('a spooled settlement', () => {
  it('is on disk, exact, when the meter reports the request settled', async () => {
    const spool = spoolOf('gw_a');
    const meter = meterOf(failingStore, spool);
    const settled = await serve(meter, 'req_1', {
      input: 1_200,
      cached: 300,
      output: 80,
    });

    expect(settled.spooled).toBe(true);
    expect(settled.rating?.total?.toString()).toBe(
      usd([1_200, RATES.input], [300, RATES.input], [80, RATES.output]),
    );
    expect(spool.size).toBe(1);
    expect(await spoolFiles()).toEqual(['gw_a.jsonl']);
    const [settlement] = await spooledLines('gw_a.jsonl');
    expect(settlement).toMatchObject({
      requestId: 'req_1',
      state: 'settled',
      events: [
        {
          event: {
            id: 'req_1:1',
            usage: { inputTokens: 1_200, cacheReadTokens: 300 },
            rawUsage: { prompt_tokens: 1_500 },
          },
        },
      ],
    });
    // The ledger still has it open, at its worst case.
    expect(await stateOf('req_1')).toBe('pending');
    expect(lines.join('')).toContain('spooling settlements locally');
  });

  it('is drained into the ledger once, as it was rated, when the store is back', async () => {
    const spool = spoolOf('gw_a');
    const meter = meterOf(failingStore, spool);
    await serve(meter, 'req_1', { input: 1_200, cached: 300, output: 80 });
    await serve(meter, 'req_2', { input: 40, cached: 0, output: 7 });

    expect(await spool.drain()).toEqual({
      settled: 0,
      duplicates: 0,
      left: 2,
    });
    outage.failing = false;
    expect(await spool.drain()).toEqual({
      settled: 2,
      duplicates: 0,
      left: 0,
    });

    const first = await store.findRequest({ tenantId: 'ten_a' }, 'req_1');
    expect(first?.request.state).toBe('settled');
    expect(first?.events).toHaveLength(1);
    expect(first?.events[0]?.event).toMatchObject({
      estimated: false,
      source: 'gateway',
      usage: { inputTokens: 1_200, cacheReadTokens: 300, outputTokens: 80 },
    });
    expect(first?.events[0]?.rating?.tenantCharge).toBe(
      usd([1_200, RATES.input], [300, RATES.input], [80, RATES.output]),
    );
    expect(await stateOf('req_2')).toBe('settled');
    expect(await spoolFiles()).toEqual([]);
    expect(lines.join('')).toContain('drained the settlement spool');
  });

  it('drains by itself, with backoff, once the store takes writes again', async () => {
    const spool = spoolOf('gw_a');
    const meter = meterOf(failingStore, spool);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(spool.size).toBe(1);
    expect(lines.join('')).toContain('still refuses settlements');

    outage.failing = false;
    await vi.waitFor(() => expect(spool.size).toBe(0), { timeout: 2_000 });
    expect(await stateOf('req_1')).toBe('settled');
  });

  it('keeps every one of many settlements spooled at once', async () => {
    const spool = spoolOf('gw_a');
    const meter = meterOf(failingStore, spool);
    const ids = Array.from({ length: 40 }, (_, i) => `req_${i}`);
    await Promise.all(
      ids.map((id, i) => serve(meter, id, { input: i, cached: 0, output: 1 })),
    );
    const spooled = await spooledLines('gw_a.jsonl');
    expect(spooled.map((s) => s.requestId).sort()).toEqual([...ids].sort());
    outage.failing = false;
    expect((await spool.drain()).settled).toBe(40);
  });

  it('stays in memory for an in-memory database', async () => {
    const spool = spoolOf('gw_a', { directory: null });
    const meter = meterOf(failingStore, spool);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 });
    expect(spool.size).toBe(1);
    expect(await spoolFiles()).toEqual([]);
    outage.failing = false;
    expect((await spool.drain()).settled).toBe(1);
    expect(SettlementSpool.directoryFor(':memory:')).toBeNull();
    expect(SettlementSpool.directoryFor('/data/tollgate.db')).toBe(
      '/data/tollgate.db.spool',
    );
  });

  it('that cannot be written leaves the request to recovery', async () => {
    // A file where the directory should be: every append fails.
    await writeFile(spoolDirectory, 'not a directory');
    const meter = meterOf(failingStore, spoolOf('gw_a'));
    await expect(
      serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }),
    ).rejects.toMatchObject({ code: 'SQLITE_FULL' });
    expect(await stateOf('req_1')).toBe('pending');
    expect(lines.join('')).toContain('could not spool a settlement');
  });
});

describe('after a crash', () => {
  it('replays a settlement drained before the crash as a duplicate', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    // It dies with the store still down: its last drain leaves the file.
    await doomed.close();
    const before = await readFile(join(spoolDirectory, 'gw_dead.jsonl'));
    outage.failing = false;
    // The ledger took it; the process died before the line left the file.
    await store.settleRequest((await spooledLines('gw_dead.jsonl'))[0]!);
    await writeFile(join(spoolDirectory, 'gw_dead.jsonl'), before);

    const heir = spoolOf('gw_heir');
    expect(await heir.adopt(gone('gw_dead'))).toBe(1);
    expect(await heir.drain()).toEqual({
      settled: 0,
      duplicates: 1,
      left: 0,
    });
    const detail = await store.findRequest({ tenantId: 'ten_a' }, 'req_1');
    expect(detail?.events).toHaveLength(1);
    expect(lines.join('')).toContain('in the ledger already');
  });

  it('drops a torn last line and keeps the whole ones before it', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    await serve(meter, 'req_2', { input: 20, cached: 0, output: 5 }, 'gw_dead');
    await doomed.close();
    const file = join(spoolDirectory, 'gw_dead.jsonl');
    const text = await readFile(file, 'utf8');
    // Cut in the middle of the second line, as a crash mid-append would.
    await writeFile(file, text.slice(0, text.indexOf('\n') + 40));

    const heir = spoolOf('gw_heir');
    expect(await heir.adopt(gone('gw_dead'))).toBe(1);
    outage.failing = false;
    expect((await heir.drain()).settled).toBe(1);
    expect(await stateOf('req_1')).toBe('settled');
    // Never acknowledged: left to recovery.
    expect(await stateOf('req_2')).toBe('pending');
    expect(await spoolFiles()).toEqual([]);
    expect(lines.join('')).toContain('torn last line');
  });

  it('keeps a line it cannot read for an operator', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    // It dies with the store still down: its last drain leaves the file.
    await doomed.close();
    const file = join(spoolDirectory, 'gw_dead.jsonl');
    await appendFile(file, '{"v":99,"from":"a newer gateway"}\n');

    const heir = spoolOf('gw_heir');
    await heir.adopt(gone('gw_dead'));
    outage.failing = false;
    expect((await heir.drain()).settled).toBe(1);
    const [left] = await spoolFiles();
    expect(left).toBe('gw_heir~gw_dead.jsonl');
    expect(await readFile(join(spoolDirectory, left!), 'utf8')).toBe(
      '{"v":99,"from":"a newer gateway"}\n',
    );
  });

  it('claims only the files of instances that are gone, each once', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    // It dies with the store still down: its last drain leaves the file.
    await doomed.close();
    const live = meterOf(failingStore, spoolOf('gw_live'));
    await serve(live, 'req_2', { input: 10, cached: 0, output: 5 }, 'gw_live');

    const dead = gone('gw_dead');
    const one = spoolOf('gw_one');
    const two = spoolOf('gw_two');
    const [a, b] = await Promise.all([one.adopt(dead), two.adopt(dead)]);
    expect(a + b).toBe(1);
    expect(one.size + two.size).toBe(1);
    const files = await spoolFiles();
    expect(files).toContain('gw_live.jsonl');
    expect(files.filter((f) => f.endsWith('~gw_dead.jsonl'))).toHaveLength(1);
  });
});

describe('recovery', () => {
  it('passes by the requests a spool on this host holds', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    // It dies with the store still down: its last drain leaves the file.
    await doomed.close();
    outage.failing = false;

    // Another instance's spool, not claimed (yet): still passed by.
    const heir = meterOf(store, spoolOf('gw_heir'));
    expect(await heir.recover(gone('gw_dead'))).toBe(0);
    expect(await stateOf('req_1')).toBe('pending');
  });

  it('that got there first leaves the spooled settlement to be dropped, loudly', async () => {
    const doomed = spoolOf('gw_dead');
    const meter = meterOf(failingStore, doomed);
    await serve(meter, 'req_1', { input: 10, cached: 0, output: 5 }, 'gw_dead');
    // It dies with the store still down: its last drain leaves the file.
    await doomed.close();
    outage.failing = false;
    // A recovery that knows nothing of the spool (another host's).
    const elsewhere = meterOf(store);
    expect(await elsewhere.recover(gone('gw_dead'))).toBe(1);

    const heir = spoolOf('gw_heir');
    await heir.adopt(gone('gw_dead'));
    expect(await heir.drain()).toEqual({
      settled: 0,
      duplicates: 1,
      left: 0,
    });
    expect(await stateOf('req_1')).toBe('recovered');
    const warning = lines.find((line) => line.includes('recovery settled'));
    expect(warning).toBeDefined();
    expect(JSON.parse(warning!)).toMatchObject({
      requestId: 'req_1',
      ledgerState: 'recovered',
      events: [{ id: 'req_1:1', usage: { inputTokens: 10, outputTokens: 5 } }],
    });
  });
});
