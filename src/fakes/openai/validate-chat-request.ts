/**
 * The fake's check of a Chat Completions body, strict where api.openai.com
 * is strict, so that a request the gateway translated wrongly fails here
 * as it would upstream: roles and content part types per role, tool calls
 * answered by tool messages in order, tools and `tool_choice` in shape,
 * `stream_options` only on a stream.
 *
 * Messages copy OpenAI's wording where it is known.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import { WireError } from '../../providers/simulated/wire-error.js';
import {
  checkCount,
  checkObject,
  checkString,
  checkStreamOptions,
  invalidValue,
  missingParam,
  shown,
  type Fields,
} from './wire-checks.js';

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'];

/** Parts each role may send in an array `content`. */
const PART_TYPES: Readonly<Record<string, readonly string[]>> = {
  system: ['text'],
  developer: ['text'],
  user: ['text', 'image_url', 'input_audio', 'file'],
  assistant: ['text', 'refusal'],
  tool: ['text'],
};

/** OpenAI's rule for function names. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

export interface CheckedChatRequest {
  readonly model: string | null;
  readonly messages: readonly Fields[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly maxTokens: number | null;
}

/** Throws WireError(400) on what OpenAI would refuse. */
export function validateChatRequest(
  body: unknown,
  modelRequired: boolean,
): CheckedChatRequest {
  const fields = checkObject(body, 'body');
  const model = fields['model'];
  if (model === undefined || model === null) {
    if (modelRequired) {
      throw new WireError(400, 'you must provide a model parameter');
    }
  } else {
    checkString(model, 'model');
  }

  const stream = fields['stream'] ?? false;
  if (typeof stream !== 'boolean') {
    throw invalidValue(
      'stream',
      "Invalid type for 'stream': expected a boolean.",
    );
  }
  const includeUsage = checkStreamOptions(fields, stream);
  const messages = checkMessages(fields['messages']);
  checkTools(fields);

  return {
    model: typeof model === 'string' ? model : null,
    messages,
    stream,
    includeUsage,
    maxTokens:
      checkCount(fields, 'max_completion_tokens') ??
      checkCount(fields, 'max_tokens'),
  };
}

function checkMessages(value: unknown): Fields[] {
  if (value === undefined || value === null) throw missingParam('messages');
  if (!Array.isArray(value)) {
    throw invalidValue(
      'messages',
      "Invalid type for 'messages': expected an array of objects.",
    );
  }
  if (value.length === 0) {
    throw new WireError(
      400,
      "Invalid 'messages': empty array. Expected an array with minimum " +
        'length 1, but got an empty array instead.',
      { param: 'messages', code: 'empty_array' },
    );
  }

  const messages = value.map((entry: unknown, index) =>
    checkMessage(entry, `messages[${index}]`),
  );
  checkToolCallPairing(messages);
  return messages;
}

function checkMessage(entry: unknown, param: string): Fields {
  const message = checkObject(entry, param);
  const role = message['role'];
  if (role === undefined || role === null) throw missingParam(`${param}.role`);
  if (typeof role !== 'string' || !ROLES.includes(role)) {
    throw invalidValue(
      `${param}.role`,
      `Invalid value: '${shown(role)}'. Supported values are: 'system', ` +
        "'assistant', 'user', 'function', 'tool', and 'developer'.",
    );
  }

  const content = message['content'];
  const hasToolCalls =
    Array.isArray(message['tool_calls']) && message['tool_calls'].length > 0;
  if (content === undefined || content === null) {
    if (role !== 'assistant' || !hasToolCalls) {
      throw missingParam(`${param}.content`);
    }
  } else if (Array.isArray(content)) {
    content.forEach((part: unknown, index) =>
      checkPart(part, role, `${param}.content[${index}]`),
    );
  } else if (typeof content !== 'string') {
    throw invalidValue(
      `${param}.content`,
      `Invalid type for '${param}.content': expected one of a string or ` +
        'array of objects.',
    );
  }

  if (role === 'tool')
    checkString(message['tool_call_id'], `${param}.tool_call_id`);
  if (message['tool_calls'] !== undefined && message['tool_calls'] !== null) {
    if (role !== 'assistant' || !Array.isArray(message['tool_calls'])) {
      throw invalidValue(
        `${param}.tool_calls`,
        `Invalid '${param}.tool_calls': only assistant messages carry an ` +
          'array of tool calls.',
      );
    }
    message['tool_calls'].forEach((call: unknown, index) =>
      checkToolCall(call, `${param}.tool_calls[${index}]`),
    );
  }
  return message;
}

function checkPart(entry: unknown, role: string, param: string): void {
  const part = checkObject(entry, param);
  const type = part['type'];
  const allowed = PART_TYPES[role] ?? [];
  if (typeof type !== 'string' || !allowed.includes(type)) {
    throw invalidValue(
      `${param}.type`,
      `Invalid value: '${shown(type)}'. Supported values are: ` +
        `${allowed.map((name) => `'${name}'`).join(', ')}.`,
    );
  }
  switch (type) {
    case 'text':
    case 'refusal':
      checkString(part[type], `${param}.${type}`);
      break;
    case 'image_url': {
      const image = checkObject(part['image_url'], `${param}.image_url`);
      checkString(image['url'], `${param}.image_url.url`);
      break;
    }
    case 'input_audio':
      checkObject(part['input_audio'], `${param}.input_audio`);
      break;
    case 'file':
      checkObject(part['file'], `${param}.file`);
      break;
  }
}

function checkToolCall(entry: unknown, param: string): void {
  const call = checkObject(entry, param);
  checkString(call['id'], `${param}.id`);
  if (call['type'] !== 'function' && call['type'] !== 'custom') {
    throw invalidValue(
      `${param}.type`,
      `Invalid value: '${shown(call['type'])}'. Supported values are: ` +
        "'function' and 'custom'.",
    );
  }
  if (call['type'] === 'function') {
    const fn = checkObject(call['function'], `${param}.function`);
    checkString(fn['name'], `${param}.function.name`);
    checkString(fn['arguments'], `${param}.function.arguments`);
  }
}

/**
 * OpenAI's pairing rule: an assistant message with tool calls is followed
 * by one tool message per call, and a tool message answers a call of the
 * assistant message before it.
 */
function checkToolCallPairing(messages: readonly Fields[]): void {
  let pending = new Set<string>();
  let pendingAt = -1;
  for (const [index, message] of messages.entries()) {
    if (message['role'] === 'tool') {
      if (!pending.delete(message['tool_call_id'] as string)) {
        throw new WireError(
          400,
          "Invalid parameter: messages with role 'tool' must be a response " +
            "to a preceeding message with 'tool_calls'.",
          { param: `messages.[${index}].role` },
        );
      }
      continue;
    }
    if (pending.size > 0) throw unanswered(pending, pendingAt);
    const calls = message['tool_calls'];
    pending = new Set(
      message['role'] === 'assistant' && Array.isArray(calls)
        ? calls.map((call) => (call as Fields)['id'] as string)
        : [],
    );
    pendingAt = index;
  }
  if (pending.size > 0) throw unanswered(pending, pendingAt);
}

function unanswered(pending: Set<string>, index: number): WireError {
  return new WireError(
    400,
    "An assistant message with 'tool_calls' must be followed by tool " +
      "messages responding to each 'tool_call_id'. The following " +
      `tool_call_ids did not have response messages: ${[...pending].join(', ')}`,
    { param: `messages.[${index}].role`, code: null },
  );
}

function checkTools(fields: Fields): void {
  const tools = fields['tools'];
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) {
      throw invalidValue(
        'tools',
        "Invalid type for 'tools': expected an array.",
      );
    }
    tools.forEach((entry: unknown, index) => {
      const param = `tools[${index}]`;
      const tool = checkObject(entry, param);
      if (tool['type'] === 'custom') return;
      if (tool['type'] !== 'function') {
        throw invalidValue(
          `${param}.type`,
          `Invalid value: '${shown(tool['type'])}'. Supported values are: ` +
            "'function' and 'custom'.",
        );
      }
      const fn = checkObject(tool['function'], `${param}.function`);
      const name = checkString(fn['name'], `${param}.function.name`);
      if (!FUNCTION_NAME.test(name)) {
        throw invalidValue(
          `${param}.function.name`,
          `Invalid '${param}.function.name': string does not match pattern. ` +
            "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
        );
      }
      if (fn['parameters'] !== undefined) {
        checkObject(fn['parameters'], `${param}.function.parameters`);
      }
    });
  }

  const choice = fields['tool_choice'];
  if (choice === undefined || choice === null) return;
  if (!Array.isArray(tools) || tools.length === 0) {
    throw invalidValue(
      'tool_choice',
      "Invalid value for 'tool_choice': 'tool_choice' is only allowed when " +
        "'tools' are specified.",
    );
  }
  if (typeof choice === 'string') {
    if (!['none', 'auto', 'required'].includes(choice)) {
      throw invalidValue(
        'tool_choice',
        `Invalid value: '${choice}'. Supported values are: 'none', 'auto', ` +
          "and 'required'.",
      );
    }
    return;
  }
  const object = checkObject(choice, 'tool_choice');
  if (object['type'] === 'function') {
    const fn = checkObject(object['function'], 'tool_choice.function');
    checkString(fn['name'], 'tool_choice.function.name');
  }
}
