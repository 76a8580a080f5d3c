/**
 * A settlement the counter store did not take is retried until it is,
 * and counts once however often it is sent: a retry after an answer that
 * never came, or recovery releasing what a process had settled before it
 * died, changes nothing the first settlement did not. Keys carry their
 * tenant as a Redis Cluster hash tag, so a request's keys share a slot.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { Admission } from '../../src/admission/admission.js';
import {
  CounterStoreUnavailableError,
  type CounterSettlement,
  type CounterStore,
} from '../../src/admission/counter-store.js';
import type { LimitConfig } from '../../src/admission/limits.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { RedisCounterStore } from '../../src/admission/redis-counter-store.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { parseDecimal } from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';

const HOUR = 3_600_000;

const tenant = {
  id: 'ten_retry',
  name: 'retry',
  timezone: 'UTC',
  createdAt: 0,
};

function request(requestId: string) {
  return {
    requestId,
    tenant,
    keyId: 'key_1',
    endUser: null,
    model: 'gpt-4o',
    worstInputTokens: 40,
    worstOutputTokens: 60,
    worstCost: parseDecimal('0.60'),
  };
}

/** 30 input + 20 output tokens used, of the 100 reserved. */
const USED = {
  tokens: { ...EMPTY_USAGE, inputTokens: 30, outputTokens: 20 },
  cost: parseDecimal('0.25'),
};

const LIMITS: LimitConfig[] = [
  {
    id: 'slots',
    concurrent: 2,
    onExceed: 'block',
    onStoreDown: 'closed',
  },
  {
    id: 'tokens',
    tokens: 1_000,
    per: 'day',
    onExceed: 'block',
    onStoreDown: 'closed',
  },
];

/**
 * The store, with its settle made to fail on cue: `lose` applies the
 * settlement and then throws as if the answer never came; `refuse`
 * throws without applying it, as a Redis that is down does.
 */
function flaky(store: CounterStore) {
  const state = { lose: 0, refuse: 0, calls: 0 };
  const wrapped: CounterStore = {
    shared: store.shared,
    reserve: (claims) => store.reserve(claims),
    read: (keys) => store.read(keys),
    seed: (key, used, expiresAt) => store.seed(key, used, expiresAt),
    close: () => store.close(),
    async settle(settlements: readonly CounterSettlement[], id?: string) {
      state.calls += 1;
      if (state.refuse > 0) {
        state.refuse -= 1;
        throw new CounterStoreUnavailableError('Redis did not answer');
      }
      const applied = await store.settle(settlements, id);
      if (state.lose > 0) {
        state.lose -= 1;
        throw new CounterStoreUnavailableError('Redis did not answer');
      }
      return applied;
    },
  };
  return { store: wrapped, state };
}

describe.skipIf(!redisPresent)('on Redis', () => {
  const prefix = testPrefix();
  let store: RedisCounterStore;
  let client: ReturnType<typeof createClient>;
  beforeAll(async () => {
    store = await RedisCounterStore.connect({ url: REDIS_URL, prefix });
    client = createClient({ url: REDIS_URL });
    await client.connect();
  });
  afterAll(async () => {
    for await (const keys of client.scanIterator({
      MATCH: `${prefix}*`,
      COUNT: 1000,
    })) {
      if (keys.length > 0) await client.del(keys);
    }
    await client.close();
    await store.close();
  });

  it('applies a settlement once however often its id is sent', async () => {
    const key = `l=once|t=ten_once|x=tokens|${Math.random()}`;
    const expiresAt = Date.now() + HOUR;
    await store.reserve([{ key, max: 100n, amount: 40n, expiresAt }]);
    const settlement = { key, reserved: 40n, actual: 25n, expiresAt };
    expect(await store.settle([settlement], 'req_once')).toBe(true);
    expect(await store.settle([settlement], 'req_once')).toBe(false);
    expect(await store.read([key])).toEqual([{ used: 25n, reserved: 0n }]);
    // Without an id, each call is its own settlement, as before.
    await store.reserve([{ key, max: 100n, amount: 10n, expiresAt }]);
    await store.reserve([{ key, max: 100n, amount: 10n, expiresAt }]);
    const plain = { key, reserved: 10n, actual: 5n, expiresAt };
    expect(await store.settle([plain])).toBe(true);
    expect(await store.settle([plain])).toBe(true);
    expect(await store.read([key])).toEqual([{ used: 35n, reserved: 0n }]);
  });

  it('tags every key of a request, marker too, with its tenant', async () => {
    const keys = [
      `l=a|t=ten_tag|x=requests|${Math.random()}`,
      `l=b|t=ten_tag|k=key_9|x=concurrent|${Math.random()}`,
    ];
    await store.reserve(
      keys.map((key) => ({ key, max: 5n, amount: 1n, expiresAt: null })),
    );
    await store.settle(
      keys.map((key) => ({ key, reserved: 1n, actual: 0n, expiresAt: null })),
      'req_tag',
    );
    const written: string[] = [];
    for await (const found of client.scanIterator({
      MATCH: `${prefix}*ten_tag*`,
      COUNT: 1000,
    })) {
      written.push(...found);
    }
    // Redis Cluster hashes only what is between the first { and the
    // next }: every key must give the same text there.
    const tags = written.map((name) => /\{([^}]*)\}/.exec(name)?.[1]);
    expect(written).toHaveLength(3);
    expect(new Set(tags)).toEqual(new Set(['t=ten_tag']));
    expect(written.some((name) => name.includes('settled:req_tag'))).toBe(true);
  });

  it('retries a settlement whose answer was lost, and counts it once', async () => {
    const limits = LIMITS.map((l) => ({
      ...l,
      id: `${l.id}-${Math.random()}`,
    }));
    const { store: shaky, state } = flaky(store);
    const admission = new Admission(shaky, limits, createLogger('silent'));
    await admission.admit(request('lost-answer'));
    state.lose = 1;
    await admission.settle('lost-answer', USED);
    expect(admission.unsettled).toBe(1);
    await vi.waitFor(() => expect(admission.unsettled).toBe(0), {
      timeout: 3_000,
    });
    expect(state.calls).toBe(2);
    // One slot and 100 tokens were reserved; 50 tokens used, once.
    const keys = await keysOf(limits);
    expect(await store.read(keys)).toEqual([
      { used: 0n, reserved: 0n },
      { used: 50n, reserved: 0n },
    ]);
    await admission.stop();
  });

  it('frees a concurrency slot once the store is back', async () => {
    const limits = LIMITS.map((l) => ({
      ...l,
      id: `${l.id}-${Math.random()}`,
    }));
    const { store: shaky, state } = flaky(store);
    const admission = new Admission(shaky, limits, createLogger('silent'));
    await admission.admit(request('slot-1'));
    await admission.admit(request('slot-2'));
    // Both slots held: a third is refused.
    await expect(admission.admit(request('slot-3'))).rejects.toThrow();
    state.refuse = 2;
    await admission.settle('slot-1', USED);
    expect(admission.unsettled).toBe(1);
    // Down through the first retry, back for the second.
    await vi.waitFor(() => expect(admission.unsettled).toBe(0), {
      timeout: 5_000,
    });
    expect(state.calls).toBe(3);
    await expect(admission.admit(request('slot-3'))).resolves.toBeDefined();
    await admission.settle('slot-2', USED);
    await admission.settle('slot-3', USED);
    const keys = await keysOf(limits);
    expect(await store.read(keys)).toEqual([
      { used: 0n, reserved: 0n },
      { used: 150n, reserved: 0n },
    ]);
    await admission.stop();
  });

  it('lets recovery release nothing a dead process had settled', async () => {
    const limits = LIMITS.map((l) => ({
      ...l,
      id: `${l.id}-${Math.random()}`,
    }));
    const dying = new Admission(store, limits, createLogger('silent'));
    const recovering = new Admission(store, limits, createLogger('silent'));
    await dying.admit(request('settled-then-died'));
    const reservations = dying.reservationsOf('settled-then-died');
    await dying.settle('settled-then-died', USED);
    // Its ledger write failed, so the ledger still has it open, and
    // another replica recovers it: at its worst case, were it not settled.
    await recovering.releaseRecovered('settled-then-died', reservations);
    expect(await store.read(await keysOf(limits))).toEqual([
      { used: 0n, reserved: 0n },
      { used: 50n, reserved: 0n },
    ]);
    // One the dead process never settled is released at its worst case.
    await dying.admit(request('died-unsettled'));
    const held = dying.reservationsOf('died-unsettled');
    await recovering.releaseRecovered('died-unsettled', held);
    expect(await store.read(await keysOf(limits))).toEqual([
      { used: 0n, reserved: 0n },
      { used: 150n, reserved: 0n },
    ]);
  });

  /** The counter keys of `limits` for `request`, read off a reservation. */
  async function keysOf(limits: readonly LimitConfig[]): Promise<string[]> {
    const probe = new Admission(
      new MemoryCounterStore(),
      limits,
      createLogger('silent'),
    );
    await probe.admit(request('probe'));
    const held = JSON.parse(probe.reservationsOf('probe') ?? '[]') as {
      key: string;
    }[];
    return held.map((r) => r.key);
  }
});

describe('in process', () => {
  it('applies a settlement once however often its id is sent', async () => {
    const store = new MemoryCounterStore();
    const key = 'l=m|t=ten_m|x=tokens';
    const expiresAt = Date.now() + HOUR;
    await store.reserve([{ key, max: 100n, amount: 40n, expiresAt }]);
    const settlement = { key, reserved: 40n, actual: 25n, expiresAt };
    expect(await store.settle([settlement], 'req_m')).toBe(true);
    expect(await store.settle([settlement], 'req_m')).toBe(false);
    expect(await store.read([key])).toEqual([{ used: 25n, reserved: 0n }]);
  });
});
