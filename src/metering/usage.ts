/**
 * Normalised usage: one shape for every provider (DESIGN.md, "Usage,
 * exactly once").
 *
 * Each input token sits in exactly one class. Providers disagree on whether
 * cached tokens are inside their input count; each provider's normaliser
 * resolves that once, and nothing downstream has to know.
 */

/** Token classes that carry their own price. */
export const TOKEN_CLASSES = [
  'input',
  'cacheRead',
  'cacheWrite',
  'cacheWrite1h',
  'output',
] as const;

export type TokenClass = (typeof TOKEN_CLASSES)[number];

export interface NormalizedUsage {
  /** Input tokens neither read from nor written to a cache. */
  readonly inputTokens: number;
  /** Input tokens read from the provider's prompt cache. */
  readonly cacheReadTokens: number;
  /** Cache writes at the provider's default lifetime (Anthropic: 5 min). */
  readonly cacheWriteTokens: number;
  /** Cache writes with a one-hour lifetime, where priced apart. */
  readonly cacheWrite1hTokens: number;
  /** Output tokens, reasoning tokens included. */
  readonly outputTokens: number;
  /** The part of `outputTokens` spent on reasoning (informational). */
  readonly reasoningTokens: number;
  /**
   * Other priced units beside the token classes, by name: audio tokens,
   * images, server-side tool calls. Empty for plain text traffic.
   */
  readonly units: Readonly<Record<string, number>>;
}

/** The count of each priced token class, as limits weigh and count them. */
export type TokenCounts = Pick<
  NormalizedUsage,
  | 'inputTokens'
  | 'cacheReadTokens'
  | 'cacheWriteTokens'
  | 'cacheWrite1hTokens'
  | 'outputTokens'
>;

export const EMPTY_USAGE: NormalizedUsage = Object.freeze({
  inputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  cacheWrite1hTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  units: Object.freeze({}),
});

/** The count of one token class in a usage record. */
export function tokensOfClass(usage: NormalizedUsage, tokenClass: TokenClass) {
  switch (tokenClass) {
    case 'input':
      return usage.inputTokens;
    case 'cacheRead':
      return usage.cacheReadTokens;
    case 'cacheWrite':
      return usage.cacheWriteTokens;
    case 'cacheWrite1h':
      return usage.cacheWrite1hTokens;
    case 'output':
      return usage.outputTokens;
  }
}

/** Every input token, whatever its cache class. */
export function totalInputTokens(usage: NormalizedUsage): number {
  return (
    usage.inputTokens +
    usage.cacheReadTokens +
    usage.cacheWriteTokens +
    usage.cacheWrite1hTokens
  );
}

export class UsageParseError extends Error {
  override readonly name = 'UsageParseError';
}

/**
 * Reads a token count from a provider's usage block: a non-negative safe
 * integer, or `undefined` when the field is absent or null. Anything else
 * (a string, a float, a negative) is a malformed block, not a zero.
 */
export function readCount(
  block: Readonly<Record<string, unknown>>,
  field: string,
): number | undefined {
  const value = block[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new UsageParseError(
      `usage field ${field} is ${JSON.stringify(value)}, not a token count`,
    );
  }
  return value;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
