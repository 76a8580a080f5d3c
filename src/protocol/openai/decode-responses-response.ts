/**
 * A non-streamed Responses API `response` → the canonical response.
 *
 * Messages become text blocks, function calls tool calls, and reasoning
 * items with a summary thinking blocks (without a signature: OpenAI's
 * encrypted reasoning is no signature another API can check). Items of
 * hosted and custom tools have no canonical form; they only come back to
 * requests that used such tools, which are never translated
 * (openAIResponsesUntranslatable), so they are skipped here.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/object
 */
import {
  UntranslatableError,
  UpstreamProtocolError,
  type CanonicalChatResponse,
  type ContentBlock,
  type StopReason,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import { normalizeOpenAIResponsesUsage } from '../../providers/openai/normalize-responses-usage.js';
import { parseArguments } from './request-fields.js';

type Fields = Readonly<Record<string, unknown>>;

export function decodeOpenAIResponsesResponse(
  body: unknown,
): CanonicalChatResponse {
  if (!isRecord(body) || !Array.isArray(body['output'])) {
    throw new UpstreamProtocolError('the response has no output array');
  }
  const content: ContentBlock[] = [];
  for (const item of body['output'] as unknown[]) {
    if (!isRecord(item)) {
      throw new UpstreamProtocolError('an output item is not an object');
    }
    content.push(...itemBlocks(item));
  }

  return {
    id: typeof body['id'] === 'string' ? body['id'] : '',
    model: typeof body['model'] === 'string' ? body['model'] : '',
    content,
    stopReason: responsesStopReason(
      body,
      content.some((block) => block.type === 'tool_use'),
    ),
    stopSequence: null,
    usage: normalizeOpenAIResponsesUsage(body['usage'], body['tool_usage']),
    rawUsage: body['usage'],
  };
}

export function itemBlocks(item: Fields): ContentBlock[] {
  switch (item['type']) {
    case 'message': {
      const parts = Array.isArray(item['content'])
        ? (item['content'] as unknown[])
        : [];
      return parts.flatMap((part): ContentBlock[] => {
        if (!isRecord(part)) return [];
        const text =
          part['type'] === 'refusal' ? part['refusal'] : part['text'];
        return typeof text === 'string' && text !== ''
          ? [{ type: 'text', text }]
          : [];
      });
    }
    case 'function_call':
      return [functionCall(item)];
    case 'reasoning': {
      const text = reasoningText(item);
      return text === '' ? [] : [{ type: 'thinking', text, signature: null }];
    }
    default:
      return [];
  }
}

function functionCall(item: Fields): ContentBlock {
  const { call_id: id, name, arguments: args } = item;
  if (
    typeof id !== 'string' ||
    typeof name !== 'string' ||
    typeof args !== 'string'
  ) {
    throw new UpstreamProtocolError(
      'a function call lacks its call_id, name or arguments',
    );
  }
  const input = parseArguments(args);
  if (input === null) {
    throw new UntranslatableError(
      `the upstream's arguments for function call ${id} are not a JSON object`,
    );
  }
  return { type: 'tool_use', id, name, input };
}

/** The summary texts of a reasoning item, else its raw reasoning text. */
function reasoningText(item: Fields): string {
  for (const field of ['summary', 'content']) {
    const parts = item[field];
    if (!Array.isArray(parts)) continue;
    const text = (parts as unknown[])
      .map((part) =>
        isRecord(part) && typeof part['text'] === 'string' ? part['text'] : '',
      )
      .join('\n\n');
    if (text !== '') return text;
  }
  return '';
}

/**
 * `completed` is a natural end, or a tool call when one was made;
 * `incomplete` says why in `incomplete_details.reason`.
 */
export function responsesStopReason(
  response: Fields,
  calledTools: boolean,
): StopReason | null {
  switch (response['status']) {
    case 'completed':
      return calledTools ? 'tool_use' : 'end_turn';
    case 'incomplete': {
      const details = response['incomplete_details'];
      const reason = isRecord(details) ? details['reason'] : undefined;
      if (reason === 'max_output_tokens') return 'max_tokens';
      if (reason === 'content_filter') return 'content_filter';
      return null;
    }
    default:
      return null;
  }
}
