/**
 * The Anthropic fake's request check: what api.anthropic.com refuses with
 * a 400 (or 401), refused here too, so a gateway that translates a request
 * wrongly fails in tests instead of in production.
 *
 * It is written apart from the gateway's own request decoder on purpose: a
 * shared misreading of the API would otherwise pass both. It is also
 * stricter where Anthropic is strict and a translator is likely to slip:
 * unknown top-level fields ("Extra inputs are not permitted"), blocks in
 * the wrong role, a thinking budget not under `max_tokens`.
 *
 * @see https://docs.anthropic.com/en/api/messages
 */
import type { IncomingHttpHeaders } from 'node:http';

export class FakeRequestError extends Error {
  override readonly name = 'FakeRequestError';
  readonly status: number;
  readonly type: string;
  constructor(message: string, status = 400, type = 'invalid_request_error') {
    super(message);
    this.status = status;
    this.type = type;
  }
}

type Json = Readonly<Record<string, unknown>>;

const TOP_LEVEL_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'metadata',
  'stop_sequences',
  'stream',
  'temperature',
  'top_p',
  'top_k',
  'tools',
  'tool_choice',
  'thinking',
  'service_tier',
  'container',
  'mcp_servers',
  'context_management',
]);

/** Fields each content block type requires, with their JSON types. */
const BLOCK_FIELDS: Readonly<
  Record<string, Readonly<Record<string, 'string' | 'object' | 'any'>>>
> = {
  text: { text: 'string' },
  image: { source: 'object' },
  document: { source: 'object' },
  tool_use: { id: 'string', name: 'string', input: 'object' },
  tool_result: { tool_use_id: 'string' },
  thinking: { thinking: 'string', signature: 'string' },
  redacted_thinking: { data: 'string' },
  server_tool_use: { id: 'string', name: 'string', input: 'object' },
  web_search_tool_result: { tool_use_id: 'string', content: 'any' },
  search_result: { source: 'string', title: 'string', content: 'any' },
  container_upload: { file_id: 'string' },
};

/** Blocks only the model writes, and blocks only the user sends. */
const ASSISTANT_ONLY = new Set([
  'tool_use',
  'thinking',
  'redacted_thinking',
  'server_tool_use',
  'web_search_tool_result',
]);
const USER_ONLY = new Set(['tool_result', 'image', 'document']);

/** Throws FakeRequestError, in Anthropic's words, for what it refuses. */
export function checkAnthropicHeaders(headers: IncomingHttpHeaders): void {
  // `@anthropic-ai/sdk` 1.x sends its key as a bearer token; older clients
  // (and Tollgate's own) send `x-api-key`. Anthropic takes either.
  const bearer = /^Bearer +\S/i.test(headers.authorization ?? '');
  if (!headers['x-api-key'] && !bearer) {
    throw new FakeRequestError(
      'x-api-key header is required',
      401,
      'authentication_error',
    );
  }
  if (!headers['anthropic-version']) {
    throw new FakeRequestError('anthropic-version: header is required');
  }
}

/** Throws FakeRequestError for a Messages body Anthropic would refuse. */
export function checkAnthropicBody(body: unknown): Json {
  const request = object(body, 'body');
  for (const field of Object.keys(request)) {
    if (!TOP_LEVEL_FIELDS.has(field)) {
      throw new FakeRequestError(`${field}: Extra inputs are not permitted`);
    }
  }
  if (typeof request['model'] !== 'string' || request['model'] === '') {
    throw new FakeRequestError('model: Field required');
  }
  const maxTokens = request['max_tokens'];
  if (!Number.isSafeInteger(maxTokens) || (maxTokens as number) < 1) {
    throw new FakeRequestError(
      'max_tokens: Field required, a positive integer',
    );
  }
  checkMessages(request['messages']);
  checkSystem(request['system']);
  checkTools(request['tools']);
  checkToolChoice(request['tool_choice']);
  checkThinking(request['thinking'], maxTokens as number);
  checkOptional(request, 'stream', 'boolean');
  checkOptional(request, 'temperature', 'number');
  checkOptional(request, 'top_p', 'number');
  checkStopSequences(request['stop_sequences']);
  checkMetadata(request['metadata']);
  return request;
}

function checkMessages(messages: unknown): void {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new FakeRequestError('messages: at least one message is required');
  }
  messages.forEach((value: unknown, i) => {
    const message = object(value, `messages.${i}`);
    const role = message['role'];
    if (role !== 'user' && role !== 'assistant' && role !== 'system') {
      throw new FakeRequestError(
        `messages.${i}.role: Input should be 'user', 'assistant' or 'system'`,
      );
    }
    const content = message['content'];
    if (typeof content === 'string') {
      if (content === '' && i < messages.length - 1) {
        throw new FakeRequestError(
          `messages.${i}: all messages must have non-empty content`,
        );
      }
      return;
    }
    if (!Array.isArray(content) || content.length === 0) {
      throw new FakeRequestError(
        `messages.${i}.content: Input should be a non-empty string or list`,
      );
    }
    content.forEach((block: unknown, j) => {
      const path = `messages.${i}.content.${j}`;
      const type = checkBlock(block, path);
      // Recorded traffic shows mid-conversation system messages of text.
      if (role === 'system' && type !== 'text') {
        throw new FakeRequestError(
          `${path}: a system message holds only text blocks`,
        );
      }
      if (role === 'user' && ASSISTANT_ONLY.has(type)) {
        throw new FakeRequestError(
          `${path}: a ${type} block is not allowed in a user message`,
        );
      }
      if (role === 'assistant' && USER_ONLY.has(type)) {
        throw new FakeRequestError(
          `${path}: a ${type} block is not allowed in an assistant message`,
        );
      }
    });
  });
}

/** Checks one block's type and required fields; returns its type. */
function checkBlock(value: unknown, path: string): string {
  const block = object(value, path);
  const type = block['type'];
  const fields = typeof type === 'string' ? BLOCK_FIELDS[type] : undefined;
  if (fields === undefined) {
    throw new FakeRequestError(
      `${path}.type: Input tag ${JSON.stringify(type)} does not match any ` +
        'of the expected tags',
    );
  }
  for (const [field, kind] of Object.entries(fields)) {
    const present = block[field];
    if (
      present === undefined ||
      (kind === 'string' && typeof present !== 'string') ||
      (kind === 'object' && !isObject(present))
    ) {
      throw new FakeRequestError(`${path}.${field}: Field required`);
    }
  }
  if (type === 'text' && block['text'] === '') {
    throw new FakeRequestError(
      `${path}: text content blocks must be non-empty`,
    );
  }
  if (type === 'image') checkImageSource(block['source'] as Json, path);
  if (type === 'tool_result') checkToolResultContent(block['content'], path);
  return type as string;
}

function checkImageSource(source: Json, path: string): void {
  const ok =
    (source['type'] === 'base64' &&
      typeof source['media_type'] === 'string' &&
      typeof source['data'] === 'string') ||
    (source['type'] === 'url' && typeof source['url'] === 'string') ||
    (source['type'] === 'file' && typeof source['file_id'] === 'string');
  if (!ok) {
    throw new FakeRequestError(`${path}.source: Input is not a valid source`);
  }
}

function checkToolResultContent(content: unknown, path: string): void {
  if (content === undefined || typeof content === 'string') return;
  if (!Array.isArray(content)) {
    throw new FakeRequestError(
      `${path}.content: Input should be a string or a list`,
    );
  }
  content.forEach((part: unknown, k) => {
    const type = checkBlock(part, `${path}.content.${k}`);
    if (!['text', 'image', 'search_result', 'document'].includes(type)) {
      throw new FakeRequestError(
        `${path}.content.${k}.type: not allowed in a tool result`,
      );
    }
  });
}

function checkSystem(system: unknown): void {
  if (system === undefined || typeof system === 'string') return;
  if (!Array.isArray(system)) {
    throw new FakeRequestError('system: Input should be a string or a list');
  }
  system.forEach((block: unknown, i) => {
    if (checkBlock(block, `system.${i}`) !== 'text') {
      throw new FakeRequestError(`system.${i}.type: Input should be 'text'`);
    }
  });
}

function checkTools(tools: unknown): void {
  if (tools === undefined) return;
  if (!Array.isArray(tools)) {
    throw new FakeRequestError('tools: Input should be a valid list');
  }
  const names = new Set<string>();
  tools.forEach((value: unknown, i) => {
    const tool = object(value, `tools.${i}`);
    const name = tool['name'];
    if (typeof name !== 'string' || !/^[a-zA-Z0-9_-]{1,128}$/.test(name)) {
      throw new FakeRequestError(
        `tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'`,
      );
    }
    if (names.has(name)) {
      throw new FakeRequestError(`tools: Tool names must be unique`);
    }
    names.add(name);
    const isServerTool =
      tool['type'] !== undefined && tool['type'] !== 'custom';
    if (!isServerTool && !isObject(tool['input_schema'])) {
      throw new FakeRequestError(`tools.${i}.input_schema: Field required`);
    }
  });
}

function checkToolChoice(choice: unknown): void {
  if (choice === undefined) return;
  const toolChoice = object(choice, 'tool_choice');
  const type = toolChoice['type'];
  if (type === 'tool' && typeof toolChoice['name'] !== 'string') {
    throw new FakeRequestError('tool_choice.name: Field required');
  }
  if (!['auto', 'any', 'tool', 'none'].includes(type as string)) {
    throw new FakeRequestError(
      "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
    );
  }
}

function checkThinking(thinking: unknown, maxTokens: number): void {
  if (thinking === undefined) return;
  const config = object(thinking, 'thinking');
  if (config['type'] === 'disabled') return;
  const budget = config['budget_tokens'];
  if (
    config['type'] !== 'enabled' ||
    !Number.isSafeInteger(budget) ||
    (budget as number) < 1024
  ) {
    throw new FakeRequestError(
      'thinking.enabled.budget_tokens: Input should be greater than or ' +
        'equal to 1024',
    );
  }
  if ((budget as number) >= maxTokens) {
    throw new FakeRequestError(
      '`max_tokens` must be greater than `thinking.budget_tokens`.',
    );
  }
}

function checkStopSequences(sequences: unknown): void {
  if (sequences === undefined) return;
  if (
    !Array.isArray(sequences) ||
    !sequences.every((s) => typeof s === 'string')
  ) {
    throw new FakeRequestError('stop_sequences: Input should be a list');
  }
}

function checkMetadata(metadata: unknown): void {
  if (metadata === undefined) return;
  const fields = object(metadata, 'metadata');
  for (const [field, value] of Object.entries(fields)) {
    if (field !== 'user_id') {
      throw new FakeRequestError(
        `metadata.${field}: Extra inputs are not permitted`,
      );
    }
    if (value !== null && typeof value !== 'string') {
      throw new FakeRequestError(
        'metadata.user_id: Input should be a valid string',
      );
    }
  }
}

function checkOptional(request: Json, field: string, type: string): void {
  const value = request[field];
  if (value !== undefined && typeof value !== type) {
    throw new FakeRequestError(`${field}: Input should be a valid ${type}`);
  }
}

function object(value: unknown, path: string): Json {
  if (!isObject(value)) {
    throw new FakeRequestError(`${path}: Input should be a valid dictionary`);
  }
  return value;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
