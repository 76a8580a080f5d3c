/**
 * Both counter stores keep one contract: a request's claims are reserved
 * all together or not at all, concurrent requests never overfill a
 * counter, and settling returns every reservation.
 */
import { afterAll, describe, expect, it } from 'vitest';

import {
  CounterStoreUnavailableError,
  type CounterClaim,
  type CounterStore,
} from '../../src/admission/counter-store.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { RedisCounterStore } from '../../src/admission/redis-counter-store.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';

const HOUR = 3_600_000;

function claim(
  key: string,
  amount: bigint,
  max: bigint,
  expiresAt: number | null = Date.now() + HOUR,
): CounterClaim {
  return { key, amount, max, expiresAt };
}

interface Stores {
  /** Two handles on the same counters (two replicas, for Redis). */
  open(): Promise<[CounterStore, CounterStore]>;
}

const memory: Stores = {
  open() {
    const store = new MemoryCounterStore();
    return Promise.resolve([store, store]);
  },
};

const redis: Stores = {
  async open() {
    const prefix = testPrefix();
    return [
      await RedisCounterStore.connect({ url: REDIS_URL, prefix }),
      await RedisCounterStore.connect({ url: REDIS_URL, prefix }),
    ];
  },
};

const suites: [string, Stores, boolean][] = [
  ['in-process', memory, true],
  ['Redis', redis, redisPresent],
];

describe.each(suites)('%s counter store', (_name, stores, present) => {
  const opened: CounterStore[] = [];
  const open = async () => {
    const pair = await stores.open();
    opened.push(...pair);
    return pair;
  };
  afterAll(async () => {
    await Promise.all([...new Set(opened)].map((store) => store.close()));
  });

  it.skipIf(!present)(
    'reserves all of a request’s claims, or none',
    async () => {
      const [store] = await open();
      await store.reserve([claim('tokens', 80n, 100n)]);
      const result = await store.reserve([
        claim('requests', 1n, 10n),
        claim('tokens', 30n, 100n),
      ]);
      expect(result).toMatchObject({
        admitted: false,
        refused: { key: 'tokens' },
        state: { used: 0n, reserved: 80n },
      });
      // The claim that did fit was not reserved either.
      expect(await store.read(['requests', 'tokens'])).toEqual([
        { used: 0n, reserved: 0n },
        { used: 0n, reserved: 80n },
      ]);
    },
  );

  it.skipIf(!present)(
    '100 concurrent claims on a counter that fits 10 admit exactly 10, across handles',
    async () => {
      const [a, b] = await open();
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          (i % 2 === 0 ? a : b).reserve([claim('rpm', 1n, 10n)]),
        ),
      );
      expect(results.filter((r) => r.admitted)).toHaveLength(10);
      expect(await a.read(['rpm'])).toEqual([{ used: 0n, reserved: 10n }]);
    },
  );

  it.skipIf(!present)(
    'settling releases the worst case and keeps the actual',
    async () => {
      const [store] = await open();
      const admitted = await Promise.all(
        Array.from({ length: 5 }, () =>
          store.reserve([claim('budget', 1_000n, 10_000n)]),
        ),
      );
      expect(admitted.every((r) => r.admitted)).toBe(true);
      await Promise.all(
        [300n, 0n, 1_000n, 7n, 0n].map((actual) =>
          store.settle([
            {
              key: 'budget',
              reserved: 1_000n,
              actual,
              expiresAt: Date.now() + HOUR,
            },
          ]),
        ),
      );
      expect(await store.read(['budget'])).toEqual([
        { used: 1_307n, reserved: 0n },
      ]);
      // 10,000 - 1,307 = 8,693 left: a claim of 8,693 fits, one more not.
      expect(
        (await store.reserve([claim('budget', 8_694n, 10_000n)])).admitted,
      ).toBe(false);
      expect(
        (await store.reserve([claim('budget', 8_693n, 10_000n)])).admitted,
      ).toBe(true);
    },
  );

  it.skipIf(!present)(
    'a concurrency counter holds only what is in flight',
    async () => {
      const [store] = await open();
      const slot = () => claim('inflight', 1n, 2n, null);
      expect((await store.reserve([slot()])).admitted).toBe(true);
      expect((await store.reserve([slot()])).admitted).toBe(true);
      expect((await store.reserve([slot()])).admitted).toBe(false);
      await store.settle([
        { key: 'inflight', reserved: 1n, actual: 0n, expiresAt: null },
      ]);
      expect((await store.reserve([slot()])).admitted).toBe(true);
    },
  );

  it.skipIf(!present)('a seeded counter starts from the ledger', async () => {
    const [store, other] = await open();
    const rebuilt = { ...claim('spent', 10n, 10_000n), rebuild: true };
    // Unseeded, a counter to rebuild is not decided on.
    expect(await store.reserve([rebuilt])).toMatchObject({
      admitted: false,
      unseeded: [{ key: 'spent' }],
    });
    await store.seed('spent', 9_990n, Date.now() + HOUR);
    // Seeding is once: a second seed (another replica's) changes nothing.
    await other.seed('spent', 5_000n, Date.now() + HOUR);
    expect(await store.read(['spent'])).toEqual([
      { used: 9_990n, reserved: 0n },
    ]);
    expect((await store.reserve([claim('spent', 11n, 10_000n)])).admitted).toBe(
      false,
    );
    expect((await store.reserve([claim('spent', 10n, 10_000n)])).admitted).toBe(
      true,
    );
  });
});

describe('the in-process store', () => {
  it('forgets a counter when its window ends', async () => {
    let now = 1_000;
    const store = new MemoryCounterStore(() => now);
    await store.reserve([claim('day', 10n, 10n, 2_000)]);
    expect((await store.reserve([claim('day', 1n, 10n, 2_000)])).admitted).toBe(
      false,
    );
    now = 2_000;
    expect((await store.reserve([claim('day', 1n, 10n, 3_000)])).admitted).toBe(
      true,
    );
  });
});

describe.skipIf(!redisPresent)('the Redis store', () => {
  it('refuses an amount it could not count exactly', async () => {
    const store = await RedisCounterStore.connect({
      url: REDIS_URL,
      prefix: testPrefix(),
    });
    try {
      await expect(
        store.reserve([claim('huge', 2n ** 53n, 2n ** 60n)]),
      ).rejects.toThrow(RangeError);
    } finally {
      await store.close();
    }
  });

  it('counts past 2^31 and back exactly', async () => {
    const store = await RedisCounterStore.connect({
      url: REDIS_URL,
      prefix: testPrefix(),
    });
    try {
      const big = 9_000_000_000_000_001n; // just under 2^53
      expect((await store.reserve([claim('nano', big, big)])).admitted).toBe(
        true,
      );
      await store.settle([
        { key: 'nano', reserved: big, actual: big - 1n, expiresAt: null },
      ]);
      expect(await store.read(['nano'])).toEqual([
        { used: big - 1n, reserved: 0n },
      ]);
    } finally {
      await store.close();
    }
  });

  it('fails fast with a named error when Redis is not there', async () => {
    const started = Date.now();
    await expect(
      RedisCounterStore.connect({
        url: 'redis://127.0.0.1:1',
        commandTimeoutMs: 300,
      }),
    ).rejects.toBeInstanceOf(CounterStoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
