/**
 * A canonical request → a Chat Completions body for one upstream model.
 *
 * Streaming requests always ask for the usage chunk
 * (`stream_options.include_usage`): the gateway meters from it whether or
 * not the client wants to see it.
 *
 * Refused rather than dropped (UntranslatableError): thinking, whether as
 * a budget or as blocks in the history (Chat Completions takes neither
 * back), tool results flagged as errors or holding images, and images in
 * assistant turns.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import {
  UntranslatableError,
  type CanonicalChatRequest,
  type CanonicalMessage,
  type ContentBlock,
  type ToolChoice,
} from '../canonical.js';
import { dataUrl } from './request-fields.js';

type ImageBlock = Extract<ContentBlock, { type: 'image' }>;

export function encodeOpenAIChatRequest(
  request: CanonicalChatRequest,
  upstreamModel: string,
): Record<string, unknown> {
  if (request.thinkingBudgetTokens !== null) {
    throw new UntranslatableError(
      'Chat Completions takes no thinking budget; this model is reached ' +
        'through Chat Completions.',
      null,
    );
  }

  const messages: Record<string, unknown>[] = request.system.map((text) => ({
    role: 'system',
    content: text,
  }));
  request.messages.forEach((message, index) => {
    messages.push(...encodeMessage(message, index));
  });

  const body: Record<string, unknown> = { model: upstreamModel, messages };
  if (request.tools.length > 0) {
    body['tools'] = request.tools.map((tool) => ({
      type: 'function',
      function: {
        name: tool.name,
        ...(tool.description !== null && { description: tool.description }),
        parameters: tool.inputSchema,
      },
    }));
  }
  if (request.toolChoice !== null) {
    body['tool_choice'] = encodeToolChoice(request.toolChoice);
  }
  if (request.maxOutputTokens !== null) {
    body['max_completion_tokens'] = request.maxOutputTokens;
  }
  if (request.temperature !== null) body['temperature'] = request.temperature;
  if (request.topP !== null) body['top_p'] = request.topP;
  if (request.stopSequences.length > 0) body['stop'] = request.stopSequences;
  if (request.endUser !== null) body['user'] = request.endUser;
  if (request.stream) {
    body['stream'] = true;
    body['stream_options'] = { include_usage: true };
  }
  return body;
}

function encodeMessage(
  message: CanonicalMessage,
  index: number,
): Record<string, unknown>[] {
  const where = (block: number) => `messages[${index}].content[${block}]`;
  if (message.role === 'assistant') return [encodeAssistant(message, where)];

  // Tool results become `tool` messages, which must directly follow the
  // assistant turn that called the tools: they go first.
  const toolMessages: Record<string, unknown>[] = [];
  const parts: Record<string, unknown>[] = [];
  message.content.forEach((block, blockIndex) => {
    switch (block.type) {
      case 'text':
        parts.push({ type: 'text', text: block.text });
        break;
      case 'image':
        parts.push(imagePart(block));
        break;
      case 'tool_result':
        toolMessages.push(toolMessage(block, where(blockIndex)));
        break;
      case 'tool_use':
      case 'thinking':
        throw new UntranslatableError(
          `${where(blockIndex)}: a ${block.type} block in a user turn has ` +
            'no Chat Completions form.',
        );
    }
  });

  if (parts.length === 0) return toolMessages;
  // A lone text part reads the same as a string; more keep their parts.
  const [first] = parts;
  const content =
    parts.length === 1 && first?.['type'] === 'text' ? first['text'] : parts;
  return [...toolMessages, { role: 'user', content }];
}

function encodeAssistant(
  message: CanonicalMessage,
  where: (block: number) => string,
): Record<string, unknown> {
  let text = '';
  const toolCalls: Record<string, unknown>[] = [];
  message.content.forEach((block, blockIndex) => {
    switch (block.type) {
      case 'text':
        text += block.text;
        break;
      case 'tool_use':
        toolCalls.push({
          id: block.id,
          type: 'function',
          function: {
            name: block.name,
            arguments: JSON.stringify(block.input),
          },
        });
        break;
      case 'thinking':
        throw new UntranslatableError(
          `${where(blockIndex)}: Chat Completions cannot take thinking ` +
            'back in an assistant turn.',
        );
      case 'image':
      case 'tool_result':
        throw new UntranslatableError(
          `${where(blockIndex)}: an assistant ${block.type} block has no ` +
            'Chat Completions form.',
        );
    }
  });
  return {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    ...(toolCalls.length > 0 && { tool_calls: toolCalls }),
  };
}

function toolMessage(
  block: Extract<ContentBlock, { type: 'tool_result' }>,
  where: string,
): Record<string, unknown> {
  if (block.isError) {
    throw new UntranslatableError(
      `${where}: Chat Completions has no way to mark a tool result as an ` +
        'error.',
    );
  }
  const text = block.content.map((part) => {
    if (part.type !== 'text') {
      throw new UntranslatableError(
        `${where}: Chat Completions tool results hold text only, not images.`,
      );
    }
    return part.text;
  });
  return {
    role: 'tool',
    tool_call_id: block.toolUseId,
    content: text.join(''),
  };
}

function imagePart(block: ImageBlock): Record<string, unknown> {
  const url =
    block.source.kind === 'base64'
      ? dataUrl(block.source.mediaType, block.source.data)
      : block.source.url;
  return { type: 'image_url', image_url: { url } };
}

function encodeToolChoice(choice: ToolChoice): unknown {
  switch (choice.type) {
    case 'auto':
    case 'none':
      return choice.type;
    case 'any':
      return 'required';
    case 'tool':
      return { type: 'function', function: { name: choice.name } };
  }
}
