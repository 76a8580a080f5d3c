/**
 * The fake's check of a Responses API body (`POST /v1/responses`): the
 * input items and their content parts, function call outputs answering a
 * function call, tools, and the API's floor of 16 on `max_output_tokens`.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/create
 */
import { WireError } from '../../providers/simulated/wire-error.js';
import {
  checkCount,
  checkObject,
  checkStreamOptions,
  checkString,
  invalidValue,
  missingParam,
  shown,
  type Fields,
} from './wire-checks.js';

/** Content part types each message role may send. */
const PART_TYPES: Readonly<Record<string, readonly string[]>> = {
  user: ['input_text', 'input_image', 'input_file', 'input_audio'],
  system: ['input_text'],
  developer: ['input_text'],
  assistant: ['output_text', 'refusal'],
};

/** Item types the fake accepts without looking inside. */
const OPAQUE_ITEMS = new Set([
  'reasoning',
  'item_reference',
  'custom_tool_call',
  'custom_tool_call_output',
  'web_search_call',
  'file_search_call',
  'computer_call',
  'computer_call_output',
]);

/** Responses refuses a smaller output cap. */
const MIN_OUTPUT_TOKENS = 16;

export interface CheckedResponsesRequest {
  readonly model: string;
  readonly stream: boolean;
  readonly maxOutputTokens: number | null;
  /** Every text the input and instructions carry, for the token estimate. */
  readonly texts: readonly string[];
}

export function validateResponsesRequest(
  body: unknown,
): CheckedResponsesRequest {
  const fields = checkObject(body, 'body');
  const model = fields['model'];
  if (model === undefined || model === null) {
    throw new WireError(400, 'you must provide a model parameter');
  }
  checkString(model, 'model');
  const stream = fields['stream'] === true;
  checkStreamOptions(fields, stream);

  const texts: string[] = [];
  const instructions = fields['instructions'];
  if (instructions !== undefined && instructions !== null) {
    texts.push(checkString(instructions, 'instructions'));
  }
  const input = fields['input'];
  if (typeof input === 'string') {
    texts.push(input);
  } else if (Array.isArray(input)) {
    checkItems(input, texts, fields['previous_response_id'] !== undefined);
  } else if (input !== undefined && input !== null) {
    throw invalidValue(
      'input',
      "Invalid type for 'input': expected one of a string or array of " +
        'input items.',
    );
  }
  checkTools(fields['tools']);

  return {
    model: model as string,
    stream,
    maxOutputTokens: checkCount(fields, 'max_output_tokens', MIN_OUTPUT_TOKENS),
    texts,
  };
}

function checkItems(
  items: readonly unknown[],
  texts: string[],
  continues: boolean,
): void {
  const calls = new Set<string>();
  items.forEach((entry: unknown, index) => {
    const param = `input[${index}]`;
    const item = checkObject(entry, param);
    const type = item['type'] ?? 'message';
    switch (type) {
      case 'message':
        checkMessage(item, param, texts);
        break;
      case 'function_call':
        calls.add(checkString(item['call_id'], `${param}.call_id`));
        checkString(item['name'], `${param}.name`);
        checkString(item['arguments'], `${param}.arguments`);
        break;
      case 'function_call_output': {
        const callId = checkString(item['call_id'], `${param}.call_id`);
        const output = item['output'];
        if (typeof output === 'string') texts.push(output);
        else if (!Array.isArray(output)) checkString(output, `${param}.output`);
        // A call made in an earlier, stored response is out of sight.
        if (!continues && !calls.has(callId)) {
          throw new WireError(
            400,
            `No tool call found for function call output with call_id ${callId}.`,
            { param: 'input' },
          );
        }
        break;
      }
      default:
        if (typeof type !== 'string' || !OPAQUE_ITEMS.has(type)) {
          throw invalidValue(
            `${param}.type`,
            `Invalid value: '${shown(type)}'.`,
          );
        }
    }
  });
}

function checkMessage(item: Fields, param: string, texts: string[]): void {
  const role = item['role'];
  if (role === undefined || role === null) throw missingParam(`${param}.role`);
  const allowed = typeof role === 'string' ? PART_TYPES[role] : undefined;
  if (allowed === undefined) {
    throw invalidValue(
      `${param}.role`,
      `Invalid value: '${shown(role)}'. Supported values are: 'assistant', ` +
        "'system', 'developer', and 'user'.",
    );
  }
  const content = item['content'];
  if (typeof content === 'string') {
    texts.push(content);
    return;
  }
  if (!Array.isArray(content)) {
    throw invalidValue(
      `${param}.content`,
      `Invalid type for '${param}.content': expected one of a string or ` +
        'array of content parts.',
    );
  }
  content.forEach((entry: unknown, index) => {
    const partParam = `${param}.content[${index}]`;
    const part = checkObject(entry, partParam);
    const type = part['type'];
    if (typeof type !== 'string' || !allowed.includes(type)) {
      throw invalidValue(
        `${partParam}.type`,
        `Invalid value: '${shown(type)}'. Supported values are: ` +
          `${allowed.map((name) => `'${name}'`).join(', ')}.`,
      );
    }
    if (type === 'input_text' || type === 'output_text') {
      texts.push(checkString(part['text'], `${partParam}.text`));
    } else if (type === 'refusal') {
      checkString(part['refusal'], `${partParam}.refusal`);
    } else if (type === 'input_image') {
      if (part['image_url'] === undefined && part['file_id'] === undefined) {
        throw missingParam(`${partParam}.image_url`);
      }
    }
  });
}

function checkTools(tools: unknown): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) {
    throw invalidValue('tools', "Invalid type for 'tools': expected an array.");
  }
  tools.forEach((entry: unknown, index) => {
    const param = `tools[${index}]`;
    const tool = checkObject(entry, param);
    checkString(tool['type'], `${param}.type`);
    if (tool['type'] === 'function') {
      // Responses flattens the function: no `function` wrapper.
      checkString(tool['name'], `${param}.name`);
      if (tool['parameters'] !== undefined && tool['parameters'] !== null) {
        checkObject(tool['parameters'], `${param}.parameters`);
      }
    }
  });
}
