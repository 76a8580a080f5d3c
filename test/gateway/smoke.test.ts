import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

describe('gateway smoke', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => {
    await t.close();
  });

  it('proxies a chat completion and records its usage by request id', async () => {
    const { data, response } = await t.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        messages: [{ role: 'user', content: 'hi' }],
        metadata: {
          tollgate_sim_prompt_tokens: '1000',
          tollgate_sim_completion_tokens: '200',
        },
      })
      .withResponse();
    expect(data.usage?.prompt_tokens).toBe(1000);
    const id = response.headers.get('x-request-id');
    expect(id).toMatch(/^req_/);

    const detail = await fetch(`${t.url}/v1/requests/${id}`, {
      headers: { authorization: `Bearer ${t.tenant.key}` },
    }).then(
      (r) =>
        r.json() as Promise<{ state: string; attempts: { cost: string }[] }>,
    );
    // gpt-4o: $2.50 in, $10 out per 1M → 1000×2.5/1e6 + 200×10/1e6
    expect(detail.attempts[0]?.cost).toBe('0.0045');
    expect(detail.state).toBe('settled');
  });
});
