/**
 * Stop reasons between Chat Completions' `finish_reason` and the canonical
 * ones, and the `chatcmpl-` id of a translated answer.
 */
import type { StopReason } from '../canonical.js';

/**
 * `stop` covers both a natural end and a stop sequence: OpenAI does not
 * say which, so it reads as the natural end. `function_call` is the
 * pre-tools name of `tool_calls`.
 */
export function canonicalStopReason(
  finishReason: string | null,
): StopReason | null {
  switch (finishReason) {
    case 'stop':
      return 'end_turn';
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'content_filter';
    case null:
    default:
      return null;
  }
}

export function chatFinishReason(stopReason: StopReason | null): string {
  switch (stopReason) {
    case 'max_tokens':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'content_filter':
      return 'content_filter';
    case 'end_turn':
    case 'stop_sequence':
    case null:
      return 'stop';
  }
}

/**
 * The upstream's id, prefixed as OpenAI's ids are when it is not; the
 * gateway's request id when the upstream gave none.
 */
export function chatCompletionId(
  upstreamId: string | null,
  requestId: string,
): string {
  if (upstreamId === null || upstreamId === '') return `chatcmpl-${requestId}`;
  return upstreamId.startsWith('chatcmpl-')
    ? upstreamId
    : `chatcmpl-${upstreamId}`;
}
