/**
 * Input the upstream bills that the request body does not carry, for the
 * worst case (reserve.ts), which otherwise bounds input by body bytes.
 *
 * Two kinds:
 *
 * - Prompts a provider adds around tools. Anthropic documents a tool-use
 *   system prompt of 264 to 346 tokens for any request with tools, and
 *   245 to 735 more for each of its built-in client tools (bash, text
 *   editor, computer use, the last with a further system prompt of about
 *   500); OpenAI adds a smaller one. Each is covered by a fixed allowance.
 * - Content the upstream fetches or keeps: a previous response or a
 *   conversation (Responses), a stored prompt, a file by id or URL, a
 *   document (whose pages may bill as images), an object in S3, what a
 *   hosted tool reads (web search, web fetch, file search, code execution,
 *   an MCP server). Nothing in the body bounds it; the request reserves
 *   `metering.unseenInputTokens` for it, meant as the largest context
 *   window of the models served.
 *
 * The scan is of the body as the caller sent it: a body translated to
 * another API carries only what the canonical form holds, which is in
 * its bytes.
 */
import type { WireApi } from '../protocol/canonical.js';

/** For any request that declares tools. */
export const TOOL_PROMPT_ALLOWANCE = 1_024;
/** For each provider-defined client tool (bash, text editor, computer). */
export const BUILTIN_TOOL_ALLOWANCE = 2_048;

export interface HiddenInput {
  /** Tokens allowed for the prompts added around tools. */
  readonly toolTokens: number;
  /**
   * Where the body makes the upstream read content it does not carry,
   * the first such field (e.g. `previous_response_id`); else null.
   */
  readonly unseen: string | null;
}

export const NO_HIDDEN_INPUT: HiddenInput = { toolTokens: 0, unseen: null };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

export function hiddenInput(api: WireApi, body: unknown): HiddenInput {
  if (!isObject(body)) return NO_HIDDEN_INPUT;
  switch (api) {
    case 'openai-chat':
      return chatHidden(body);
    case 'openai-responses':
      return responsesHidden(body);
    case 'anthropic-messages':
      return messagesHidden(body);
    case 'bedrock-converse':
      return converseHidden(body);
  }
}

/** OpenAI tool types the caller defines itself; any other is hosted. */
const OPENAI_CLIENT_TOOLS = new Set(['function', 'custom']);

function openaiTools(tools: readonly unknown[]): {
  toolTokens: number;
  unseen: number | null;
} {
  const hosted = tools.findIndex(
    (tool) =>
      !isObject(tool) ||
      typeof tool['type'] !== 'string' ||
      !OPENAI_CLIENT_TOOLS.has(tool['type']),
  );
  return {
    toolTokens: tools.length > 0 ? TOOL_PROMPT_ALLOWANCE : 0,
    unseen: hosted === -1 ? null : hosted,
  };
}

function chatHidden(body: Json): HiddenInput {
  const { unseen: hosted } = openaiTools(list(body['tools']));
  // `functions` is the tools array's older spelling.
  const declared =
    list(body['tools']).length + list(body['functions']).length > 0;
  const tokens = declared ? TOOL_PROMPT_ALLOWANCE : 0;
  if (hosted !== null) {
    return { toolTokens: tokens, unseen: `tools[${hosted}]` };
  }
  if (body['web_search_options'] !== undefined) {
    return { toolTokens: tokens, unseen: 'web_search_options' };
  }
  const messages = list(body['messages']);
  for (const [i, message] of messages.entries()) {
    if (!isObject(message)) continue;
    for (const [j, part] of list(message['content']).entries()) {
      if (isObject(part) && part['type'] === 'file') {
        return { toolTokens: tokens, unseen: `messages[${i}].content[${j}]` };
      }
    }
  }
  return { toolTokens: tokens, unseen: null };
}

/** Responses fields that bring in what the upstream keeps. */
const RESPONSES_STORED = ['previous_response_id', 'conversation', 'prompt'];

function responsesHidden(body: Json): HiddenInput {
  const { toolTokens, unseen: hosted } = openaiTools(list(body['tools']));
  if (hosted !== null) return { toolTokens, unseen: `tools[${hosted}]` };
  for (const field of RESPONSES_STORED) {
    if (body[field] !== undefined && body[field] !== null) {
      return { toolTokens, unseen: field };
    }
  }
  for (const [i, item] of list(body['input']).entries()) {
    if (!isObject(item)) continue;
    if (item['type'] === 'item_reference') {
      return { toolTokens, unseen: `input[${i}]` };
    }
    for (const [j, part] of list(item['content']).entries()) {
      if (!isObject(part)) continue;
      if (
        part['type'] === 'input_file' ||
        (part['type'] === 'input_image' && part['file_id'] !== undefined)
      ) {
        return { toolTokens, unseen: `input[${i}].content[${j}]` };
      }
    }
  }
  return { toolTokens, unseen: null };
}

/**
 * Anthropic tools: a tool with no `type`, or `custom`, is the caller's
 * own; bash, text editor and computer are provider-defined tools run by
 * the caller; any other type runs at Anthropic (web search, web fetch,
 * code execution, …).
 */
const ANTHROPIC_BUILTIN = /^(bash|text_editor|computer)_/;

function messagesHidden(body: Json): HiddenInput {
  const tools = list(body['tools']);
  let toolTokens = tools.length > 0 ? TOOL_PROMPT_ALLOWANCE : 0;
  for (const [i, tool] of tools.entries()) {
    const type = isObject(tool) ? tool['type'] : undefined;
    if (type === undefined || type === null || type === 'custom') continue;
    if (typeof type === 'string' && ANTHROPIC_BUILTIN.test(type)) {
      toolTokens += BUILTIN_TOOL_ALLOWANCE;
      continue;
    }
    return { toolTokens, unseen: `tools[${i}]` };
  }
  for (const field of ['mcp_servers', 'container']) {
    if (body[field] !== undefined && body[field] !== null) {
      return { toolTokens, unseen: field };
    }
  }
  for (const [i, message] of list(body['messages']).entries()) {
    if (!isObject(message)) continue;
    const at = anthropicUnseen(list(message['content']));
    if (at !== null) {
      return { toolTokens, unseen: `messages[${i}].content${at}` };
    }
  }
  const system = anthropicUnseen(list(body['system']));
  if (system !== null) return { toolTokens, unseen: `system${system}` };
  return { toolTokens, unseen: null };
}

/** Anthropic content the body carries whole: everything else is unseen. */
function anthropicUnseen(blocks: readonly unknown[]): string | null {
  for (const [i, block] of blocks.entries()) {
    if (!isObject(block)) continue;
    const type = block['type'];
    const source = isObject(block['source']) ? block['source'] : undefined;
    if (type === 'document') {
      // Plain or block text is in the body; a PDF's pages also bill as
      // images, and a URL or file is fetched.
      if (source?.['type'] === 'text' || source?.['type'] === 'content') {
        continue;
      }
      return `[${i}]`;
    }
    if (type === 'image' && source?.['type'] === 'file') return `[${i}]`;
    if (type === 'container_upload') return `[${i}]`;
    if (type === 'tool_result') {
      const inner = anthropicUnseen(list(block['content']));
      if (inner !== null) return `[${i}].content${inner}`;
    }
  }
  return null;
}

function converseHidden(body: Json): HiddenInput {
  const toolConfig = isObject(body['toolConfig']) ? body['toolConfig'] : {};
  const toolTokens =
    list(toolConfig['tools']).length > 0 ? TOOL_PROMPT_ALLOWANCE : 0;
  for (const [i, message] of list(body['messages']).entries()) {
    if (!isObject(message)) continue;
    const at = converseUnseen(list(message['content']));
    if (at !== null) {
      return { toolTokens, unseen: `messages[${i}].content${at}` };
    }
  }
  return { toolTokens, unseen: null };
}

/** Converse blocks: a document or video, or anything from S3. */
function converseUnseen(blocks: readonly unknown[]): string | null {
  for (const [i, block] of blocks.entries()) {
    if (!isObject(block)) continue;
    if (block['document'] !== undefined || block['video'] !== undefined) {
      return `[${i}]`;
    }
    const image = isObject(block['image']) ? block['image'] : undefined;
    const source = isObject(image?.['source']) ? image['source'] : undefined;
    if (source?.['s3Location'] !== undefined) return `[${i}]`;
    const result = isObject(block['toolResult'])
      ? block['toolResult']
      : undefined;
    if (result) {
      const inner = converseUnseen(list(result['content']));
      if (inner !== null) return `[${i}].toolResult.content${inner}`;
    }
  }
  return null;
}
