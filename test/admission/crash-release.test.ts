/**
 * A replica that dies with requests in flight leaves their reservations
 * on Redis; the next gateway to recover those requests releases them,
 * settled at the worst case the ledger records, and frees their slots.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import { createClient } from 'redis';
import { afterAll, describe, expect, it } from 'vitest';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startGateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { startGatedUpstream } from '../helpers/gated-upstream.js';
import { spawnGateway } from '../helpers/gateway-process.js';
import { REDIS_URL, redisPresent, testPrefix } from '../helpers/redis.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe.skipIf(!redisPresent)(
  'a replica killed with a request in flight',
  () => {
    it('has its reservations released by the gateway that recovers it', async () => {
      const folder = await mkdtemp(join(tmpdir(), 'tollgate-crash-'));
      cleanup.push(() => rm(folder, { recursive: true, force: true }));
      const gated = await startGatedUpstream();
      cleanup.push(async () => {
        gated.open();
        await gated.close();
      });
      const db = join(folder, 'tollgate.db');
      const store = new SqliteStore({ path: db });
      const tenant = await createTenant(store, { name: 'crash' });
      const { key } = await createApiKey(store, tenant, {});
      await store.close();

      const prefix = testPrefix();
      const config: ConfigInput = {
        providers: {
          gate: { type: 'openai-compatible', baseUrl: gated.url, apiKey: 'k' },
        },
        models: {
          'gpt-4o': { deployments: [{ provider: 'gate', model: 'gpt-4o' }] },
        },
        limits: [
          { id: 'slots', concurrent: 1 },
          { id: 'tokens', tokens: 10_000_000, per: 'month' },
        ],
        counters: { store: 'redis', url: REDIS_URL, prefix },
        logging: { level: 'warn' },
      };
      const file = join(folder, 'tollgate.json');
      await writeFile(file, JSON.stringify(config));

      const doomed = await spawnGateway({ config: file, db });
      const client = new OpenAI({
        baseURL: `${doomed.url}/v1`,
        apiKey: key,
        maxRetries: 0,
      });
      const held = client.chat.completions
        .create({
          model: 'gpt-4o',
          max_tokens: 1_000,
          messages: [{ role: 'user', content: 'Hi' }],
        })
        .catch(() => 'cut off');
      while (gated.arrived < 1) await new Promise((r) => setTimeout(r, 5));

      const redis = createClient({ url: REDIS_URL });
      await redis.connect();
      cleanup.push(() => redis.close());
      const counter = async (limit: string) => {
        const keys: string[] = [];
        for await (const batch of redis.scanIterator({
          MATCH: `${prefix}*l=${limit}|*`,
        })) {
          keys.push(...batch);
        }
        expect(keys).toHaveLength(1);
        const fields = await redis.hGetAll(keys[0] ?? '');
        return {
          used: BigInt(fields['u'] ?? '0'),
          reserved: BigInt(fields['r'] ?? '0'),
        };
      };
      expect((await counter('slots')).reserved).toBe(1n);
      const worst = (await counter('tokens')).reserved;
      expect(worst).toBeGreaterThan(1_000n);

      doomed.child.kill('SIGKILL');
      await doomed.exited;
      expect(await held).toBe('cut off');

      // A new gateway on the same database recovers the dead one's request
      // at start, and with it releases what it held on Redis.
      const heir = await startGateway({
        config: parseConfig(
          { ...config, server: { port: 0 }, database: { path: db } },
          'heir',
        ),
        logger: createLogger('silent'),
      });
      cleanup.push(() => heir.close());
      expect(heir.recovered).toBe(1);
      expect(await counter('slots')).toEqual({ used: 0n, reserved: 0n });
      // The tokens counter holds the worst case, as the ledger settled it.
      expect(await counter('tokens')).toEqual({ used: worst, reserved: 0n });

      // The slot is free again.
      gated.open();
      const heirClient = new OpenAI({
        baseURL: `${heir.url}/v1`,
        apiKey: key,
        maxRetries: 0,
      });
      const reply = await heirClient.chat.completions.create({
        model: 'gpt-4o',
        max_tokens: 5,
        messages: [{ role: 'user', content: 'Hi' }],
      });
      expect(reply.choices).toHaveLength(1);
    });
  },
);
