/**
 * Canonical stream events → Responses API server-sent events, each
 * `event: <type>\ndata: <json>\n\n` with a `sequence_number` counting from
 * 0, as the `openai` SDK's `responses.stream()` accumulates them:
 *
 * - `response.created` and `response.in_progress` open the stream;
 * - a text block is a message item: `output_item.added`,
 *   `content_part.added`, `output_text.delta`s, then `output_text.done`,
 *   `content_part.done`, `output_item.done`;
 * - a tool call is a `function_call` item with `function_call_arguments`
 *   deltas; thinking is a `reasoning` item with summary text deltas;
 * - `response.completed` (or `response.incomplete` for a cut-off answer)
 *   closes it, carrying the whole response and its usage, once both the
 *   stop and the final usage are known (in whichever order they come).
 *
 * @see https://platform.openai.com/docs/api-reference/responses-streaming
 */
import type {
  CanonicalStreamEvent,
  ClientError,
  StopReason,
  StreamEncoder,
} from '../canonical.js';
import type { NormalizedUsage } from '../../metering/usage.js';
import { rawBytes } from './chat-stream-encoder.js';
import { openAIErrorBody } from './openai-error.js';
import { toOpenAIResponsesUsage } from './openai-wire-usage.js';
import {
  functionCallItem,
  itemId,
  messageItem,
  outputText,
  reasoningItem,
  responseId,
  responseObject,
  responseStatus,
} from './responses-output.js';

const EMPTY = Buffer.alloc(0);

export interface ResponsesStreamContext {
  readonly requestId: string;
  readonly model: string;
  /** Seconds since the epoch, for `created_at`; defaults to now. */
  readonly createdAt?: number;
}

/** One open output item, by canonical block index. */
type OpenItem =
  | { kind: 'text'; outputIndex: number; id: string; text: string }
  | { kind: 'thinking'; outputIndex: number; id: string; text: string }
  | {
      kind: 'tool';
      outputIndex: number;
      id: string;
      call: { id: string; name: string };
      args: string;
    };

export function createResponsesStreamEncoder(
  context: ResponsesStreamContext,
): StreamEncoder {
  const createdAt = context.createdAt ?? Math.floor(Date.now() / 1000);
  let id = responseId('', context.requestId);
  let sequence = 0;
  const open = new Map<number, OpenItem>();
  const output: unknown[] = [];
  let stop: { reason: StopReason | null } | null = null;
  let usage: NormalizedUsage | null = null;
  let ended = false;

  const event = (type: string, fields: object): string =>
    `event: ${type}\ndata: ${JSON.stringify({
      type,
      sequence_number: sequence++,
      ...fields,
    })}\n\n`;
  const response = (status: 'in_progress') =>
    responseObject({
      id,
      createdAt,
      model: context.model,
      status,
      incompleteDetails: null,
      output: [],
      usage: null,
    });

  const start = (index: number, item: OpenItem, added: unknown): string => {
    open.set(index, item);
    output.push(null);
    return event('response.output_item.added', {
      output_index: item.outputIndex,
      item: added,
    });
  };

  const blockStart = (
    index: number,
    block: Extract<CanonicalStreamEvent, { type: 'block_start' }>['block'],
  ): string => {
    const outputIndex = output.length;
    switch (block.type) {
      case 'text': {
        const item = {
          kind: 'text' as const,
          outputIndex,
          id: itemId('msg', id, outputIndex),
          text: '',
        };
        return (
          start(index, item, {
            ...messageItem(item.id, []),
            status: 'in_progress',
          }) +
          event('response.content_part.added', {
            item_id: item.id,
            output_index: outputIndex,
            content_index: 0,
            part: outputText(''),
          })
        );
      }
      case 'thinking': {
        const item = {
          kind: 'thinking' as const,
          outputIndex,
          id: itemId('rs', id, outputIndex),
          text: '',
        };
        return (
          start(index, item, reasoningItem(item.id, null)) +
          event('response.reasoning_summary_part.added', {
            item_id: item.id,
            output_index: outputIndex,
            summary_index: 0,
            part: { type: 'summary_text', text: '' },
          })
        );
      }
      case 'tool_use': {
        const item = {
          kind: 'tool' as const,
          outputIndex,
          id: itemId('fc', id, outputIndex),
          call: { id: block.id, name: block.name },
          args: '',
        };
        return start(
          index,
          item,
          functionCallItem(item.id, item.call, '', 'in_progress'),
        );
      }
    }
  };

  const blockStop = (index: number): string => {
    const item = open.get(index);
    if (item === undefined) return '';
    open.delete(index);
    const at = { item_id: item.id, output_index: item.outputIndex };
    let done: unknown;
    let frames = '';
    switch (item.kind) {
      case 'text':
        done = messageItem(item.id, [item.text]);
        frames +=
          event('response.output_text.done', {
            ...at,
            content_index: 0,
            text: item.text,
            logprobs: [],
          }) +
          event('response.content_part.done', {
            ...at,
            content_index: 0,
            part: outputText(item.text),
          });
        break;
      case 'thinking':
        done = reasoningItem(item.id, item.text);
        frames +=
          event('response.reasoning_summary_text.done', {
            ...at,
            summary_index: 0,
            text: item.text,
          }) +
          event('response.reasoning_summary_part.done', {
            ...at,
            summary_index: 0,
            part: { type: 'summary_text', text: item.text },
          });
        break;
      case 'tool':
        done = functionCallItem(item.id, item.call, item.args, 'completed');
        frames += event('response.function_call_arguments.done', {
          ...at,
          arguments: item.args,
        });
        break;
    }
    output[item.outputIndex] = done;
    return (
      frames +
      event('response.output_item.done', {
        output_index: item.outputIndex,
        item: done,
      })
    );
  };

  /** The closing event, once the stop and the final usage are both in. */
  const finish = (): string => {
    if (ended || stop === null || usage === null) return '';
    ended = true;
    let frames = '';
    for (const index of [...open.keys()]) frames += blockStop(index);
    const { status, incomplete_details } = responseStatus(stop.reason);
    return (
      frames +
      event(`response.${status}`, {
        response: responseObject({
          id,
          createdAt,
          model: context.model,
          status,
          incompleteDetails: incomplete_details,
          output,
          usage: toOpenAIResponsesUsage(usage),
        }),
      })
    );
  };

  const encode = (canonical: CanonicalStreamEvent): string => {
    switch (canonical.type) {
      case 'message_start':
        id = responseId(canonical.id, context.requestId);
        return (
          event('response.created', { response: response('in_progress') }) +
          event('response.in_progress', { response: response('in_progress') })
        );
      case 'block_start':
        return blockStart(canonical.index, canonical.block);
      case 'text_delta': {
        const item = open.get(canonical.index);
        if (item?.kind !== 'text') return '';
        item.text += canonical.text;
        return event('response.output_text.delta', {
          item_id: item.id,
          output_index: item.outputIndex,
          content_index: 0,
          delta: canonical.text,
          logprobs: [],
        });
      }
      case 'thinking_delta': {
        const item = open.get(canonical.index);
        if (item?.kind !== 'thinking') return '';
        item.text += canonical.text;
        return event('response.reasoning_summary_text.delta', {
          item_id: item.id,
          output_index: item.outputIndex,
          summary_index: 0,
          delta: canonical.text,
        });
      }
      case 'tool_input_delta': {
        const item = open.get(canonical.index);
        if (item?.kind !== 'tool') return '';
        item.args += canonical.json;
        return event('response.function_call_arguments.delta', {
          item_id: item.id,
          output_index: item.outputIndex,
          delta: canonical.json,
        });
      }
      case 'block_stop':
        return blockStop(canonical.index);
      case 'message_stop':
        stop = { reason: canonical.stopReason };
        return finish();
      case 'usage':
        if (!canonical.final) return '';
        usage = canonical.usage;
        return finish();
      case 'signature_delta':
        // OpenAI's reasoning carries no signature a client could use.
        return '';
      case 'error':
        // The gateway ends the stream with encodeError.
        return '';
    }
  };

  return {
    contentType: 'text/event-stream; charset=utf-8',
    encode: (canonical) => {
      const text = encode(canonical);
      return text === '' ? EMPTY : Buffer.from(text);
    },
    passthrough: rawBytes,
    encodeError: (error: ClientError) =>
      Buffer.from(
        event('error', {
          // The SDK raises an APIError from the nested `error` object.
          ...openAIErrorBody(error),
        }),
      ),
  };
}
