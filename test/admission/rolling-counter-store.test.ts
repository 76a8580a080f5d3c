/**
 * Rolling counters keep one contract on both stores: a claim at bucket k
 * counts buckets k - 60 to k (ROLLING_BUCKETS is 60), reserves in k, and is settled in k; older
 * buckets leave as claims come; a seed puts the ledger's amounts in their
 * own buckets. Bucket numbers here are plain integers: which moment they
 * stand for is Admission's business (rolling-windows.test.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';

import type {
  CounterClaim,
  CounterStore,
} from '../../src/admission/counter-store.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { RedisCounterStore } from '../../src/admission/redis-counter-store.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';

/** Far in the future, so neither store expires a counter mid-test. */
const LATER = Date.now() + 3_600_000;

/** A bucket number, any: what matters is how far apart claims are. */
const K = 1_000_000;

function claim(
  key: string,
  bucket: number,
  amount: bigint,
  max: bigint,
): CounterClaim {
  return { key, amount, max, expiresAt: LATER, rebuild: true, bucket };
}

function settlement(
  key: string,
  bucket: number,
  reserved: bigint,
  actual: bigint,
) {
  return { key, reserved, actual, expiresAt: LATER, bucket };
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

describe.each(suites)('a rolling counter, %s', (_name, stores, present) => {
  const opened: CounterStore[] = [];
  const open = async () => {
    const pair = await stores.open();
    opened.push(...pair);
    return pair;
  };
  afterAll(async () => {
    await Promise.all([...new Set(opened)].map((store) => store.close()));
  });

  /** A store with `key` seeded empty at bucket `bucket`. */
  async function seeded(key: string, bucket = K) {
    const [store, other] = await open();
    await store.seed(key, { bucket, used: [] }, LATER);
    return [store, other] as const;
  }

  it.skipIf(!present)('is not decided on before it is seeded', async () => {
    const [store] = await open();
    expect(await store.reserve([claim('fresh', K, 1n, 10n)])).toMatchObject({
      admitted: false,
      unseeded: [{ key: 'fresh' }],
    });
  });

  it.skipIf(!present)(
    'counts buckets k - 60 to k, and lets bucket k - 61 go',
    async () => {
      const [store] = await seeded('span');
      expect((await store.reserve([claim('span', K, 4n, 10n)])).admitted).toBe(
        true,
      );
      expect(
        (await store.reserve([claim('span', K + 30, 6n, 10n)])).admitted,
      ).toBe(true);
      // At K + 60 the bucket K is still in the span: 4 + 6 = 10 held.
      const full = await store.reserve([claim('span', K + 60, 1n, 10n)]);
      expect(full).toMatchObject({
        admitted: false,
        state: { used: 0n, reserved: 10n },
        buckets: [
          { bucket: K, amount: 4n },
          { bucket: K + 30, amount: 6n },
        ],
      });
      // At K + 61 it has left: its 4 are free, and no more than that.
      expect(
        (await store.reserve([claim('span', K + 61, 5n, 10n)])).admitted,
      ).toBe(false);
      expect(
        (await store.reserve([claim('span', K + 61, 4n, 10n)])).admitted,
      ).toBe(true);
      expect(await store.read(['span'])).toEqual([{ used: 0n, reserved: 10n }]);
    },
  );

  it.skipIf(!present)(
    'reserves a claim dated a whole span behind in the oldest bucket, and settles it there',
    async () => {
      const [store, other] = await seeded('behind');
      await store.reserve([claim('behind', K + 100, 1n, 10n)]);
      // A replica whose clock is 100 buckets behind: K is 40 buckets
      // older than the oldest the counter holds (K + 100 - 60 = K + 40).
      const late = await other.reserve([claim('behind', K, 3n, 10n)]);
      expect(late).toMatchObject({
        admitted: true,
        states: [{ used: 0n, reserved: 4n, bucket: K + 40 }],
      });
      // Its settlement, where the store said, releases the 3 and counts 2.
      await other.settle([settlement('behind', K + 40, 3n, 2n)]);
      expect(await store.read(['behind'])).toEqual([
        { used: 2n, reserved: 1n },
      ]);
      // And the 2 leave with bucket K + 40, at K + 101.
      await store.reserve([claim('behind', K + 101, 1n, 10n)]);
      expect(await store.read(['behind'])).toEqual([
        { used: 0n, reserved: 2n },
      ]);
    },
  );

  it.skipIf(!present)(
    'settles in the bucket the reservation was made in',
    async () => {
      const [store] = await seeded('settle');
      await store.reserve([claim('settle', K, 5n, 10n)]);
      await store.reserve([claim('settle', K + 50, 1n, 10n)]);
      // Settled at K + 50, for the reservation made at K: 2 used there.
      await store.settle([settlement('settle', K, 5n, 2n)]);
      expect(await store.read(['settle'])).toEqual([
        { used: 2n, reserved: 1n },
      ]);
      // 2 + 1 held: 7 fits and 8 does not.
      expect(
        (await store.reserve([claim('settle', K + 50, 8n, 10n)])).admitted,
      ).toBe(false);
      // When K leaves, the 2 it used leave with it; K + 50's 1 stays.
      const later = await store.reserve([claim('settle', K + 61, 9n, 10n)]);
      expect(later.admitted).toBe(true);
      expect(await store.read(['settle'])).toEqual([
        { used: 0n, reserved: 10n },
      ]);
    },
  );

  it.skipIf(!present)(
    'counts a request dated a moment before the last in its own bucket',
    async () => {
      const [store] = await seeded('order');
      await store.reserve([claim('order', K + 5, 3n, 10n)]);
      // Admitted after K + 5's, dated before it: it belongs to K + 3.
      await store.reserve([claim('order', K + 3, 4n, 10n)]);
      await store.settle([settlement('order', K + 3, 4n, 1n)]);
      expect(await store.read(['order'])).toEqual([{ used: 1n, reserved: 3n }]);
      // At K + 64, K + 3 has left and K + 5 has not: 3 held, 7 free.
      expect(
        (await store.reserve([claim('order', K + 64, 8n, 10n)])).admitted,
      ).toBe(false);
      expect(
        (await store.reserve([claim('order', K + 64, 7n, 10n)])).admitted,
      ).toBe(true);
    },
  );

  it.skipIf(!present)(
    'drops a settlement whose bucket has left the span',
    async () => {
      const [store] = await seeded('late');
      await store.reserve([claim('late', K, 5n, 10n)]);
      await store.reserve([claim('late', K + 61, 1n, 10n)]);
      // K left with its reservation; settling it must not count again.
      await store.settle([settlement('late', K, 5n, 5n)]);
      expect(await store.read(['late'])).toEqual([{ used: 0n, reserved: 1n }]);
    },
  );

  it.skipIf(!present)(
    'forgets everything after an idle spell longer than the ring',
    async () => {
      const [store] = await seeded('idle');
      await store.reserve([claim('idle', K, 7n, 10n)]);
      await store.reserve([claim('idle', K + 5, 3n, 10n)]);
      expect(
        (await store.reserve([claim('idle', K + 500, 10n, 10n)])).admitted,
      ).toBe(true);
      expect(await store.read(['idle'])).toEqual([{ used: 0n, reserved: 10n }]);
    },
  );

  it.skipIf(!present)(
    'is seeded bucket by bucket, once, and only within the span',
    async () => {
      const [store, other] = await open();
      await store.seed(
        'seed',
        {
          bucket: K,
          used: [
            { bucket: K - 61, amount: 100n }, // before the span: not counted
            { bucket: K - 60, amount: 4n },
            { bucket: K - 10, amount: 3n },
          ],
        },
        LATER,
      );
      // A second seed (another replica's) changes nothing.
      await other.seed(
        'seed',
        { bucket: K, used: [{ bucket: K, amount: 9n }] },
        LATER,
      );
      expect(await store.read(['seed'])).toEqual([{ used: 7n, reserved: 0n }]);
      expect((await store.reserve([claim('seed', K, 4n, 10n)])).admitted).toBe(
        false,
      );
      expect((await store.reserve([claim('seed', K, 3n, 10n)])).admitted).toBe(
        true,
      );
      // At K + 1 the seeded 4 of K - 60 leave: exactly 4 fit again.
      expect(
        (await store.reserve([claim('seed', K + 1, 5n, 10n)])).admitted,
      ).toBe(false);
      expect(
        (await store.reserve([claim('seed', K + 1, 4n, 10n)])).admitted,
      ).toBe(true);
    },
  );

  it.skipIf(!present)(
    '100 concurrent claims spread over 10 buckets admit exactly 10',
    async () => {
      const [a, b] = await seeded('race');
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          (i % 2 === 0 ? a : b).reserve([claim('race', K + (i % 10), 1n, 10n)]),
        ),
      );
      expect(results.filter((r) => r.admitted)).toHaveLength(10);
      expect(await a.read(['race'])).toEqual([{ used: 0n, reserved: 10n }]);
    },
  );

  it.skipIf(!present)(
    'reserves all of a request’s claims, fixed and rolling, or none',
    async () => {
      const [store] = await seeded('mixed-rolling');
      await store.reserve([claim('mixed-rolling', K, 9n, 10n)]);
      const result = await store.reserve([
        { key: 'mixed-fixed', amount: 1n, max: 10n, expiresAt: LATER },
        claim('mixed-rolling', K + 1, 2n, 10n),
      ]);
      expect(result).toMatchObject({
        admitted: false,
        refused: { key: 'mixed-rolling' },
      });
      expect(await store.read(['mixed-fixed', 'mixed-rolling'])).toEqual([
        { used: 0n, reserved: 0n },
        { used: 0n, reserved: 9n },
      ]);
    },
  );
});
