/**
 * The Redis that suites needing one run against: TOLLGATE_TEST_REDIS_URL,
 * else 127.0.0.1:6379. A user's machine may have none: those suites skip
 * with a one-line reason. Under CI (CI=1) a missing Redis fails instead.
 */
import { createConnection } from 'node:net';

export const REDIS_URL =
  process.env['TOLLGATE_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

async function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({
      host: hostname,
      port: Number(port || 6379),
    });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.end('PING\r\n');
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

export const redisPresent = await answers(REDIS_URL);

if (!redisPresent) {
  if (process.env['CI']) {
    throw new Error(`CI: no Redis at ${REDIS_URL}; these suites must run`);
  }
  console.warn(`skipping Redis suites: nothing answers at ${REDIS_URL}`);
}

/** A key prefix of its own for each test run, so runs do not meet. */
export function testPrefix(): string {
  return `tollgate-test:${process.pid}:${Date.now()}:${Math.random()
    .toString(36)
    .slice(2)}:`;
}
