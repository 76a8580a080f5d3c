/**
 * How the router orders a route's deployments for one request: weighted
 * splits (checked against the binomial interval they must land in),
 * sticky feature flags, per-tenant overrides, and the cheapest and
 * fastest strategies over measured latency.
 *
 * Every statistical bound is a two-sided 99.9 % interval computed here
 * from the binomial distribution (normal approximation), not taken from
 * the code under test. The flag checks hash fixed subjects, so they are
 * deterministic; the weighted ones use the real Math.random, as the
 * product does, and fail once in a thousand runs by design.
 */
import { createHash } from 'node:crypto';

import { describe, expect, it } from 'vitest';
import type { z } from 'zod';

import {
  configSchema,
  type modelSchema,
} from '../../src/config/config-schema.js';
import { parseDecimal, type Decimal } from '../../src/money/decimal.js';
import type { ProviderClient } from '../../src/providers/provider-registry.js';
import {
  RouteTable,
  type Deployment,
  type Route,
} from '../../src/routing/route-table.js';
import {
  Router,
  stickyBucket,
  type RoutePlan,
  type RoutingSubject,
} from '../../src/routing/router.js';

type ModelInput = z.input<typeof modelSchema>;
type FlagInput = NonNullable<ModelInput['flags']>[number];

const PROVIDERS = ['a', 'b', 'c', 'd', 'e'] as const;

/** Routing never calls upstream; a client that would is a test bug. */
const unusedClient: ProviderClient = {
  api: 'openai-chat',
  sendChat: () => Promise.reject(new Error('routing makes no upstream call')),
};

function tableOf(models: Record<string, ModelInput>): RouteTable {
  const config = configSchema.parse({
    providers: Object.fromEntries(
      PROVIDERS.map((p) => [p, { type: 'simulated' }]),
    ),
    models,
  });
  return RouteTable.fromConfig(
    config,
    new Map(PROVIDERS.map((p) => [p, unusedClient])),
  );
}

/** The route `m`; its deployments are named `m/<provider>`. */
function routeOf(model: ModelInput): Route {
  return resolved(tableOf({ m: model }), 'm');
}

function resolved(
  table: { resolve(alias: string): Route | undefined },
  alias: string,
): Route {
  const route = table.resolve(alias);
  if (!route) throw new Error(`no route ${alias}`);
  return route;
}

function deployment(
  provider: (typeof PROVIDERS)[number],
  extra: Partial<ModelInput['deployments'][number]> = {},
): ModelInput['deployments'][number] {
  return { provider, model: `model-${provider}`, ...extra };
}

function subject(
  endUser: string | null,
  tenant: Partial<RoutingSubject> = {},
): RoutingSubject {
  return { tenantId: 'ten_1', tenantName: 'acme', endUser, ...tenant };
}

const ids = (plan: RoutePlan) => plan.deployments.map((d) => d.id);
const firstId = (plan: RoutePlan) => plan.deployments[0]?.id;

/** Returns `values` in turn, then fails: a random source for exact cases. */
function draws(...values: number[]): () => number {
  let next = 0;
  return () => {
    const value = values[next++];
    if (value === undefined) throw new Error('more draws than expected');
    return value;
  };
}

/** z for a two-sided 99.9 % interval. */
const Z_999 = 3.2905;

/**
 * Where a Binomial(n, p) count lands with probability 99.9 %, by the
 * normal approximation (n·p and n·(1 − p) are in the hundreds or more
 * everywhere it is used).
 */
function interval999(n: number, p: number): { low: number; high: number } {
  const sd = Math.sqrt(n * p * (1 - p));
  return { low: n * p - Z_999 * sd, high: n * p + Z_999 * sd };
}

function expectWithin(count: number, n: number, p: number): void {
  const { low, high } = interval999(n, p);
  expect(count).toBeGreaterThanOrEqual(low);
  expect(count).toBeLessThanOrEqual(high);
}

describe('weighted', () => {
  const split = () =>
    routeOf({
      deployments: [
        deployment('a', { weight: 90 }),
        deployment('b', { weight: 10 }),
      ],
    });

  it('is the default strategy when a deployment has a weight', () => {
    expect(split().strategy).toBe('weighted');
    expect(routeOf({ deployments: [deployment('a')] }).strategy).toBe(
      'ordered',
    );
  });

  it('lands a 90/10 split over 10,000 plans in its 99.9 % interval', () => {
    const route = split();
    const router = new Router(tableOf({}));
    const n = 10_000;
    let first = 0;
    for (let i = 0; i < n; i++) {
      const plan = router.plan(route, subject(`user-${i}`));
      if (firstId(plan) === 'm/a') first++;
    }
    // 9,000 ± 3.2905 × 30: [8901.3, 9098.7].
    expectWithin(first, n, 0.9);
  });

  it('draws below the running weight for one, at it for the next', () => {
    const route = split();
    // A draw of r stands for r × 100 against running weights 90, 100.
    const below = 0.9 - Number.EPSILON;
    const router = new Router(tableOf({}), draws(0, below, 0.9, 0.999999));
    const plans = [1, 2, 3, 4].map(() => router.plan(route, subject('u')));

    expect(plans.map(ids)).toEqual([
      ['m/a', 'm/b'],
      ['m/a', 'm/b'],
      ['m/b', 'm/a'],
      ['m/b', 'm/a'],
    ]);
    expect(plans[0]?.decision).toEqual({ by: 'weighted', weight: 90, of: 100 });
    expect(plans[2]?.decision).toEqual({ by: 'weighted', weight: 10, of: 100 });
  });

  it('never puts a weight-0 deployment first, and keeps it as a fallback', () => {
    const route = routeOf({
      deployments: [
        deployment('a', { weight: 1 }),
        deployment('b', { weight: 0 }),
        deployment('c', { weight: 1 }),
      ],
    });
    // Running weights 1, 1, 2 of 2: the draw of 0.5 (1) is the weight-0
    // deployment's lower edge and its upper one; it goes to `c`.
    const exact = new Router(tableOf({}), draws(0, 0.5 - 1e-12, 0.5));
    expect(ids(exact.plan(route, subject('u')))).toEqual(['m/a', 'm/b', 'm/c']);
    expect(ids(exact.plan(route, subject('u')))).toEqual(['m/a', 'm/b', 'm/c']);
    expect(ids(exact.plan(route, subject('u')))).toEqual(['m/c', 'm/a', 'm/b']);

    const router = new Router(tableOf({}));
    const orders = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      orders.add(ids(router.plan(route, subject(`u${i}`))).join(' '));
    }
    // The chosen one first, the others in their listed order.
    expect([...orders].sort()).toEqual(['m/a m/b m/c', 'm/c m/a m/b']);
  });

  it('treats a deployment without a weight as weight 0', () => {
    const route = routeOf({
      deployments: [deployment('a'), deployment('b', { weight: 5 })],
    });
    const router = new Router(tableOf({}));
    for (let i = 0; i < 500; i++) {
      expect(ids(router.plan(route, subject(`u${i}`)))).toEqual(['m/b', 'm/a']);
    }
  });

  it('serves weights of 0 alone in the listed order', () => {
    // Regression: with no weight above 0 the default strategy was
    // `weighted`, and its draw of 0 put the last deployment first.
    const route = routeOf({
      deployments: [deployment('a'), deployment('b', { weight: 0 })],
    });
    expect(route.strategy).toBe('ordered');
    const plan = new Router(tableOf({})).plan(route, subject('u'));
    expect(ids(plan)).toEqual(['m/a', 'm/b']);
    expect(plan.decision).toEqual({ by: 'ordered' });
  });

  it('gives a draw of the whole weight to the last weighted deployment', () => {
    const route = routeOf({
      deployments: [
        deployment('a', { weight: 1 }),
        deployment('b', { weight: 3 }),
        deployment('c', { weight: 0 }),
      ],
    });
    const router = new Router(tableOf({}), draws(1));
    expect(ids(router.plan(route, subject('u')))).toEqual([
      'm/b',
      'm/a',
      'm/c',
    ]);
  });
});

describe('sticky flags', () => {
  const USERS = 20_000;

  /** `m/a` first unless the flag sends the request to `m/b`. */
  const flagged = (flag: Partial<FlagInput> = {}) =>
    routeOf({
      deployments: [deployment('a'), deployment('b')],
      flags: [{ id: 'nova', deployment: 'm/b', percent: 25, ...flag }],
    });

  it('keeps each end user on one deployment across plans', () => {
    const route = flagged();
    const router = new Router(tableOf({}));
    const seen = new Set<string | undefined>();
    for (let u = 0; u < 200; u++) {
      const first = firstId(router.plan(route, subject(`user-${u}`)));
      seen.add(first);
      for (let again = 0; again < 20; again++) {
        expect(firstId(router.plan(route, subject(`user-${u}`)))).toBe(first);
      }
    }
    expect(seen).toEqual(new Set(['m/a', 'm/b']));
  });

  it('flags its share of 20,000 users, within the 99.9 % interval', () => {
    const route = flagged();
    const router = new Router(tableOf({}));
    let count = 0;
    for (let u = 0; u < USERS; u++) {
      const plan = router.plan(route, subject(`user-${u}`));
      if (plan.decision.by === 'flag') {
        count++;
        expect(ids(plan)).toEqual(['m/b', 'm/a']);
        expect(plan.decision.flag).toBe('nova');
        expect(plan.decision.bucket).toBeLessThan(2_500);
      } else {
        expect(ids(plan)).toEqual(['m/a', 'm/b']);
      }
    }
    // 5,000 ± 3.2905 × 61.2.
    expectWithin(count, USERS, 0.25);
  });

  it('buckets two flags independently of each other', () => {
    const table = tableOf({
      x: {
        deployments: [deployment('a'), deployment('b')],
        flags: [{ id: 'one', deployment: 'x/b', percent: 25 }],
      },
      y: {
        deployments: [deployment('c'), deployment('d')],
        flags: [{ id: 'two', deployment: 'y/d', percent: 25 }],
      },
    });
    const router = new Router(table);
    const [x, y] = [resolved(table, 'x'), resolved(table, 'y')];
    let both = 0;
    for (let u = 0; u < USERS; u++) {
      const who = subject(`user-${u}`);
      const inOne = router.plan(x, who).decision.by === 'flag';
      const inTwo = router.plan(y, who).decision.by === 'flag';
      if (inOne && inTwo) both++;
    }
    // Independent flags: P(both) = 0.25 × 0.25.
    expectWithin(both, USERS, 0.25 * 0.25);
  });

  it('buckets the same on every replica', () => {
    const model: ModelInput = {
      deployments: [deployment('a'), deployment('b')],
      flags: [{ id: 'nova', deployment: 'm/b', percent: 40 }],
    };
    const one = new Router(tableOf({ m: model }));
    const two = new Router(tableOf({ m: model }));
    const [r1, r2] = [resolved(one, 'm'), resolved(two, 'm')];
    for (let u = 0; u < 1_000; u++) {
      const who = subject(`user-${u}`);
      expect(two.plan(r2, who)).toEqual(one.plan(r1, who));
    }
  });

  it('hashes flag and subject with SHA-256, so restarts keep buckets', () => {
    // The bucket is the digest's first four bytes, big-endian, mod 10,000:
    // a contract between replicas and across releases.
    const digest = createHash('sha256')
      .update('nova\u0000user\u0000ten_1\u0000alice')
      .digest();
    expect(stickyBucket('nova', 'user\u0000ten_1\u0000alice')).toBe(
      digest.readUInt32BE(0) % 10_000,
    );
  });

  it('keeps the same end user apart in different tenants', () => {
    const route = flagged({ percent: 50 });
    const router = new Router(tableOf({}));
    let differs = 0;
    for (let u = 0; u < 1_000; u++) {
      const inOne = router.plan(route, subject(`user-${u}`)).decision.by;
      const inTwo = router.plan(
        route,
        subject(`user-${u}`, { tenantId: 'ten_2', tenantName: 'globex' }),
      ).decision.by;
      if (inOne !== inTwo) differs++;
    }
    // Independent buckets disagree half the time.
    expectWithin(differs, 1_000, 0.5);
  });

  it('by tenant: every end user of a tenant gets the same', () => {
    const route = flagged({ stickyBy: 'tenant', percent: 50 });
    const router = new Router(tableOf({}));
    const tenants = 400;
    let count = 0;
    for (let t = 0; t < tenants; t++) {
      const tenant = { tenantId: `ten_${t}`, tenantName: `tenant-${t}` };
      const first = firstId(router.plan(route, subject('user-0', tenant)));
      if (first === 'm/b') count++;
      for (let u = 1; u < 10; u++) {
        expect(firstId(router.plan(route, subject(`user-${u}`, tenant)))).toBe(
          first,
        );
      }
    }
    expectWithin(count, tenants, 0.5);
  });

  it('by end user, with no end user: sticky per tenant', () => {
    const route = flagged({ percent: 50 });
    const router = new Router(tableOf({}));
    let count = 0;
    for (let t = 0; t < 400; t++) {
      const who = subject(null, { tenantId: `ten_${t}` });
      const first = firstId(router.plan(route, who));
      if (first === 'm/b') count++;
      expect(firstId(router.plan(route, who))).toBe(first);
    }
    expectWithin(count, 400, 0.5);
  });

  it('by request: each request is bucketed on its own', () => {
    const route = flagged({ stickyBy: 'request' });
    // A draw of r is bucket ⌊r × 10,000⌋; 25 % flags buckets below 2,500.
    const exact = new Router(tableOf({}), draws(0.2499, 0.25, 0));
    expect(exact.plan(route, subject('u')).decision).toEqual({
      by: 'flag',
      flag: 'nova',
      bucket: 2_499,
    });
    expect(exact.plan(route, subject('u')).decision).toEqual({
      by: 'ordered',
    });
    expect(firstId(exact.plan(route, subject('u')))).toBe('m/b');

    const router = new Router(tableOf({}));
    const n = 10_000;
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (firstId(router.plan(route, subject('same-user'))) === 'm/b') count++;
    }
    expectWithin(count, n, 0.25);
  });

  it('flags none at 0 % and all at 100 %', () => {
    const router = new Router(tableOf({}));
    const none = flagged({ percent: 0 });
    const all = flagged({ percent: 100 });
    for (let u = 0; u < 2_000; u++) {
      expect(firstId(router.plan(none, subject(`u${u}`)))).toBe('m/a');
      expect(firstId(router.plan(all, subject(`u${u}`)))).toBe('m/b');
    }
  });

  it('applies only to its tenants, by name or by id', () => {
    const route = flagged({ percent: 100, tenants: ['acme', 'ten_9'] });
    const router = new Router(tableOf({}));
    const byName = subject('u', { tenantId: 'ten_1', tenantName: 'acme' });
    const byId = subject('u', { tenantId: 'ten_9', tenantName: 'initech' });
    const other = subject('u', { tenantId: 'ten_2', tenantName: 'globex' });

    expect(firstId(router.plan(route, byName))).toBe('m/b');
    expect(firstId(router.plan(route, byId))).toBe('m/b');
    expect(router.plan(route, other).decision).toEqual({ by: 'ordered' });
  });

  it('takes the first flag that matches', () => {
    const route = routeOf({
      deployments: [deployment('a'), deployment('b'), deployment('c')],
      flags: [
        { id: 'one', deployment: 'm/b', percent: 100, tenants: ['globex'] },
        { id: 'two', deployment: 'm/c', percent: 100 },
        { id: 'three', deployment: 'm/a', percent: 100 },
      ],
    });
    const router = new Router(tableOf({}));
    const globex = subject('u', { tenantId: 'ten_2', tenantName: 'globex' });
    const acme = subject('u');

    expect(ids(router.plan(route, globex))).toEqual(['m/b', 'm/a', 'm/c']);
    expect(router.plan(route, globex).decision).toMatchObject({ flag: 'one' });
    expect(ids(router.plan(route, acme))).toEqual(['m/c', 'm/a', 'm/b']);
    expect(router.plan(route, acme).decision).toMatchObject({ flag: 'two' });
  });

  it('passes an unflagged user on to the next flag', () => {
    const route = routeOf({
      deployments: [deployment('a'), deployment('b'), deployment('c')],
      flags: [
        { id: 'one', deployment: 'm/b', percent: 25 },
        { id: 'two', deployment: 'm/c', percent: 25 },
      ],
    });
    const router = new Router(tableOf({}));
    const firsts = { 'm/a': 0, 'm/b': 0, 'm/c': 0 };
    for (let u = 0; u < USERS; u++) {
      const first = firstId(router.plan(route, subject(`user-${u}`)));
      firsts[first as keyof typeof firsts]++;
    }
    expectWithin(firsts['m/b'], USERS, 0.25);
    // Flag two sees only those flag one left: 0.75 × 0.25.
    expectWithin(firsts['m/c'], USERS, 0.75 * 0.25);
    expectWithin(firsts['m/a'], USERS, 0.75 * 0.75);
  });

  it('applies before the weighted strategy', () => {
    const route = routeOf({
      deployments: [
        deployment('a', { weight: 1 }),
        deployment('b', { weight: 0 }),
      ],
      flags: [{ id: 'nova', deployment: 'm/b', percent: 100 }],
    });
    const plan = new Router(tableOf({})).plan(route, subject('u'));
    expect(ids(plan)).toEqual(['m/b', 'm/a']);
  });
});

describe('per-tenant overrides', () => {
  const model = (flags: ModelInput['flags'] = []): ModelInput => ({
    deployments: [
      deployment('a', { weight: 1 }),
      deployment('b', { weight: 1 }),
      deployment('c', { weight: 1 }),
    ],
    tenants: {
      acme: { deployments: ['m/c', 'm/a'] },
      ten_7: { deployments: ['m/b'] },
    },
    flags,
  });

  it("serves a tenant by its own deployments, in the override's order", () => {
    const route = routeOf(model());
    const router = new Router(tableOf({}));
    for (let i = 0; i < 200; i++) {
      const plan = router.plan(route, subject(`u${i}`));
      expect(ids(plan)).toEqual(['m/c', 'm/a']);
      expect(plan.decision).toEqual({ by: 'tenant', tenant: 'acme' });
    }
    const byId = subject('u', { tenantId: 'ten_7', tenantName: 'initech' });
    expect(ids(router.plan(route, byId))).toEqual(['m/b']);
    expect(router.plan(route, byId).decision).toEqual({
      by: 'tenant',
      tenant: 'initech',
    });
  });

  it('leaves other tenants to the strategy', () => {
    const route = routeOf(model());
    const router = new Router(tableOf({}), draws(0.9));
    const plan = router.plan(route, subject('u', { tenantName: 'globex' }));
    expect(ids(plan)).toEqual(['m/c', 'm/a', 'm/b']);
    expect(plan.decision.by).toBe('weighted');
  });

  it("applies a flag within it only when the flag's deployment is in it", () => {
    const router = new Router(tableOf({}));
    const outside = routeOf(
      model([{ id: 'nova', deployment: 'm/b', percent: 100 }]),
    );
    const inside = routeOf(
      model([{ id: 'nova', deployment: 'm/a', percent: 100 }]),
    );

    const skipped = router.plan(outside, subject('u'));
    expect(ids(skipped)).toEqual(['m/c', 'm/a']);
    expect(skipped.decision).toEqual({ by: 'tenant', tenant: 'acme' });

    const applied = router.plan(inside, subject('u'));
    expect(ids(applied)).toEqual(['m/a', 'm/c']);
    expect(applied.decision).toMatchObject({ by: 'flag', flag: 'nova' });
  });
});

describe('cheapest', () => {
  /** A `costOf` from deployment id to a decimal string, or null. */
  function costs(
    table: Record<string, string | null>,
  ): (d: Deployment) => Decimal | null {
    return (d) => {
      const cost = table[d.id];
      if (cost === undefined) throw new Error(`no cost for ${d.id}`);
      return cost === null ? null : parseDecimal(cost);
    };
  }

  const route = () =>
    routeOf({
      strategy: 'cheapest',
      objective: { latencyP95Ms: 500, minQualityTier: 2, windowMs: 60_000 },
      deployments: [
        deployment('a', { qualityTier: 3 }),
        deployment('b', { qualityTier: 1 }),
        deployment('c', { qualityTier: 3 }),
        deployment('d', { qualityTier: 3 }),
        deployment('e', { qualityTier: 2 }),
      ],
    });
  const prices = costs({
    'm/a': '0.02',
    'm/b': '0.001',
    'm/c': '0.01',
    'm/d': null,
    'm/e': '0.005',
  });

  /** `count` samples of `ms` each for a deployment, just now. */
  function observe(router: Router, id: string, ms: number, count = 20): void {
    for (let i = 0; i < count; i++) router.health.observeLatency(id, ms);
  }

  it('puts the cheapest that meets the objective first', () => {
    const router = new Router(tableOf({}));
    observe(router, 'm/a', 100);
    observe(router, 'm/c', 800);
    // `e` is unmeasured: it counts as meeting the latency objective.
    const plan = router.plan(route(), subject('u'), prices);

    // Meeting: e (0.005), a (0.02), d (unpriced); then b (quality) and c
    // (latency) in their listed order.
    expect(ids(plan)).toEqual(['m/e', 'm/a', 'm/d', 'm/b', 'm/c']);
    expect(plan.decision).toEqual({
      by: 'cheapest',
      cost: '0.005',
      p95Ms: null,
      missed: ['m/b', 'm/c'],
    });
  });

  it('records the p95 of a measured first choice', () => {
    const router = new Router(tableOf({}));
    observe(router, 'm/a', 100, 19);
    router.health.observeLatency('m/a', 450);
    observe(router, 'm/c', 800);
    observe(router, 'm/e', 600);
    const plan = router.plan(route(), subject('u'), prices);

    expect(ids(plan)).toEqual(['m/a', 'm/d', 'm/b', 'm/c', 'm/e']);
    // Nearest rank over 20 samples: the 19th, the last 100.
    expect(plan.decision).toEqual({
      by: 'cheapest',
      cost: '0.02',
      p95Ms: 100,
      missed: ['m/b', 'm/c', 'm/e'],
    });
  });

  it('counts a p95 at the objective as meeting it', () => {
    const router = new Router(tableOf({}));
    observe(router, 'm/c', 500);
    const plan = router.plan(route(), subject('u'), prices);
    expect(firstId(plan)).toBe('m/e');
    expect(ids(plan).slice(0, 3)).toEqual(['m/e', 'm/c', 'm/a']);
  });

  it('ignores latency older than the window', () => {
    const router = new Router(tableOf({}));
    const longAgo = Date.now() - 60_001;
    for (let i = 0; i < 20; i++) {
      router.health.observeLatency('m/c', 800, longAgo);
    }
    const plan = router.plan(route(), subject('u'), prices);
    expect(ids(plan).slice(0, 2)).toEqual(['m/e', 'm/c']);
    expect(plan.decision).toMatchObject({ missed: ['m/b'] });
  });

  it('keeps the listed order among equal costs', () => {
    const tied = routeOf({
      strategy: 'cheapest',
      deployments: [deployment('a'), deployment('b'), deployment('c')],
    });
    const plan = new Router(tableOf({})).plan(
      tied,
      subject('u'),
      costs({ 'm/a': '0.30', 'm/b': '0.1', 'm/c': '0.10' }),
    );
    expect(ids(plan)).toEqual(['m/b', 'm/c', 'm/a']);
    expect(plan.decision).toMatchObject({ cost: '0.1', missed: [] });
  });

  it('puts unpriced deployments last, in their listed order', () => {
    const unpriced = routeOf({
      strategy: 'cheapest',
      deployments: [deployment('a'), deployment('b'), deployment('c')],
    });
    const router = new Router(tableOf({}));
    const plan = router.plan(
      unpriced,
      subject('u'),
      costs({ 'm/a': null, 'm/b': null, 'm/c': '5' }),
    );
    expect(ids(plan)).toEqual(['m/c', 'm/a', 'm/b']);

    const none = router.plan(unpriced, subject('u'));
    expect(ids(none)).toEqual(['m/a', 'm/b', 'm/c']);
    expect(none.decision).toEqual({
      by: 'cheapest',
      cost: null,
      p95Ms: null,
      missed: [],
    });
  });

  it('counts a deployment without a tier as below any floor', () => {
    const floor = routeOf({
      strategy: 'cheapest',
      objective: { minQualityTier: 1 },
      deployments: [deployment('a'), deployment('b', { qualityTier: 1 })],
    });
    const plan = new Router(tableOf({})).plan(
      floor,
      subject('u'),
      costs({ 'm/a': '0', 'm/b': '1' }),
    );
    expect(ids(plan)).toEqual(['m/b', 'm/a']);
    expect(plan.decision).toMatchObject({ missed: ['m/a'] });
  });

  it('passes over a deployment whose breaker is open', async () => {
    const router = new Router(tableOf({}));
    await router.health.guard('m/e', { failures: 1, openMs: 60_000 }, () =>
      Promise.resolve({ failed: true, value: null }),
    );
    const plan = router.plan(route(), subject('u'), prices);
    expect(ids(plan)).toEqual(['m/c', 'm/a', 'm/d', 'm/b', 'm/e']);
    expect(plan.decision).toMatchObject({ missed: ['m/b', 'm/e'] });
  });
});

describe('fastest', () => {
  const route = () =>
    routeOf({
      strategy: 'fastest',
      deployments: [deployment('a'), deployment('b'), deployment('c')],
    });

  it('puts the lowest p50 first, unmeasured ones before all', () => {
    const router = new Router(tableOf({}));
    // p50 (nearest rank of 3): a 300, c 100; b unmeasured.
    for (const ms of [250, 300, 900]) router.health.observeLatency('m/a', ms);
    for (const ms of [100, 90, 5_000]) router.health.observeLatency('m/c', ms);
    const plan = router.plan(route(), subject('u'));
    expect(ids(plan)).toEqual(['m/b', 'm/c', 'm/a']);
    expect(plan.decision).toEqual({ by: 'fastest', p50Ms: null });
  });

  it('records the p50 of a measured first choice', () => {
    const router = new Router(tableOf({}));
    router.health.observeLatency('m/a', 40);
    router.health.observeLatency('m/b', 30);
    router.health.observeLatency('m/c', 40);
    const plan = router.plan(route(), subject('u'));
    expect(ids(plan)).toEqual(['m/b', 'm/a', 'm/c']);
    expect(plan.decision).toEqual({ by: 'fastest', p50Ms: 30 });
  });

  it('keeps the listed order among the unmeasured', () => {
    const plan = new Router(tableOf({})).plan(route(), subject('u'));
    expect(ids(plan)).toEqual(['m/a', 'm/b', 'm/c']);
  });
});

describe('ordered', () => {
  it('serves the listed order', () => {
    const route = routeOf({
      deployments: [deployment('c'), deployment('a'), deployment('b')],
    });
    const plan = new Router(tableOf({})).plan(route, subject('u'));
    expect(ids(plan)).toEqual(['m/c', 'm/a', 'm/b']);
    expect(plan).toMatchObject({ alias: 'm', decision: { by: 'ordered' } });
  });
});

describe('replace', () => {
  it('serves the new table to the next plan, keeping health', () => {
    const before = tableOf({ m: { deployments: [deployment('a')] } });
    const after = tableOf({
      m: { deployments: [deployment('b'), deployment('a')] },
    });
    const router = new Router(before);
    router.health.observeLatency('m/a', 10);
    const held = resolved(router, 'm');
    router.replace(after);

    expect(router.table).toBe(after);
    expect(ids(router.plan(resolved(router, 'm'), subject('u')))).toEqual([
      'm/b',
      'm/a',
    ]);
    expect(ids(router.plan(held, subject('u')))).toEqual(['m/a']);
    expect(router.health.latency('m/a', 0.5, 60_000)).toBe(10);
  });
});
