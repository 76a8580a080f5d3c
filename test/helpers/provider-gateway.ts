/**
 * A real gateway in front of one fake upstream per provider API, with a
 * tenant and its key, for tests that drive it with each official SDK.
 *
 * Models (alias → provider, upstream model, catalog price):
 * - `gpt-4o` on the OpenAI fake's Chat Completions;
 * - `gpt-4o-responses` on the OpenAI fake's Responses API, as gpt-4o;
 * - `azure-gpt-4o-mini` on the OpenAI fake's Azure routes;
 * - `claude-sonnet-4-5` on the Anthropic fake;
 * - `nova-lite` and `bedrock-claude` on the Bedrock fake.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Anthropic from '@anthropic-ai/sdk';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import OpenAI from 'openai';
import type { Logger } from 'pino';

import type { ConfigInput } from '../../src/config/config-schema.js';
import { parseConfig } from '../../src/config/load-config.js';
import {
  startAnthropicFake,
  type AnthropicFake,
} from '../../src/fakes/anthropic/anthropic-fake-server.js';
import {
  startBedrockFake,
  type BedrockFake,
} from '../../src/fakes/bedrock/bedrock-fake-server.js';
import {
  startOpenAIFake,
  type OpenAIFake,
} from '../../src/fakes/openai/openai-fake-server.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { ADMIN_TOKEN } from './test-gateway.js';

/** Alias → the upstream model each deployment sends, and is priced as. */
export const PROVIDER_MODELS = {
  'gpt-4o': { provider: 'openai', model: 'gpt-4o' },
  'gpt-4o-responses': { provider: 'openai-responses', model: 'gpt-4o' },
  'azure-gpt-4o-mini': { provider: 'azure', model: 'gpt-4o-mini' },
  'claude-sonnet-4-5': {
    provider: 'anthropic',
    model: 'claude-sonnet-4-5-20250929',
  },
  'nova-lite': { provider: 'bedrock', model: 'us.amazon.nova-lite-v1:0' },
  'bedrock-claude': {
    provider: 'bedrock',
    model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0',
  },
} as const;

export type ProviderAlias = keyof typeof PROVIDER_MODELS;

export interface ProviderGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly openai: OpenAIFake;
  readonly anthropic: AnthropicFake;
  readonly bedrock: BedrockFake;
  readonly tenantId: string;
  readonly key: string;
  /** Official SDK clients pointed at the gateway with the tenant's key. */
  readonly sdk: {
    readonly openai: OpenAI;
    readonly anthropic: Anthropic;
    readonly bedrock: BedrockRuntimeClient;
  };
  close(): Promise<void>;
}

export interface ProviderGatewayOptions {
  /** Overrides merged into the config (not providers or models). */
  readonly config?: Partial<ConfigInput>;
  readonly bodyTimeoutMs?: number;
  /** The gateway's logger; silent by default. */
  readonly logger?: Logger;
}

export async function startProviderGateway(
  options: ProviderGatewayOptions = {},
): Promise<ProviderGateway> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-providers-'));
  const [openai, anthropic, bedrock] = await Promise.all([
    startOpenAIFake(),
    startAnthropicFake(),
    startBedrockFake(),
  ]);
  const timeouts = {
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: options.bodyTimeoutMs ?? 5_000,
  };
  const config = parseConfig(
    {
      server: { port: 0, shutdownGraceMs: 5_000 },
      database: { path: join(folder, 'tollgate.db') },
      logging: { level: 'silent' },
      providers: {
        openai: {
          type: 'openai-compatible',
          baseUrl: openai.url,
          apiKey: 'sk-upstream',
          ...timeouts,
        },
        'openai-responses': {
          type: 'openai-compatible',
          baseUrl: openai.url,
          apiKey: 'sk-upstream',
          api: 'responses',
          ...timeouts,
        },
        azure: {
          type: 'azure-openai',
          endpoint: openai.azureUrl,
          apiKey: 'azure-upstream-key',
          ...timeouts,
        },
        anthropic: {
          type: 'anthropic',
          baseUrl: anthropic.url,
          apiKey: 'sk-ant-upstream',
          ...timeouts,
        },
        bedrock: {
          type: 'bedrock',
          region: 'us-east-1',
          endpoint: bedrock.url,
          apiKey: 'bedrock-upstream-key',
          ...timeouts,
        },
      },
      models: Object.fromEntries(
        Object.entries(PROVIDER_MODELS).map(([alias, d]) => [
          alias,
          { deployments: [{ provider: d.provider, model: d.model }] },
        ]),
      ),
      ...options.config,
    },
    'the provider test config',
  );
  const gateway = await startGateway({
    config,
    adminToken: ADMIN_TOKEN,
    logger: options.logger ?? createLogger('silent'),
  });
  const tenant = await createTenant(gateway.store, { name: 'tenant-p' });
  const { key } = await createApiKey(gateway.store, tenant, {});
  const sdk = {
    openai: new OpenAI({
      baseURL: `${gateway.url}/v1`,
      apiKey: key,
      maxRetries: 0,
    }),
    anthropic: new Anthropic({
      baseURL: gateway.url,
      apiKey: key,
      maxRetries: 0,
    }),
    bedrock: new BedrockRuntimeClient({
      region: 'us-east-1',
      endpoint: gateway.url,
      token: { token: key },
      authSchemePreference: ['httpBearerAuth'],
      maxAttempts: 1,
    }),
  };
  return {
    gateway,
    url: gateway.url,
    openai,
    anthropic,
    bedrock,
    tenantId: tenant.id,
    key,
    sdk,
    async close() {
      sdk.bedrock.destroy();
      await gateway.close();
      await Promise.all([openai.close(), anthropic.close(), bedrock.close()]);
      await rm(folder, { recursive: true, force: true });
    },
  };
}
