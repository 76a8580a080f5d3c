/**
 * Limits set through the admin API (or the CLI, on the same table) are in
 * force at once, a changed limit keeps its live counters, and the config
 * file's limits cannot be changed this way.
 */
import { Writable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/observability/logger.js';
import { parseKey } from '../../src/tenants/api-keys.js';
import { createApiKey } from '../../src/tenants/tenants.js';
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
    // The path names the limit; a body naming another is refused, not
    // quietly stored under the path's id.
    const mismatch = await admin('PUT', '/admin/v1/limits/x6', {
      id: 'other',
      requests: 2,
      per: 'day',
    });
    expect(mismatch.status).toBe(400);
    expect(
      ((await mismatch.json()) as { error: { message: string } }).error.message,
    ).toBe(
      'the body names the limit "other", the path "x6"; leave id out of ' +
        'the body, or make the two agree',
    );
    // Only the admin token manages limits.
    const asTenant = await fetch(`${t.url}/admin/v1/limits`, {
      headers: { authorization: `Bearer ${t.tenant.key}` },
    });
    expect(asTenant.status).toBe(401);
  });
});

/** PUTs a limit; resolves with the status and the error the body holds. */
async function putLimit(id: string, body: unknown) {
  const response = await admin('PUT', `/admin/v1/limits/${id}`, body);
  const text = await response.text();
  const { error } = JSON.parse(text) as {
    error?: { code: string; message: string; param: string | null };
  };
  return { status: response.status, text, error };
}

describe('a managed limit naming no tenant or key (regression: silent-config-mistakes)', () => {
  it('is refused when it gives the virtual key itself, and the secret goes nowhere', async () => {
    const keyId = parseKey(t.tenant.key)?.id ?? '';
    const secret = t.tenant.key.slice(`tg_${keyId}_`.length);
    const put = await putLimit('by-key', {
      key: t.tenant.key,
      requests: 1,
      per: 'day',
    });
    expect(put.status).toBe(400);
    expect(put.error).toMatchObject({
      code: 'invalid_value',
      param: 'key',
      message:
        'key: this is the virtual key itself, secret included; give its ' +
        `id, ${keyId}, instead`,
    });
    // Neither answered, nor stored, nor listed.
    expect(put.text).not.toContain(secret);
    expect(JSON.stringify(await t.gateway.store.listLimits())).not.toContain(
      secret,
    );
    const list = await (await admin('GET', '/admin/v1/limits')).text();
    expect(list).not.toContain(secret);

    // The secret alone, or a key mangled in the paste, is not a key id.
    const bare = await putLimit('by-key', {
      key: secret,
      requests: 1,
      per: 'day',
    });
    expect(bare.error?.message).toBe(
      'key: not a key id; give the key\'s id: "key_" and 26 lowercase ' +
        'letters and digits, as `tollgate keys list` shows it',
    );
    expect(bare.text).not.toContain(secret);
    const mangled = await putLimit('by-key', {
      key: `Bearer ${t.tenant.key.slice(0, -1)}`,
      requests: 1,
      per: 'day',
    });
    expect(mangled.error?.message).toBe(
      "key: this looks like a virtual key, secret included; give the key's " +
        'id instead: "key_" and 26 lowercase letters and digits, as ' +
        '`tollgate keys list` shows it',
    );
    expect(mangled.text).not.toContain(secret.slice(0, -1));
  });

  it('is refused when its tenant does not exist, with the near match by case', async () => {
    const byCase = await putLimit('by-tenant', {
      tenant: 'Tenant-A',
      requests: 1,
      per: 'day',
    });
    expect(byCase.status).toBe(400);
    expect(byCase.error).toMatchObject({
      code: 'invalid_value',
      param: 'tenant',
      message:
        'tenant: no tenant has the name or id "Tenant-A"; the match is ' +
        'case-sensitive: did you mean "tenant-a"?',
    });
    const byId = await putLimit('by-tenant', {
      tenant: t.tenant.id.toUpperCase(),
      requests: 1,
      per: 'day',
    });
    expect(byId.error?.message).toBe(
      `tenant: no tenant has the name or id "${t.tenant.id.toUpperCase()}"; ` +
        `the match is case-sensitive: did you mean "${t.tenant.id}"?`,
    );
    const nobody = await putLimit('by-tenant', {
      tenant: 'nobody',
      requests: 1,
      per: 'day',
    });
    expect(nobody.error?.message).toBe(
      'tenant: no tenant has the name or id "nobody"',
    );
    expect(await t.gateway.store.listLimits()).toEqual([]);
  });

  it('is refused when its key is unknown, revoked, or of another tenant', async () => {
    const unknown = 'key_0000000000000000000000000a';
    expect(
      (await putLimit('by-key', { key: unknown, requests: 1, per: 'day' }))
        .error,
    ).toMatchObject({ param: 'key', message: `key: no key "${unknown}"` });

    const other = await t.addTenant('tenant-other');
    const otherKey = parseKey(other.key)?.id ?? '';
    expect(
      (
        await putLimit('by-key', {
          tenant: t.tenant.name,
          key: otherKey,
          requests: 1,
          per: 'day',
        })
      ).error?.message,
    ).toBe(
      `key: the key "${otherKey}" is not a key of the tenant "tenant-a": ` +
        'no request can match both',
    );

    const tenant = await t.gateway.store.findTenant(other.id);
    if (!tenant) throw new Error('the other tenant is gone');
    const { record } = await createApiKey(t.gateway.store, tenant, {});
    const revoked = record.id;
    await t.gateway.store.revokeApiKey(tenant.id, revoked, Date.now());
    expect(
      (await putLimit('by-key', { key: revoked, requests: 1, per: 'day' }))
        .error?.message,
    ).toBe(`key: the key "${revoked}" is revoked: no request can use it`);
    expect(await t.gateway.store.listLimits()).toEqual([]);
  });

  it('is taken by the tenant id and the key id, and counts', async () => {
    // A tenant of its own: the ledger already holds tenant-a's requests
    // of today, which a new day's counter is rebuilt from.
    const fresh = await t.addTenant('tenant-fresh');
    const ask = () =>
      fresh.client.chat.completions
        .create({
          model: 'gpt-4o',
          max_tokens: 5,
          messages: [{ role: 'user', content: 'Hi' }],
        })
        .then(
          () => 200,
          (error: { status?: number }) => error.status,
        );
    const put = await putLimit('by-ids', {
      tenant: fresh.id,
      key: parseKey(fresh.key)?.id,
      requests: 1,
      per: 'day',
    });
    expect(put.status).toBe(200);
    expect(await ask()).toBe(200);
    expect(await ask()).toBe(429);
    expect((await admin('DELETE', '/admin/v1/limits/by-ids')).status).toBe(200);
  });
});

describe('a config limit naming no tenant or key', () => {
  it('refuses the virtual key itself, naming only its id', () => {
    const key = `tg_key_${'0'.repeat(26)}_${'s'.repeat(43)}`;
    const parse = () =>
      parseConfig(
        {
          providers: {},
          models: {},
          limits: [{ id: 'by-key', key, requests: 1, per: 'day' }],
        },
        'tollgate.yaml',
      );
    expect(parse).toThrow(
      'invalid configuration in tollgate.yaml:\n' +
        '✖ this is the virtual key itself, secret included; give its id, ' +
        `key_${'0'.repeat(26)}, instead\n  → at limits[0].key`,
    );
    expect(parse).not.toThrow('s'.repeat(43));
  });

  it('is said at start, not refused: the tenant may come later', async () => {
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) {
          if (line) lines.push(JSON.parse(line) as (typeof lines)[number]);
        }
        done();
      },
    });
    const warned = await startTestGateway({
      logger: createLogger('warn', stream),
      config: {
        limits: [{ id: 'misspelt', tenant: 'acme', requests: 1, per: 'day' }],
      },
    });
    try {
      const until = Date.now() + 5_000;
      while (
        !lines.some((l) => l.msg.includes('tenant')) &&
        Date.now() < until
      ) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 40,
          limit: 'misspelt',
          tenant: 'acme',
          reason: 'no tenant has the name or id "acme"',
          msg: 'a limit names a tenant that does not exist (yet): it counts nothing',
        }),
      );
    } finally {
      await warned.close();
    }
  });
});
