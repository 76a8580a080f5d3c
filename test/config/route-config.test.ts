/**
 * A routing config that cannot be served is refused at load, each problem
 * with a message that names it at the path of the offending key, and
 * every problem at once rather than the first alone.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';

import {
  configSchema,
  type ConfigInput,
  type modelSchema,
} from '../../src/config/config-schema.js';

type ModelInput = z.input<typeof modelSchema>;

const PRICES = [
  {
    effectiveFrom: '2026-01-01',
    input: '1.00',
    output: '2.00',
    source: 'operator',
  },
];

function parse(models: Record<string, ModelInput>) {
  const config: ConfigInput = {
    providers: {
      a: { type: 'simulated' },
      b: { type: 'simulated' },
    },
    models,
  };
  return configSchema.safeParse(config);
}

/** Every issue as `path: message`, for exact comparison. */
function problems(models: Record<string, ModelInput>): string[] {
  const result = parse(models);
  if (result.success) return [];
  return result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const two = (): ModelInput['deployments'] => [
  { provider: 'a', model: 'model-a' },
  { provider: 'b', model: 'model-b' },
];

describe('route validation', () => {
  it('accepts a route using every routing feature', () => {
    const result = parse({
      chat: {
        deployments: [
          { id: 'primary', provider: 'a', model: 'model-a', weight: 9 },
          { id: 'nova', provider: 'b', model: 'model-b', weight: 1 },
        ],
        flags: [
          { id: 'try-nova', deployment: 'nova', percent: 5 },
          {
            id: 'acme-nova',
            deployment: 'nova',
            percent: 50,
            stickyBy: 'tenant',
            tenants: ['acme'],
          },
        ],
        tenants: { globex: { deployments: ['nova', 'primary'] } },
        retry: { retries: 2, initialBackoffMs: 50, maxBackoffMs: 50 },
        circuitBreaker: { failures: 3, openMs: 10_000 },
        tenantPrice: 'route',
        prices: PRICES,
      },
    });
    expect(result.error?.issues).toBeUndefined();
    expect(result.data?.models['chat']?.circuitBreaker).toEqual({
      failures: 3,
      openMs: 10_000,
    });
  });

  it('refuses a deployment on an unknown provider', () => {
    expect(
      problems({
        m: {
          deployments: [
            { provider: 'a', model: 'x' },
            { provider: 'zz', model: 'y' },
          ],
        },
      }),
    ).toEqual(['models.m.deployments.1.provider: unknown provider "zz"']);
  });

  it('refuses weighted routing without a weight above 0', () => {
    expect(
      problems({ m: { strategy: 'weighted', deployments: two() } }),
    ).toEqual([
      'models.m.strategy: weighted routing needs a deployment with a weight above 0',
    ]);
    expect(
      problems({
        m: {
          strategy: 'weighted',
          deployments: [
            { provider: 'a', model: 'x', weight: 0 },
            { provider: 'b', model: 'y', weight: 0 },
          ],
        },
      }),
    ).toEqual([
      'models.m.strategy: weighted routing needs a deployment with a weight above 0',
    ]);
  });

  it('refuses a second flag of the same name in a route', () => {
    expect(
      problems({
        m: {
          deployments: two(),
          flags: [
            { id: 'nova', deployment: 'm/b', percent: 5 },
            { id: 'nova', deployment: 'm/a', percent: 5 },
          ],
        },
      }),
    ).toEqual(['models.m.flags.1.id: a second flag named "nova"']);
  });

  it('refuses a flag for a deployment not in the route', () => {
    expect(
      problems({
        m: {
          deployments: two(),
          flags: [{ id: 'nova', deployment: 'n/b', percent: 5 }],
        },
        n: { deployments: [{ id: 'n/b', provider: 'b', model: 'y' }] },
      }),
    ).toEqual([
      'models.m.flags.0.deployment: no deployment "n/b" in this route',
    ]);
  });

  it('refuses a tenant override naming a deployment not in the route', () => {
    expect(
      problems({
        m: {
          deployments: two(),
          tenants: { acme: { deployments: ['m/a', 'm/c'] } },
        },
      }),
    ).toEqual([
      'models.m.tenants.acme.deployments.1: no deployment "m/c" in this route',
    ]);
  });

  it('refuses route pricing without route prices, and the reverse', () => {
    expect(
      problems({ m: { deployments: two(), tenantPrice: 'route' } }),
    ).toEqual([
      'models.m.prices: tenantPrice "route" needs the route\'s prices',
    ]);
    expect(problems({ m: { deployments: two(), prices: PRICES } })).toEqual([
      'models.m.prices: route prices apply only with tenantPrice "route"',
    ]);
  });

  it('refuses a backoff ceiling below its start', () => {
    expect(
      problems({
        m: {
          deployments: two(),
          retry: { initialBackoffMs: 500, maxBackoffMs: 100 },
        },
      }),
    ).toEqual([
      'models.m.retry.maxBackoffMs: maxBackoffMs is below initialBackoffMs',
    ]);
  });

  it('refuses a deployment id used twice across the config', () => {
    expect(
      problems({
        m: { deployments: [{ id: 'shared', provider: 'a', model: 'x' }] },
        n: { deployments: [{ id: 'shared', provider: 'b', model: 'y' }] },
      }),
    ).toEqual([
      'models.n.deployments.0.id: a second deployment "shared" (also in "m"); give each its own id',
    ]);
  });

  it('refuses two deployments of a route on one provider without ids', () => {
    // Both default to `m/a`.
    expect(
      problems({
        m: {
          deployments: [
            { provider: 'a', model: 'x' },
            { provider: 'a', model: 'y' },
          ],
        },
      }),
    ).toEqual([
      'models.m.deployments.1.id: a second deployment "m/a" in this route; give each its own id',
    ]);
  });

  it('refuses a tenant override that lists a deployment twice', () => {
    expect(
      problems({
        m: {
          deployments: [{ id: 'm/a', provider: 'a', model: 'x' }],
          tenants: { acme: { deployments: ['m/a', 'm/a'] } },
        },
      }),
    ).toEqual(['models.m.tenants.acme.deployments.1: "m/a" is listed twice']);
  });

  it('refuses weights under a strategy that does not read them', () => {
    expect(
      problems({
        m: {
          strategy: 'ordered',
          deployments: [{ provider: 'a', model: 'x', weight: 3 }],
        },
      }),
    ).toEqual([
      'models.m.strategy: weights apply only to strategy "weighted", not "ordered"',
    ]);
  });

  it('refuses a flag percentage finer than 0.01 %', () => {
    expect(
      problems({
        m: {
          deployments: [{ id: 'm/a', provider: 'a', model: 'x' }],
          flags: [{ id: 'f', deployment: 'm/a', percent: 0.004 }],
        },
      }),
    ).toEqual([
      'models.m.flags.0.percent: a percentage to 0.01 % at most (e.g. 12.5, 0.05)',
    ]);
  });

  it("refuses price keys in the routes' and deployments' own namespaces", () => {
    expect(
      problems({
        m: { deployments: [{ provider: 'a', model: 'x', priceAs: 'route:m' }] },
      }),
    ).toEqual([
      `models.m.deployments.0.priceAs: "route:m" names a route's or a deployment's own prices; give a model id`,
    ]);
  });

  it('refuses an objective that only cheapest routing would read', () => {
    expect(
      problems({
        m: {
          deployments: [{ provider: 'a', model: 'x' }],
          objective: { latencyP95Ms: 500 },
        },
      }),
    ).toEqual([
      'models.m.objective: latencyP95Ms and minQualityTier apply only to strategy "cheapest"',
    ]);
  });

  it('refuses a deployment priced both as another model and by its own prices', () => {
    expect(
      problems({
        m: {
          deployments: [
            { provider: 'a', model: 'x', priceAs: 'gpt-4o', prices: PRICES },
          ],
        },
      }),
    ).toEqual([
      'models.m.deployments.0: give either priceAs or prices, not both',
    ]);
  });

  it('reports every problem of a route at once', () => {
    expect(
      problems({
        m: {
          strategy: 'weighted',
          deployments: [{ provider: 'zz', model: 'x' }],
          flags: [{ id: 'f', deployment: 'm/b', percent: 1 }],
          tenants: { acme: { deployments: ['m/c'] } },
          tenantPrice: 'route',
          retry: { initialBackoffMs: 10, maxBackoffMs: 1 },
        },
      }),
    ).toEqual([
      'models.m.deployments.0.provider: unknown provider "zz"',
      'models.m.strategy: weighted routing needs a deployment with a weight above 0',
      'models.m.flags.0.deployment: no deployment "m/b" in this route',
      'models.m.tenants.acme.deployments.0: no deployment "m/c" in this route',
      'models.m.prices: tenantPrice "route" needs the route\'s prices',
      'models.m.retry.maxBackoffMs: maxBackoffMs is below initialBackoffMs',
    ]);
  });

  it('refuses a flag percent outside 0 to 100', () => {
    const result = parse({
      m: {
        deployments: two(),
        flags: [{ id: 'f', deployment: 'm/b', percent: 100.5 }],
      },
    });
    expect(result.error?.issues.map((i) => i.path.join('.'))).toEqual([
      'models.m.flags.0.percent',
    ]);
  });
});
