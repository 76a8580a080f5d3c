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
 */
import { z } from 'zod';

export const WINDOWS = ['minute', 'hour', 'day', 'week', 'month'] as const;
export type LimitWindow = (typeof WINDOWS)[number];

const decimalUsd = z
  .string()
  .regex(/^\d+(\.\d{1,9})?$/, 'a decimal amount of USD, e.g. "50" or "0.25"');

export const limitSchema = z
  .object({
    /** Names the limit in refusals, headers and logs; stable across reloads. */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/),
    /** A tenant's id or name; absent: every tenant, each counted apart. */
    tenant: z.string().min(1).optional(),
    /** A virtual key's id; absent: any key. */
    key: z.string().min(1).optional(),
    /**
     * `'*'` counts each end user apart (requests naming none count as one
     * user, `""`); a name limits that end user alone; absent: all together.
     */
    endUser: z.string().optional(),
    /** A public model name (alias); absent: every model together. */
    model: z.string().min(1).optional(),
    requests: z.number().int().positive().optional(),
    /** Input plus output tokens, by the request's worst case. */
    tokens: z.number().int().positive().optional(),
    /** Requests in flight at once; takes no window. */
    concurrent: z.number().int().positive().optional(),
    /** Money charged to the tenant, in USD. */
    budgetUsd: decimalUsd.optional(),
    /**
     * The window: `minute` and `hour` are clock-aligned, `day`, `week`
     * (ISO, from Monday) and `month` are calendar periods in the tenant's
     * time zone. A budget resets only when its period ends.
     */
    per: z.enum(WINDOWS).optional(),
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
    thresholds: z
      .array(z.number().int().min(1).max(1000))
      .min(1)
      .refine((list) => new Set(list).size === list.length, {
        message: 'a threshold is listed twice',
      })
      .optional(),
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
        message: `give the window: one of ${WINDOWS.join(', ')}`,
      });
    }
  });

export type LimitConfig = z.output<typeof limitSchema>;

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
