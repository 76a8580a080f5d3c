/**
 * The shape of a price catalog: the one shipped in `catalog.json` and the
 * entries operators add in their config.
 *
 * Prices are USD per 1,000,000 tokens, written as decimal strings so they
 * never pass through a float. Each entry carries the date it took effect and
 * where the number came from. A cache rate is either a decimal, the literal
 * `"as-input"` (the provider bills that class at the input rate), or absent,
 * which means unknown: usage in an unknown class prices to `null`, never to
 * zero (DESIGN.md, "Usage, exactly once").
 */
import { z } from 'zod';

import { isDecimalString } from '../money/decimal.js';

const decimalString = z
  .string()
  .refine(isDecimalString, 'must be a plain decimal string such as "2.50"')
  .refine((text) => !text.startsWith('-'), 'must not be negative');

/** `"as-input"` bills the class at the entry's input rate. */
export const AS_INPUT = 'as-input';

const cacheRate = z.union([decimalString, z.literal(AS_INPUT)]);

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD')
  .refine((text) => !Number.isNaN(Date.parse(`${text}T00:00:00Z`)), {
    message: 'must be a real calendar date',
  });

const rates = {
  /** Input tokens that were neither read from nor written to a cache. */
  input: decimalString,
  /** Output tokens, reasoning tokens included. */
  output: decimalString,
  /** Input tokens read from the provider's prompt cache. */
  cacheRead: cacheRate.optional(),
  /** Cache writes at the provider's default lifetime (Anthropic: 5 min). */
  cacheWrite: cacheRate.optional(),
  /** Cache writes with a one-hour lifetime, where priced apart. */
  cacheWrite1h: cacheRate.optional(),
};

/**
 * A higher rate that applies when a request's total input (uncached, cache
 * reads and cache writes together) exceeds a threshold, as Anthropic's
 * long-context pricing does above 200,000 tokens.
 */
export const priceTierSchema = z
  .object({ inputTokensAbove: z.number().int().positive(), ...rates })
  .strict();

export const priceEntrySchema = z
  .object({
    /** First UTC day the price applies (inclusive). */
    effectiveFrom: isoDate,
    /** First UTC day it no longer applies (exclusive); open if absent. */
    effectiveTo: isoDate.optional(),
    ...rates,
    tiers: z.array(priceTierSchema).optional(),
    /** Where the numbers come from: a URL or a catalog file and commit. */
    source: z.string().min(1),
    note: z.string().optional(),
  })
  .strict();

export const catalogModelSchema = z
  .object({
    /** The upstream model id, exactly as the provider's API names it. */
    model: z.string().min(1),
    provider: z.enum([
      'openai',
      'azure',
      'anthropic',
      'bedrock',
      'mistral',
      'meta',
      'other',
    ]),
    prices: z.array(priceEntrySchema).min(1),
  })
  .strict();

export const catalogSchema = z
  .object({
    currency: z.literal('USD'),
    unit: z.literal('per 1M tokens'),
    models: z.array(catalogModelSchema),
  })
  .strict();

export type PriceTier = z.infer<typeof priceTierSchema>;
export type PriceEntry = z.infer<typeof priceEntrySchema>;
export type CatalogModel = z.infer<typeof catalogModelSchema>;
export type Catalog = z.infer<typeof catalogSchema>;
