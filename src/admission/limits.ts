/**
 * Limits as operators write them: what is counted (requests, tokens,
 * requests in flight, or money), over which window, for which requests
 * (a tenant, a key, each end user, a model), and what happens past it.
 *
 * @example
 * limits:
 *   - id: acme-monthly-budget
 *     tenant: acme
 *     budgetUsd: '50'
 *     per: month            # calendar month in the tenant's time zone
 *     thresholds: [50, 80, 100]  # webhooks as the month's spend crosses them
 *   - id: per-user-rpm
 *     endUser: '*'          # each end user counted apart
 *     requests: 20
 *     per: minute
 *   - id: acme-daily-tokens
 *     tenant: acme
 *     tokens: 5000000
 *     tokenWeights: { cacheRead: 0.1, output: 4 }  # others weigh 1
 *     per: { rolling: 24h } # any 24 hours, not a calendar day
 */
import { z } from 'zod';

import { TOKEN_CLASSES, type TokenClass } from '../metering/usage.js';
import { parseKey } from '../tenants/api-keys.js';

export const WINDOWS = ['minute', 'hour', 'day', 'week', 'month'] as const;
export type LimitWindow = (typeof WINDOWS)[number];

/** A rolling window: the span before each request, e.g. `'24h'`. */
export interface RollingWindow {
  readonly rolling: string;
}

const ROLLING_UNITS_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/**
 * The longest rolling span. The first request after a start reads every
 * request of the span from the ledger to rebuild its counter, so a span
 * is kept to a month's worth, like the longest calendar period.
 */
const MAX_ROLLING_MS = 31 * ROLLING_UNITS_MS.d;

/**
 * A rolling span in ms, or undefined if the text is not one: whole
 * minutes, hours or days, so that each of its buckets is whole seconds.
 */
export function rollingSpanMs(text: string): number | undefined {
  const match = /^([1-9]\d{0,5})([mhd])$/.exec(text);
  if (!match) return undefined;
  const [, count = '', unit = ''] = match;
  const ms = Number(count) * ROLLING_UNITS_MS[unit as 'm' | 'h' | 'd'];
  return ms <= MAX_ROLLING_MS ? ms : undefined;
}

const rollingWindow = z
  .object({
    rolling: z.string().refine((text) => rollingSpanMs(text) !== undefined, {
      message:
        'a span of whole minutes, hours or days, up to 31d: e.g. "30m", ' +
        '"24h", "7d"',
    }),
  })
  .strict();

/** Whether a limit's window is a rolling span. */
export function isRolling(
  per: LimitWindow | RollingWindow | undefined,
): per is RollingWindow {
  return typeof per === 'object';
}

/** Weights count in millionths of a token, as integers: exactly. */
export const WEIGHT_UNITS_PER_TOKEN = 1_000_000n;

/** Each token class's weight, in millionths. */
export type TokenWeights = Readonly<Record<TokenClass, bigint>>;

/**
 * A token class's weight: a decimal of at most six places, as a string
 * (`"0.1"`) or a YAML number. A number is read by its decimal text, never
 * computed with: for so few digits that is the text it was written as,
 * since JavaScript prints a number as the shortest decimal that reads
 * back to it. From 0 (the class is free) to 1000.
 */
const WEIGHT_PATTERN = /^(0|[1-9]\d{0,3})(\.\d{1,6})?$/;

function isWeight(weight: number | string): boolean {
  return (
    WEIGHT_PATTERN.test(String(weight)) &&
    weightUnits(weight) <= 1000n * WEIGHT_UNITS_PER_TOKEN
  );
}

/** A weight as a whole number of millionths, from its decimal text. */
export function weightUnits(weight: number | string): bigint {
  const [whole = '0', fraction = ''] = String(weight).split('.');
  return (
    BigInt(whole) * WEIGHT_UNITS_PER_TOKEN + BigInt(fraction.padEnd(6, '0'))
  );
}

const tokenWeight = z.union([z.number(), z.string()]).refine(isWeight, {
  message:
    'a weight from 0 to 1000 with at most six decimals, e.g. 0.1 or "1.25"',
});

const decimalUsd = z
  .string()
  .regex(/^\d+(\.\d{1,9})?$/, 'a decimal amount of USD, e.g. "50" or "0.25"');

/** Percentages of a maximum, each sending a webhook as it is crossed. */
export const thresholdsSchema = z
  .array(z.number().int().min(1).max(1000))
  .min(1)
  .refine((list) => new Set(list).size === list.length, {
    message: 'a threshold is listed twice',
  });

/** A key's id, as the key store issues it (newId('key')). */
const KEY_ID_PATTERN = /^key_[0-9a-z]{26}$/;

const KEY_ID_SHAPE =
  '"key_" and 26 lowercase letters and digits, as `tollgate keys list` ' +
  'shows it';

/**
 * What is wrong with a limit's `key`, if it is not a key's id. A virtual
 * key itself (`tg_<key id>_<secret>`) is the usual mistake: it would be
 * stored and listed as written, secret included, so it is refused, and
 * the message names only the key's id, never the text given.
 */
function keyScopeProblem(key: string): string | undefined {
  if (KEY_ID_PATTERN.test(key)) return undefined;
  // A key id never holds "tg_": the text holds a virtual key, or part of one.
  if (key.includes('tg_')) {
    const id = parseKey(key.trim())?.id;
    return id === undefined
      ? 'this looks like a virtual key, secret included; give the ' +
          `key's id instead: ${KEY_ID_SHAPE}`
      : `this is the virtual key itself, secret included; give its id, ` +
          `${id}, instead`;
  }
  return `not a key id; give the key's id: ${KEY_ID_SHAPE}`;
}

/**
 * What is wrong with a limit's `tenant`, if it is a virtual key: the
 * secret would be stored and listed as written.
 */
function tenantScopeProblem(tenant: string): string | undefined {
  return /tg_key_[0-9a-z]{26}_/.test(tenant)
    ? "this is a virtual key, secret included; give the tenant's name or id"
    : undefined;
}

export const limitSchema = z
  .object({
    /** Names the limit in refusals, headers and logs; stable across reloads. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
    /** A tenant's id or name; absent: every tenant, each counted apart. */
    tenant: z
      .string()
      .min(1)
      .superRefine((tenant, ctx) => {
        const problem = tenantScopeProblem(tenant);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** A virtual key's id (`key_…`); absent: any key. */
    key: z
      .string()
      .superRefine((key, ctx) => {
        const problem = keyScopeProblem(key);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /**
     * `'*'` counts each end user apart (requests naming none count as one
     * user, `""`); a name limits that end user alone; absent: all together.
     */
    endUser: z.string().optional(),
    /** A public model name (alias); absent: every model together. */
    model: z.string().min(1).optional(),
    requests: z.number().int().positive().optional(),
    /**
     * Input plus output tokens, by the request's worst case; each class
     * weighed by `tokenWeights` where given.
     */
    tokens: z.number().int().positive().optional(),
    /**
     * What one token of each class counts for in a `tokens` limit; a class
     * not listed counts 1. The worst case takes the input bound at the
     * heaviest input class (cache reads and writes are input too).
     */
    tokenWeights: z
      .object({
        input: tokenWeight.optional(),
        cacheRead: tokenWeight.optional(),
        cacheWrite: tokenWeight.optional(),
        cacheWrite1h: tokenWeight.optional(),
        output: tokenWeight.optional(),
      })
      .strict()
      .optional(),
    /** Requests in flight at once; takes no window. */
    concurrent: z.number().int().positive().optional(),
    /** Money charged to the tenant, in USD. */
    budgetUsd: decimalUsd.optional(),
    /**
     * The window: `minute` and `hour` are clock-aligned, `day`, `week`
     * (ISO, from Monday) and `month` are calendar periods in the tenant's
     * time zone. A budget resets only when its period ends. Or
     * `{ rolling: '24h' }`: the span before each request, whenever it
     * comes (windows.ts).
     */
    per: z
      .union([z.enum(WINDOWS), rollingWindow], {
        error: `one of ${WINDOWS.join(', ')}, or { rolling: '24h' }`,
      })
      .optional(),
    /**
     * `block` refuses the request; `allow` serves it and records that the
     * limit was passed; `notify` serves it too, and sends the 100 %
     * threshold's webhook (as if `thresholds` listed 100).
     */
    onExceed: z.enum(['block', 'allow', 'notify']).default('block'),
    /**
     * Percentages of the maximum whose crossing sends a webhook, once per
     * window and counter (src/admission/thresholds.ts). Over 100 is
     * reachable only past a limit that does not block.
     */
    thresholds: thresholdsSchema.optional(),
    /** With the counter store down: refuse (`closed`) or admit (`open`). */
    onStoreDown: z.enum(['open', 'closed']).default('closed'),
  })
  .strict()
  .superRefine((limit, ctx) => {
    const measures = [
      limit.requests,
      limit.tokens,
      limit.concurrent,
      limit.budgetUsd,
    ].filter((m) => m !== undefined);
    if (measures.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: 'give exactly one of requests, tokens, concurrent, budgetUsd',
      });
    }
    if (limit.concurrent !== undefined && limit.per !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['per'],
        message: 'a concurrency limit has no window',
      });
    }
    if (
      limit.concurrent !== undefined &&
      (limit.thresholds !== undefined || limit.onExceed === 'notify')
    ) {
      ctx.addIssue({
        code: 'custom',
        path: [limit.thresholds ? 'thresholds' : 'onExceed'],
        message:
          'a concurrency limit has no window for a threshold to fire once in',
      });
    }
    if (limit.concurrent === undefined && limit.per === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['per'],
        message:
          `give the window: one of ${WINDOWS.join(', ')}, or ` +
          "{ rolling: '24h' }",
      });
    }
    if (
      isRolling(limit.per) &&
      (limit.thresholds !== undefined || limit.onExceed === 'notify')
    ) {
      // A threshold fires once per window; a rolling span moves with
      // every request, so "once" would have nothing to be once in.
      ctx.addIssue({
        code: 'custom',
        path: [limit.thresholds ? 'thresholds' : 'onExceed'],
        message:
          'a rolling window has no period for a threshold to fire once in; ' +
          'use a clock or calendar window (minute, hour, day, week or ' +
          'month) for webhooks',
      });
    }
    if (limit.tokenWeights !== undefined) {
      if (limit.tokens === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokenWeights'],
          message: 'only a tokens limit weighs token classes',
        });
      }
      const weights = TOKEN_CLASSES.map(
        (tokenClass) => limit.tokenWeights?.[tokenClass] ?? 1,
      );
      if (
        weights.every(isWeight) &&
        weights.every((weight) => weightUnits(weight) === 0n)
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['tokenWeights'],
          message: 'every token class weighs 0: the limit would count nothing',
        });
      }
    }
  });

export type LimitConfig = z.output<typeof limitSchema>;

/**
 * A tokens limit's weights: those listed, 1 for the rest (which is what
 * a limit without `tokenWeights` counts).
 */
export function tokenWeightsOf(limit: LimitConfig): TokenWeights {
  const weights = {} as Record<TokenClass, bigint>;
  for (const tokenClass of TOKEN_CLASSES) {
    weights[tokenClass] = weightUnits(limit.tokenWeights?.[tokenClass] ?? 1);
  }
  return weights;
}

export type Measure = 'requests' | 'tokens' | 'concurrent' | 'budget';

export function measureOf(limit: LimitConfig): Measure {
  if (limit.requests !== undefined) return 'requests';
  if (limit.tokens !== undefined) return 'tokens';
  if (limit.concurrent !== undefined) return 'concurrent';
  return 'budget';
}

/**
 * The percentages whose crossing sends a webhook, in rising order: those
 * listed, and 100 for a limit that notifies on overage.
 */
export function thresholdsOf(limit: LimitConfig): readonly number[] {
  const percents = new Set(limit.thresholds);
  if (limit.onExceed === 'notify') percents.add(100);
  return [...percents].sort((a, b) => a - b);
}

/** What a limit needs of the rest of the config to be valid there. */
export interface LimitContext {
  /** The public model names the config serves. */
  readonly models: readonly string[];
  /** Whether a webhooks endpoint is configured. */
  readonly webhooks: boolean;
}

/**
 * What is wrong with a limit in its config, beyond its own shape: each
 * problem with the field it names. Empty when it is fine.
 */
export function limitProblems(
  limit: LimitConfig,
  context: LimitContext,
): { readonly field: string; readonly message: string }[] {
  const problems: { field: string; message: string }[] = [];
  if (thresholdsOf(limit).length > 0 && !context.webhooks) {
    problems.push({
      field: limit.thresholds ? 'thresholds' : 'onExceed',
      message: 'thresholds send webhooks: configure webhooks.url first',
    });
  }
  if (limit.model !== undefined && !context.models.includes(limit.model)) {
    problems.push({
      field: 'model',
      message: `unknown model "${limit.model}"`,
    });
  }
  return problems;
}
