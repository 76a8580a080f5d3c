/**
 * A plan's allowance as the limit that enforces it: derived from
 * `entitlements.<tenant>`, put in force beside the config's and the
 * managed limits, guarded against a managed limit taking its id, and
 * refused with a clear message, at the field, when a plan is not whole.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { planLimit, planOf } from '../../src/admission/entitlements.js';
import {
  checkLimit,
  limitsInForce,
} from '../../src/admission/managed-limits.js';
import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';

const BASE = {
  providers: { sim: { type: 'simulated' } },
  models: { a: { deployments: [{ provider: 'sim', model: 'x' }] } },
} as const;

function config(extra: Partial<ConfigInput>) {
  return parseConfig({ ...BASE, ...extra }, 'a test config');
}

/** The config error's text for `entitlements`, or '' when it is valid. */
function problems(
  entitlements: unknown,
  extra: Record<string, unknown> = {},
): string {
  try {
    parseConfig({ ...BASE, entitlements, ...extra }, 'a test config');
    return '';
  } catch (error) {
    return (error as Error).message;
  }
}

describe('planLimit', () => {
  it('enforces a money allowance as a monthly budget of the tenant', () => {
    const { entitlements } = config({
      entitlements: {
        acme: {
          included: { usd: '50' },
          overage: 'bill',
          overageMultiplier: '1.25',
        },
      },
    });
    expect(planLimit('acme', entitlements['acme']!)).toEqual({
      id: 'plan.acme',
      tenant: 'acme',
      budgetUsd: '50',
      per: 'month',
      onExceed: 'allow',
      onStoreDown: 'open',
    });
  });

  it('enforces a token allowance as monthly tokens, with its thresholds', () => {
    const { entitlements } = config({
      webhooks: { url: 'https://example.com/h', secret: 's' },
      entitlements: {
        ten_01: {
          included: { tokens: 5_000_000 },
          overage: 'notify',
          thresholds: [50, 80],
        },
        beta: { included: { tokens: 10 }, overage: 'block' },
      },
    });
    expect(planLimit('ten_01', entitlements['ten_01']!)).toEqual({
      id: 'plan.ten_01',
      tenant: 'ten_01',
      tokens: 5_000_000,
      per: 'month',
      onExceed: 'notify',
      thresholds: [50, 80],
      onStoreDown: 'open',
    });
    // A cap fails closed while its counter cannot be read.
    expect(planLimit('beta', entitlements['beta']!)).toMatchObject({
      tokens: 10,
      onExceed: 'block',
      onStoreDown: 'closed',
    });
  });

  it('derives nothing from a plan of models alone', () => {
    expect(planLimit('acme', { models: ['a'] })).toBeNull();
    expect(planLimit('acme', {})).toBeNull();
  });
});

describe('planOf', () => {
  it("takes the entry under the tenant's id over the one under its name", () => {
    const tenant = { id: 'ten_1', name: 'acme', timezone: 'UTC', createdAt: 0 };
    const byName = { models: ['a'] };
    const byId = { included: { tokens: 1 }, overage: 'block' as const };
    expect(planOf({ entitlements: { acme: byName } }, tenant)).toBe(byName);
    expect(
      planOf({ entitlements: { acme: byName, ten_1: byId } }, tenant),
    ).toBe(byId);
    expect(planOf({ entitlements: {} }, tenant)).toBeUndefined();
  });
});

describe('limits in force', () => {
  let store: SqliteStore;
  beforeEach(() => {
    store = new SqliteStore({ path: ':memory:' });
  });
  afterEach(async () => {
    await store.close();
  });
  const logger = createLogger('silent');

  it("follow the config's limits, before the managed ones", async () => {
    const running = config({
      limits: [{ id: 'rpm', requests: 10, per: 'minute' }],
      entitlements: {
        acme: { included: { usd: '5' }, overage: 'block' },
        globex: { models: ['a'] },
      },
    });
    await store.putLimit({
      id: 'managed',
      definition: JSON.stringify({ requests: 5, per: 'day' }),
      updatedAt: 0,
    });
    const ids = (await limitsInForce(running, store, logger)).map((l) => l.id);
    expect(ids).toEqual(['rpm', 'plan.acme', 'managed']);
  });

  it("leave out a name's allowance where the tenant's id has a plan", async () => {
    await store.createTenant({
      id: 'ten_acme',
      name: 'acme',
      timezone: 'UTC',
      createdAt: 0,
    });
    const running = config({
      entitlements: {
        acme: { included: { usd: '5' }, overage: 'block' },
        ten_acme: { included: { tokens: 1_000 }, overage: 'block' },
        globex: { included: { usd: '1' }, overage: 'block' },
      },
    });
    const ids = (await limitsInForce(running, store, logger)).map((l) => l.id);
    expect(ids).toEqual(['plan.ten_acme', 'plan.globex']);
  });

  it("refuse a managed limit that would take a plan's id", () => {
    const running = config({
      entitlements: { acme: { included: { usd: '5' }, overage: 'block' } },
    });
    expect(() =>
      checkLimit('plan.acme', { requests: 1, per: 'day' }, running),
    ).toThrow(
      'the limit "plan.acme" enforces the allowance of the plan of "acme"; ' +
        'change entitlements.acme in the config file',
    );
    // The prefix stays reserved where no plan holds the id today: a plan
    // added later would take it over.
    expect(() =>
      checkLimit('plan.globex', { requests: 1, per: 'day' }, running),
    ).toThrow('limit ids starting "plan." are kept for plans\' allowances');
    expect(checkLimit('planned', { requests: 1, per: 'day' }, running).id).toBe(
      'planned',
    );
  });
});

describe('config validation', () => {
  it('accepts each whole plan, and models alone', () => {
    expect(
      problems({
        a: { models: ['a'] },
        b: { included: { usd: '0.5' }, overage: 'block' },
        c: {
          included: { usd: '50' },
          overage: 'bill',
          overageMultiplier: '1.25',
        },
        d: {
          included: { tokens: 5_000_000 },
          overage: 'bill',
          overageUsdPer1M: '2.50',
        },
      }),
    ).toBe('');
  });

  it.each([
    [
      { included: { usd: '50' } },
      'say what happens past the included allowance: overage block, bill ' +
        'or notify\n  → at entitlements.acme.overage',
    ],
    [
      { included: { usd: 50 }, overage: 'block' },
      "a decimal string such as '50'\n  → at entitlements.acme.included.usd",
    ],
    [
      { included: { usd: '50', tokens: 5 }, overage: 'block' },
      'give exactly one of usd (list charges) or tokens\n' +
        '  → at entitlements.acme.included',
    ],
    [
      { included: { usd: '0' }, overage: 'block' },
      'above 0\n  → at entitlements.acme.included.usd',
    ],
    [
      { included: { usd: '1.0000000001' }, overage: 'block' },
      'at most nine decimals (units of 10^-9 USD)\n' +
        '  → at entitlements.acme.included.usd',
    ],
    [
      { included: { tokens: 2.5 }, overage: 'block' },
      'a whole number of tokens, e.g. 5000000\n' +
        '  → at entitlements.acme.included.tokens',
    ],
    [
      { included: { usd: '50' }, overage: 'maybe' },
      'one of block, bill, notify\n  → at entitlements.acme.overage',
    ],
    [
      { included: { usd: '50' }, overage: 'bill' },
      'overage bill needs overageMultiplier, the multiple of list charges ' +
        "the overage is billed at (e.g. '1.25')\n" +
        '  → at entitlements.acme.overageMultiplier',
    ],
    [
      { included: { tokens: 5 }, overage: 'bill' },
      'overage bill needs overageUsdPer1M, USD per 1M tokens past the ' +
        "allowance (e.g. '2.50')\n  → at entitlements.acme.overageUsdPer1M",
    ],
    [
      { included: { usd: '50' }, overage: 'bill', overageUsdPer1M: '2' },
      'a money allowance bills overage as a multiple of list charges: ' +
        "give overageMultiplier (e.g. '1.25') instead\n" +
        '  → at entitlements.acme.overageUsdPer1M',
    ],
    [
      { included: { tokens: 5 }, overage: 'bill', overageMultiplier: '2' },
      'a token allowance bills overage per token: give overageUsdPer1M ' +
        "(e.g. '2.50') instead\n  → at entitlements.acme.overageMultiplier",
    ],
    [
      { included: { usd: '50' }, overage: 'block', overageMultiplier: '2' },
      'overage block bills nothing past the allowance; overageMultiplier ' +
        'applies to overage bill\n  → at entitlements.acme.overageMultiplier',
    ],
    [
      { included: { usd: '50' }, overage: 'bill', overageMultiplier: '1,25' },
      "a decimal string such as '1.25'\n" +
        '  → at entitlements.acme.overageMultiplier',
    ],
    [
      { included: { usd: '50' }, overage: 'bill', overageMultiplier: '0' },
      'above 0\n  → at entitlements.acme.overageMultiplier',
    ],
    [
      { overage: 'bill' },
      'only a plan with an included allowance takes overage; give ' +
        'included\n' +
        '  → at entitlements.acme.overage',
    ],
    [
      { models: ['a'], thresholds: [80] },
      'only a plan with an included allowance takes thresholds; give ' +
        'included\n' +
        '  → at entitlements.acme.thresholds',
    ],
    [
      { included: { usd: '50' }, overage: 'notify' },
      'overage notify sends a webhook: configure webhooks.url first\n' +
        '  → at entitlements.acme.overage',
    ],
    [
      { included: { usd: '50' }, overage: 'block', thresholds: [80, 80] },
      'a threshold is listed twice\n  → at entitlements.acme.thresholds',
    ],
    [
      { included: { usd: '50' }, overage: 'block', thresholds: [80] },
      'thresholds send webhooks: configure webhooks.url first\n' +
        '  → at entitlements.acme.thresholds',
    ],
    [
      { included: { usd: '50' }, overage: 'block', allowance: '50' },
      'Unrecognized key: "allowance"\n  → at entitlements.acme',
    ],
  ])('refuses %j', (plan, message) => {
    expect(problems({ acme: plan })).toContain(`✖ ${message}`);
  });

  it('refuses an allowance under a key no tenant can have', () => {
    expect(
      problems({ 'acme corp': { included: { usd: '5' }, overage: 'block' } }),
    ).toContain(
      '✖ "acme corp" is not a tenant name or id (letters, digits, dots, ' +
        'dashes, underscores), so it cannot hold an allowance\n' +
        '  → at entitlements["acme corp"]',
    );
  });

  it('refuses an allowance whose limit id a config limit has', () => {
    expect(
      problems(
        { acme: { included: { usd: '5' }, overage: 'block' } },
        { limits: [{ id: 'plan.acme', requests: 1, per: 'day' }] },
      ),
    ).toContain(
      '✖ the allowance is enforced as the limit "plan.acme", which ' +
        'limits.0 already names; rename that limit\n' +
        '  → at entitlements.acme.included',
    );
  });

  it("refuses a config limit in the plans' id space, plan or no plan", () => {
    expect(
      problems(
        {},
        { limits: [{ id: 'plan.globex', requests: 1, per: 'day' }] },
      ),
    ).toContain(
      '✖ limit ids starting "plan." are kept for plans\' allowances\n' +
        '  → at limits[0].id',
    );
  });
});
