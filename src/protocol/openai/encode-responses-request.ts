/**
 * A canonical request → a Responses API body for one upstream model.
 *
 * The body asks OpenAI not to store the response (`store: false`): a
 * translated request comes from a client that never asked for stored
 * state. Function tools are sent with `strict: false`, because the API
 * defaults to strict mode, which refuses ordinary JSON schemas.
 *
 * Refused (UntranslatableError): stop sequences and output caps under 16
 * tokens, which the API does not take; thinking, as a budget or as blocks
 * in the history; tool results flagged as errors.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/create
 */
import {
  UntranslatableError,
  type CanonicalChatRequest,
  type CanonicalMessage,
  type ContentBlock,
  type ToolChoice,
} from '../canonical.js';
import { dataUrl } from './request-fields.js';

/** The Responses API's floor on `max_output_tokens`. */
const MIN_OUTPUT_TOKENS = 16;

type ImageBlock = Extract<ContentBlock, { type: 'image' }>;

export function encodeOpenAIResponsesRequest(
  request: CanonicalChatRequest,
  upstreamModel: string,
): Record<string, unknown> {
  if (request.thinkingBudgetTokens !== null) {
    throw new UntranslatableError(
      'The Responses API takes no thinking budget; this model is reached ' +
        'through the Responses API.',
    );
  }
  if (request.stopSequences.length > 0) {
    throw new UntranslatableError(
      'The Responses API has no stop sequences; this model is reached ' +
        'through the Responses API.',
    );
  }
  const max = request.maxOutputTokens;
  if (max !== null && max < MIN_OUTPUT_TOKENS) {
    throw new UntranslatableError(
      `The Responses API takes an output cap of at least ` +
        `${MIN_OUTPUT_TOKENS} tokens, not ${max}.`,
    );
  }

  const input: Record<string, unknown>[] = [];
  // One system part is the `instructions`; more keep their separation as
  // system messages.
  if (request.system.length > 1) {
    for (const text of request.system)
      input.push({ role: 'system', content: text });
  }
  request.messages.forEach((message, index) => {
    input.push(...encodeMessage(message, index));
  });

  const body: Record<string, unknown> = {
    model: upstreamModel,
    input,
    store: false,
  };
  if (request.system.length === 1) body['instructions'] = request.system[0];
  if (request.tools.length > 0) {
    body['tools'] = request.tools.map((tool) => ({
      type: 'function',
      name: tool.name,
      ...(tool.description !== null && { description: tool.description }),
      parameters: tool.inputSchema,
      strict: false,
    }));
  }
  if (request.toolChoice !== null) {
    body['tool_choice'] = encodeToolChoice(request.toolChoice);
  }
  if (max !== null) body['max_output_tokens'] = max;
  if (request.temperature !== null) body['temperature'] = request.temperature;
  if (request.topP !== null) body['top_p'] = request.topP;
  if (request.endUser !== null) body['user'] = request.endUser;
  if (request.stream) body['stream'] = true;
  return body;
}

function encodeMessage(
  message: CanonicalMessage,
  index: number,
): Record<string, unknown>[] {
  const where = (block: number) => `messages[${index}].content[${block}]`;
  const items: Record<string, unknown>[] = [];
  let parts: Record<string, unknown>[] = [];
  /** Text and images collect into one message item until something else. */
  const flush = () => {
    if (parts.length === 0) return;
    items.push({ role: message.role, content: parts });
    parts = [];
  };

  message.content.forEach((block, blockIndex) => {
    switch (block.type) {
      case 'text':
        parts.push({
          type: message.role === 'user' ? 'input_text' : 'output_text',
          text: block.text,
        });
        break;
      case 'image':
        if (message.role !== 'user') {
          throw new UntranslatableError(
            `${where(blockIndex)}: an assistant image has no Responses form.`,
          );
        }
        parts.push(imagePart(block));
        break;
      case 'tool_use':
        flush();
        items.push({
          type: 'function_call',
          call_id: block.id,
          name: block.name,
          arguments: JSON.stringify(block.input),
        });
        break;
      case 'tool_result':
        flush();
        if (block.isError) {
          throw new UntranslatableError(
            `${where(blockIndex)}: the Responses API has no way to mark a ` +
              'tool result as an error.',
          );
        }
        items.push({
          type: 'function_call_output',
          call_id: block.toolUseId,
          output: toolOutput(block.content),
        });
        break;
      case 'thinking':
        throw new UntranslatableError(
          `${where(blockIndex)}: the Responses API takes back only its own ` +
            'encrypted reasoning, not thinking from another API.',
        );
    }
  });
  flush();
  return items;
}

function toolOutput(
  content: Extract<ContentBlock, { type: 'tool_result' }>['content'],
): unknown {
  if (content.every((part) => part.type === 'text')) {
    return content
      .map((part) => (part.type === 'text' ? part.text : ''))
      .join('');
  }
  return content.map((part) =>
    part.type === 'text'
      ? { type: 'input_text', text: part.text }
      : imagePart(part),
  );
}

function imagePart(block: ImageBlock): Record<string, unknown> {
  const url =
    block.source.kind === 'base64'
      ? dataUrl(block.source.mediaType, block.source.data)
      : block.source.url;
  return { type: 'input_image', image_url: url, detail: 'auto' };
}

function encodeToolChoice(choice: ToolChoice): unknown {
  switch (choice.type) {
    case 'auto':
    case 'none':
      return choice.type;
    case 'any':
      return 'required';
    case 'tool':
      return { type: 'function', name: choice.name };
  }
}
