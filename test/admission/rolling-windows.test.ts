/**
 * Rolling windows through Admission, on both counter stores, with the
 * clock moved by hand: a limit refuses at its maximum and reopens only as
 * the buckets holding its oldest requests leave the span; Retry-After and
 * the reset headers say when; concurrent admits never pass the maximum;
 * and a counter rebuilt from the ledger counts what was spent in the last
 * span, in the buckets it was spent in.
 *
 * Expected moments are worked out by hand from the bucket width: a
 * 1-minute span has 60 buckets of 1 s, a 1-hour span 60 of 1 min, a
 * 24-hour span 60 of 24 min; a request's bucket leaves the span 61
 * widths after the bucket began.
 */
import { afterAll, describe, expect, it } from 'vitest';

import {
  Admission,
  AdmissionRefusal,
  type AdmissionRequest,
} from '../../src/admission/admission.js';
import type { CounterStore } from '../../src/admission/counter-store.js';
import { limitSchema, type LimitConfig } from '../../src/admission/limits.js';
import { MemoryCounterStore } from '../../src/admission/memory-counter-store.js';
import { RedisCounterStore } from '../../src/admission/redis-counter-store.js';
import { EMPTY_USAGE } from '../../src/metering/usage.js';
import { parseDecimal } from '../../src/money/decimal.js';
import { createLogger } from '../../src/observability/logger.js';
import type { LimitScopeRow, Store } from '../../src/storage/store.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * A start up to 24 minutes ahead of the real clock, on a whole 24-minute
 * boundary (so on a whole minute and second too): Redis expires counters
 * by real time, so the tests' moments stay in the future.
 */
const T0 = (Math.floor(Date.now() / (24 * MINUTE)) + 1) * 24 * MINUTE;

const TENANT = { id: 'ten_roll', name: 'roll', timezone: 'UTC', createdAt: 0 };

function limit(input: Record<string, unknown>): LimitConfig {
  return limitSchema.parse(input);
}

function request(
  requestId: string,
  worst: { input?: number; output?: number; cost?: string } = {},
): AdmissionRequest {
  return {
    requestId,
    tenant: TENANT,
    keyId: 'key_1',
    endUser: null,
    model: 'gpt-4o',
    worstInputTokens: worst.input ?? 10,
    worstOutputTokens: worst.output ?? 10,
    worstCost: worst.cost === undefined ? null : parseDecimal(worst.cost),
  };
}

/** What `promise` rejected with, as a refusal. */
async function refusal(promise: Promise<unknown>): Promise<AdmissionRefusal> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof AdmissionRefusal)) {
    throw new Error(`expected a refusal, got ${String(error)}`);
  }
  return error;
}

/** A ledger that holds only these rows, filtered as the store filters. */
function ledgerOf(rows: readonly LimitScopeRow[]): Store {
  const ledger: Pick<Store, 'limitScopeUsage'> = {
    limitScopeUsage: (query) =>
      Promise.resolve(
        rows.filter((r) => r.servedAt >= query.from && r.servedAt < query.to),
      ),
  };
  return ledger as Store;
}

function settledRow(requestId: string, servedAt: number): LimitScopeRow {
  return {
    requestId,
    pending: false,
    servedAt,
    tokens: { ...EMPTY_USAGE, inputTokens: 10, outputTokens: 10 },
    reservedInputTokens: 10,
    reservedOutputTokens: 10,
    charges: ['0.01'],
    reservedCost: '0.01',
  };
}

interface Stores {
  /** Two handles on the same counters, as two replicas would have. */
  open(now: () => number): Promise<[CounterStore, CounterStore]>;
}

const memory: Stores = {
  open(now) {
    const store = new MemoryCounterStore(now);
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

describe.each(suites)('a rolling limit, %s', (_name, stores, present) => {
  const opened: CounterStore[] = [];
  afterAll(async () => {
    await Promise.all([...new Set(opened)].map((store) => store.close()));
  });

  /** Admission over fresh counters, on a clock the test moves. */
  async function admission(
    limits: LimitConfig[],
    options: { ledger?: Store; replicas?: 2 } = {},
  ) {
    const clock = { now: T0 };
    const now = () => clock.now;
    const pair = await stores.open(now);
    opened.push(...pair);
    const make = (store: CounterStore) =>
      new Admission(store, limits, createLogger('silent'), {
        now,
        ...(options.ledger && { ledger: options.ledger }),
      });
    return { clock, one: make(pair[0]), two: make(pair[1]) };
  }

  it.skipIf(!present)(
    'refuses at the maximum and reopens only as buckets leave the span',
    async () => {
      const { clock, one } = await admission([
        limit({ id: 'rpm', requests: 3, per: { rolling: '1m' } }),
      ]);
      for (const [i, at] of [0, 10, 20].entries()) {
        clock.now = T0 + at * SECOND;
        await one.admit(request(`r${i}`));
        await one.settle(`r${i}`, null);
      }
      clock.now = T0 + 30 * SECOND;
      const refused = await refusal(one.admit(request('r3')));
      expect(refused.reason).toBe('rate_limit_exceeded');
      expect(refused.message).toContain('3 requests per rolling 1m');
      // T0's bucket (1 s wide) leaves the span at T0 + 61 s: 31 s on.
      expect(refused.retryAfterSeconds).toBe(31);
      expect(refused.headers).toEqual({
        'x-ratelimit-limit-requests': '3',
        'x-ratelimit-remaining-requests': '0',
        'x-ratelimit-reset-requests': '31s',
      });
      // A minute after T0 its request still counts, and the one before
      // T0 + 61 s too: the span is 60 whole buckets and the current one.
      clock.now = T0 + 61 * SECOND - 1;
      await refusal(one.admit(request('r4')));
      clock.now = T0 + 61 * SECOND;
      const headers = await one.admit(request('r5'));
      expect(headers).toEqual({
        'x-ratelimit-limit-requests': '3',
        'x-ratelimit-remaining-requests': '0',
        // Back to 3 once this request's own bucket has left: 61 s on.
        'x-ratelimit-reset-requests': '1m1s',
      });
      // Full again, until T0 + 10 s's bucket leaves, at T0 + 71 s.
      const next = await refusal(one.admit(request('r6')));
      expect(next.retryAfterSeconds).toBe(10);
      clock.now = T0 + 71 * SECOND;
      await expect(one.admit(request('r7'))).resolves.toMatchObject({
        'x-ratelimit-remaining-requests': '0',
      });
    },
  );

  it.skipIf(!present)(
    'tells a budget when enough of its oldest spend has left',
    async () => {
      const { clock, one } = await admission([
        limit({ id: 'daily', budgetUsd: '1', per: { rolling: '24h' } }),
      ]);
      const spend = async (id: string, at: number, usd: string) => {
        clock.now = at;
        await one.admit(request(id, { cost: usd }));
        await one.settle(id, {
          tokens: { ...EMPTY_USAGE, inputTokens: 10, outputTokens: 10 },
          cost: parseDecimal(usd),
        });
      };
      await spend('a', T0, '0.5');
      await spend('b', T0 + HOUR, '0.3');
      clock.now = T0 + 2 * HOUR;
      // 0.2 left. A worst case of 0.6 needs 0.4 more: T0's 0.5 leaving is
      // enough. Its bucket, 24 min wide, leaves at T0 + 61 × 24 min =
      // T0 + 24 h 24 min: 22 h 24 min = 80,640 s from now.
      const small = await refusal(one.admit(request('c', { cost: '0.6' })));
      expect(small.reason).toBe('budget_exceeded');
      expect(small.retryAfterSeconds).toBe(80_640);
      expect(small.message).toContain('(0.2 of 1 USD in the last 24h)');
      // A worst case of 0.9 needs 0.7: both must leave. T0 + 1 h lies in
      // the bucket starting T0 + 48 min, which leaves at T0 + 49 × 24 min
      // + 48 min = T0 + 25 h 12 min: 23 h 12 min = 83,520 s from now.
      const large = await refusal(one.admit(request('d', { cost: '0.9' })));
      expect(large.retryAfterSeconds).toBe(83_520);
      clock.now = T0 + 24 * HOUR + 24 * MINUTE - 1;
      await refusal(one.admit(request('e', { cost: '0.6' })));
      clock.now = T0 + 24 * HOUR + 24 * MINUTE;
      await expect(
        one.admit(request('f', { cost: '0.6' })),
      ).resolves.toBeDefined();
    },
  );

  it.skipIf(!present)(
    '100 simultaneous admits on two replicas admit exactly the maximum',
    async () => {
      const { clock, one, two } = await admission([
        limit({ id: 'rpm', requests: 10, per: { rolling: '1m' } }),
        limit({ id: 'tpm', tokens: 1_000, per: { rolling: '1h' } }),
      ]);
      // Ten requests already in the last hour's tokens: 10 × 20 = 200.
      for (let i = 0; i < 10; i += 1) {
        clock.now = T0 + i * MINUTE;
        await one.admit(request(`early-${i}`));
        await one.settle(`early-${i}`, {
          tokens: { ...EMPTY_USAGE, inputTokens: 10, outputTokens: 10 },
          cost: null,
        });
      }
      // A minute and a second after the last of them: the rate's span
      // (its 60 buckets of 1 s and the current one) holds none of them.
      clock.now = T0 + 10 * MINUTE + SECOND;
      // Each worst case is 100 tokens: 8 fit in the 800 left of the hour,
      // although the minute's rate would let 10 through.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) =>
          (i % 2 === 0 ? one : two).admit(
            request(`race-${i}`, { input: 50, output: 50 }),
          ),
        ),
      );
      const admitted = outcomes.filter((o) => o.status === 'fulfilled');
      expect(admitted).toHaveLength(8);
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') {
          expect(outcome.reason).toBeInstanceOf(AdmissionRefusal);
        }
      }
    },
  );

  it.skipIf(!present)(
    'a rate counts requests admitted at once across its buckets',
    async () => {
      const { clock, one, two } = await admission([
        limit({ id: 'rpm', requests: 10, per: { rolling: '1m' } }),
      ]);
      const race = (at: number, n: number) => {
        clock.now = at;
        return Promise.allSettled(
          Array.from({ length: n }, (_, i) =>
            (i % 2 === 0 ? one : two).admit(request(`at-${at}-${i}`)),
          ),
        );
      };
      const admitted = (outcomes: PromiseSettledResult<unknown>[]) =>
        outcomes.filter((o) => o.status === 'fulfilled').length;
      expect(admitted(await race(T0, 4))).toBe(4);
      // 30 s on, 100 at once find 6 left; 59 s on, none.
      expect(admitted(await race(T0 + 30 * SECOND, 100))).toBe(6);
      expect(admitted(await race(T0 + 59 * SECOND, 100))).toBe(0);
      // When T0's bucket leaves, exactly its 4 come free.
      expect(admitted(await race(T0 + 61 * SECOND, 100))).toBe(4);
    },
  );

  it.skipIf(!present)(
    'rebuilds from the ledger what the last span spent, bucket by bucket',
    async () => {
      // Requests the ledger holds from before a restart, one hour limit of
      // 3 requests (buckets of 1 min). T0 - 60 min - 1 s lies in the
      // bucket before the span; T0 - 59 min 59 s in its first; T0 - 1 s
      // in the last whole one.
      const ledger = ledgerOf([
        settledRow('old', T0 - HOUR - SECOND),
        settledRow('first', T0 - HOUR + SECOND),
        settledRow('last', T0 - SECOND),
      ]);
      const { clock, one } = await admission(
        [limit({ id: 'rph', requests: 3, per: { rolling: '1h' } })],
        { ledger },
      );
      await expect(one.admit(request('a'))).resolves.toMatchObject({
        'x-ratelimit-remaining-requests': '0',
      });
      const refused = await refusal(one.admit(request('b')));
      // 'first' leaves with its bucket, T0 - 60 min, at T0 + 1 min.
      expect(refused.retryAfterSeconds).toBe(60);
      clock.now = T0 + MINUTE - 1;
      await refusal(one.admit(request('c')));
      clock.now = T0 + MINUTE;
      await expect(one.admit(request('d'))).resolves.toMatchObject({
        'x-ratelimit-remaining-requests': '0',
      });
    },
  );
});

describe.skipIf(!redisPresent)('a rolling reservation left by a crash', () => {
  it('is released by the recovering gateway in the bucket it was made in', async () => {
    const prefix = testPrefix();
    const stores = [
      await RedisCounterStore.connect({ url: REDIS_URL, prefix }),
      await RedisCounterStore.connect({ url: REDIS_URL, prefix }),
    ] as const;
    try {
      const clock = { now: T0 };
      const limits = [
        limit({ id: 'tph', tokens: 100, per: { rolling: '1h' } }),
      ];
      const [dying, recovering] = stores.map(
        (store) =>
          new Admission(store, limits, createLogger('silent'), {
            now: () => clock.now,
          }),
      ) as [Admission, Admission];
      // 30 + 30 tokens reserved at T0 by a process that then dies.
      await dying.admit(request('lost', { input: 30, output: 30 }));
      const reservations = dying.reservationsOf('lost');
      expect(JSON.parse(reservations ?? '[]')).toMatchObject([
        { amount: '60', bucket: T0 / MINUTE },
      ]);
      // Recovered 10 minutes on: settled at its worst case, where it was
      // reserved, so it still counts until T0's bucket leaves.
      clock.now = T0 + 10 * MINUTE;
      await recovering.releaseRecovered('lost', reservations);
      const headers = await recovering.admit(request('next', { input: 20 }));
      // 60 used at T0, and this request's own 20 + 10 reserved.
      expect(headers['x-ratelimit-remaining-tokens']).toBe('10');
      await recovering.settle('next', null);
      clock.now = T0 + HOUR + MINUTE;
      const after = await recovering.admit(request('later', { input: 20 }));
      expect(after['x-ratelimit-remaining-tokens']).toBe('70');
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });
});
