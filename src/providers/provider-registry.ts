/**
 * Builds one client per configured provider, starting the built-in
 * simulated upstream where the config asks for one.
 */
import { Agent } from 'undici';

import type { ProviderConfig } from '../config/config-schema.js';
import { resolveSecret } from '../config/load-config.js';
import { OpenAICompatibleClient } from './openai/openai-compatible-client.js';
import { startSimulatedUpstream } from './simulated/simulated-upstream.js';

export type ProviderClient = OpenAICompatibleClient;

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
    const common = {
      headersTimeoutMs: provider.headersTimeoutMs,
      bodyTimeoutMs: provider.bodyTimeoutMs,
      dispatcher,
    };
    switch (provider.type) {
      case 'openai-compatible':
        clients.set(
          id,
          new OpenAICompatibleClient({
            ...common,
            baseUrl: provider.baseUrl,
            apiKey: resolveSecret(provider.apiKey, `providers.${id}.apiKey`),
          }),
        );
        break;
      case 'simulated': {
        const upstream = await startSimulatedUpstream({
          latencyMs: provider.latencyMs,
          chunkIntervalMs: provider.chunkIntervalMs,
          tokensPerChunk: provider.tokensPerChunk,
        });
        closers.push(() => upstream.close());
        clients.set(
          id,
          new OpenAICompatibleClient({
            ...common,
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
