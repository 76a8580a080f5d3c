/**
 * The gateway's configuration file (YAML or JSON), validated once at start.
 *
 * Unknown keys are refused so a typo fails loudly instead of being ignored.
 * Secrets (provider API keys, the admin token) are best given as
 * `{ env: NAME }` so the file itself holds none.
 */
import { z } from 'zod';

import { PLAN_LIMIT_PREFIX, planLimit } from '../admission/entitlements.js';
import { UNSEEN_INPUT_TOKENS } from '../metering/reserve.js';
import {
  limitSchema,
  limitProblems,
  thresholdsSchema,
  type LimitConfig,
} from '../admission/limits.js';
import { priceEntrySchema } from '../pricing/catalog-schema.js';

/** The ledger of a config that names none: beside its file, if any. */
export const DEFAULT_DATABASE_PATH = 'tollgate.db';

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
    /**
     * Share of the route's traffic this deployment serves first under the
     * `weighted` strategy, relative to the others' weights. 0 makes it a
     * fallback only.
     */
    weight: z.number().nonnegative().max(1_000_000).optional(),
    /**
     * How good its answers are, for `cheapest` routing: a deployment is a
     * candidate when its tier is at least the route's `minQualityTier`.
     */
    qualityTier: z.number().int().min(0).max(100).optional(),
  })
  .strict()
  .refine((d) => !(d.priceAs && d.prices), {
    message: 'give either priceAs or prices, not both',
  });

/**
 * Sends a share of traffic to one deployment first, the same share for
 * every decision about the same subject: an end user (sticky per user),
 * a tenant, or each request on its own.
 */
const flagSchema = z
  .object({
    /** Names the flag in routing records; also seeds its buckets. */
    id: z.string().min(1),
    /** The deployment (by id) the flagged traffic goes to first. */
    deployment: z.string().min(1),
    /** Percent of subjects flagged, to 0.01 %. */
    percent: z
      .number()
      .min(0)
      .max(100)
      .refine((p) => Math.abs(p * 100 - Math.round(p * 100)) < 1e-6, {
        message: 'a percentage to 0.01 % at most (e.g. 12.5, 0.05)',
      }),
    stickyBy: z.enum(['endUser', 'tenant', 'request']).default('endUser'),
    /** Tenants (names or ids) the flag applies to; all when absent. */
    tenants: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

/** Which failures of an attempt move on to the next deployment. */
export const FALLBACK_TRIGGERS = [
  'server_error',
  'rate_limited',
  'timeout',
  'connection',
  'context_length',
  'content_filter',
  /** The provider refused our credentials (401, 403): not by default. */
  'upstream_auth',
  /** The provider does not know the model (404): not by default. */
  'not_found',
] as const;
export type FallbackTrigger = (typeof FALLBACK_TRIGGERS)[number];

const routingPolicySchema = z
  .object({
    /**
     * Tries of one deployment after its first, for transient failures
     * (5xx, 429, timeouts, connection errors). None by default: client
     * SDKs retry on their own, and retries on both sides multiply.
     */
    retries: z.number().int().min(0).max(10).default(0),
    /** Backoff before a retry: exponential from this, with jitter. */
    initialBackoffMs: z.number().int().min(0).max(60_000).default(100),
    maxBackoffMs: z.number().int().min(0).max(300_000).default(2_000),
    /**
     * A 429's `Retry-After` is waited out on the same deployment when no
     * longer than this; a longer one falls back at once.
     */
    maxRetryAfterMs: z.number().int().min(0).max(300_000).default(5_000),
    /** Failures that try the next deployment. */
    fallbackOn: z
      .array(z.enum(FALLBACK_TRIGGERS))
      .default([
        'server_error',
        'rate_limited',
        'timeout',
        'connection',
        'context_length',
        'content_filter',
      ]),
    /** Upper bound on upstream attempts per request, retries included. */
    maxAttempts: z.number().int().min(1).max(20).default(4),
    /** Deadline for one attempt's answer to begin (headers, first event). */
    attemptTimeoutMs: z.number().int().positive().optional(),
    /** Deadline for the answer to begin, over every attempt. */
    timeoutMs: z.number().int().positive().optional(),
  })
  .strict();

const circuitBreakerSchema = z
  .object({
    /** Consecutive failures (5xx, timeouts, connection) that open it. */
    failures: z.number().int().min(1).max(1_000).default(5),
    /** How long it stays open before one request probes (half-open). */
    openMs: z.number().int().positive().max(3_600_000).default(30_000),
  })
  .strict();

export const modelSchema = z
  .object({
    /** Where requests for this public name go, in fallback order. */
    deployments: z.array(deploymentSchema).min(1),
    /**
     * How the first deployment is chosen; the others follow as fallbacks
     * in their listed order. `weighted` by default when any deployment
     * has a weight above 0, else `ordered`.
     */
    strategy: z.enum(['ordered', 'weighted', 'cheapest', 'fastest']).optional(),
    /** Checked in order before the strategy; the first that matches wins. */
    flags: z.array(flagSchema).default([]),
    /**
     * Per tenant (name or id): the deployments (ids) it is served by, in
     * this order, instead of the route's strategy.
     */
    tenants: z
      .record(
        z.string().min(1),
        z.object({ deployments: z.array(z.string().min(1)).min(1) }).strict(),
      )
      .default({}),
    /** `cheapest`: the latency objective and the quality floor. */
    objective: z
      .object({
        /** p95 time to the answer's first byte, over `windowMs`. */
        latencyP95Ms: z.number().positive().optional(),
        minQualityTier: z.number().int().min(0).max(100).optional(),
        windowMs: z.number().int().positive().default(300_000),
      })
      .strict()
      .prefault({}),
    retry: routingPolicySchema.prefault({}),
    /** Per deployment; `false` turns it off. */
    circuitBreaker: z
      .union([circuitBreakerSchema, z.literal(false)])
      .prefault({}),
    /**
     * What the tenant is charged: the served deployment's price, or the
     * route's own `prices` whichever deployment served.
     */
    tenantPrice: z.enum(['served', 'route']).default('served'),
    prices: z.array(priceEntrySchema).min(1).optional(),
  })
  .strict();

const modelNamePattern = /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/;

/** A plain decimal string, as the money module parses it, not negative. */
const DECIMAL = /^(0|[1-9]\d*)(\.\d+)?$/;

const positiveDecimal = (example: string) =>
  z
    .string({ error: `a decimal string such as '${example}'` })
    .regex(DECIMAL, `a decimal string such as '${example}'`)
    .refine((text) => /[1-9]/.test(text), { message: 'above 0' });

/** What happens to a request past a plan's included allowance. */
export const OVERAGE_POLICIES = ['block', 'bill', 'notify'] as const;
export type OveragePolicy = (typeof OVERAGE_POLICIES)[number];

/** A plan's fields, each checked alone; planSchema checks them together. */
const planFields = z
  .object({
    /** The public model names the plan includes; absent: every model. */
    models: z.array(z.string().min(1)).optional(),
    /**
     * The allowance per calendar month: list charges in USD (counted in
     * units of 10^-9 USD, so at most nine decimals), or tokens of every
     * class, input and output.
     */
    included: z
      .object({
        usd: positiveDecimal('50')
          .refine((text) => !/\.\d{10}/.test(text), {
            message: 'at most nine decimals (units of 10^-9 USD)',
          })
          .optional(),
        tokens: z
          .number({ error: 'a whole number of tokens, e.g. 5000000' })
          .int('a whole number of tokens, e.g. 5000000')
          .positive('above 0')
          .max(Number.MAX_SAFE_INTEGER)
          .optional(),
      })
      .strict()
      .refine((i) => (i.usd === undefined) !== (i.tokens === undefined), {
        message: 'give exactly one of usd (list charges) or tokens',
      })
      .optional(),
    /**
     * Past the allowance: `block` refuses (402 for money, 429 for tokens,
     * Retry-After to the month's end); `bill` serves and bills the
     * overage at the plan's rate; `notify` serves, sends the 100 %
     * webhook, and bills nothing past the allowance.
     */
    overage: z
      .enum(OVERAGE_POLICIES, {
        error: `one of ${OVERAGE_POLICIES.join(', ')}`,
      })
      .optional(),
    /** `bill` past a money allowance: overage at this multiple of list. */
    overageMultiplier: positiveDecimal('1.25').optional(),
    /** `bill` past a token allowance: USD per 1M tokens of overage. */
    overageUsdPer1M: positiveDecimal('2.50').optional(),
    /** Percentages of the allowance whose crossing sends a webhook. */
    thresholds: thresholdsSchema.optional(),
  })
  .strict();

/**
 * A tenant's plan: the models it may use, and what it includes each
 * billing period (the calendar month in the tenant's time zone) with
 * what happens past that. See src/admission/entitlements.ts for how the
 * allowance is enforced, and src/billing/plan-lines.ts for how it is
 * invoiced.
 *
 * @example
 * entitlements:
 *   acme:
 *     models: [gpt-4o-mini]
 *     included: { usd: '50' }  # of list charges, per month
 *     overage: bill
 *     overageMultiplier: '1.25' # overage billed at 125 % of list
 *     thresholds: [80]
 */
export const planSchema = planFields.superRefine((plan, ctx) => {
  for (const problem of planProblems(plan)) {
    ctx.addIssue({ code: 'custom', ...problem });
  }
});

/** What is wrong between a plan's fields, each with the field it names. */
function planProblems(
  plan: z.output<typeof planFields>,
): { path: string[]; message: string }[] {
  const problems: { path: string[]; message: string }[] = [];
  const { included, overage } = plan;
  if (included === undefined) {
    for (const field of [
      'overage',
      'overageMultiplier',
      'overageUsdPer1M',
      'thresholds',
    ] as const) {
      if (plan[field] !== undefined) {
        problems.push({
          path: [field],
          message: `only a plan with an included allowance takes ${field}; give included`,
        });
      }
    }
    return problems;
  }
  if (overage === undefined) {
    problems.push({
      path: ['overage'],
      message:
        'say what happens past the included allowance: overage block, ' +
        'bill or notify',
    });
    return problems;
  }
  const rate =
    included.usd !== undefined ? 'overageMultiplier' : 'overageUsdPer1M';
  for (const field of ['overageMultiplier', 'overageUsdPer1M'] as const) {
    if (plan[field] === undefined) continue;
    if (overage !== 'bill') {
      problems.push({
        path: [field],
        message:
          `overage ${overage} bills nothing past the allowance; ${field} ` +
          'applies to overage bill',
      });
    } else if (field !== rate) {
      problems.push({
        path: [field],
        message:
          rate === 'overageMultiplier'
            ? 'a money allowance bills overage as a multiple of list ' +
              "charges: give overageMultiplier (e.g. '1.25') instead"
            : 'a token allowance bills overage per token: give ' +
              "overageUsdPer1M (e.g. '2.50') instead",
      });
    }
  }
  if (
    overage === 'bill' &&
    plan.overageMultiplier === undefined &&
    plan.overageUsdPer1M === undefined
  ) {
    problems.push({
      path: [rate],
      message:
        rate === 'overageMultiplier'
          ? 'overage bill needs overageMultiplier, the multiple of list ' +
            "charges the overage is billed at (e.g. '1.25')"
          : 'overage bill needs overageUsdPer1M, USD per 1M tokens past ' +
            "the allowance (e.g. '2.50')",
    });
  }
  return problems;
}

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
        path: z.string().min(1).default(DEFAULT_DATABASE_PATH),
        /**
         * `full` syncs every commit to disk (commits are batched, so
         * concurrent requests share one sync); `normal` survives a process
         * crash but may lose the last commits on power loss.
         */
        synchronous: z.enum(['full', 'normal']).default('full'),
        /**
         * The folder where settlements the database refuses wait for it
         * (src/metering/settlement-spool.ts); default `<path>.spool`.
         * Another disk than the database's keeps the spool writable when
         * that disk is full.
         */
        spoolPath: z.string().min(1).optional(),
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
         * Output tokens reserved for a request that states no `max_tokens`,
         * and sent upstream as its cap where `imposeOutputCap` says.
         */
        defaultMaxOutputTokens: z.number().int().positive().default(4096),
        /**
         * When a request that states no output cap is sent
         * `defaultMaxOutputTokens` as one (src/gateway/inference/
         * output-cap.ts): `underLimits` (the default) when a blocking
         * limit counts its tokens or cost, so that its reservation is a
         * true bound; `always`; or `never`, which leaves such limits open
         * to overshoot by whatever the upstream generates past the cap.
         */
        imposeOutputCap: z
          .enum(['underLimits', 'always', 'never'])
          .default('underLimits'),
        /**
         * Input tokens reserved, on top of the body's bound, for a request
         * that makes the upstream read content its body does not carry (a
         * previous response, a file by id, a hosted tool: src/metering/
         * hidden-input.ts): the largest context window of the models
         * served.
         */
        unseenInputTokens: z
          .number()
          .int()
          .positive()
          .default(UNSEEN_INPUT_TOKENS),
      })
      .strict()
      .prefault({}),
    providers: z.record(
      z.string().regex(/^[a-z0-9][a-z0-9_-]*$/),
      providerSchema,
    ),
    models: z.record(z.string().regex(modelNamePattern), modelSchema),
    /**
     * Each tenant's plan, by tenant name or id (the id's entry wins when
     * both are given): the models it may use, and its included allowance
     * and overage policy. A tenant not listed may use every model (its
     * keys can still be narrowed one by one) and pays list charges.
     */
    entitlements: z.record(z.string().min(1), planSchema).default({}),
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
        secret: secretSchema.optional(),
        /** Deadline for one delivery attempt, answer included. */
        timeoutMs: z.number().int().positive().default(10_000),
        /** Tries before an event is given up on (kept, marked failed). */
        maxAttempts: z.number().int().positive().max(100).default(15),
      })
      .strict()
      .superRefine((webhooks, ctx) => {
        if (webhooks.secret !== undefined) return;
        ctx.addIssue({
          code: 'custom',
          path: ['secret'],
          message:
            'webhooks need a secret to sign with, e.g. ' +
            "secret: { env: 'TOLLGATE_WEBHOOK_SECRET' }",
        });
      })
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
      if (limit.id.startsWith(PLAN_LIMIT_PREFIX)) {
        ctx.addIssue({
          code: 'custom',
          path: ['limits', i, 'id'],
          message: `limit ids starting "${PLAN_LIMIT_PREFIX}" are kept for plans' allowances`,
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
    for (const [tenant, plan] of Object.entries(config.entitlements)) {
      plan.models?.forEach((model, i) => {
        if (!(model in config.models)) {
          ctx.addIssue({
            code: 'custom',
            path: ['entitlements', tenant, 'models', i],
            message: `unknown model "${model}"`,
          });
        }
      });
      for (const problem of allowanceProblems(tenant, plan, config)) {
        ctx.addIssue({
          code: 'custom',
          path: ['entitlements', tenant, ...problem.path],
          message: problem.message,
        });
      }
    }
    for (const key of Object.keys(config.prices)) {
      if (RESERVED_PRICE_KEY.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: ['prices', key],
          message:
            `"${key}" is where a route's or a deployment's own prices ` +
            `live; give them on the route or deployment`,
        });
      }
    }
    const deploymentIds = new Map<string, string>();
    for (const [alias, model] of Object.entries(config.models)) {
      for (const problem of routeProblems(alias, model, config)) {
        ctx.addIssue({
          code: 'custom',
          path: ['models', alias, ...problem.path],
          message: problem.message,
        });
      }
      model.deployments.forEach((deployment, i) => {
        const id = deployment.id ?? `${alias}/${deployment.provider}`;
        const other = deploymentIds.get(id);
        if (other !== undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['models', alias, 'deployments', i, 'id'],
            message:
              other === alias
                ? `a second deployment "${id}" in this route; give each ` +
                  `its own id`
                : `a second deployment "${id}" (also in "${other}"); give ` +
                  `each its own id`,
          });
        }
        deploymentIds.set(id, alias);
      });
    }
  });

/**
 * What is wrong with a plan's allowance in its config: it is enforced as
 * a limit (planLimit), which must fit beside the config's own.
 */
function allowanceProblems(
  tenant: string,
  plan: z.output<typeof planSchema>,
  config: {
    readonly limits: readonly LimitConfig[];
    readonly webhooks?: unknown;
  },
): { path: string[]; message: string }[] {
  const limit = planLimit(tenant, plan);
  if (limit === null) return [];
  // Tenant names and ids are both of these characters; the limit's id,
  // its counters and its webhooks' ids are built from the key.
  if (!PLAN_KEY.test(tenant)) {
    return [
      {
        path: [],
        message:
          `"${tenant}" is not a tenant name or id (letters, digits, dots, ` +
          'dashes, underscores), so it cannot hold an allowance',
      },
    ];
  }
  const problems: { path: string[]; message: string }[] = [];
  const taken = config.limits.findIndex((l) => l.id === limit.id);
  if (taken >= 0) {
    problems.push({
      path: ['included'],
      message:
        `the allowance is enforced as the limit "${limit.id}", which ` +
        `limits.${taken} already names; rename that limit`,
    });
  }
  const context = { models: [], webhooks: config.webhooks !== undefined };
  for (const problem of limitProblems(limit, context)) {
    problems.push({
      path: [problem.field === 'onExceed' ? 'overage' : problem.field],
      message:
        problem.field === 'onExceed'
          ? 'overage notify sends a webhook: configure webhooks.url first'
          : problem.message,
    });
  }
  return problems;
}

const PLAN_KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Price keys the gateway gives routes' and deployments' own prices. */
const RESERVED_PRICE_KEY = /^(route|deployment):/;

/** What is wrong with one route, relative to the rest of the config. */
function routeProblems(
  alias: string,
  model: z.output<typeof modelSchema>,
  config: { readonly providers: Readonly<Record<string, unknown>> },
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const ids = model.deployments.map((d) => d.id ?? `${alias}/${d.provider}`);
  const known = new Set(ids);
  model.deployments.forEach((deployment, i) => {
    if (!(deployment.provider in config.providers)) {
      problems.push({
        path: ['deployments', i, 'provider'],
        message: `unknown provider "${deployment.provider}"`,
      });
    }
  });
  if (
    model.strategy !== undefined &&
    model.strategy !== 'weighted' &&
    model.deployments.some((d) => d.weight !== undefined)
  ) {
    problems.push({
      path: ['strategy'],
      message: `weights apply only to strategy "weighted", not "${model.strategy}"`,
    });
  }
  model.deployments.forEach((deployment, i) => {
    if (deployment.priceAs && RESERVED_PRICE_KEY.test(deployment.priceAs)) {
      problems.push({
        path: ['deployments', i, 'priceAs'],
        message: `"${deployment.priceAs}" names a route's or a deployment's own prices; give a model id`,
      });
    }
  });
  if (model.strategy === 'weighted') {
    const total = model.deployments.reduce((t, d) => t + (d.weight ?? 0), 0);
    if (total <= 0) {
      problems.push({
        path: ['strategy'],
        message: 'weighted routing needs a deployment with a weight above 0',
      });
    }
  }
  const flagIds = new Set<string>();
  model.flags.forEach((flag, i) => {
    if (flagIds.has(flag.id)) {
      problems.push({
        path: ['flags', i, 'id'],
        message: `a second flag named "${flag.id}"`,
      });
    }
    flagIds.add(flag.id);
    if (!known.has(flag.deployment)) {
      problems.push({
        path: ['flags', i, 'deployment'],
        message: `no deployment "${flag.deployment}" in this route`,
      });
    }
  });
  for (const [tenant, override] of Object.entries(model.tenants)) {
    override.deployments.forEach((id, i) => {
      if (!known.has(id)) {
        problems.push({
          path: ['tenants', tenant, 'deployments', i],
          message: `no deployment "${id}" in this route`,
        });
      } else if (override.deployments.indexOf(id) !== i) {
        problems.push({
          path: ['tenants', tenant, 'deployments', i],
          message: `"${id}" is listed twice`,
        });
      }
    });
  }
  const { latencyP95Ms, minQualityTier } = model.objective;
  if (
    (latencyP95Ms !== undefined || minQualityTier !== undefined) &&
    model.strategy !== 'cheapest'
  ) {
    problems.push({
      path: ['objective'],
      message:
        'latencyP95Ms and minQualityTier apply only to strategy "cheapest"',
    });
  }
  if (model.tenantPrice === 'route' && model.prices === undefined) {
    problems.push({
      path: ['prices'],
      message: 'tenantPrice "route" needs the route\'s prices',
    });
  }
  if (model.tenantPrice === 'served' && model.prices !== undefined) {
    problems.push({
      path: ['prices'],
      message: 'route prices apply only with tenantPrice "route"',
    });
  }
  const retry = model.retry;
  if (retry.maxBackoffMs < retry.initialBackoffMs) {
    problems.push({
      path: ['retry', 'maxBackoffMs'],
      message: 'maxBackoffMs is below initialBackoffMs',
    });
  }
  return problems;
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ProviderConfig = z.output<typeof providerSchema>;
export type DeploymentConfig = z.output<typeof deploymentSchema>;
export type ModelConfig = z.output<typeof modelSchema>;
export type Secret = z.output<typeof secretSchema>;
export type PlanConfig = z.output<typeof planSchema>;
