/**
 * A settlement the counter store did not take is retried until it is,
 * and counts once however often it is sent: a retry after an answer that
 * never came, or recovery releasing what a process had settled before it
 * died, changes nothing the first settlement did not. Keys carry their
 * tenant as a Redis Cluster hash tag, so a request's keys share a slot.
 * A settlement reaches only the counter its reservation was made in: once
 * Redis has lost a counter, the requests reserved before release nothing
 * that requests admitted since hold, and count nothing the counter
 * rebuilt from the ledger counts already.
 */
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { Admission, AdmissionRefusal } from '../../src/admission/admission.js';
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
import type { LimitScopeRow, Store } from '../../src/storage/store.js';
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

  it('admits no more than a concurrency limit after Redis lost its counters', async () => {
    const limits: LimitConfig[] = [
      {
        id: `slots-${Math.random()}`,
        concurrent: 10,
        onExceed: 'block',
        onStoreDown: 'closed',
      },
    ];
    const admission = new Admission(store, limits, createLogger('silent'));
    const dying = new Admission(store, limits, createLogger('silent'));
    const old = names('old', 10);
    expect(await admitted(admission, old.slice(0, 9))).toBe(9);
    expect(await admitted(dying, old.slice(9))).toBe(1);
    const reservations = dying.reservationsOf(old[9] ?? '');
    // Redis restarts empty while the ten are in flight: the counter that
    // comes back cannot know them, so ten more fit, and no more.
    await loseEverything();
    const fresh = names('new', 10);
    expect(await admitted(admission, [...fresh, 'new-11'])).toBe(10);
    // The old ten end, the last recovered from its dead process. They
    // hold nothing in the counter as it is now, so they free nothing.
    for (const id of old.slice(0, 9)) await admission.settle(id, null);
    await admission.releaseRecovered(old[9] ?? '', reservations);
    expect(await admitted(admission, names('more', 10))).toBe(0);
    expect(admission.inFlight).toBe(10);
    const keys = await keysOf(limits);
    expect(await store.read(keys)).toEqual([{ used: 0n, reserved: 10n }]);
    for (const id of fresh) await admission.settle(id, null);
    expect(await store.read(keys)).toEqual([{ used: 0n, reserved: 0n }]);
    expect(await admitted(admission, names('after', 11))).toBe(10);
  });

  it('counts nothing twice in counters rebuilt after Redis lost them', async () => {
    const limits: LimitConfig[] = [
      {
        id: `day-${Math.random()}`,
        tokens: 1_000,
        per: 'day',
        onExceed: 'block',
        onStoreDown: 'closed',
      },
      {
        id: `hour-${Math.random()}`,
        tokens: 1_000,
        per: { rolling: '1h' },
        onExceed: 'block',
        onStoreDown: 'closed',
      },
    ];
    const servedAt = Date.now();
    const rows = new Map<string, LimitScopeRow>();
    const ledger: Pick<Store, 'limitScopeUsage'> = {
      limitScopeUsage: (query) =>
        Promise.resolve(
          [...rows.values()].filter(
            (r) => r.servedAt >= query.from && r.servedAt < query.to,
          ),
        ),
    };
    // Each request is recorded open, at its worst case, once admitted,
    // and settled in the ledger before its counters, as the gateway does.
    const row = (requestId: string, pending: boolean): LimitScopeRow => ({
      requestId,
      pending,
      servedAt,
      tokens: pending ? EMPTY_USAGE : USED.tokens,
      reservedInputTokens: 40,
      reservedOutputTokens: 60,
      charges: pending ? [] : ['0.25'],
      reservedCost: '0.60',
    });
    const { store: shaky, state } = flaky(store);
    const admission = new Admission(shaky, limits, createLogger('silent'), {
      ledger: ledger as Store,
    });
    const admit = async (id: string) => {
      await admission.admit({ ...request(id), servedAt });
      rows.set(id, row(id, true));
    };
    const settle = async (id: string) => {
      rows.set(id, row(id, false));
      await admission.settle(id, USED);
    };
    for (const id of ['a', 'b', 'c']) await admit(id);
    // c's counters are not taken: Redis is going down.
    state.refuse = 1;
    await settle('c');
    expect(admission.unsettled).toBe(1);
    await loseEverything();
    // Rebuilt from the ledger for d: a and b open at 100 tokens each, c
    // settled at 50, and d's own 100 reserved.
    await admit('d');
    const keys = await keysOf(limits);
    const both = (used: bigint, reserved: bigint) => [
      { used, reserved },
      { used, reserved },
    ];
    expect(await store.read(keys)).toEqual(both(250n, 100n));
    // a, b and the retry of c reach counters their reservations were not
    // made in: they leave d's reservation be, and add nothing the ledger
    // gave the counters (a and b stay at the worst case it had them at).
    await settle('a');
    await settle('b');
    await vi.waitFor(() => expect(admission.unsettled).toBe(0), {
      timeout: 3_000,
    });
    expect(await store.read(keys)).toEqual(both(250n, 100n));
    await settle('d');
    expect(await store.read(keys)).toEqual(both(300n, 0n));
    await admission.stop();
  });

  /** Every key under the prefix gone, as from a Redis restarted empty. */
  async function loseEverything(): Promise<void> {
    for await (const keys of client.scanIterator({
      MATCH: `${prefix}*`,
      COUNT: 1000,
    })) {
      if (keys.length > 0) await client.del(keys);
    }
  }

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

/** `count` request ids starting with `name`. */
function names(name: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${name}-${i + 1}`);
}

/** How many of the requests `admission` admits, one after another. */
async function admitted(
  admission: Admission,
  ids: readonly string[],
): Promise<number> {
  let count = 0;
  for (const id of ids) {
    try {
      await admission.admit(request(id));
      count += 1;
    } catch (error) {
      if (!(error instanceof AdmissionRefusal)) throw error;
    }
  }
  return count;
}

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

  it('settles nothing in a counter made again since the reservation', async () => {
    let now = 1_000;
    const store = new MemoryCounterStore(() => now);
    const key = 'l=m|t=ten_m|x=tokens|w=day:';
    const first = await store.reserve([
      { key, max: 100n, amount: 40n, expiresAt: 2_000 },
    ]);
    // The window ends; a request dated in it comes late, and meets a
    // counter made anew rather than the one reserved in.
    now = 2_000;
    await store.reserve([{ key, max: 100n, amount: 10n, expiresAt: 3_000 }]);
    const epoch = first.admitted ? first.states[0]?.epoch : undefined;
    expect(epoch).toBeDefined();
    await store.settle([
      { key, reserved: 40n, actual: 25n, expiresAt: 2_000, epoch },
    ]);
    expect(await store.read([key])).toEqual([{ used: 0n, reserved: 10n }]);
  });
});
