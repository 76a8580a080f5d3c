/**
 * Limits set through the admin API (or the CLI, on the same table) are in
 * force at once, a changed limit keeps its live counters, and the config
 * file's limits cannot be changed this way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  startGatedUpstream,
  type GatedUpstream,
} from '../helpers/gated-upstream.js';
import {
  ADMIN_TOKEN,
  startTestGateway,
  type TestGateway,
} from '../helpers/test-gateway.js';

let upstream: GatedUpstream;
let t: TestGateway;

beforeAll(async () => {
  upstream = await startGatedUpstream();
  upstream.open();
  t = await startTestGateway({
    config: {
      providers: {
        gate: { type: 'openai-compatible', baseUrl: upstream.url, apiKey: 'k' },
      },
      models: {
        'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
      },
      limits: [{ id: 'from-config', requests: 1_000, per: 'month' }],
    },
  });
});
afterAll(async () => {
  await t.close();
  await upstream.close();
});

function admin(method: string, path: string, body?: unknown) {
  return fetch(`${t.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

function ask() {
  return t.tenant.client.chat.completions
    .create({
      model: 'gpt-4o',
      max_tokens: 5,
      messages: [{ role: 'user', content: 'Hi' }],
    })
    .then(
      () => 200,
      (error: { status?: number }) => error.status,
    );
}

describe('managed limits', () => {
  it('are in force at once, keep their counters when changed, and go', async () => {
    const put = await admin('PUT', '/admin/v1/limits/two-a-month', {
      tenant: t.tenant.name,
      requests: 2,
      per: 'month',
    });
    expect(put.status).toBe(200);
    expect(await ask()).toBe(200);
    expect(await ask()).toBe(200);
    expect(await ask()).toBe(429);

    // Raised to 3: the two already counted still count, one more fits.
    await admin('PUT', '/admin/v1/limits/two-a-month', {
      tenant: t.tenant.name,
      requests: 3,
      per: 'month',
    });
    expect(await ask()).toBe(200);
    expect(await ask()).toBe(429);

    const list = (await (await admin('GET', '/admin/v1/limits')).json()) as {
      data: { id: string; source: string; requests?: number }[];
    };
    expect(list.data.map((l) => [l.id, l.source, l.requests])).toEqual([
      ['from-config', 'config', 1_000],
      ['two-a-month', 'managed', 3],
    ]);

    expect((await admin('DELETE', '/admin/v1/limits/two-a-month')).status).toBe(
      200,
    );
    expect(await ask()).toBe(200);
  });

  it('refuse bad definitions with the reason, and leave the config’s alone', async () => {
    const bad = await admin('PUT', '/admin/v1/limits/bad', {
      requests: 2,
      tokens: 5,
      per: 'month',
    });
    expect(bad.status).toBe(400);
    expect(
      ((await bad.json()) as { error: { message: string } }).error.message,
    ).toContain('exactly one of requests, tokens, concurrent, budgetUsd');

    const unknownModel = await admin('PUT', '/admin/v1/limits/m', {
      model: 'no-such-model',
      requests: 2,
      per: 'day',
    });
    expect(unknownModel.status).toBe(400);

    expect(
      (
        await admin('PUT', '/admin/v1/limits/from-config', {
          requests: 1,
          per: 'day',
        })
      ).status,
    ).toBe(409);
    expect((await admin('DELETE', '/admin/v1/limits/from-config')).status).toBe(
      409,
    );
    expect((await admin('DELETE', '/admin/v1/limits/never-was')).status).toBe(
      404,
    );
    // Only the admin token manages limits.
    const asTenant = await fetch(`${t.url}/admin/v1/limits`, {
      headers: { authorization: `Bearer ${t.tenant.key}` },
    });
    expect(asTenant.status).toBe(401);
  });
});
