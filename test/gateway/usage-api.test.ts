/**
 * Reading usage back: per request, as summaries and as invoices, each
 * tenant seeing only its own; the admin API for tenants and keys; and day
 * grouping in the tenant's time zone.
 *
 * Expected numbers come from the requests sent and the catalog's rates in
 * USD per 1M tokens, never from the gateway's answers.
 */
import type { ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ADMIN_TOKEN,
  startTestGateway,
  TEST_MODELS,
  type TestGateway,
  type TestTenant,
} from '../helpers/test-gateway.js';
import { usd } from '../helpers/usd.js';

const RATES = {
  'gpt-4o': { input: '2.5', cacheRead: '1.25', output: '10' },
  'gpt-4o-mini': { input: '0.15', cacheRead: '0.075', output: '0.6' },
} as const;

type Model = keyof typeof RATES;

/** One request sent, and what it should be attributed to. */
interface Sent {
  readonly tenant: 'a' | 'b';
  readonly model: Model;
  readonly prompt: number;
  readonly cached: number;
  readonly completion: number;
  /** The body's `user` field. */
  readonly user?: string;
  /** The `x-tollgate-end-user` header, which wins over `user`. */
  readonly header?: string;
  readonly endUser: string | null;
}

type Row = [
  tenant: Sent['tenant'],
  model: Model,
  prompt: number,
  cached: number,
  completion: number,
  user: string | null,
  header: string | null,
  endUser: string | null,
];

const ROWS: readonly Row[] = [
  // tenant, model, prompt, cached, completion, user, header → end user
  ['a', 'gpt-4o', 1000, 0, 100, 'alice', null, 'alice'],
  ['a', 'gpt-4o-mini', 2000, 1000, 400, 'alice', 'bob', 'bob'],
  ['a', 'gpt-4o', 500, 0, 50, null, 'carol', 'carol'],
  ['a', 'gpt-4o', 200, 0, 20, null, null, null],
  ['a', 'gpt-4o', 300, 0, 30, 'alice', null, 'alice'],
  ['b', 'gpt-4o-mini', 4000, 0, 1000, 'zed', null, 'zed'],
  ['b', 'gpt-4o', 100, 0, 10, 'alice', null, 'alice'],
];

const SENT: readonly Sent[] = ROWS.map(
  ([tenant, model, prompt, cached, completion, user, header, endUser]) => ({
    tenant,
    model,
    prompt,
    cached,
    completion,
    ...(user !== null && { user }),
    ...(header !== null && { header }),
    endUser,
  }),
);

interface Tokens {
  input: number;
  cacheRead: number;
  output: number;
}

const tokensOf = (sent: Sent): Tokens => ({
  input: sent.prompt - sent.cached,
  cacheRead: sent.cached,
  output: sent.completion,
});

function costOf(model: Model, tokens: Tokens): string {
  const rates = RATES[model];
  return usd(
    [tokens.input, rates.input],
    [tokens.cacheRead, rates.cacheRead],
    [tokens.output, rates.output],
  );
}

describe('usage API', () => {
  let t: TestGateway;
  let a: TestTenant;
  let b: TestTenant;
  /** Request id and served time of each of SENT, in order. */
  const served: { id: string; servedAt: string }[] = [];

  beforeAll(async () => {
    t = await startTestGateway();
    a = t.tenant;
    b = await t.addTenant('tenant-b');
    for (const sent of SENT) {
      const tenant = sent.tenant === 'a' ? a : b;
      const body: ChatCompletionCreateParamsNonStreaming = {
        model: sent.model,
        messages: [{ role: 'user', content: 'What does it cost?' }],
        metadata: {
          tollgate_sim_prompt_tokens: String(sent.prompt),
          tollgate_sim_cached_tokens: String(sent.cached),
          tollgate_sim_completion_tokens: String(sent.completion),
        },
        ...(sent.user !== undefined && { user: sent.user }),
      };
      const { response } = await tenant.client.chat.completions
        .create(body, {
          ...(sent.header !== undefined && {
            headers: { 'x-tollgate-end-user': sent.header },
          }),
        })
        .withResponse();
      const id = response.headers.get('x-request-id') ?? '';
      const detail = await getJson(t, `/v1/requests/${id}`, tenant.key);
      served.push({ id, servedAt: String(detail.body['served_at']) });
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  const sentBy = (tenant: 'a' | 'b') =>
    SENT.flatMap((sent, i) =>
      sent.tenant === tenant ? [{ sent, ...served[i]! }] : [],
    );

  describe('per request', () => {
    it('a tenant reads its own requests, with cost and no provider cost', async () => {
      for (const { sent, id } of [...sentBy('a'), ...sentBy('b')]) {
        const key = sent.tenant === 'a' ? a.key : b.key;
        const { status, body } = await getJson(t, `/v1/requests/${id}`, key);
        expect(status).toBe(200);
        const tokens = tokensOf(sent);
        expect(body).toMatchObject({
          id,
          end_user: sent.endUser,
          model: sent.model,
          state: 'settled',
          attempts: [
            {
              estimated: false,
              usage: {
                input_tokens: tokens.input,
                cache_read_tokens: tokens.cacheRead,
                output_tokens: tokens.output,
              },
              cost: costOf(sent.model, tokens),
            },
          ],
        });
        expect(JSON.stringify(body)).not.toContain('provider_cost');
        expect(body).not.toHaveProperty('upstream_request_id');
        expect(body['reserved']).not.toHaveProperty('cost');
      }
    });

    it("another tenant's request is 404, as if it did not exist", async () => {
      for (const [{ id }, key] of [
        [sentBy('a')[0]!, b.key],
        [sentBy('b')[0]!, a.key],
      ] as const) {
        const { status, body } = await getJson(t, `/v1/requests/${id}`, key);
        expect(status).toBe(404);
        expect(body['error']).toMatchObject({ code: 'not_found' });
      }
    });

    it('the admin token reads any request, with provider cost', async () => {
      const { sent, id } = sentBy('b')[0]!;
      const { body } = await getJson(t, `/v1/requests/${id}`, ADMIN_TOKEN);
      const cost = costOf(sent.model, tokensOf(sent));
      expect(body).toMatchObject({
        id,
        tenant_id: b.id,
        attempts: [{ cost, provider_cost: cost }],
      });
      expect(body['upstream_request_id']).toMatch(/^req_/);
    });
  });

  describe('summaries', () => {
    it('a tenant sees only its own totals', async () => {
      for (const [tenant, key] of [
        ['a', a.key],
        ['b', b.key],
      ] as const) {
        const mine = sentBy(tenant).map(({ sent }) => sent);
        const { body } = await getJson(t, '/v1/usage', key);
        expect(body['data']).toEqual([
          {
            requests: mine.length,
            estimated_requests: 0,
            input_tokens: sum(mine, (s) => s.prompt - s.cached),
            cache_read_tokens: sum(mine, (s) => s.cached),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: sum(mine, (s) => s.completion),
            reasoning_tokens: 0,
            cost: sumCosts(mine),
          },
        ]);
      }
      // By hand, tenant a: 0.0035 + 0.000465 + 0.00175 + 0.0007 + 0.00105.
      expect(sumCosts(sentBy('a').map(({ sent }) => sent))).toBe('0.007465');
    });

    it('groups by model, end user (the header winning) and local day', async () => {
      const { body } = await getJson(
        t,
        '/v1/usage?group_by=model,end_user,day',
        a.key,
      );
      expect(body['timezone']).toBe('UTC');
      expect(body['group_by']).toEqual(['model', 'end_user', 'day']);

      const expected = new Map<string, Record<string, unknown>>();
      for (const { sent, servedAt } of sentBy('a')) {
        const day = localDate(servedAt, 'UTC');
        const key = JSON.stringify([sent.model, sent.endUser, day]);
        const row = expected.get(key) ?? {
          model: sent.model,
          end_user: sent.endUser,
          day,
          requests: 0,
          tokens: { input: 0, cacheRead: 0, output: 0 },
        };
        const tokens = row['tokens'] as Tokens;
        const add = tokensOf(sent);
        tokens.input += add.input;
        tokens.cacheRead += add.cacheRead;
        tokens.output += add.output;
        row['requests'] = (row['requests'] as number) + 1;
        expected.set(key, row);
      }
      const rows = [...expected.values()].map(({ tokens, ...row }) => {
        const { input, cacheRead, output } = tokens as Tokens;
        return {
          ...row,
          estimated_requests: 0,
          input_tokens: input,
          cache_read_tokens: cacheRead,
          cache_write_tokens: 0,
          cache_write_1h_tokens: 0,
          output_tokens: output,
          reasoning_tokens: 0,
          cost: costOf(row['model'] as Model, tokens as Tokens),
        };
      });
      // alice's two gpt-4o requests are one row; bob's came by header.
      expect(rows).toHaveLength(4);
      expect(sortRows(body['data'])).toEqual(sortRows(rows));
    });

    it('refuses grouping by tenant, a repeated group_by, another tenant', async () => {
      const grouped = await getJson(t, '/v1/usage?group_by=tenant', a.key);
      expect(grouped.status).toBe(400);
      expect(grouped.body['error']).toMatchObject({
        code: 'invalid_value',
        param: 'group_by',
      });

      const twice = await getJson(
        t,
        '/v1/usage?group_by=model&group_by=day',
        a.key,
      );
      expect(twice.status).toBe(400);
      expect(twice.body['error']).toMatchObject({
        code: 'invalid_type',
        param: 'group_by',
      });

      const other = await getJson(t, `/v1/usage?tenant=${b.id}`, a.key);
      expect(other.status).toBe(404);
      expect(other.body['error']).toMatchObject({ code: 'not_found' });
    });

    it('the admin token sees every tenant, with provider cost', async () => {
      const { status, body } = await getJson(
        t,
        '/v1/usage?group_by=tenant',
        ADMIN_TOKEN,
      );
      expect(status).toBe(200);
      const rows = body['data'] as Record<string, unknown>[];
      for (const [tenant, id] of [
        ['a', a.id],
        ['b', b.id],
      ] as const) {
        const cost = sumCosts(sentBy(tenant).map(({ sent }) => sent));
        expect(rows.find((r) => r['tenant_id'] === id)).toMatchObject({
          requests: sentBy(tenant).length,
          cost,
          provider_cost: cost,
        });
      }

      const onlyB = await getJson(t, '/v1/usage?tenant=tenant-b', ADMIN_TOKEN);
      expect(onlyB.body['data']).toEqual([
        expect.objectContaining({
          requests: 2,
          // (4000 × 0.15 + 1000 × 0.6 + 100 × 2.5 + 10 × 10) / 1e6
          cost: '0.00155',
          provider_cost: '0.00155',
        }),
      ]);
    });
  });

  describe('invoices', () => {
    it("each tenant's invoice has only its own lines, rounded half-up", async () => {
      const [first] = sentBy('a');
      const period = localDate(first!.servedAt, 'UTC').slice(0, 7);
      const invoiceOf = async (key: string) =>
        (await getJson(t, `/v1/invoices/${period}`, key)).body;

      const ofA = await invoiceOf(a.key);
      expect(ofA).toMatchObject({
        object: 'invoice',
        tenant: { id: a.id, name: a.name },
        period,
        currency: 'USD',
        requests: 5,
        estimated_requests: 0,
        complete: true,
        // gpt-4o input 2000 × 2.5 = 0.005, a tie that rounds up to 0.01;
        // every other line rounds down to 0.00.
        total: '0.01',
        exact_total: '0.007465',
      });
      expect(sortRows(ofA['lines'])).toEqual(
        sortRows([
          line('gpt-4o', 'input', 2000, '2.5', '0.005', '0.01'),
          line('gpt-4o', 'output', 200, '10', '0.002', '0.00'),
          line('gpt-4o-mini', 'input', 1000, '0.15', '0.00015', '0.00'),
          line('gpt-4o-mini', 'cache_read', 1000, '0.075', '0.000075', '0.00'),
          line('gpt-4o-mini', 'output', 400, '0.6', '0.00024', '0.00'),
        ]),
      );

      const ofB = await invoiceOf(b.key);
      expect(ofB).toMatchObject({
        tenant: { id: b.id, name: 'tenant-b' },
        requests: 2,
        total: '0.00',
        exact_total: '0.00155',
      });
      expect(sortRows(ofB['lines'])).toEqual(
        sortRows([
          line('gpt-4o', 'input', 100, '2.5', '0.00025', '0.00'),
          line('gpt-4o', 'output', 10, '10', '0.0001', '0.00'),
          line('gpt-4o-mini', 'input', 4000, '0.15', '0.0006', '0.00'),
          line('gpt-4o-mini', 'output', 1000, '0.6', '0.0006', '0.00'),
        ]),
      );
    });
  });

  describe('models', () => {
    it('lists only the models the key may use', async () => {
      const all = await getJson(t, '/v1/models', a.key);
      expect(ids(all.body).sort()).toEqual(Object.keys(TEST_MODELS).sort());

      const created = await admin(t, 'POST', `/tenants/${a.name}/keys`, {
        name: 'gpt-4o only',
        models: ['gpt-4o'],
      });
      expect(created.status).toBe(201);
      const key = String(created.body['key']);
      const restricted = await getJson(t, '/v1/models', key);
      expect(ids(restricted.body)).toEqual(['gpt-4o']);

      const listed = await a.client.withOptions({ apiKey: key }).models.list();
      expect(listed.data.map((m) => m.id)).toEqual(['gpt-4o']);
    });

    it('refuses a key for a model that does not exist', async () => {
      const created = await admin(t, 'POST', `/tenants/${a.name}/keys`, {
        models: ['gpt-17'],
      });
      expect(created.status).toBe(400);
      expect(created.body['error']).toMatchObject({
        code: 'invalid_value',
        param: 'models',
      });
    });
  });

  describe('admin API', () => {
    it('creates a tenant, refuses a duplicate name and an unknown zone', async () => {
      const created = await admin(t, 'POST', '/tenants', {
        name: 'acme',
        timezone: 'Europe/Paris',
      });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.stringMatching(/^ten_/),
        name: 'acme',
        timezone: 'Europe/Paris',
        created_at: expect.any(String),
      });

      const duplicate = await admin(t, 'POST', '/tenants', { name: 'acme' });
      expect(duplicate.status).toBe(409);
      expect(duplicate.body['error']).toMatchObject({ code: 'conflict' });

      const badZone = await admin(t, 'POST', '/tenants', {
        name: 'acme-mars',
        timezone: 'Mars/Olympus_Mons',
      });
      expect(badZone.status).toBe(400);
      expect(badZone.body['error']).toMatchObject({
        code: 'invalid_value',
        param: 'timezone',
      });

      const idLike = await admin(t, 'POST', '/tenants', {
        name: 'ten_01abc',
      });
      expect(idLike.status).toBe(400);
      expect(idLike.body['error']).toMatchObject({
        code: 'invalid_value',
        param: 'name',
      });

      const missing = await admin(t, 'POST', '/tenants', {});
      expect(missing.status).toBe(400);
      expect(missing.body['error']).toMatchObject({
        code: 'missing_required_parameter',
        param: 'name',
      });
      const wrongType = await admin(t, 'POST', '/tenants', { name: 42 });
      expect(wrongType.status).toBe(400);
      expect(wrongType.body['error']).toMatchObject({
        code: 'invalid_type',
        param: 'name',
      });

      const tenants = await admin(t, 'GET', '/tenants');
      const names = (tenants.body['data'] as { name: string }[]).map(
        (tenant) => tenant.name,
      );
      expect(names).toContain('acme');
      expect(names).not.toContain('acme-mars');
    });

    it('needs the admin token, not a tenant key', async () => {
      for (const token of [a.key, 'not-the-admin-token']) {
        const response = await fetch(`${t.url}/admin/v1/tenants`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(response.status).toBe(401);
        const body = (await response.json()) as Record<string, unknown>;
        expect(body['error']).toMatchObject({ code: 'admin_required' });
      }
    });

    it('lists keys without secrets; a new key works at once', async () => {
      const tenant = await admin(t, 'POST', '/tenants', { name: 'keyed' });
      const tenantId = String(tenant.body['id']);
      const created = await admin(t, 'POST', `/tenants/${tenantId}/keys`, {
        name: 'backend',
      });
      expect(created.status).toBe(201);
      const key = String(created.body['key']);
      expect(key).toMatch(/^tg_key_/);
      const secret = key.slice(`tg_${String(created.body['id'])}_`.length);
      expect(secret.length).toBeGreaterThanOrEqual(32);

      const listed = await admin(t, 'GET', `/tenants/${tenantId}/keys`);
      expect(listed.status).toBe(200);
      expect(listed.body['data']).toEqual([
        {
          id: created.body['id'],
          tenant_id: tenantId,
          name: 'backend',
          models: null,
          created_at: expect.any(String),
          revoked_at: null,
        },
      ]);
      expect(listed.text).not.toContain(secret);
      expect(listed.text).not.toMatch(/secret|hash/i);

      const client = a.client.withOptions({ apiKey: key });
      const { response } = await client.chat.completions
        .create({
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'first call' }],
        })
        .withResponse();
      expect(response.status).toBe(200);
      const id = response.headers.get('x-request-id');
      const detail = await getJson(t, `/v1/requests/${id}`, key);
      expect(detail.body['tenant_id']).toBe(tenantId);
    });
  });

  describe('time zones', () => {
    it("labels days in the tenant's zone", async () => {
      // A zone whose date differs from UTC's now: +14 h from 10:00 UTC on,
      // -11 h before 11:00 UTC.
      // Both have kept one offset, with no daylight saving, for decades.
      const [zone, offsetHours] =
        new Date().getUTCHours() >= 10
          ? ['Pacific/Kiritimati', 14]
          : ['Pacific/Pago_Pago', -11];
      const tenant = await admin(t, 'POST', '/tenants', {
        name: 'far-away',
        timezone: zone,
      });
      expect(tenant.body['timezone']).toBe(zone);
      const created = await admin(
        t,
        'POST',
        `/tenants/${String(tenant.body['id'])}/keys`,
      );
      const key = String(created.body['key']);

      const { response } = await a.client
        .withOptions({ apiKey: key })
        .chat.completions.create({
          model: 'gpt-4o',
          messages: [{ role: 'user', content: 'what day is it?' }],
          metadata: {
            tollgate_sim_prompt_tokens: '40',
            tollgate_sim_completion_tokens: '4',
          },
        })
        .withResponse();
      const id = response.headers.get('x-request-id');
      const detail = await getJson(t, `/v1/requests/${id}`, key);
      const servedAt = String(detail.body['served_at']);
      const localDay = localDate(servedAt, zone);
      expect(localDay).not.toBe(localDate(servedAt, 'UTC'));

      const usage = await getJson(t, '/v1/usage?group_by=day', key);
      expect(usage.body['timezone']).toBe(zone);
      expect(usage.body['data']).toEqual([
        expect.objectContaining({
          day: localDay,
          requests: 1,
          input_tokens: 40,
          output_tokens: 4,
          // (40 × 2.5 + 4 × 10) / 1e6
          cost: '0.00014',
        }),
      ]);

      // The same day, asked for by its local date.
      const next = nextDay(localDay);
      const oneDay = await getJson(
        t,
        `/v1/usage?group_by=day&from=${localDay}&to=${next}`,
        key,
      );
      expect(oneDay.body['data']).toEqual([
        expect.objectContaining({ day: localDay, requests: 1 }),
      ]);

      // Its invoice's month starts at local midnight on the 1st.
      const [year, month] = localDay.split('-').map(Number);
      const invoice = await getJson(
        t,
        `/v1/invoices/${localDay.slice(0, 7)}`,
        key,
      );
      const from = Date.UTC(year!, month! - 1, 1) - offsetHours * 3_600_000;
      expect(invoice.body).toMatchObject({
        timezone: zone,
        from: new Date(from).toISOString(),
        requests: 1,
        exact_total: '0.00014',
      });
    });
  });
});

interface JsonAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

async function getJson(
  gateway: TestGateway,
  path: string,
  token: string,
): Promise<JsonAnswer> {
  const response = await fetch(`${gateway.url}${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return toJsonAnswer(response);
}

async function admin(
  gateway: TestGateway,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
): Promise<JsonAnswer> {
  const response = await fetch(`${gateway.url}/admin/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(method === 'POST' && { 'content-type': 'application/json' }),
    },
    ...(method === 'POST' && { body: JSON.stringify(body ?? {}) }),
  });
  return toJsonAnswer(response);
}

async function toJsonAnswer(response: Response): Promise<JsonAnswer> {
  const text = await response.text();
  return {
    status: response.status,
    body: JSON.parse(text) as Record<string, unknown>,
    text,
  };
}

function line(
  model: string,
  tokenClass: string,
  tokens: number,
  unitPrice: string,
  amount: string,
  amountRounded: string,
) {
  return {
    model,
    token_class: tokenClass,
    tokens,
    unit_price_per_1m: unitPrice,
    amount,
    amount_rounded: amountRounded,
  };
}

function sumCosts(sent: readonly Sent[]): string {
  return usd(
    ...sent.flatMap((s) => {
      const rates = RATES[s.model];
      const tokens = tokensOf(s);
      return [
        [tokens.input, rates.input],
        [tokens.cacheRead, rates.cacheRead],
        [tokens.output, rates.output],
      ] as const;
    }),
  );
}

function sum<T>(items: readonly T[], of: (item: T) => number): number {
  return items.reduce((total, item) => total + of(item), 0);
}

function ids(list: Record<string, unknown>): string[] {
  return (list['data'] as { id: string }[]).map((model) => model.id);
}

/** Rows in a stable order, to compare without relying on the server's. */
function sortRows(rows: unknown): unknown[] {
  return [...(rows as unknown[])].sort((x, y) =>
    JSON.stringify(x) < JSON.stringify(y) ? -1 : 1,
  );
}

/** `YYYY-MM-DD` of an instant in a zone, by the platform's own Intl. */
function localDate(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(new Date(iso));
  const part = (type: string) => parts.find((p) => p.type === type)?.value;
  return `${part('year')}-${part('month')}-${part('day')}`;
}

/** The calendar day after `YYYY-MM-DD`. */
function nextDay(day: string): string {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + 1);
  return date.toISOString().slice(0, 10);
}
