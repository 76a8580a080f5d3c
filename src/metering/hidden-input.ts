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

/**
 * How deep the scans follow nested content: far past what any API nests
 * (a document in a fetch result in a tool result is under 10 levels),
 * and far short of the stack, whatever JSON a client sends.
 */
const MAX_DEPTH = 64;

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

/** OpenAI tool types the caller defines itself. */
const OPENAI_CLIENT_TOOLS = new Set(['function', 'custom']);
/**
 * OpenAI tools the model calls and the caller runs, whose definitions
 * OpenAI writes: their prompts get the built-in allowance. Any tool type
 * in neither set runs at OpenAI (web search, file search, code
 * interpreter, MCP, …) and reads what the body does not carry.
 */
const OPENAI_BUILTIN_TOOLS = new Set([
  'local_shell',
  'shell',
  'apply_patch',
  'computer_use_preview',
  'computer_use',
]);

function openaiTools(tools: readonly unknown[]): {
  toolTokens: number;
  unseen: number | null;
} {
  let toolTokens = tools.length > 0 ? TOOL_PROMPT_ALLOWANCE : 0;
  for (const [i, tool] of tools.entries()) {
    const type = isObject(tool) ? tool['type'] : undefined;
    if (typeof type === 'string' && OPENAI_CLIENT_TOOLS.has(type)) continue;
    if (typeof type === 'string' && OPENAI_BUILTIN_TOOLS.has(type)) {
      toolTokens += BUILTIN_TOOL_ALLOWANCE;
      continue;
    }
    return { toolTokens, unseen: i };
  }
  return { toolTokens, unseen: null };
}

/** Whether a field holds a value (not absent, null or ''). */
function given(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

function chatHidden(body: Json): HiddenInput {
  const { toolTokens: fromTools, unseen: hosted } = openaiTools(
    list(body['tools']),
  );
  // `functions` is the tools array's older spelling.
  const toolTokens =
    fromTools === 0 && list(body['functions']).length > 0
      ? TOOL_PROMPT_ALLOWANCE
      : fromTools;
  if (hosted !== null) return { toolTokens, unseen: `tools[${hosted}]` };
  if (given(body['web_search_options'])) {
    return { toolTokens, unseen: 'web_search_options' };
  }
  const messages = list(body['messages']);
  for (const [i, message] of messages.entries()) {
    if (!isObject(message)) continue;
    for (const [j, part] of list(message['content']).entries()) {
      if (isObject(part) && part['type'] === 'file') {
        return { toolTokens, unseen: `messages[${i}].content[${j}]` };
      }
    }
  }
  return { toolTokens, unseen: null };
}

/** Responses fields that bring in what the upstream keeps. */
const RESPONSES_STORED = ['previous_response_id', 'conversation', 'prompt'];

function responsesHidden(body: Json): HiddenInput {
  const { toolTokens, unseen: hosted } = openaiTools(list(body['tools']));
  if (hosted !== null) return { toolTokens, unseen: `tools[${hosted}]` };
  for (const field of RESPONSES_STORED) {
    if (given(body[field])) return { toolTokens, unseen: field };
  }
  for (const [i, item] of list(body['input']).entries()) {
    if (!isObject(item)) continue;
    if (item['type'] === 'item_reference') {
      return { toolTokens, unseen: `input[${i}]` };
    }
    // A message's content, or a tool output's parts: a list, or one
    // part (a computer call's screenshot).
    for (const field of ['content', 'output']) {
      const parts = isObject(item[field]) ? [item[field]] : list(item[field]);
      for (const [j, part] of parts.entries()) {
        if (!isObject(part)) continue;
        if (
          part['type'] === 'input_file' ||
          ((part['type'] === 'input_image' ||
            part['type'] === 'computer_screenshot') &&
            given(part['file_id']))
        ) {
          const at = Array.isArray(item[field]) ? `[${j}]` : '';
          return { toolTokens, unseen: `input[${i}].${field}${at}` };
        }
      }
    }
  }
  return { toolTokens, unseen: null };
}

/**
 * Anthropic tools: a tool with no `type`, or `custom`, is the caller's
 * own; bash, text editor, computer and memory are provider-defined tools
 * run by the caller; any other type runs at Anthropic (web search, web
 * fetch, code execution, …).
 */
const ANTHROPIC_BUILTIN = /^(bash|text_editor|computer|memory)_/;

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
    if (given(body[field])) return { toolTokens, unseen: field };
  }
  const messages = anthropicUnseen(body['messages']);
  if (messages !== null) return { toolTokens, unseen: `messages${messages}` };
  const system = anthropicUnseen(body['system']);
  if (system !== null) return { toolTokens, unseen: `system${system}` };
  return { toolTokens, unseen: null };
}

/**
 * Where Anthropic content holds what the body does not carry, as a path
 * from `node`; null if nowhere. Every block's `content`, and a content
 * document's source, is searched: tool results, server tools' results in
 * history (a fetched page's document) and documents nest content.
 */
function anthropicUnseen(node: unknown, depth = 0): string | null {
  // No API nests content this deep: what it holds cannot be bounded.
  if (depth > MAX_DEPTH) return '';
  if (Array.isArray(node)) {
    for (const [i, item] of node.entries()) {
      const at = anthropicUnseen(item, depth + 1);
      if (at !== null) return `[${i}]${at}`;
    }
    return null;
  }
  if (!isObject(node)) return null;
  const type = node['type'];
  const source = isObject(node['source']) ? node['source'] : undefined;
  if (type === 'document') {
    // Plain or block text is in the body; a PDF's pages also bill as
    // images, and a URL or file is fetched.
    if (source?.['type'] === 'content') {
      const inner = anthropicUnseen(source['content'], depth + 1);
      return inner === null ? null : `.source.content${inner}`;
    }
    return source?.['type'] === 'text' ? null : '';
  }
  if (type === 'image' && source?.['type'] === 'file') return '';
  if (type === 'container_upload') return '';
  const inner = anthropicUnseen(node['content'], depth + 1);
  return inner === null ? null : `.content${inner}`;
}

function converseHidden(body: Json): HiddenInput {
  const toolConfig = isObject(body['toolConfig']) ? body['toolConfig'] : {};
  const tools = list(toolConfig['tools']);
  // Claude's own tools (computer use, …) go in the model's fields.
  const extra = isObject(body['additionalModelRequestFields'])
    ? body['additionalModelRequestFields']
    : {};
  const builtin = list(extra['tools']).length;
  const toolTokens =
    (tools.length + builtin > 0 ? TOOL_PROMPT_ALLOWANCE : 0) +
    builtin * BUILTIN_TOOL_ALLOWANCE;
  // A system tool runs at Bedrock (Nova's web grounding).
  const system = tools.findIndex(
    (tool) => isObject(tool) && given(tool['systemTool']),
  );
  if (system !== -1) {
    return { toolTokens, unseen: `toolConfig.tools[${system}]` };
  }
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

/** Content part types that are an image, in each API. */
const IMAGE_TYPES = new Set([
  'image_url',
  'input_image',
  'image',
  'computer_screenshot',
]);

/**
 * Images anywhere in a body's content as sent, nested or not: a part or
 * block whose `type` is an image (a computer-use screenshot too), or a
 * Converse block holding `image`. Tool schemas and tool calls' arguments
 * are not content (`NOT_CONTENT`, `TOOL_CALLS`).
 */
export function countBodyImages(node: unknown, depth = 0): number {
  // Past any API's nesting of content (anthropicUnseen takes such a body
  // for unseen input).
  if (depth > MAX_DEPTH) return 0;
  if (Array.isArray(node)) {
    let images = 0;
    for (const item of node) images += countBodyImages(item, depth + 1);
    return images;
  }
  if (!isObject(node)) return 0;
  let images =
    (typeof node['type'] === 'string' && IMAGE_TYPES.has(node['type'])) ||
    (isObject(node['image']) && isObject(node['image']['source']))
      ? 1
      : 0;
  for (const [key, value] of Object.entries(node)) {
    if (NOT_CONTENT.has(key) || typeof value !== 'object') continue;
    // A tool call's arguments are the model's output read back as text.
    if (key === 'input' && TOOL_CALLS.has(node['type'] as string)) continue;
    // An image part counted above holds no further images.
    if (images === 1 && (key === 'image_url' || key === 'image')) continue;
    images += countBodyImages(value, depth + 1);
  }
  return images;
}

/**
 * Keys whose values are not content a provider bills as images: tool
 * schemas and their examples, output formats, metadata, and a Converse
 * tool call or JSON tool result (data, read as text).
 */
const NOT_CONTENT = new Set([
  'parameters',
  'input_schema',
  'inputSchema',
  'input_examples',
  'json_schema',
  'schema',
  'format',
  'metadata',
  'toolUse',
  'json',
]);

/** Anthropic blocks whose `input` is a tool call's arguments. */
const TOOL_CALLS = new Set(['tool_use', 'server_tool_use', 'mcp_tool_use']);

/**
 * Text the model reads that a canonical request does not carry, for
 * estimates: the output schema of a Responses body (`text.format`).
 */
export function unmodelledText(api: WireApi, body: unknown): string {
  if (api !== 'openai-responses' || !isObject(body)) return '';
  const text = isObject(body['text']) ? body['text'] : undefined;
  return text?.['format'] === undefined ? '' : JSON.stringify(text['format']);
}
