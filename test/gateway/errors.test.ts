/**
 * Every refusal the gateway makes, over real HTTP: OpenAI's error shape,
 * the stable code, the request id, nothing forwarded that could not be
 * parsed, and upstream failures recorded in the ledger without a charge.
 */
import { connect } from 'node:net';

import { APIError } from 'openai';
import type {
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ADMIN_TOKEN,
  startTestGateway,
  type TestGateway,
} from '../helpers/test-gateway.js';

/** What a test needs of an error answer, from fetch or from the SDK. */
interface ErrorAnswer {
  readonly status: number | undefined;
  readonly headers: Headers | undefined;
  readonly body: unknown;
}

const HELLO: ChatCompletionMessageParam[] = [{ role: 'user', content: 'hi' }];
const VALID: ChatCompletionCreateParamsNonStreaming = {
  model: 'gpt-4o',
  messages: HELLO,
};

describe('gateway errors', () => {
  let t: TestGateway;
  /** bodyLimitBytes 1024, and a 300 ms deadline for upstream headers. */
  let small: TestGateway;
  /** Its provider points at a port nothing listens on. */
  let down: TestGateway;

  beforeAll(async () => {
    // A privileged port: never handed out as an ephemeral one, so no other
    // test's server can be listening there (a port found free and closed
    // again can be taken by a server another suite starts meanwhile).
    const closedPort = 1;
    [t, small, down] = await Promise.all([
      startTestGateway(),
      startTestGateway({
        config: {
          server: { port: 0, bodyLimitBytes: 1024, shutdownGraceMs: 1000 },
        },
        headersTimeoutMs: 300,
      }),
      startTestGateway({
        config: {
          providers: {
            sim: {
              type: 'openai-compatible',
              baseUrl: `http://127.0.0.1:${closedPort}/v1`,
              apiKey: 'sk-upstream-test',
            },
          },
        },
      }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([t?.close(), small?.close(), down?.close()]);
  });

  /** A raw POST; a Blob body and a null content type send none. */
  const chat = (
    gateway: TestGateway,
    body: RequestInit['body'],
    contentType: string | null = 'application/json',
    authorization: string | null = `Bearer ${gateway.tenant.key}`,
  ) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        ...(authorization !== null && { authorization }),
        ...(contentType !== null && { 'content-type': contentType }),
      },
      body,
    }).then(toAnswer);

  it('a request HTTP cannot parse → 400 in the OpenAI shape with an id', async () => {
    const { port } = new URL(t.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.write('POST /v1/chat/completions HTTP/1.1\r\nbad header\r\n\r\n');
    const chunks: Buffer[] = [];
    for await (const chunk of socket) chunks.push(chunk as Buffer);
    const [head = '', body = ''] = Buffer.concat(chunks)
      .toString('utf8')
      .split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    const requestId = /x-request-id: (\S+)/i.exec(head)?.[1];
    expect(requestId).toMatch(/^req_/);
    expect(JSON.parse(body)).toEqual({
      error: {
        message: expect.any(String),
        type: 'invalid_request_error',
        param: null,
        code: 'invalid_request',
        request_id: requestId,
      },
    });
  });

  describe('a body the gateway cannot use is refused, never forwarded', () => {
    it.each([
      ['invalid JSON', '{"model": "gpt-4o", "messages": [', 'invalid_json'],
      ['an empty body', '', 'invalid_json'],
      ['a JSON array', JSON.stringify([VALID]), 'invalid_type'],
      ['JSON null', 'null', 'invalid_type'],
      ['a JSON string', '"hello"', 'invalid_type'],
    ])('%s → 400 %s', async (_name, body, code) => {
      const answer = await notForwarded(t, () => chat(t, body));
      expectError(answer, 400, code, null);
    });

    it.each([
      ['model missing', { messages: HELLO }, 'model'],
      ['messages missing', { model: 'gpt-4o' }, 'messages'],
      ['model null', { model: null, messages: HELLO }, 'model'],
      [
        'a message without a role',
        { model: 'gpt-4o', messages: [{ content: 'hi' }] },
        'messages[0].role',
      ],
    ])('%s → 400 missing_required_parameter', async (_name, body, param) => {
      const answer = await notForwarded(t, () => chat(t, JSON.stringify(body)));
      expectError(answer, 400, 'missing_required_parameter', param);
    });

    it.each([
      ['messages a string', 'invalid_type', 'messages', { messages: 'hi' }],
      ['messages empty', 'invalid_value', 'messages', { messages: [] }],
      [
        'a message a string',
        'invalid_type',
        'messages[0]',
        { messages: ['hi'] },
      ],
      ['model a number', 'invalid_type', 'model', { model: 4 }],
      ['stream "yes"', 'invalid_type', 'stream', { stream: 'yes' }],
      ['max_tokens 1.5', 'invalid_type', 'max_tokens', { max_tokens: 1.5 }],
      ['max_tokens 0', 'invalid_value', 'max_tokens', { max_tokens: 0 }],
      ['max_tokens "10"', 'invalid_type', 'max_tokens', { max_tokens: '10' }],
      ['n -1', 'invalid_value', 'n', { n: -1 }],
      ['n 129', 'invalid_value', 'n', { n: 129 }],
      [
        'max_tokens over ten million',
        'invalid_value',
        'max_tokens',
        { max_tokens: 10_000_001 },
      ],
      [
        'max_completion_tokens over ten million',
        'invalid_value',
        'max_completion_tokens',
        { max_completion_tokens: 10_000_001 },
      ],
      ['user 42', 'invalid_type', 'user', { user: 42 }],
      ['user too long', 'invalid_value', 'user', { user: 'u'.repeat(257) }],
      [
        'role "robot"',
        'invalid_value',
        'messages[0].role',
        { messages: [{ role: 'robot', content: 'hi' }] },
      ],
      [
        'stream_options without stream',
        'invalid_value',
        'stream_options',
        { stream_options: { include_usage: true } },
      ],
      [
        'stream_options with stream false',
        'invalid_value',
        'stream_options',
        { stream: false, stream_options: { include_usage: true } },
      ],
      [
        'include_usage "yes"',
        'invalid_type',
        'stream_options.include_usage',
        { stream: true, stream_options: { include_usage: 'yes' } },
      ],
    ])('%s → 400 %s', async (_name, code, param, fields) => {
      const body = JSON.stringify({ ...VALID, ...fields });
      const answer = await notForwarded(t, () => chat(t, body));
      expectError(answer, 400, code, param);
    });

    it('a body nested too deeply to forward → 400, not a crash', async () => {
      const depth = 200_000;
      const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const answer = await notForwarded(t, () => chat(t, body));
      expect(answer.status).toBe(400);
    });

    it('a body over server.bodyLimitBytes → 413 request_too_large', async () => {
      const body = JSON.stringify({
        ...VALID,
        messages: [{ role: 'user', content: 'x'.repeat(2048) }],
      });
      expect(Buffer.byteLength(body)).toBeGreaterThan(1024);
      const answer = await notForwarded(small, () => chat(small, body));
      expectError(answer, 413, 'request_too_large', null);
    });

    it('a streamed body that grows over the limit → 413 request_too_large', async () => {
      // No content-length: the limit is enforced while the body arrives.
      const half = new TextEncoder().encode(' '.repeat(700));
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(half);
          controller.enqueue(half);
          controller.close();
        },
      });
      const answer = await notForwarded(small, () =>
        fetch(`${small.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${small.tenant.key}`,
            'content-type': 'application/json',
          },
          body,
          duplex: 'half',
        }).then(toAnswer),
      );
      expectError(answer, 413, 'request_too_large', null);
    });

    it('a body just under the limit is served', async () => {
      const body = JSON.stringify({ ...VALID, user: 'u'.repeat(100) });
      expect(Buffer.byteLength(body)).toBeLessThan(1024);
      const answer = await chat(small, body);
      expect(answer.status).toBe(200);
    });

    it.each([
      ['text/plain'],
      ['text/plain; charset=utf-8'],
      ['application/x-www-form-urlencoded'],
      ['application/vnd.api+json'],
      [null],
    ])(
      'a body sent as %s → 415 unsupported_media_type',
      async (contentType) => {
        const answer = await notForwarded(t, () =>
          chat(t, new Blob([JSON.stringify(VALID)]), contentType),
        );
        expectError(answer, 415, 'unsupported_media_type', null);
      },
    );

    it('application/json with a charset is JSON', async () => {
      const answer = await chat(
        t,
        JSON.stringify(VALID),
        'application/json; charset=utf-8',
      );
      expect(answer.status).toBe(200);
    });
  });

  describe('keys', () => {
    it('no Authorization header → 401 missing_api_key', async () => {
      const answer = await notForwarded(t, () =>
        chat(t, JSON.stringify(VALID), 'application/json', null),
      );
      expectError(answer, 401, 'missing_api_key', null);
    });

    it('an Authorization header that is not Bearer → 401 missing_api_key', async () => {
      const answer = await notForwarded(t, () =>
        chat(
          t,
          JSON.stringify(VALID),
          'application/json',
          'Basic dXNlcjpwdw==',
        ),
      );
      expectError(answer, 401, 'missing_api_key', null);
    });

    it('a garbage key → 401 invalid_api_key', async () => {
      const answer = await notForwarded(t, () =>
        sdkError(
          t.tenant.client
            .withOptions({ apiKey: 'sk-not-a-tollgate-key' })
            .chat.completions.create(VALID),
        ),
      );
      expectError(answer, 401, 'invalid_api_key', null);
    });

    it('a well-formed key with the wrong secret → 401 invalid_api_key', async () => {
      // `tg_<key id>_<43-character secret>`: keep the id, change the secret.
      const key = t.tenant.key;
      const secret = key.slice(-43);
      const forged = key.slice(0, -43) + (secret[0] === 'A' ? 'B' : 'A');
      const wrongSecret = forged + secret.slice(1);
      expect(wrongSecret).not.toBe(key);
      expect(wrongSecret.length).toBe(key.length);

      const answer = await notForwarded(t, () =>
        sdkError(
          t.tenant.client
            .withOptions({ apiKey: wrongSecret })
            .chat.completions.create({ model: 'gpt-4o', messages: HELLO }),
        ),
      );
      expectError(answer, 401, 'invalid_api_key', null);
    });

    it('a revoked key → 401 invalid_api_key, from the moment it is revoked', async () => {
      const created = await admin(t, `/tenants/${t.tenant.id}/keys`, {
        name: 'soon-revoked',
      });
      expect(created.status).toBe(201);
      const { id, key } = (await created.json()) as { id: string; key: string };
      const client = t.tenant.client.withOptions({ apiKey: key });
      await client.chat.completions.create(VALID);

      const revoked = await admin(
        t,
        `/tenants/${t.tenant.id}/keys/${id}/revoke`,
      );
      expect(revoked.status).toBe(200);
      const answer = await notForwarded(t, () =>
        sdkError(client.chat.completions.create(VALID)),
      );
      expectError(answer, 401, 'invalid_api_key', null);

      const again = await admin(t, `/tenants/${t.tenant.id}/keys/${id}/revoke`);
      expectError(await toAnswer(again), 404, 'not_found', null);
    });
  });

  describe('models', () => {
    it('an unknown model → 404 model_not_found', async () => {
      const answer = await notForwarded(t, () =>
        sdkError(
          t.tenant.client.chat.completions.create({
            model: 'gpt-17-ultra',
            messages: [{ role: 'user', content: 'hi' }],
          }),
        ),
      );
      expectError(answer, 404, 'model_not_found', 'model');
    });

    it('a model the key may not use → 404, as if it did not exist', async () => {
      const created = await admin(t, `/tenants/${t.tenant.id}/keys`, {
        models: ['gpt-4o-mini'],
      });
      const { key } = (await created.json()) as { key: string };
      const client = t.tenant.client.withOptions({ apiKey: key });
      await client.chat.completions.create({ ...VALID, model: 'gpt-4o-mini' });

      const answer = await notForwarded(t, () =>
        sdkError(client.chat.completions.create(VALID)),
      );
      expectError(answer, 404, 'model_not_found', 'model');
    });
  });

  describe('upstream failures', () => {
    it('an upstream that cannot be reached → 502 upstream_unavailable', async () => {
      const error = await sdkError(
        down.tenant.client.chat.completions.create(VALID),
      );
      expectError(error, 502, 'upstream_unavailable', null);
      await expectFailedWithoutUsage(down, error, 502, 'upstream_unavailable');
    });

    it('an upstream that never answers → 504 upstream_timeout', async () => {
      const before = small.upstream.requests;
      const error = await sdkError(
        small.tenant.client.chat.completions.create({
          ...VALID,
          metadata: { tollgate_sim_fault: 'hang' },
        }),
      );
      expectError(error, 504, 'upstream_timeout', null);
      expect(small.upstream.requests).toBe(before + 1);
      await expectFailedWithoutUsage(small, error, 504, 'upstream_timeout');
    });

    it('a streamed request to a hung upstream → 504 before any byte', async () => {
      const error = await sdkError(
        small.tenant.client.chat.completions.create({
          ...VALID,
          stream: true,
          metadata: { tollgate_sim_fault: 'hang' },
        }),
      );
      expectError(error, 504, 'upstream_timeout', null);
      await expectFailedWithoutUsage(small, error, 504, 'upstream_timeout');
    });

    it('an upstream 429 is passed through with its retry-after', async () => {
      const error = await sdkError(
        t.tenant.client.chat.completions.create({
          ...VALID,
          metadata: { tollgate_sim_fault: 'status:429' },
        }),
      );
      expect(error.status).toBe(429);
      expect(error.headers?.get('retry-after')).toBe('1');
      // The upstream's own body, untouched: its code, not one of ours.
      expect(error.code).toBe('rate_limit_exceeded');
      expect(error.error).toMatchObject({
        message: expect.stringContaining('Rate limit reached'),
        type: 'requests',
        param: null,
      });
      expect(error.requestID).toMatch(/^req_/);
      await expectFailedWithoutUsage(t, error, 429, 'upstream_429');
    });

    it('a streamed request to an upstream 429 is passed through too', async () => {
      const error = await sdkError(
        t.tenant.client.chat.completions.create({
          ...VALID,
          stream: true,
          metadata: { tollgate_sim_fault: 'status:429' },
        }),
      );
      expect(error.status).toBe(429);
      expect(error.headers?.get('retry-after')).toBe('1');
      await expectFailedWithoutUsage(t, error, 429, 'upstream_429');
    });

    it('an upstream 400 about the request is passed through unchanged', async () => {
      const error = await sdkError(
        t.tenant.client.chat.completions.create({
          ...VALID,
          metadata: { tollgate_sim_fault: 'status:400' },
        }),
      );
      expect(error.status).toBe(400);
      expect(error.error).toEqual({
        message: 'Simulated upstream failure (400).',
        type: 'invalid_request_error',
        param: null,
        code: null,
      });
      expect(error.requestID).toMatch(/^req_/);
      await expectFailedWithoutUsage(t, error, 400, 'upstream_400');
    });

    it.each([500, 503])(
      'an upstream %i → 502 upstream_error',
      async (status) => {
        const error = await sdkError(
          t.tenant.client.chat.completions.create({
            ...VALID,
            metadata: { tollgate_sim_fault: `status:${status}` },
          }),
        );
        expectError(error, 502, 'upstream_error', null);
        expect(error.message).toContain(String(status));
        await expectFailedWithoutUsage(t, error, 502, 'upstream_error');
      },
    );

    it('an upstream 401 → 502 upstream_auth_failed, not the client’s 401', async () => {
      const error = await sdkError(
        t.tenant.client.chat.completions.create({
          ...VALID,
          metadata: { tollgate_sim_fault: 'status:401' },
        }),
      );
      expectError(error, 502, 'upstream_auth_failed', null);
      await expectFailedWithoutUsage(t, error, 502, 'upstream_auth_failed');
    });
  });

  it('still serves a normal request after all of that', async () => {
    for (const gateway of [t, small]) {
      const health = await fetch(`${gateway.url}/health`);
      expect(health.status).toBe(200);
      const { data, response } = await gateway.tenant.client.chat.completions
        .create({
          model: 'gpt-4o',
          messages: [{ role: 'user', content: 'still there?' }],
          metadata: {
            tollgate_sim_prompt_tokens: '10',
            tollgate_sim_completion_tokens: '5',
          },
        })
        .withResponse();
      expect(response.status).toBe(200);
      expect(data.usage?.completion_tokens).toBe(5);
    }
  });
});

/** Runs `send` and checks the simulated upstream saw nothing of it. */
async function notForwarded<T>(
  gateway: TestGateway,
  send: () => Promise<T>,
): Promise<T> {
  const requests = gateway.upstream.requests;
  const lastRequest = gateway.upstream.lastRequest;
  const result = await send();
  expect(gateway.upstream.requests).toBe(requests);
  expect(gateway.upstream.lastRequest).toBe(lastRequest);
  return result;
}

/**
 * OpenAI's error shape, our stable code, and the request id both in the
 * `x-request-id` header and in the body.
 */
function expectError(
  answer: ErrorAnswer | APIError,
  status: number,
  code: string,
  param: string | null,
): void {
  const { headers, body } =
    answer instanceof APIError ? fromSdk(answer) : answer;
  expect(answer.status).toBe(status);
  expect(body).toEqual({
    error: {
      message: expect.any(String),
      type: openAIType(status),
      param,
      code,
      request_id: expect.stringMatching(/^req_/),
    },
  });
  const error = (body as { error: { message: string; request_id: string } })
    .error;
  expect(error.message.length).toBeGreaterThan(0);
  expect(headers?.get('x-request-id')).toBe(error.request_id);
  if (answer instanceof APIError) {
    expect(answer.requestID).toBe(error.request_id);
    expect(answer.code).toBe(code);
  }
}

/** OpenAI's `error.type` for each class of status. */
function openAIType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status >= 500) return 'api_error';
  return 'invalid_request_error';
}

/** The upstream answered nothing billable: failed, coded, no attempt. */
async function expectFailedWithoutUsage(
  gateway: TestGateway,
  error: APIError,
  statusCode: number,
  errorCode: string,
): Promise<void> {
  const id = error.requestID;
  expect(id).toMatch(/^req_/);
  const response = await fetch(`${gateway.url}/v1/requests/${id}`, {
    headers: { authorization: `Bearer ${gateway.tenant.key}` },
  });
  expect(response.status).toBe(200);
  const record = (await response.json()) as Record<string, unknown>;
  expect(record).toMatchObject({
    id,
    state: 'failed',
    status_code: statusCode,
    error_code: errorCode,
    attempts: [],
  });
  expect(record['finished_at']).not.toBeNull();
}

async function sdkError(request: Promise<unknown>): Promise<APIError> {
  const error = await request.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(APIError);
  return error as APIError;
}

function fromSdk(error: APIError): ErrorAnswer {
  return {
    status: error.status,
    headers: error.headers,
    body: error.error === undefined ? undefined : { error: error.error },
  };
}

async function toAnswer(response: Response): Promise<ErrorAnswer> {
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    // Left as text; the shape check will say what came instead.
  }
  return { status: response.status, headers: response.headers, body };
}

function admin(
  gateway: TestGateway,
  path: string,
  body: unknown = {},
): Promise<Response> {
  return fetch(`${gateway.url}/admin/v1${path}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
}

/** A port nothing listens on: bound once by us, then released. */
