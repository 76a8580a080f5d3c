/**
 * A real gateway whose routes span several fake upstreams that fail on
 * cue, for routing tests: two OpenAI fakes (so that a primary and its
 * fallback are told apart by which fake a request reached), an Anthropic
 * fake, a Bedrock fake, and a provider on a port nothing listens on.
 *
 * The test gives the routes (`models`); each deployment names one of the
 * providers below. `ledger()` reads back what the gateway recorded of a
 * request: its state, its routing record and its usage events, rated.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

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
import type { RoutingRecord } from '../../src/gateway/inference/routing-record.js';
import { startGateway, type Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { ADMIN_TOKEN } from './test-gateway.js';

/**
 * The providers a route's deployments can name: `primary` and `secondary`
 * (two OpenAI Chat Completions fakes), `anthropic`, `bedrock`, and
 * `refused` (OpenAI-compatible, on a closed port: connection refused).
 */
export type RoutingProvider =
  'primary' | 'secondary' | 'anthropic' | 'bedrock' | 'refused';

/** A tenant with a key and official SDK clients using it, retries off. */
export interface RoutingTenant {
  readonly id: string;
  readonly name: string;
  readonly openai: OpenAI;
  readonly anthropic: Anthropic;
}

/** One usage event of a request as the ledger holds it, with its rating. */
export interface LedgerEvent {
  readonly attempt: number;
  readonly deploymentId: string;
  readonly served: boolean;
  readonly estimated: boolean;
  readonly inputTokens: number;
  readonly outputTokens: number;
  /** Decimal strings, exactly as stored. */
  readonly providerCost: string | null;
  readonly tenantCharge: string | null;
}

export interface LedgerView {
  readonly state: string;
  readonly statusCode: number | null;
  readonly errorCode: string | null;
  /** The deployment that served (or the first planned, if none did). */
  readonly deploymentId: string;
  readonly attempt: number | undefined;
  readonly routing: RoutingRecord;
  /** By attempt number. */
  readonly events: readonly LedgerEvent[];
}

export interface RoutingGateway {
  readonly gateway: Gateway;
  readonly primary: OpenAIFake;
  readonly secondary: OpenAIFake;
  readonly anthropic: AnthropicFake;
  readonly bedrock: BedrockFake;
  readonly tenant: RoutingTenant;
  addTenant(name: string): Promise<RoutingTenant>;
  /** The ledger's record of a request, by the gateway's request id. */
  ledger(requestId: string | null | undefined): Promise<LedgerView>;
  close(): Promise<void>;
}

export async function startRoutingGateway(options: {
  readonly models: ConfigInput['models'];
  /** Provider timeouts for the upstream's headers and body silences. */
  readonly headersTimeoutMs?: number;
  readonly limits?: ConfigInput['limits'];
  readonly metering?: ConfigInput['metering'];
}): Promise<RoutingGateway> {
  const folder = await mkdtemp(join(tmpdir(), 'tollgate-routing-'));
  const [primary, secondary, anthropic, bedrock, closedPort] =
    await Promise.all([
      startOpenAIFake(),
      startOpenAIFake(),
      startAnthropicFake(),
      startBedrockFake(),
      unusedPort(),
    ]);
  const timeouts = {
    headersTimeoutMs: options.headersTimeoutMs ?? 5_000,
    bodyTimeoutMs: 5_000,
  };
  const config = parseConfig(
    {
      server: { port: 0, shutdownGraceMs: 2_000 },
      database: { path: join(folder, 'tollgate.db') },
      logging: { level: 'silent' },
      providers: {
        primary: {
          type: 'openai-compatible',
          baseUrl: primary.url,
          apiKey: 'sk-primary',
          ...timeouts,
        },
        secondary: {
          type: 'openai-compatible',
          baseUrl: secondary.url,
          apiKey: 'sk-secondary',
          ...timeouts,
        },
        refused: {
          type: 'openai-compatible',
          baseUrl: `http://127.0.0.1:${closedPort}/v1`,
          apiKey: 'sk-refused',
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
      } satisfies Record<RoutingProvider, unknown>,
      models: options.models,
      ...(options.limits && { limits: options.limits }),
      ...(options.metering && { metering: options.metering }),
    },
    'the routing test config',
  );
  const gateway = await startGateway({
    config,
    adminToken: ADMIN_TOKEN,
    logger: createLogger('silent'),
  });

  const addTenant = async (name: string): Promise<RoutingTenant> => {
    const tenant = await createTenant(gateway.store, { name });
    const { key } = await createApiKey(gateway.store, tenant, {});
    return {
      id: tenant.id,
      name,
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
    };
  };

  const ledger = async (
    requestId: string | null | undefined,
  ): Promise<LedgerView> => {
    if (!requestId) throw new Error('the answer carries no request id');
    const detail = await gateway.store.findRequest(
      { allTenants: true },
      requestId,
    );
    if (!detail) throw new Error(`no request ${requestId} in the ledger`);
    const { request } = detail;
    if (request.routing === null) {
      throw new Error(`request ${requestId} has no routing record`);
    }
    return {
      state: request.state,
      statusCode: request.statusCode,
      errorCode: request.errorCode,
      deploymentId: request.deploymentId,
      attempt: request.attempt,
      routing: JSON.parse(request.routing) as RoutingRecord,
      events: detail.events
        .map(({ event, rating }) => ({
          attempt: event.attempt,
          deploymentId: event.deploymentId,
          served: event.served,
          estimated: event.estimated,
          inputTokens: event.usage.inputTokens,
          outputTokens: event.usage.outputTokens,
          providerCost: rating?.providerCost ?? null,
          tenantCharge: rating?.tenantCharge ?? null,
        }))
        .sort((a, b) => a.attempt - b.attempt),
    };
  };

  return {
    gateway,
    primary,
    secondary,
    anthropic,
    bedrock,
    tenant: await addTenant('tenant-routing'),
    addTenant,
    ledger,
    async close() {
      await gateway.close();
      await Promise.all([
        primary.close(),
        secondary.close(),
        anthropic.close(),
        bedrock.close(),
      ]);
      await rm(folder, { recursive: true, force: true });
    },
  };
}

/** A loopback port that was free a moment ago and is closed now. */
async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
