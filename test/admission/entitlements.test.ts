/**
 * A tenant's plan names the models it may use: others are refused with
 * 403 model_not_allowed in the caller's API, never routed, and left out
 * of /v1/models; a tenant without entitlements may use every model.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, expect, it } from 'vitest';

import { tenantMayUse } from '../../src/admission/entitlements.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

let t: TestGateway;
beforeAll(async () => {
  t = await startTestGateway({
    config: { entitlements: { 'tenant-a': { models: ['gpt-4o-mini'] } } },
  });
});
afterAll(async () => {
  await t.close();
});

it('refuses a model outside the plan, before any upstream call', async () => {
  const before = t.upstream.requests;
  const refused = await t.tenant.client.chat.completions
    .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Hi' }] })
    .catch((error: unknown) => error as { status: number; code: string });
  expect(refused).toMatchObject({ status: 403, code: 'model_not_allowed' });
  expect(t.upstream.requests).toBe(before);

  const anthropic = new Anthropic({
    baseURL: t.url,
    apiKey: t.tenant.key,
    maxRetries: 0,
  });
  const viaAnthropic = await anthropic.messages
    .create({
      model: 'gpt-4o',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'Hi' }],
    })
    .catch((error: unknown) => error);
  expect(viaAnthropic).toBeInstanceOf(Anthropic.PermissionDeniedError);
});

it('serves the models in the plan, and lists only those', async () => {
  const reply = await t.tenant.client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'Hi' }],
  });
  expect(reply.choices).toHaveLength(1);
  const models = await t.tenant.client.models.list();
  expect(models.data.map((m) => m.id)).toEqual(['gpt-4o-mini']);
});

it('leaves a tenant without entitlements every model', async () => {
  const other = await t.addTenant('tenant-b');
  const models = await other.client.models.list();
  expect(models.data.map((m) => m.id)).toContain('gpt-4o');
});

it('refuses a config whose entitlements name an unknown model', () => {
  expect(() =>
    parseConfig(
      {
        providers: { sim: { type: 'simulated' } },
        models: { a: { deployments: [{ provider: 'sim', model: 'x' }] } },
        entitlements: { acme: { models: ['b'] } },
      },
      'a test config',
    ),
  ).toThrow(/unknown model "b"/);
});

it('keeps a plan with an allowance to its models, and one without to none', () => {
  const config = parseConfig(
    {
      providers: { sim: { type: 'simulated' } },
      models: {
        a: { deployments: [{ provider: 'sim', model: 'x' }] },
        b: { deployments: [{ provider: 'sim', model: 'y' }] },
      },
      entitlements: {
        acme: { models: ['a'], included: { usd: '5' }, overage: 'block' },
        globex: { included: { tokens: 1_000 }, overage: 'block' },
      },
    },
    'a test config',
  );
  const tenant = (name: string) => ({
    id: `ten_${name}`,
    name,
    timezone: 'UTC',
    createdAt: 0,
  });
  expect(tenantMayUse(config, tenant('acme'), 'a')).toBe(true);
  expect(tenantMayUse(config, tenant('acme'), 'b')).toBe(false);
  expect(tenantMayUse(config, tenant('globex'), 'b')).toBe(true);
});
