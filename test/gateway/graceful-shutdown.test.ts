/**
 * SIGTERM: the gateway stops accepting, lets in-flight requests finish and
 * settles them before it exits, so a restart finds nothing to recover.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';

import { provisionTenants } from '../../src/replay/provision-tenants.js';
import { spawnGateway } from '../helpers/gateway-process.js';

const ADMIN_TOKEN = 'shutdown-test-admin';
const CONFIG = `
providers:
  sim: { type: simulated, chunkIntervalMs: 5, tokensPerChunk: 4 }
models:
  gpt-4o-mini: { deployments: [{ provider: sim, model: gpt-4o-mini }] }
logging: { level: warn }
`;

describe('SIGTERM', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it('finishes and settles in-flight streams, then exits cleanly', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'tollgate-term-'));
    cleanup.push(() => rm(folder, { recursive: true, force: true }));
    const config = join(folder, 'tollgate.yaml');
    const db = join(folder, 'tollgate.db');
    await writeFile(config, CONFIG);
    const env = { TOLLGATE_ADMIN_TOKEN: ADMIN_TOKEN };

    const gateway = await spawnGateway({ config, db, env });
    cleanup.push(async () => {
      gateway.child.kill('SIGKILL');
      await gateway.exited;
    });
    const [tenant] = await provisionTenants(gateway.url, ADMIN_TOKEN, ['t']);
    const client = new OpenAI({
      baseURL: `${gateway.url}/v1`,
      apiKey: tenant!.key,
      maxRetries: 0,
    });

    // 400 tokens at 4 a chunk, 5 ms apart: each stream runs about 0.5 s.
    const streams = await Promise.all(
      Array.from({ length: 8 }, () =>
        client.chat.completions.create({
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'go' }],
          stream: true,
          stream_options: { include_usage: true },
          metadata: {
            tollgate_sim_prompt_tokens: '50',
            tollgate_sim_completion_tokens: '400',
          },
        }),
      ),
    );
    const readers = streams.map(async (stream) => {
      let usage: OpenAI.CompletionUsage | undefined;
      for await (const chunk of stream) usage = chunk.usage ?? usage;
      return usage;
    });

    gateway.child.kill('SIGTERM');
    // New work is refused while the streams finish.
    await expect
      .poll(async () => {
        try {
          return String((await fetch(`${gateway.url}/health`)).status);
        } catch {
          return 'refused';
        }
      })
      .toMatch(/^(refused|503)$/);
    const usages = await Promise.all(readers);
    for (const usage of usages) {
      expect(usage).toMatchObject({
        prompt_tokens: 50,
        completion_tokens: 400,
      });
    }
    expect(await gateway.exited).toBe(0);

    // Nothing was left open: a restart has nothing to recover.
    const again = await spawnGateway({ config, db, env });
    cleanup.push(async () => {
      again.child.kill('SIGTERM');
      await again.exited;
    });
    expect(again.stderr()).not.toContain('recovered');
    const usage = await fetch(`${again.url}/v1/usage`, {
      headers: { authorization: `Bearer ${tenant!.key}` },
    }).then((r) => r.json() as Promise<{ data: { requests: number }[] }>);
    expect(usage.data[0]?.requests).toBe(8);
  }, 30_000);
});
