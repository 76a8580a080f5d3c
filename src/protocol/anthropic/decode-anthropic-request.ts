/**
 * Reads a client's Anthropic Messages request: validated as Anthropic
 * validates it (a 400 with Anthropic's dotted `param` paths), then turned
 * into a canonical request.
 *
 * A valid request can still hold what canonical form cannot carry:
 * `cache_control`, `top_k`, documents, server tools, citations… Those are
 * not errors when the upstream is Anthropic too, because the gateway then
 * forwards the client's own body. So decoding collects them in
 * `untranslatable` instead of throwing, and the gateway refuses the request
 * with the first of them only when it has to translate.
 *
 * @see https://docs.anthropic.com/en/api/messages
 */
import {
  InvalidRequestError,
  UntranslatableError,
  type CanonicalChatRequest,
  type CanonicalMessage,
  type CanonicalTool,
  type ContentBlock,
  type ToolChoice,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';
import {
  isSet,
  readAnthropicBlock,
  type BlockReader,
} from './anthropic-content.js';

type Json = Readonly<Record<string, unknown>>;

export interface DecodedAnthropicRequest {
  readonly request: CanonicalChatRequest;
  /** What `request` leaves out; empty when it carries the whole body. */
  readonly untranslatable: readonly UntranslatableError[];
}

/** Top-level fields canonical form carries (or that change nothing). */
const TRANSLATABLE_FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'metadata',
  'stop_sequences',
  'stream',
  'temperature',
  'top_p',
  'tools',
  'tool_choice',
  'thinking',
]);

/** The smallest thinking budget Anthropic accepts. */
const MIN_THINKING_BUDGET = 1024;

/**
 * Validates and decodes a Messages body. `model`, when given, names the
 * model instead of the body's `model` field.
 *
 * @throws InvalidRequestError for a body Anthropic would refuse.
 */
export function decodeAnthropicRequest(
  body: unknown,
  model: string | null,
): DecodedAnthropicRequest {
  if (!isRecord(body)) {
    throw new InvalidRequestError(
      'invalid_type',
      'The request body must be a JSON object.',
    );
  }
  const untranslatable: UntranslatableError[] = [];
  const reader: BlockReader = {
    fail(code, message, param) {
      throw new InvalidRequestError(code, message, param);
    },
    untranslatable(error) {
      untranslatable.push(error);
    },
  };
  for (const field of Object.keys(body)) {
    if (!TRANSLATABLE_FIELDS.has(field) && !isDefault(field, body[field])) {
      reader.untranslatable(
        new UntranslatableError(
          `${field}: cannot be expressed in the upstream's API`,
          field,
        ),
      );
    }
  }

  const maxTokens = readMaxTokens(body);
  const thinkingBudget = readThinking(body, maxTokens);
  const tools = readTools(body, reader);
  const request: CanonicalChatRequest = {
    model: model ?? readModel(body),
    system: readSystem(body, reader),
    messages: readMessages(body, reader),
    tools,
    toolChoice: readToolChoice(body, reader),
    maxOutputTokens: maxTokens,
    temperature: readNumber(body, 'temperature', 0, 1),
    topP: readNumber(body, 'top_p', 0, 1),
    stopSequences: readStopSequences(body),
    thinkingBudgetTokens: thinkingBudget,
    stream: readStream(body),
    includeUsage: true,
    endUser: readEndUser(body),
  };
  return { request, untranslatable };
}

/** Fields outside canonical form that, at their default, change nothing. */
function isDefault(field: string, value: unknown): boolean {
  return (
    value === null ||
    value === undefined ||
    (field === 'service_tier' && value === 'auto')
  );
}

function readModel(body: Json): string {
  const model = body['model'];
  if (model === undefined) {
    throw new InvalidRequestError(
      'missing_required_parameter',
      'model: Field required',
      'model',
    );
  }
  if (typeof model !== 'string' || model === '') {
    throw new InvalidRequestError(
      'invalid_type',
      'model: Input should be a non-empty string',
      'model',
    );
  }
  return model;
}

function readMaxTokens(body: Json): number {
  const maxTokens = body['max_tokens'];
  if (maxTokens === undefined) {
    throw new InvalidRequestError(
      'missing_required_parameter',
      'max_tokens: Field required',
      'max_tokens',
    );
  }
  if (typeof maxTokens !== 'number' || !Number.isSafeInteger(maxTokens)) {
    throw new InvalidRequestError(
      'invalid_type',
      'max_tokens: Input should be a valid integer',
      'max_tokens',
    );
  }
  if (maxTokens < 1) {
    throw new InvalidRequestError(
      'invalid_value',
      'max_tokens: Input should be greater than or equal to 1',
      'max_tokens',
    );
  }
  return maxTokens;
}

function readSystem(body: Json, reader: BlockReader): string[] {
  const system = body['system'];
  if (system === undefined || system === null) return [];
  if (typeof system === 'string') return system === '' ? [] : [system];
  if (!Array.isArray(system)) {
    return reader.fail(
      'invalid_type',
      'system: Input should be a string or a list of text blocks',
      'system',
    );
  }
  return system.map((value: unknown, i) => {
    const block = readAnthropicBlock(value, `system.${i}`, reader);
    if (block?.type !== 'text') {
      return reader.fail(
        'invalid_value',
        `system.${i}.type: Input should be 'text'`,
        `system.${i}.type`,
      );
    }
    return block.text;
  });
}

function readMessages(body: Json, reader: BlockReader): CanonicalMessage[] {
  const messages = body['messages'];
  if (messages === undefined) {
    return reader.fail(
      'missing_required_parameter',
      'messages: Field required',
      'messages',
    );
  }
  if (!Array.isArray(messages)) {
    return reader.fail(
      'invalid_type',
      'messages: Input should be a valid list',
      'messages',
    );
  }
  if (messages.length === 0) {
    return reader.fail(
      'invalid_value',
      'messages: at least one message is required',
      'messages',
    );
  }
  return messages.flatMap((value: unknown, i) => {
    const message = readMessage(value, i, reader);
    return message === undefined ? [] : [message];
  });
}

/** A message, or undefined for one canonical form has no place for. */
function readMessage(
  value: unknown,
  i: number,
  reader: BlockReader,
): CanonicalMessage | undefined {
  const path = `messages.${i}`;
  if (!isRecord(value)) {
    return reader.fail(
      'invalid_type',
      `${path}: Input should be an object`,
      path,
    );
  }
  const role = value['role'];
  if (role === 'system') {
    // A system prompt in mid-conversation, which Anthropic accepts (see
    // anthropic_messages_nonstream_prompt-cache-*.request.json); canonical
    // system prompts come only before the conversation.
    reader.untranslatable(
      new UntranslatableError(
        `${path}.role: a system message inside the conversation cannot be ` +
          "expressed in the upstream's API",
        `${path}.role`,
      ),
    );
    return undefined;
  }
  if (role !== 'user' && role !== 'assistant') {
    return reader.fail(
      role === undefined ? 'missing_required_parameter' : 'invalid_value',
      `${path}.role: Input should be 'user', 'assistant' or 'system'`,
      `${path}.role`,
    );
  }

  const content = value['content'];
  if (typeof content === 'string') {
    return { role, content: [{ type: 'text', text: content }] };
  }
  if (!Array.isArray(content)) {
    return reader.fail(
      content === undefined ? 'missing_required_parameter' : 'invalid_type',
      `${path}.content: Input should be a string or a list of blocks`,
      `${path}.content`,
    );
  }
  const blocks: ContentBlock[] = [];
  content.forEach((block: unknown, j) => {
    const at = `${path}.content.${j}`;
    const read = readAnthropicBlock(block, at, reader);
    if (read === undefined) return;
    checkRole(read, role, at, reader);
    blocks.push(read);
  });
  return { role, content: blocks };
}

/** Tool results come from the user; calls and thinking from the model. */
function checkRole(
  block: ContentBlock,
  role: CanonicalMessage['role'],
  path: string,
  reader: BlockReader,
): void {
  const expected =
    block.type === 'tool_result'
      ? 'user'
      : block.type === 'tool_use' || block.type === 'thinking'
        ? 'assistant'
        : role;
  if (expected !== role) {
    reader.fail(
      'invalid_value',
      `${path}: a ${block.type} block belongs in a(n) ${expected} message`,
      `${path}.type`,
    );
  }
}

function readTools(body: Json, reader: BlockReader): CanonicalTool[] {
  const tools = body['tools'];
  if (tools === undefined || tools === null) return [];
  if (!Array.isArray(tools)) {
    return reader.fail(
      'invalid_type',
      'tools: Input should be a valid list',
      'tools',
    );
  }
  const canonical: CanonicalTool[] = [];
  tools.forEach((tool: unknown, i) => {
    const path = `tools.${i}`;
    if (!isRecord(tool)) {
      reader.fail('invalid_type', `${path}: Input should be an object`, path);
    }
    const type = tool['type'];
    if (type !== undefined && type !== null && type !== 'custom') {
      // A server tool (web search, code execution…) runs at Anthropic.
      reader.untranslatable(
        new UntranslatableError(
          `${path}: the server tool ${JSON.stringify(type)} cannot be ` +
            "expressed in the upstream's API",
          `${path}.type`,
        ),
      );
      return;
    }
    const name = tool['name'];
    if (typeof name !== 'string' || name === '') {
      reader.fail(
        name === undefined ? 'missing_required_parameter' : 'invalid_type',
        `${path}.name: Input should be a non-empty string`,
        `${path}.name`,
      );
    }
    const schema = tool['input_schema'];
    if (!isRecord(schema)) {
      reader.fail(
        schema === undefined ? 'missing_required_parameter' : 'invalid_type',
        `${path}.input_schema: Input should be an object`,
        `${path}.input_schema`,
      );
    }
    const description = tool['description'] ?? null;
    if (description !== null && typeof description !== 'string') {
      reader.fail(
        'invalid_type',
        `${path}.description: Input should be a valid string`,
        `${path}.description`,
      );
    }
    if (isSet(tool['cache_control'])) {
      reader.untranslatable(
        new UntranslatableError(
          `${path}.cache_control: prompt caching cannot be expressed in ` +
            "the upstream's API",
          `${path}.cache_control`,
        ),
      );
    }
    canonical.push({ name, description, inputSchema: schema });
  });
  return canonical;
}

function readToolChoice(body: Json, reader: BlockReader): ToolChoice | null {
  const choice = body['tool_choice'];
  if (choice === undefined || choice === null) return null;
  if (!isRecord(choice)) {
    return reader.fail(
      'invalid_type',
      'tool_choice: Input should be an object',
      'tool_choice',
    );
  }
  if (choice['disable_parallel_tool_use'] === true) {
    reader.untranslatable(
      new UntranslatableError(
        "tool_choice.disable_parallel_tool_use: cannot be expressed in the upstream's API",
        'tool_choice.disable_parallel_tool_use',
      ),
    );
  }
  const type = choice['type'];
  switch (type) {
    case 'auto':
    case 'any':
    case 'none':
      return { type };
    case 'tool': {
      const name = choice['name'];
      if (typeof name !== 'string' || name === '') {
        return reader.fail(
          'missing_required_parameter',
          'tool_choice.name: Field required',
          'tool_choice.name',
        );
      }
      return { type, name };
    }
  }
  return reader.fail(
    'invalid_value',
    "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'",
    'tool_choice.type',
  );
}

function readThinking(body: Json, maxTokens: number): number | null {
  const thinking = body['thinking'];
  if (thinking === undefined || thinking === null) return null;
  if (!isRecord(thinking)) {
    throw new InvalidRequestError(
      'invalid_type',
      'thinking: Input should be an object',
      'thinking',
    );
  }
  if (thinking['type'] === 'disabled') return null;
  if (thinking['type'] !== 'enabled') {
    throw new InvalidRequestError(
      'invalid_value',
      "thinking.type: Input should be 'enabled' or 'disabled'",
      'thinking.type',
    );
  }
  const budget = thinking['budget_tokens'];
  if (typeof budget !== 'number' || !Number.isSafeInteger(budget)) {
    throw new InvalidRequestError(
      budget === undefined ? 'missing_required_parameter' : 'invalid_type',
      'thinking.budget_tokens: Input should be a valid integer',
      'thinking.budget_tokens',
    );
  }
  if (budget < MIN_THINKING_BUDGET || budget >= maxTokens) {
    throw new InvalidRequestError(
      'invalid_value',
      `thinking.budget_tokens: must be at least ${MIN_THINKING_BUDGET} ` +
        'and less than max_tokens',
      'thinking.budget_tokens',
    );
  }
  return budget;
}

function readNumber(
  body: Json,
  field: string,
  min: number,
  max: number,
): number | null {
  const value = body[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidRequestError(
      'invalid_type',
      `${field}: Input should be a valid number`,
      field,
    );
  }
  if (value < min || value > max) {
    throw new InvalidRequestError(
      'invalid_value',
      `${field}: Input should be between ${min} and ${max}`,
      field,
    );
  }
  return value;
}

function readStopSequences(body: Json): string[] {
  const sequences = body['stop_sequences'];
  if (sequences === undefined || sequences === null) return [];
  if (
    !Array.isArray(sequences) ||
    !sequences.every((item) => typeof item === 'string')
  ) {
    throw new InvalidRequestError(
      'invalid_type',
      'stop_sequences: Input should be a list of strings',
      'stop_sequences',
    );
  }
  return sequences;
}

function readStream(body: Json): boolean {
  const stream = body['stream'] ?? false;
  if (typeof stream !== 'boolean') {
    throw new InvalidRequestError(
      'invalid_type',
      'stream: Input should be a valid boolean',
      'stream',
    );
  }
  return stream;
}

function readEndUser(body: Json): string | null {
  const metadata = body['metadata'];
  if (metadata === undefined || metadata === null) return null;
  if (!isRecord(metadata)) {
    throw new InvalidRequestError(
      'invalid_type',
      'metadata: Input should be an object',
      'metadata',
    );
  }
  const user = metadata['user_id'] ?? null;
  if (user !== null && typeof user !== 'string') {
    throw new InvalidRequestError(
      'invalid_type',
      'metadata.user_id: Input should be a valid string',
      'metadata.user_id',
    );
  }
  return user;
}
