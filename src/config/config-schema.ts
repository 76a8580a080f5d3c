/**
 * The gateway's configuration file (YAML or JSON), validated once at start.
 *
 * Unknown keys are refused so a typo fails loudly instead of being ignored.
 * Secrets (provider API keys, the admin token) are best given as
 * `{ env: NAME }` so the file itself holds none.
 */
import { z } from 'zod';

import { limitSchema, limitProblems } from '../admission/limits.js';
import { priceEntrySchema } from '../pricing/catalog-schema.js';

/** A secret given inline or, better, named by an environment variable. */
export const secretSchema = z.union([
  z.string().min(1),
  z.object({ env: z.string().min(1) }).strict(),
]);

const providerBase = {
  /** Deadline for the upstream's response headers. */
  headersTimeoutMs: z.number().int().positive().default(60_000),
  /** Longest silence allowed between two body chunks of a response. */
  bodyTimeoutMs: z.number().int().positive().default(120_000),
};

/** Which OpenAI API an OpenAI-family provider is called with. */
const openAIApi = z.enum(['chat', 'responses']).default('chat');

const openAICompatibleProvider = z
  .object({
    type: z.literal('openai-compatible'),
    /** Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`. */
    baseUrl: z.url({ protocol: /^https?$/ }),
    apiKey: secretSchema.optional(),
    /** Chat Completions (every compatible server) or OpenAI's Responses. */
    api: openAIApi,
    /** Sent as `OpenAI-Organization` / `OpenAI-Project` when set. */
    organization: z.string().min(1).optional(),
    project: z.string().min(1).optional(),
    ...providerBase,
  })
  .strict();

/** Azure OpenAI: deployments by name, a dated `api-version`, `api-key`. */
const azureOpenAIProvider = z
  .object({
    type: z.literal('azure-openai'),
    /** `https://{resource}.openai.azure.com`, without a path. */
    endpoint: z.url({ protocol: /^https?$/ }),
    /** A dated version such as `2024-10-21`, or `v1`. */
    apiVersion: z.string().min(1).default('2024-10-21'),
    apiKey: secretSchema,
    api: openAIApi,
    ...providerBase,
  })
  .strict();

/** Anthropic's Messages API, or anything that speaks it. */
const anthropicProvider = z
  .object({
    type: z.literal('anthropic'),
    /** Without `/v1`. */
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .default('https://api.anthropic.com'),
    apiKey: secretSchema.optional(),
    /** The `anthropic-version` header (2023-06-01). */
    anthropicVersion: z.string().min(1).optional(),
    /** Beta features, sent as one `anthropic-beta` header. */
    betas: z.array(z.string().min(1)).optional(),
    ...providerBase,
  })
  .strict();

/**
 * AWS Bedrock Converse. Credentials: a Bedrock API key, or an access key
 * pair, or neither for the AWS SDK's default chain (environment, profile,
 * instance role).
 */
const bedrockProvider = z
  .object({
    type: z.literal('bedrock'),
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, {
      message: 'an AWS region such as us-east-1',
    }),
    /** Another endpoint than the region's: a VPC endpoint, or a fake. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    apiKey: secretSchema.optional(),
    accessKeyId: secretSchema.optional(),
    secretAccessKey: secretSchema.optional(),
    sessionToken: secretSchema.optional(),
    ...providerBase,
  })
  .strict()
  .refine(
    (p) => (p.accessKeyId === undefined) === (p.secretAccessKey === undefined),
    {
      message: 'give accessKeyId and secretAccessKey together',
    },
  )
  .refine((p) => !(p.apiKey && p.accessKeyId), {
    message: 'give either apiKey or an access key pair, not both',
  });

/**
 * The built-in simulated upstream: an OpenAI-wire server the gateway starts
 * on a loopback port, for demos, tests and benchmarks.
 */
const simulatedProvider = z
  .object({
    type: z.literal('simulated'),
    /** Delay before the first byte of each response. */
    latencyMs: z.number().int().nonnegative().default(0),
    /** Delay between streamed chunks. */
    chunkIntervalMs: z.number().int().nonnegative().default(0),
    /** Tokens of text carried by each streamed content chunk. */
    tokensPerChunk: z.number().int().positive().default(16),
    ...providerBase,
  })
  .strict();

export const providerSchema = z.discriminatedUnion('type', [
  openAICompatibleProvider,
  azureOpenAIProvider,
  anthropicProvider,
  bedrockProvider,
  simulatedProvider,
]);

export const deploymentSchema = z
  .object({
    /** Stable name for logs and records; defaults to `<alias>/<provider>`. */
    id: z.string().min(1).optional(),
    provider: z.string().min(1),
    /** The upstream model id, as the provider's API names it. */
    model: z.string().min(1),
    /**
     * Price this deployment as another catalog model (e.g. a self-hosted
     * copy of a public model). Defaults to `model`.
     */
    priceAs: z.string().min(1).optional(),
    /**
     * Operator prices for this deployment alone, with effective dates. An
     * explicit zero (`input: "0"`) is how a self-hosted model is free.
     */
    prices: z.array(priceEntrySchema).min(1).optional(),
  })
  .strict()
  .refine((d) => !(d.priceAs && d.prices), {
    message: 'give either priceAs or prices, not both',
  });

export const modelSchema = z
  .object({
    /** Where requests for this public name go. Issue #5 adds weights. */
    deployments: z.array(deploymentSchema).min(1),
  })
  .strict();

const modelNamePattern = /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/;

export const configSchema = z
  .object({
    server: z
      .object({
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65_535).default(8787),
        /** Requests with a larger body are refused with 413. */
        bodyLimitBytes: z
          .number()
          .int()
          .positive()
          .default(8 * 1024 * 1024),
        /** How long SIGTERM waits for in-flight requests to finish. */
        shutdownGraceMs: z.number().int().nonnegative().default(30_000),
        /**
         * Longest a client may take to send a whole request (headers and
         * body); slower ones get 408. Guards against slow-send clients
         * holding connections open. 0 turns it off.
         */
        requestTimeoutMs: z.number().int().nonnegative().default(60_000),
      })
      .strict()
      .prefault({}),
    database: z
      .object({
        path: z.string().min(1).default('tollgate.db'),
        /**
         * `full` syncs every commit to disk (commits are batched, so
         * concurrent requests share one sync); `normal` survives a process
         * crash but may lose the last commits on power loss.
         */
        synchronous: z.enum(['full', 'normal']).default('full'),
      })
      .strict()
      .prefault({}),
    adminToken: secretSchema.optional(),
    logging: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info'),
      })
      .strict()
      .prefault({}),
    metering: z
      .object({
        /**
         * Output tokens reserved for a request that states no `max_tokens`.
         * The gateway does not impose it upstream; it bounds the worst case
         * recorded before the call.
         */
        defaultMaxOutputTokens: z.number().int().positive().default(4096),
      })
      .strict()
      .prefault({}),
    providers: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
      providerSchema,
    ),
    models: z.record(z.string().regex(modelNamePattern), modelSchema),
    /**
     * What each tenant may use, by tenant name or id: `models` lists the
     * public model names its plan includes. A tenant not listed may use
     * every model (its keys can still be narrowed one by one).
     */
    entitlements: z
      .record(
        z.string().min(1),
        z.object({ models: z.array(z.string().min(1)) }).strict(),
      )
      .default({}),
    /** Limits and budgets (src/admission/limits.ts). */
    limits: z.array(limitSchema).default([]),
    /**
     * Where limit counters live: in this process (one gateway), or on
     * Redis, shared by every replica. A gateway set to Redis refuses to
     * start without it rather than count alone.
     */
    counters: z
      .object({
        store: z.enum(['memory', 'redis']).default('memory'),
        /** `redis://host:port/db`; required for `redis`. */
        url: secretSchema.optional(),
        /** Key prefix, to share a Redis with others. */
        prefix: z.string().default('tollgate:'),
      })
      .strict()
      .prefault({})
      .refine((c) => c.store !== 'redis' || c.url !== undefined, {
        message: 'counters.store redis needs counters.url',
        path: ['url'],
      }),
    /**
     * Where limit thresholds send their webhooks (one endpoint), signed
     * with `secret` (src/webhooks/webhook-worker.ts).
     */
    webhooks: z
      .object({
        url: z.url({ protocol: /^https?$/ }),
        /** The HMAC-SHA256 key the receiver verifies signatures with. */
        secret: secretSchema,
        /** Deadline for one delivery attempt, answer included. */
        timeoutMs: z.number().int().positive().default(10_000),
        /** Tries before an event is given up on (kept, marked failed). */
        maxAttempts: z.number().int().positive().max(100).default(15),
      })
      .strict()
      .optional(),
    /** Operator prices by price key (an upstream model id), over the catalog. */
    prices: z
      .record(z.string().min(1), z.array(priceEntrySchema).min(1))
      .default({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    const ids = new Set<string>();
    config.limits.forEach((limit, i) => {
      if (ids.has(limit.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['limits', i, 'id'],
          message: `a second limit named "${limit.id}"`,
        });
      }
      ids.add(limit.id);
      const context = {
        models: Object.keys(config.models),
        webhooks: config.webhooks !== undefined,
      };
      for (const problem of limitProblems(limit, context)) {
        ctx.addIssue({
          code: 'custom',
          path: ['limits', i, problem.field],
          message: problem.message,
        });
      }
    });
    for (const [tenant, entitlement] of Object.entries(config.entitlements)) {
      entitlement.models.forEach((model, i) => {
        if (!(model in config.models)) {
          ctx.addIssue({
            code: 'custom',
            path: ['entitlements', tenant, 'models', i],
            message: `unknown model "${model}"`,
          });
        }
      });
    }
    for (const [alias, model] of Object.entries(config.models)) {
      model.deployments.forEach((deployment, i) => {
        if (!(deployment.provider in config.providers)) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', alias, 'deployments', i, 'provider'],
            message: `unknown provider "${deployment.provider}"`,
          });
        }
      });
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ProviderConfig = z.output<typeof providerSchema>;
export type DeploymentConfig = z.output<typeof deploymentSchema>;
export type Secret = z.output<typeof secretSchema>;
