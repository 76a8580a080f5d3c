/**
 * The pieces of a Responses API `response` object shared by the JSON
 * answer and the stream encoder: output items from canonical blocks, the
 * status a stop reason gives, and the response envelope.
 *
 * Thinking becomes a `reasoning` item whose summary is the thinking text:
 * the closest thing the Responses API has, and what the `openai` SDK shows
 * as reasoning.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/object
 */
import type { ContentBlock, StopReason } from '../canonical.js';

export type ResponseStatus = 'completed' | 'incomplete';

/** `incomplete` with its reason, for a cut-off or filtered answer. */
export function responseStatus(stopReason: StopReason | null): {
  status: ResponseStatus;
  incomplete_details: { reason: string } | null;
} {
  switch (stopReason) {
    case 'max_tokens':
      return {
        status: 'incomplete',
        incomplete_details: { reason: 'max_output_tokens' },
      };
    case 'content_filter':
      return {
        status: 'incomplete',
        incomplete_details: { reason: 'content_filter' },
      };
    case 'end_turn':
    case 'stop_sequence':
    case 'tool_use':
    case null:
      return { status: 'completed', incomplete_details: null };
  }
}

/** The upstream's id as a `resp_` id. */
export function responseId(upstreamId: string, requestId: string): string {
  const id = upstreamId === '' ? requestId : upstreamId;
  return id.startsWith('resp_') ? id : `resp_${id}`;
}

/** Item ids derive from the response's, numbered by output index. */
export function itemId(prefix: 'msg' | 'rs' | 'fc', id: string, at: number) {
  return `${prefix}_${id.replace(/^resp_/, '')}_${at}`;
}

export function messageItem(id: string, texts: readonly string[]) {
  return {
    id,
    type: 'message',
    status: 'completed',
    role: 'assistant',
    content: texts.map((text) => outputText(text)),
  };
}

export function outputText(text: string) {
  return { type: 'output_text', annotations: [], logprobs: [], text };
}

export function reasoningItem(id: string, text: string | null) {
  return {
    id,
    type: 'reasoning',
    summary: text === null ? [] : [{ type: 'summary_text', text }],
  };
}

export function functionCallItem(
  id: string,
  block: { readonly id: string; readonly name: string },
  args: string,
  status: 'in_progress' | 'completed',
) {
  return {
    id,
    type: 'function_call',
    status,
    arguments: args,
    call_id: block.id,
    name: block.name,
  };
}

/**
 * Output items for canonical content: each run of text blocks is one
 * message, each thinking block one reasoning item, each tool call one
 * function call.
 */
export function outputItems(
  content: readonly ContentBlock[],
  id: string,
): unknown[] {
  // Runs of text first, so each message is built whole.
  const parts: (ContentBlock | string[])[] = [];
  for (const block of content) {
    const last = parts.at(-1);
    if (block.type !== 'text') parts.push(block);
    else if (Array.isArray(last)) last.push(block.text);
    else parts.push([block.text]);
  }

  return parts.flatMap((part, at): unknown[] => {
    if (Array.isArray(part)) return [messageItem(itemId('msg', id, at), part)];
    switch (part.type) {
      case 'thinking':
        return [reasoningItem(itemId('rs', id, at), part.text)];
      case 'tool_use':
        return [
          functionCallItem(
            itemId('fc', id, at),
            part,
            JSON.stringify(part.input),
            'completed',
          ),
        ];
      case 'text':
      case 'image':
      case 'tool_result':
        // Never in an assistant answer (text is grouped above).
        return [];
    }
  });
}

/** The response envelope, as the API returns it. */
export function responseObject(fields: {
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  readonly status: 'in_progress' | ResponseStatus;
  readonly incompleteDetails: { reason: string } | null;
  readonly output: readonly unknown[];
  readonly usage: unknown;
}) {
  return {
    id: fields.id,
    object: 'response',
    created_at: fields.createdAt,
    status: fields.status,
    error: null,
    incomplete_details: fields.incompleteDetails,
    instructions: null,
    max_output_tokens: null,
    model: fields.model,
    output: fields.output,
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    truncation: 'disabled',
    usage: fields.usage,
    metadata: {},
  };
}
