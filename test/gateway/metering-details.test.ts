/**
 * What the gateway records before the upstream call (the worst case), who
 * it attributes usage to, and streams that end loosely.
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ADMIN_TOKEN,
  startTestGateway,
  type TestGateway,
} from '../helpers/test-gateway.js';
import { usd } from '../helpers/usd.js';

interface AdminView {
  end_user: string | null;
  reserved: {
    input_tokens: number;
    output_tokens: number;
    cost: string | null;
  };
  attempts: { usage: { input_tokens: number; output_tokens: number } }[];
}

describe('metering details', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => {
    await t.close();
  });

  async function adminView(requestId: string | null): Promise<AdminView> {
    const response = await fetch(`${t.url}/v1/requests/${requestId}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    return (await response.json()) as AdminView;
  }

  /** UTF-8 size of the body the upstream received, as the gateway sent it. */
  function upstreamBodyBytes(): number {
    return Buffer.byteLength(JSON.stringify(t.upstream.lastRequest?.body));
  }

  it('reserves body bytes + 8,192 per image and max_tokens × n, at the dearest input rate', async () => {
    const { response } = await t.tenant.client.chat.completions
      .create({
        model: 'gpt-4o',
        n: 2,
        max_tokens: 50,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'What is in this picture?' },
              {
                type: 'image_url',
                image_url: { url: 'https://example.com/a.png' },
              },
            ],
          },
        ],
      })
      .withResponse();
    const view = await adminView(response.headers.get('x-request-id'));
    const input = upstreamBodyBytes() + 8_192;
    expect(view.reserved.input_tokens).toBe(input);
    expect(view.reserved.output_tokens).toBe(100);
    // gpt-4o: input 2.5, cache read 1.25, cache write as input (2.5),
    // output 10; the dearest input class is 2.5.
    expect(view.reserved.cost).toBe(usd([input, '2.5'], [100, '10']));
  });

  it('reserves the configured cap without max_tokens, and prices 1h cache writes as the dearest', async () => {
    const { response } = await t.tenant.client.chat.completions
      .create({
        model: 'claude-sonnet-4-5',
        messages: [{ role: 'user', content: 'hi' }],
      })
      .withResponse();
    const view = await adminView(response.headers.get('x-request-id'));
    const input = upstreamBodyBytes();
    expect(view.reserved.input_tokens).toBe(input);
    expect(view.reserved.output_tokens).toBe(4_096);
    // Sonnet 4.5: input 3, 5m write 3.75, 1h write 6 (dearest), output 15.
    expect(view.reserved.cost).toBe(usd([input, '6'], [4_096, '15']));
    // The worst case bounds what was used.
    expect(view.attempts[0]!.usage.input_tokens).toBeLessThanOrEqual(input);
  });

  it.each([
    [
      'the header over everything',
      { header: 'h', user: 'u', safety: 's', meta: 'm' },
      'h',
    ],
    [
      'user over the rest of the body',
      { user: 'u', safety: 's', meta: 'm' },
      'u',
    ],
    ['safety_identifier over metadata', { safety: 's', meta: 'm' }, 's'],
    ['metadata.user_id last', { meta: 'm' }, 'm'],
    ['nobody', {}, null],
  ] as const)('attributes the end user: %s', async (_label, from, expected) => {
    const f = from as {
      header?: string;
      user?: string;
      safety?: string;
      meta?: string;
    };
    const { response } = await t.tenant.client.chat.completions
      .create(
        {
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
          ...(f.user && { user: f.user }),
          ...(f.safety && { safety_identifier: f.safety }),
          ...(f.meta && { metadata: { user_id: f.meta } }),
        },
        f.header ? { headers: { 'x-tollgate-end-user': f.header } } : {},
      )
      .withResponse();
    const view = await adminView(response.headers.get('x-request-id'));
    expect(view.end_user).toBe(expected);
  });

  it('reads a UTF-8 end user header as UTF-8', async () => {
    const name = 'Zoë Ångström 日本';
    const body = JSON.stringify({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hi' }],
    });
    // Written on a raw socket so the header's bytes are exactly the
    // name's UTF-8, as a client would send them.
    const { port } = new URL(t.url);
    const head = Buffer.concat([
      Buffer.from(
        'POST /v1/chat/completions HTTP/1.1\r\n' +
          `host: 127.0.0.1:${port}\r\n` +
          `authorization: Bearer ${t.tenant.key}\r\n` +
          'content-type: application/json\r\n' +
          `content-length: ${Buffer.byteLength(body)}\r\n` +
          'connection: close\r\n' +
          'x-tollgate-end-user: ',
      ),
      Buffer.from(name, 'utf8'),
      Buffer.from(`\r\n\r\n${body}`),
    ]);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write(head);
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const answer = Buffer.concat(chunks).toString('latin1');
    const requestId = /x-request-id: (\S+)/i.exec(answer)?.[1] ?? '';
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const view = await adminView(requestId);
    expect(view.end_user).toBe(name);
  });

  it('refuses day grouping over too long a range', async () => {
    const response = await fetch(
      `${t.url}/v1/usage?group_by=day&from=0001-01-01&to=2026-01-01`,
      { headers: { authorization: `Bearer ${t.tenant.key}` } },
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { code: 'invalid_value', param: 'from' },
    });
  });

  it('refuses a metadata.user_id that is not a string', async () => {
    await expect(
      t.tenant.client.chat.completions.create({
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        metadata: { user_id: 42 as unknown as string },
      }),
    ).rejects.toMatchObject({
      status: 400,
      code: 'invalid_type',
      param: 'metadata.user_id',
    });
  });
});

describe('an upstream whose last event has no closing blank line', () => {
  let upstream: Server;
  let t: TestGateway;
  // The final chunk's usage: 12 prompt and 3 completion tokens.
  const STREAM =
    'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",' +
    '"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n' +
    'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",' +
    '"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n' +
    'data: [DONE]';

  beforeAll(async () => {
    ({ upstream, t } = await gatewayOverFixedUpstream(
      'text/event-stream',
      STREAM,
    ));
  });
  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('still completes the stream and meters the reported usage', async () => {
    const client = new OpenAI({
      baseURL: `${t.url}/v1`,
      apiKey: t.tenant.key,
      maxRetries: 0,
    });
    const { data: stream, response } = await client.chat.completions
      .create({
        model: 'loose',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) usage = chunk.usage ?? usage;
    expect(usage?.prompt_tokens).toBe(12);

    const view = await fetch(
      `${t.url}/v1/requests/${response.headers.get('x-request-id')}`,
      {
        headers: { authorization: `Bearer ${t.tenant.key}` },
      },
    ).then(
      (r) =>
        r.json() as Promise<{
          state: string;
          attempts: { estimated: boolean; cost: string }[];
        }>,
    );
    expect(view.state).toBe('settled');
    expect(view.attempts[0]?.estimated).toBe(false);
    // gpt-4o-mini: input 0.15, output 0.6 per 1M.
    expect(view.attempts[0]?.cost).toBe(usd([12, '0.15'], [3, '0.6']));
  });
});

describe('a streamed request answered with a JSON completion', () => {
  let upstream: Server;
  let t: TestGateway;
  const COMPLETION = JSON.stringify({
    id: 'c',
    object: 'chat.completion',
    created: 1,
    model: 'm',
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: 'hi' },
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 21, completion_tokens: 4, total_tokens: 25 },
  });

  beforeAll(async () => {
    ({ upstream, t } = await gatewayOverFixedUpstream(
      'application/json',
      COMPLETION,
    ));
  });
  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('is a 502 to the client, metered from the reported usage', async () => {
    const response = await fetch(`${t.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${t.tenant.key}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        model: 'loose',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
      }),
    });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({
      error: { code: 'upstream_error' },
    });

    const view = await fetch(
      `${t.url}/v1/requests/${response.headers.get('x-request-id')}`,
      { headers: { authorization: `Bearer ${t.tenant.key}` } },
    ).then(
      (r) =>
        r.json() as Promise<{
          state: string;
          attempts: { estimated: boolean; cost: string }[];
        }>,
    );
    expect(view.state).toBe('failed');
    expect(view.attempts[0]?.estimated).toBe(false);
    // gpt-4o-mini: input 0.15, output 0.6 per 1M.
    expect(view.attempts[0]?.cost).toBe(usd([21, '0.15'], [4, '0.6']));
  });
});

/**
 * A gateway whose model `loose` goes to an upstream that answers every
 * request with the same body.
 */
async function gatewayOverFixedUpstream(
  contentType: string,
  body: string,
): Promise<{ upstream: Server; t: TestGateway }> {
  const upstream = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': contentType });
      response.end(body);
    });
  });
  await new Promise<void>((resolve) =>
    upstream.listen(0, '127.0.0.1', resolve),
  );
  const { port } = upstream.address() as AddressInfo;
  const t = await startTestGateway({
    config: {
      providers: {
        loose: {
          type: 'openai-compatible',
          baseUrl: `http://127.0.0.1:${port}/v1`,
        },
      },
      models: {
        loose: { deployments: [{ provider: 'loose', model: 'gpt-4o-mini' }] },
      },
    },
  });
  return { upstream, t };
}
