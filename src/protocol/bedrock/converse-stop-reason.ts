/**
 * Converse stop reasons and the canonical ones, both ways.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_ResponseSyntax
 */
import type { StopReason } from '../canonical.js';

const CANONICAL_OF_CONVERSE: Readonly<Record<string, StopReason>> = {
  end_turn: 'end_turn',
  tool_use: 'tool_use',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  guardrail_intervened: 'content_filter',
  content_filtered: 'content_filter',
  // The answer was cut where the model's window ran out: a length stop.
  model_context_window_exceeded: 'max_tokens',
};

const CONVERSE_OF_CANONICAL: Readonly<Record<StopReason, string>> = {
  end_turn: 'end_turn',
  tool_use: 'tool_use',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  content_filter: 'content_filtered',
};

/**
 * The canonical stop reason; null for one with no canonical meaning
 * (`malformed_model_output`, `malformed_tool_use`, or one added later).
 */
export function canonicalStopReason(reason: unknown): StopReason | null {
  if (typeof reason !== 'string') return null;
  return Object.hasOwn(CANONICAL_OF_CONVERSE, reason)
    ? (CANONICAL_OF_CONVERSE[reason] ?? null)
    : null;
}

/** Converse's name for a canonical stop; an unknown stop ends the turn. */
export function converseStopReason(reason: StopReason | null): string {
  return reason === null ? 'end_turn' : CONVERSE_OF_CANONICAL[reason];
}

/**
 * The stop sequence that ended an answer, where the model reports one in
 * `additionalModelResponseFields` (Anthropic models on Bedrock do, as
 * `stop_sequence`, or inside `delta` on a stream's `messageStop`).
 */
export function converseStopSequence(fields: unknown): string | null {
  if (typeof fields !== 'object' || fields === null) return null;
  const record = fields as Record<string, unknown>;
  const direct = record['stop_sequence'];
  if (typeof direct === 'string') return direct;
  const delta = record['delta'];
  if (typeof delta === 'object' && delta !== null) {
    const nested = (delta as Record<string, unknown>)['stop_sequence'];
    if (typeof nested === 'string') return nested;
  }
  return null;
}
