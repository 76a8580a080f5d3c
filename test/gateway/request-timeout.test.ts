/**
 * server.requestTimeoutMs bounds how long a client may take to send its
 * request: a slow sender gets 408 request_timeout in the OpenAI shape.
 */
import { connect } from 'node:net';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

let t: TestGateway;
beforeAll(async () => {
  t = await startTestGateway({
    config: { server: { port: 0, requestTimeoutMs: 500 } },
  });
});
afterAll(async () => {
  await t.close();
});

it('answers a client that sends only part of its body with 408', async () => {
  const { port } = new URL(t.url);
  const socket = connect(Number(port), '127.0.0.1');
  const started = Date.now();
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    socket.on('close', () => resolve(text));
  });
  socket.write(
    'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' +
      'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model"',
  );
  const text = await answer;
  const waited = Date.now() - started;
  expect(text).toMatch(/^HTTP\/1\.1 408 /);
  expect(text).toContain('"code":"request_timeout"');
  expect(text).toMatch(/x-request-id: req_/);
  // Node checks its request timers every few hundred milliseconds.
  expect(waited).toBeGreaterThanOrEqual(450);
  expect(waited).toBeLessThan(5_000);
});

it('survives a client that resets its connection before saying anything', async () => {
  const { port } = new URL(t.url);
  for (const opening of ['', 'PRI * HTTP/2.0\r\n', 'POS']) {
    const socket = connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    if (opening) socket.write(opening);
    socket.resetAndDestroy();
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  const health = await fetch(`${t.url}/health`);
  expect(health.status).toBe(200);
});

it('closes a connection that never sends a byte', async () => {
  const { port } = new URL(t.url);
  const socket = connect(Number(port), '127.0.0.1');
  const started = Date.now();
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  // The 500 ms request timeout bounds the headers too.
  expect(Date.now() - started).toBeLessThan(3_000);
});
