/**
 * A real gateway on a loopback port, in front of a real simulated upstream,
 * with one tenant and key ready, for tests that drive it over HTTP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import OpenAI from 'openai';
import type { Logger } from 'pino';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import type { Store } from '../../src/storage/store.js';
import {
  startSimulatedUpstream,
  type SimulatedUpstream,
  type SimulatedUpstreamOptions,
} from '../../src/providers/simulated/simulated-upstream.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';

export const ADMIN_TOKEN = 'test-admin-token';

export interface TestTenant {
  readonly id: string;
  readonly name: string;
  readonly key: string;
  /** An `openai` client for this tenant, retries off. */
  readonly client: OpenAI;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly upstream: SimulatedUpstream;
  readonly url: string;
  /** The gateway's SQLite database file. */
  readonly dbPath: string;
  readonly tenant: TestTenant;
  /** Creates another tenant with a key. */
  addTenant(name: string, timezone?: string): Promise<TestTenant>;
  close(): Promise<void>;
}

export interface TestGatewayOptions {
  readonly upstream?: SimulatedUpstreamOptions;
  /** Extra model aliases; each maps to the simulated upstream's model. */
  readonly models?: Readonly<Record<string, string>>;
  /** Overrides merged into the config. */
  readonly config?: Partial<ConfigInput>;
  /** Provider timeouts, to test 504s quickly. */
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  /**
   * Wraps the gateway's SQLite store, e.g. to slow down a write and see
   * what a client can observe while it is in flight.
   */
  readonly wrapStore?: (store: Store) => Store;
  /** The gateway's logger; silent by default. */
  readonly logger?: Logger;
}

/** Aliases every test gateway serves, each priced as its catalog model. */
export const TEST_MODELS: Readonly<Record<string, string>> = {
  'gpt-4o': 'gpt-4o',
  'gpt-4o-mini': 'gpt-4o-mini',
  'nova-lite': 'amazon.nova-lite-v1:0',
  'claude-sonnet-4-5': 'claude-sonnet-4-5-20250929',
  unpriced: 'no-such-model-in-the-catalog',
};

export async function startTestGateway(
  options: TestGatewayOptions = {},
): Promise<TestGateway> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-test-'));
  const upstream = await startSimulatedUpstream(options.upstream);
  const models = { ...TEST_MODELS, ...options.models };
  const config = parseConfig(
    {
      server: { port: 0, shutdownGraceMs: 5_000 },
      database: { path: join(folder, 'tollgate.db') },
      logging: { level: 'silent' },
      providers: {
        sim: {
          type: 'openai-compatible',
          baseUrl: upstream.url,
          apiKey: 'sk-upstream-test',
          ...(options.headersTimeoutMs && {
            headersTimeoutMs: options.headersTimeoutMs,
          }),
          ...(options.bodyTimeoutMs && {
            bodyTimeoutMs: options.bodyTimeoutMs,
          }),
        },
      },
      models: Object.fromEntries(
        Object.entries(models).map(([alias, model]) => [
          alias,
          { deployments: [{ provider: 'sim', model }] },
        ]),
      ),
      ...options.config,
    },
    'the test config',
  );
  const store = options.wrapStore?.(
    new SqliteStore({
      path: config.database.path,
      synchronous: config.database.synchronous,
    }),
  );
  const gateway = await startGateway({
    config,
    ...(store && { store }),
    adminToken: ADMIN_TOKEN,
    logger: options.logger ?? createLogger('silent'),
  });

  const addTenant = async (name: string, timezone?: string) => {
    const tenant = await createTenant(gateway.store, {
      name,
      ...(timezone && { timezone }),
    });
    const { key } = await createApiKey(gateway.store, tenant, {});
    return {
      id: tenant.id,
      name,
      key,
      client: new OpenAI({
        baseURL: `${gateway.url}/v1`,
        apiKey: key,
        maxRetries: 0,
      }),
    };
  };

  return {
    gateway,
    upstream,
    url: gateway.url,
    dbPath: config.database.path,
    tenant: await addTenant('tenant-a'),
    addTenant,
    async close() {
      await gateway.close();
      await upstream.close();
      await rm(folder, { recursive: true, force: true });
    },
  };
}
