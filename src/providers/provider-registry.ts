/**
 * Builds one client per configured provider, starting the built-in
 * simulated upstream where the config asks for one.
 *
 * Every client speaks one wire API (`client.api`); the gateway passes a
 * request through to a client of the caller's own API and translates for
 * any other.
 */
import { Agent } from 'undici';

import type { ProviderConfig, Secret } from '../config/config-schema.js';
import { resolveSecret } from '../config/load-config.js';
import { AnthropicClient } from './anthropic/anthropic-client.js';
import { AzureOpenAIClient } from './azure/azure-openai-client.js';
import type { BedrockClientOptions } from './bedrock/bedrock-client.js';
import { OpenAIClient } from './openai/openai-client.js';
import { startSimulatedUpstream } from './simulated/simulated-upstream.js';
import type { UpstreamClient } from './upstream.js';

export type ProviderClient = UpstreamClient;

export interface ProviderRegistry {
  readonly clients: ReadonlyMap<string, ProviderClient>;
  close(): Promise<void>;
}

export async function createProviderRegistry(
  providers: Readonly<Record<string, ProviderConfig>>,
): Promise<ProviderRegistry> {
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    connections: null,
    pipelining: 1,
  });
  const clients = new Map<string, ProviderClient>();
  const closers: (() => Promise<void>)[] = [];

  for (const [id, provider] of Object.entries(providers)) {
    const secret = (field: string, value: Secret | undefined) =>
      resolveSecret(value, `providers.${id}.${field}`);
    const common = {
      headersTimeoutMs: provider.headersTimeoutMs,
      bodyTimeoutMs: provider.bodyTimeoutMs,
      dispatcher,
    };
    switch (provider.type) {
      case 'openai-compatible':
        clients.set(
          id,
          new OpenAIClient({
            ...common,
            api: provider.api === 'chat' ? 'openai-chat' : 'openai-responses',
            baseUrl: provider.baseUrl,
            apiKey: secret('apiKey', provider.apiKey),
            ...(provider.organization && {
              organization: provider.organization,
            }),
            ...(provider.project && { project: provider.project }),
          }),
        );
        break;
      case 'azure-openai': {
        const key = secret('apiKey', provider.apiKey);
        if (key === undefined) {
          throw new Error(`providers.${id}.apiKey: no key is set`);
        }
        clients.set(
          id,
          new AzureOpenAIClient({
            ...common,
            api: provider.api === 'chat' ? 'openai-chat' : 'openai-responses',
            endpoint: provider.endpoint,
            apiVersion: provider.apiVersion,
            auth: { type: 'api-key', key },
          }),
        );
        break;
      }
      case 'anthropic':
        clients.set(
          id,
          new AnthropicClient({
            ...common,
            baseUrl: provider.baseUrl,
            apiKey: secret('apiKey', provider.apiKey),
            ...(provider.anthropicVersion && {
              anthropicVersion: provider.anthropicVersion,
            }),
            ...(provider.betas && { betas: provider.betas }),
          }),
        );
        break;
      case 'bedrock': {
        // The AWS SDK is large: loaded only by gateways that call Bedrock.
        const { BedrockClient } = await import('./bedrock/bedrock-client.js');
        const client = new BedrockClient({
          region: provider.region,
          ...(provider.endpoint && { endpoint: provider.endpoint }),
          ...bedrockCredentials(id, provider),
          headersTimeoutMs: provider.headersTimeoutMs,
          bodyTimeoutMs: provider.bodyTimeoutMs,
        });
        closers.push(() => {
          client.close();
          return Promise.resolve();
        });
        clients.set(id, client);
        break;
      }
      case 'simulated': {
        const upstream = await startSimulatedUpstream({
          latencyMs: provider.latencyMs,
          chunkIntervalMs: provider.chunkIntervalMs,
          tokensPerChunk: provider.tokensPerChunk,
        });
        closers.push(() => upstream.close());
        clients.set(
          id,
          new OpenAIClient({
            ...common,
            api: 'openai-chat',
            baseUrl: upstream.url,
            apiKey: 'simulated',
          }),
        );
        break;
      }
    }
  }

  return {
    clients,
    async close() {
      await dispatcher.close();
      await Promise.all(closers.map((close) => close()));
    },
  };
}

function bedrockCredentials(
  id: string,
  provider: Extract<ProviderConfig, { type: 'bedrock' }>,
): Pick<BedrockClientOptions, 'credentials'> {
  const secret = (field: string, value: Secret | undefined) =>
    resolveSecret(value, `providers.${id}.${field}`);
  const apiKey = secret('apiKey', provider.apiKey);
  if (apiKey !== undefined) return { credentials: { apiKey } };
  const accessKeyId = secret('accessKeyId', provider.accessKeyId);
  const secretAccessKey = secret('secretAccessKey', provider.secretAccessKey);
  if (accessKeyId === undefined || secretAccessKey === undefined) return {};
  const sessionToken = secret('sessionToken', provider.sessionToken);
  return {
    credentials: {
      accessKeyId,
      secretAccessKey,
      ...(sessionToken !== undefined && { sessionToken }),
    },
  };
}
