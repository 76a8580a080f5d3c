/**
 * Recovery settles only the requests of gateway processes that are gone,
 * never those another live process sharing the database is serving.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { parseConfig } from '../../src/config/load-config.js';
import { startGateway } from '../../src/gateway/gateway.js';
import { InstanceRegistry } from '../../src/gateway/instance-registry.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { InstanceRecord } from '../../src/storage/store.js';
import { startTestGateway } from '../helpers/test-gateway.js';

let folder: string;
let store: SqliteStore;

beforeEach(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-instances-'));
  store = new SqliteStore({ path: join(folder, 'tollgate.db') });
});

afterEach(async () => {
  await store.close();
  await rm(folder, { recursive: true, force: true });
});

/** A process id that existed and has now exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  return child.pid;
}

function instance(
  id: string,
  fields: Partial<InstanceRecord> = {},
): InstanceRecord {
  const now = Date.now();
  return {
    id,
    host: hostname(),
    pid: process.pid,
    startedAt: now,
    heartbeatAt: now,
    stoppedAt: null,
    ...fields,
  };
}

describe('InstanceRegistry.abandoned', () => {
  it('tells live instances from dead, stopped, stale and unknown ones', async () => {
    const self = new InstanceRegistry(store, {
      id: 'gw_self',
      staleAfterMs: 30_000,
    });
    await self.start(() => undefined);
    await store.registerInstance(instance('gw_live'));
    await store.registerInstance(instance('gw_dead', { pid: deadPid() }));
    await store.registerInstance(
      instance('gw_stale', {
        host: 'another-host',
        heartbeatAt: Date.now() - 31_000,
      }),
    );
    await store.registerInstance(
      instance('gw_far_alive', { host: 'another-host' }),
    );
    await store.registerInstance(instance('gw_stopped'));
    await store.stopInstance('gw_stopped', Date.now());

    const abandoned = await self.abandoned([
      'gw_self',
      'gw_live',
      'gw_dead',
      'gw_stale',
      'gw_far_alive',
      'gw_stopped',
      'gw_unknown',
      'gw_dead',
    ]);
    expect([...abandoned].sort()).toEqual([
      'gw_dead',
      'gw_stale',
      'gw_stopped',
      'gw_unknown',
    ]);
    await self.stop();
  });

  it('a heartbeat keeps a quiet instance alive', async () => {
    await store.registerInstance(
      instance('gw_other', { host: 'another-host' }),
    );
    const beating = new InstanceRegistry(store, {
      id: 'gw_beating',
      heartbeatMs: 20,
    });
    await beating.start(() => undefined);
    const watcher = new InstanceRegistry(store, {
      id: 'gw_watcher',
      staleAfterMs: 200,
    });
    await new Promise((resolve) => setTimeout(resolve, 400));
    const abandoned = await watcher.abandoned(['gw_beating', 'gw_other']);
    // gw_other never beat after registering 400 ms ago; gw_beating did.
    expect([...abandoned]).toEqual(['gw_other']);
    await beating.stop();
    expect([...(await watcher.abandoned(['gw_beating']))]).toEqual([
      'gw_beating',
    ]);
  });
});

describe('two gateways on one database', () => {
  it('the second one leaves the first one’s request in flight alone', async () => {
    const first = await startTestGateway({ upstream: { latencyMs: 600 } });
    try {
      const answer = first.tenant.client.chat.completions
        .create({
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hello' }],
          max_tokens: 5,
        })
        .withResponse();
      // Let the request reach the ledger and the upstream.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const second = await startGateway({
        config: parseConfig(
          {
            server: { port: 0 },
            database: { path: first.dbPath },
            logging: { level: 'silent' },
            providers: { sim: { type: 'simulated' } },
            models: { m: { deployments: [{ provider: 'sim', model: 'x' }] } },
          },
          'the second config',
        ),
        logger: createLogger('silent'),
      });
      expect(second.recovered).toBe(0);
      await second.close();

      const { response } = await answer;
      const requestId = response.headers.get('x-request-id') ?? '';
      const detail = await first.gateway.store.findRequest(
        { allTenants: true },
        requestId,
      );
      expect(detail?.request.state).toBe('settled');
      expect(detail?.events.map((e) => e.event.source)).toEqual(['gateway']);
    } finally {
      await first.close();
    }
  });
});
