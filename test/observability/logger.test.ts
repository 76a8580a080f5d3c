/**
 * No secret reaches a log line, wherever it sits in the record.
 */
import { Writable } from 'node:stream';

import { describe, expect, it } from 'vitest';

import { createLogger } from '../../src/observability/logger.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  it('redacts keys, credentials and raw packets', async () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', stream);
    const secrets = [
      'Bearer tg_key_SECRET1',
      'sk-SECRET2',
      'SECRET3-aws',
      'SECRET4-session',
      'GET / HTTP/1.1 authorization: Bearer SECRET5',
      'SECRET6-anthropic',
    ];
    const err = Object.assign(new Error('parse failed'), {
      rawPacket: Buffer.from(secrets[4] ?? ''),
    });
    logger.error(
      {
        req: { headers: { authorization: secrets[0] } },
        provider: { apiKey: secrets[1] },
        credentials: {
          secretAccessKey: secrets[2],
          sessionToken: secrets[3],
        },
        headers: { 'x-api-key': secrets[5] },
        err,
      },
      'boom',
    );
    await new Promise((resolve) => setImmediate(resolve));
    const text = lines.join('');
    expect(text).toContain('boom');
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toContain('SECRET');
    // A Buffer would be logged as its bytes, which the text check misses.
    const record = JSON.parse(text) as { err: { rawPacket: unknown } };
    expect(record.err.rawPacket).toBe('[redacted]');
  });
});
