/**
 * The worst case of a request, recorded before its upstream call
 * (DESIGN.md, "The request path", step 2).
 *
 * Input: the UTF-8 size of the request body is a true upper bound on its
 * text tokens. Every BPE tokenizer in use (OpenAI's, Anthropic's, Llama's,
 * Mistral's) emits at least one byte per token, and the per-message framing
 * tokens are fewer than the JSON syntax bytes around each message. Images
 * are not bounded by their bytes (a URL is short), so each adds a fixed
 * allowance that covers the largest image any catalog model bills. What
 * the upstream reads beyond the body (the prompts providers add around
 * tools, a previous response, a file, a hosted tool's results) is allowed
 * for as hidden-input.ts says.
 *
 * Output: `max_completion_tokens` (or `max_tokens`), times `n` choices; a
 * configured cap when the request states none.
 */
import { perMillion, sumDecimals, type Decimal } from '../money/decimal.js';
import type { AppliedPrice } from '../pricing/price-book.js';
import { NO_HIDDEN_INPUT, type HiddenInput } from './hidden-input.js';

/**
 * Tokens allowed per input image. GPT-4o bills at most 1,105 tokens for a
 * 2048×2048 high-detail image and GPT-4.1-mini's patch scheme caps at 1,536
 * patches × 1.62; Claude bills about width×height/750, at most ~1,600. The
 * bound is several times the largest.
 */
export const IMAGE_TOKEN_ALLOWANCE = 8_192;

/**
 * The default input allowed for content the upstream reads that the body
 * does not carry: the largest context window among the catalog's models
 * (GPT-4.1, Claude Sonnet 4 and 4.5 with the 1M window, Nova Premier).
 */
export const UNSEEN_INPUT_TOKENS = 1_000_000;

export interface WorstCase {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

export function worstCase(args: {
  readonly bodyBytes: number;
  readonly images: number;
  /** What the upstream reads beyond the body; none when absent. */
  readonly hidden?: HiddenInput;
  /** Allowed when `hidden.unseen` names a field (`metering.unseenInputTokens`). */
  readonly unseenInputTokens?: number;
  readonly maxOutputTokens: number | undefined;
  readonly choices: number;
  readonly defaultMaxOutputTokens: number;
}): WorstCase {
  const perChoice = args.maxOutputTokens ?? args.defaultMaxOutputTokens;
  const hidden = args.hidden ?? NO_HIDDEN_INPUT;
  const unseen =
    hidden.unseen === null
      ? 0
      : (args.unseenInputTokens ?? UNSEEN_INPUT_TOKENS);
  return {
    inputTokens:
      args.bodyBytes +
      args.images * IMAGE_TOKEN_ALLOWANCE +
      hidden.toolTokens +
      unseen,
    outputTokens: perChoice * Math.max(1, args.choices),
  };
}

/**
 * The dearest the worst case can cost at `price`: every input token at the
 * dearest known input-class rate, every output token at the output rate.
 * `null` when there is no price.
 */
export function worstCaseCost(
  bound: WorstCase,
  price: AppliedPrice | undefined,
): Decimal | null {
  if (!price) return null;
  const { input, cacheRead, cacheWrite, cacheWrite1h, output } = price.rates;
  if (input === null || output === null) return null;
  let dearestInput = input;
  for (const rate of [cacheRead, cacheWrite, cacheWrite1h]) {
    if (rate !== null && rate.gt(dearestInput)) dearestInput = rate;
  }
  return sumDecimals([
    perMillion(bound.inputTokens, dearestInput),
    perMillion(bound.outputTokens, output),
  ]);
}
