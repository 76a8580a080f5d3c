/**
 * The parts of a Responses API request that another API could not honour,
 * named as the client wrote them; see openai-chat-untranslatable.ts for
 * how the gateway uses the list.
 *
 * State kept at OpenAI (`previous_response_id`, `conversation`, stored
 * prompts, background runs) and hosted tools are the Responses API's own;
 * so are reasoning items, whose encrypted content only OpenAI can read.
 *
 * `strict` is named only when the client sets it: the API defaults it to
 * true, and refusing every function tool on that default would refuse
 * the API's most common request.
 */
import { isRecord } from '../../metering/usage.js';
import { parseArguments } from './request-fields.js';

const PLAIN_TIERS = new Set(['auto', 'default']);

/** Input item types with a canonical form. */
const TRANSLATABLE_ITEMS = new Set([
  'message',
  'function_call',
  'function_call_output',
]);

export function openAIResponsesUntranslatable(body: unknown): string[] {
  if (!isRecord(body)) return [];
  const found: string[] = [];
  const present = (field: string) =>
    body[field] !== undefined && body[field] !== null;

  for (const field of [
    'previous_response_id',
    'conversation',
    'prompt',
    'top_logprobs',
    'max_tool_calls',
  ]) {
    if (present(field)) found.push(field);
  }
  if (body['background'] === true) found.push('background');
  if (body['store'] === true) found.push('store');
  if (body['parallel_tool_calls'] === false) found.push('parallel_tool_calls');
  if (body['truncation'] === 'auto') found.push('truncation');
  if (Array.isArray(body['include']) && body['include'].length > 0) {
    found.push('include');
  }
  const reasoning = body['reasoning'];
  if (
    isRecord(reasoning) &&
    Object.values(reasoning).some((value) => value !== null)
  ) {
    found.push('reasoning');
  }
  const text = body['text'];
  if (isRecord(text)) {
    const format = text['format'];
    if (isRecord(format) && format['type'] !== 'text') {
      found.push('text.format');
    }
    if (text['verbosity'] !== undefined && text['verbosity'] !== null) {
      found.push('text.verbosity');
    }
  }
  if (
    typeof body['service_tier'] === 'string' &&
    !PLAIN_TIERS.has(body['service_tier'])
  ) {
    found.push('service_tier');
  }
  if (isRecord(body['tool_choice'])) {
    if (body['tool_choice']['type'] !== 'function') found.push('tool_choice');
  }

  if (Array.isArray(body['tools'])) {
    body['tools'].forEach((tool: unknown, index) => {
      if (!isRecord(tool)) return;
      if (tool['type'] !== 'function') found.push(`tools[${index}].type`);
      else if (tool['strict'] === true) found.push(`tools[${index}].strict`);
    });
  }
  if (Array.isArray(body['input'])) {
    found.push(...untranslatableItems(body['input']));
  }
  return found;
}

function untranslatableItems(items: readonly unknown[]): string[] {
  const found: string[] = [];
  let conversationStarted = false;
  items.forEach((item: unknown, index) => {
    if (!isRecord(item)) return;
    const param = `input[${index}]`;
    const type = item['type'] ?? 'message';
    if (typeof type !== 'string' || !TRANSLATABLE_ITEMS.has(type)) {
      found.push(`${param}.type`);
      return;
    }
    const role = item['role'];
    if (type === 'message' && (role === 'system' || role === 'developer')) {
      // Other APIs hold one system prompt ahead of the conversation.
      if (conversationStarted) found.push(`${param}.role`);
    } else {
      conversationStarted = true;
    }
    if (type === 'function_call') {
      const args = item['arguments'];
      if (typeof args === 'string' && parseArguments(args) === null) {
        found.push(`${param}.arguments`);
      }
    }
    const parts =
      type === 'function_call_output' ? item['output'] : item['content'];
    if (Array.isArray(parts)) {
      parts.forEach((part: unknown, partIndex) => {
        if (!isRecord(part)) return;
        const partType = part['type'];
        const lost =
          partType === 'input_file' ||
          partType === 'input_audio' ||
          (partType === 'input_image' && typeof part['image_url'] !== 'string');
        if (lost) {
          const field = type === 'function_call_output' ? 'output' : 'content';
          found.push(`${param}.${field}[${partIndex}]`);
        }
      });
    }
  });
  return found;
}
