/**
 * The parts of a Chat Completions request that another API could not
 * honour, named as the client wrote them. The gateway refuses to translate
 * a request that has any (DESIGN.md: refuse, never drop), while the same
 * request passes untouched to an OpenAI-family upstream.
 *
 * Left off on purpose, as hints whose loss changes no contract with the
 * client: `seed` (best effort even at OpenAI), `metadata`,
 * `prompt_cache_key` and `prompt_cache_retention` (cache routing),
 * `stream_options.include_obfuscation`, image `detail`.
 */
import { isRecord } from '../../metering/usage.js';
import { parseArguments } from './request-fields.js';

/** Service tiers every upstream serves alike. */
const PLAIN_TIERS = new Set(['auto', 'default']);

/**
 * Each field is listed with why it is kept: every entry is a promise the
 * client relies on that a non-OpenAI upstream cannot keep.
 */
export function openAIChatUntranslatable(body: unknown): string[] {
  if (!isRecord(body)) return [];
  const found: string[] = [];
  const present = (field: string) =>
    body[field] !== undefined && body[field] !== null;

  if (typeof body['n'] === 'number' && body['n'] > 1) found.push('n');
  if (body['logprobs'] === true) found.push('logprobs');
  if (present('top_logprobs')) found.push('top_logprobs');
  if (present('logit_bias')) found.push('logit_bias');
  for (const field of ['frequency_penalty', 'presence_penalty']) {
    if (present(field) && body[field] !== 0) found.push(field);
  }
  if (isRecord(body['response_format'])) {
    if (body['response_format']['type'] !== 'text') {
      found.push('response_format');
    }
  }
  if (present('audio')) found.push('audio');
  if (
    Array.isArray(body['modalities']) &&
    body['modalities'].some((modality) => modality !== 'text')
  ) {
    found.push('modalities');
  }
  for (const field of [
    'prediction',
    'reasoning_effort',
    'verbosity',
    'web_search_options',
    'functions',
    'function_call',
  ]) {
    if (present(field)) found.push(field);
  }
  if (body['parallel_tool_calls'] === false) found.push('parallel_tool_calls');
  if (body['store'] === true) found.push('store');
  if (
    typeof body['service_tier'] === 'string' &&
    !PLAIN_TIERS.has(body['service_tier'])
  ) {
    found.push('service_tier');
  }
  if (isRecord(body['tool_choice'])) {
    if (body['tool_choice']['type'] !== 'function') found.push('tool_choice');
  }

  found.push(...untranslatableTools(body['tools']));
  found.push(...untranslatableMessages(body['messages']));
  return found;
}

function untranslatableTools(tools: unknown): string[] {
  if (!Array.isArray(tools)) return [];
  const found: string[] = [];
  tools.forEach((tool: unknown, index) => {
    if (!isRecord(tool)) return;
    if (tool['type'] !== 'function') {
      found.push(`tools[${index}].type`);
    } else if (isRecord(tool['function']) && tool['function']['strict']) {
      // Strict mode guarantees arguments that match the schema; other
      // APIs only try.
      found.push(`tools[${index}].function.strict`);
    }
  });
  return found;
}

function untranslatableMessages(messages: unknown): string[] {
  if (!Array.isArray(messages)) return [];
  const found: string[] = [];
  let conversationStarted = false;

  messages.forEach((message: unknown, index) => {
    if (!isRecord(message)) return;
    const param = `messages[${index}]`;
    const role = message['role'];

    if (role === 'system' || role === 'developer') {
      // Other APIs hold one system prompt ahead of the conversation.
      if (conversationStarted) found.push(`${param}.role`);
    } else {
      conversationStarted = true;
    }
    if (role === 'function') found.push(`${param}.role`);
    if (typeof message['name'] === 'string') found.push(`${param}.name`);
    if (message['audio'] !== undefined && message['audio'] !== null) {
      found.push(`${param}.audio`);
    }
    if (
      message['function_call'] !== undefined &&
      message['function_call'] !== null
    ) {
      found.push(`${param}.function_call`);
    }

    const content = message['content'];
    if (Array.isArray(content)) {
      content.forEach((part: unknown, partIndex) => {
        if (!isRecord(part)) return;
        if (part['type'] === 'input_audio' || part['type'] === 'file') {
          found.push(`${param}.content[${partIndex}]`);
        }
      });
    }

    const toolCalls = message['tool_calls'];
    if (Array.isArray(toolCalls)) {
      toolCalls.forEach((call: unknown, callIndex) => {
        if (!isRecord(call)) return;
        const callParam = `${param}.tool_calls[${callIndex}]`;
        if (call['type'] !== 'function') {
          found.push(`${callParam}.type`);
          return;
        }
        const fn = call['function'];
        const args = isRecord(fn) ? fn['arguments'] : undefined;
        if (typeof args === 'string' && parseArguments(args) === null) {
          // Other APIs carry tool input as a JSON object.
          found.push(`${callParam}.function.arguments`);
        }
      });
    }
  });
  return found;
}
