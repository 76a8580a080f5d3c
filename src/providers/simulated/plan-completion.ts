/**
 * Everything about a simulated answer that follows from its request,
 * decided once, before a byte is written: the streaming and non-streaming
 * writers only render a plan, so the two can never disagree on a count.
 */
import { randomUUID } from 'node:crypto';

import type { ChatRequest } from './parse-chat-request.js';
import { simulatedUsage, type SimulatedUsage } from './simulated-usage.js';
import { WireError } from './wire-error.js';

/** Fixed: the simulated model's weights and serving config never change. */
const SYSTEM_FINGERPRINT = 'fp_5137a7ed00';

export interface CompletionPlan {
  /** `chatcmpl-` and 29 characters, as OpenAI's ids. */
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  /** The request's model, echoed. */
  readonly model: string;
  readonly systemFingerprint: string;
  readonly choices: number;
  readonly usage: SimulatedUsage;
  /** Visible tokens per choice: the completion less its reasoning. */
  readonly textTokens: number;
  readonly finishReason: 'stop' | 'length';
}

/** Output tokens the simulator will write for one request, all choices. */
export const MAX_SIMULATED_OUTPUT_TOKENS = 1_000_000;

/** Throws a `WireError` (400) on unusable `tollgate_sim_*` metadata. */
export function planCompletion(request: ChatRequest): CompletionPlan {
  const usage = simulatedUsage(request);
  // The simulator writes every token it reports; a dictated count in the
  // billions would take the process's memory with it.
  if (usage.completionTokens * request.n > MAX_SIMULATED_OUTPUT_TOKENS) {
    throw new WireError(
      400,
      `The simulated upstream writes at most ` +
        `${MAX_SIMULATED_OUTPUT_TOKENS.toLocaleString('en-US')} output ` +
        'tokens per request (completion tokens times n).',
      { param: 'metadata' },
    );
  }
  // A model stops for length when it spends its whole budget, reasoning
  // included; a dictated count beyond the budget reads the same way.
  const hitLimit =
    request.maxTokens !== undefined &&
    usage.completionTokens >= request.maxTokens;

  return {
    id: `chatcmpl-${randomUUID().replaceAll('-', '').slice(0, 29)}`,
    created: Math.floor(Date.now() / 1000),
    model: request.model,
    systemFingerprint: SYSTEM_FINGERPRINT,
    choices: request.n,
    usage,
    textTokens: usage.completionTokens - usage.reasoningTokens,
    finishReason: hitLimit ? 'length' : 'stop',
  };
}
