/**
 * A Responses API request body (`POST /v1/responses`) → the canonical
 * request.
 *
 * As with Chat Completions, the decoder accepts what OpenAI accepts and
 * leaves out what the canonical form cannot hold (reasoning items, hosted
 * tools, stored conversations…); `openAIResponsesUntranslatable` names
 * those before a translation.
 *
 * Items map onto turns: messages by role, `function_call` items into the
 * assistant turn, `function_call_output` items into a user turn of tool
 * results; consecutive items of one side share a turn.
 *
 * @see https://platform.openai.com/docs/api-reference/responses/create
 */
import type {
  CanonicalChatRequest,
  CanonicalMessage,
  CanonicalTool,
  ContentBlock,
  ToolChoice,
} from '../canonical.js';
import {
  imageSource,
  invalidType,
  invalidValue,
  missing,
  openAIEndUser,
  optionalBoolean,
  optionalCount,
  optionalNumber,
  optionalString,
  parseArguments,
  requireObject,
  requireString,
  type Fields,
} from './request-fields.js';

type ToolResultPart = Extract<
  ContentBlock,
  { type: 'tool_result' }
>['content'][number];

export function decodeOpenAIResponsesRequest(
  body: unknown,
  model: string | null,
): CanonicalChatRequest {
  const fields = requireObject(body, 'body');
  const resolvedModel = model ?? optionalString(fields, 'model');
  if (resolvedModel === null) throw missing('model');

  const system: string[] = [];
  const instructions = optionalString(fields, 'instructions');
  if (instructions !== null) system.push(instructions);
  const messages = decodeInput(fields['input'], system);

  return {
    model: resolvedModel,
    system,
    messages,
    tools: decodeTools(fields['tools']),
    toolChoice: decodeToolChoice(fields['tool_choice']),
    maxOutputTokens: optionalCount(fields, 'max_output_tokens'),
    temperature: optionalNumber(fields, 'temperature'),
    topP: optionalNumber(fields, 'top_p'),
    // The Responses API has no stop sequences.
    stopSequences: [],
    // `reasoning.effort` is no token budget; it is named untranslatable.
    thinkingBudgetTokens: null,
    stream: optionalBoolean(fields, 'stream') ?? false,
    // Usage always comes, in `response.completed`.
    includeUsage: true,
    endUser: openAIEndUser(fields),
  };
}

function decodeInput(input: unknown, system: string[]): CanonicalMessage[] {
  if (input === undefined || input === null) return [];
  if (typeof input === 'string') {
    return [{ role: 'user', content: [{ type: 'text', text: input }] }];
  }
  if (!Array.isArray(input)) {
    throw invalidType('input', 'a string or an array of items', input);
  }

  const messages: { role: 'user' | 'assistant'; content: ContentBlock[] }[] =
    [];
  /** Appends to the last turn when it is the same side, else opens one. */
  const turn = (role: 'user' | 'assistant', blocks: ContentBlock[]) => {
    const last = messages.at(-1);
    const lastIsToolResults =
      last?.content.every((block) => block.type === 'tool_result') ?? false;
    const joins =
      last?.role === role &&
      (role === 'assistant' ||
        (lastIsToolResults &&
          blocks.every((block) => block.type === 'tool_result')));
    if (last !== undefined && joins) last.content.push(...blocks);
    else messages.push({ role, content: blocks });
  };

  input.forEach((entry: unknown, index) => {
    const param = `input[${index}]`;
    const item = requireObject(entry, param);
    const type = optionalString(item, 'type', `${param}.`) ?? 'message';
    switch (type) {
      case 'message': {
        const role = requireString(item, 'role', `${param}.`);
        if (role === 'system' || role === 'developer') {
          system.push(...inputTexts(item['content'], `${param}.content`));
        } else if (role === 'user') {
          turn('user', userContent(item['content'], `${param}.content`));
        } else if (role === 'assistant') {
          turn('assistant', assistantContent(item['content'], param));
        } else {
          throw invalidValue(
            `${param}.role`,
            `Invalid value: '${role}'. Supported values are: 'assistant', ` +
              "'system', 'developer', and 'user'.",
          );
        }
        break;
      }
      case 'function_call': {
        const args = requireString(item, 'arguments', `${param}.`);
        turn('assistant', [
          {
            type: 'tool_use',
            id: requireString(item, 'call_id', `${param}.`),
            name: requireString(item, 'name', `${param}.`),
            // Arguments that are not a JSON object are named untranslatable.
            input: parseArguments(args) ?? {},
          },
        ]);
        break;
      }
      case 'function_call_output':
        turn('user', [
          {
            type: 'tool_result',
            toolUseId: requireString(item, 'call_id', `${param}.`),
            content: toolOutput(item['output'], `${param}.output`),
            isError: false,
          },
        ]);
        break;
      default:
      // reasoning, item_reference, hosted tool calls: no canonical form,
      // named by openAIResponsesUntranslatable.
    }
  });
  return messages;
}

function inputTexts(content: unknown, param: string): string[] {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) {
    throw invalidType(param, 'a string or an array of parts', content);
  }
  return content.flatMap((entry: unknown, index) => {
    const part = requireObject(entry, `${param}[${index}]`);
    return part['type'] === 'input_text'
      ? [requireString(part, 'text', `${param}[${index}].`)]
      : [];
  });
}

function userContent(content: unknown, param: string): ContentBlock[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (!Array.isArray(content)) {
    throw invalidType(param, 'a string or an array of parts', content);
  }
  const blocks: ContentBlock[] = [];
  content.forEach((entry: unknown, index) => {
    const partParam = `${param}[${index}]`;
    const part = requireObject(entry, partParam);
    const type = requireString(part, 'type', `${partParam}.`);
    if (type === 'input_text') {
      blocks.push({
        type: 'text',
        text: requireString(part, 'text', `${partParam}.`),
      });
    } else if (type === 'input_image') {
      const url = optionalString(part, 'image_url', `${partParam}.`);
      // An uploaded `file_id` has no canonical form (named untranslatable).
      if (url !== null)
        blocks.push({ type: 'image', source: imageSource(url) });
    } else if (type !== 'input_file' && type !== 'input_audio') {
      throw invalidValue(
        `${partParam}.type`,
        `Invalid value: '${type}'. Supported values are: 'input_text', ` +
          "'input_image', 'input_file', and 'input_audio'.",
      );
    }
  });
  return blocks;
}

function assistantContent(content: unknown, param: string): ContentBlock[] {
  if (typeof content === 'string') {
    return content === '' ? [] : [{ type: 'text', text: content }];
  }
  if (!Array.isArray(content)) {
    throw invalidType(`${param}.content`, 'a string or an array', content);
  }
  return content.map((entry: unknown, index): ContentBlock => {
    const partParam = `${param}.content[${index}]`;
    const part = requireObject(entry, partParam);
    const type = requireString(part, 'type', `${partParam}.`);
    if (type === 'output_text' || type === 'input_text') {
      return {
        type: 'text',
        text: requireString(part, 'text', `${partParam}.`),
      };
    }
    if (type === 'refusal') {
      return {
        type: 'text',
        text: requireString(part, 'refusal', `${partParam}.`),
      };
    }
    throw invalidValue(
      `${partParam}.type`,
      `Invalid value: '${type}'. Supported values are: 'output_text' and ` +
        "'refusal'.",
    );
  });
}

/** A function's output: text, or a list of text and image parts. */
function toolOutput(output: unknown, param: string): ToolResultPart[] {
  if (typeof output === 'string') return [{ type: 'text', text: output }];
  if (!Array.isArray(output)) {
    throw invalidType(param, 'a string or an array of parts', output);
  }
  return output.flatMap((entry: unknown, index): ToolResultPart[] => {
    const part: Fields = requireObject(entry, `${param}[${index}]`);
    if (part['type'] === 'input_text') {
      return [
        {
          type: 'text',
          text: requireString(part, 'text', `${param}[${index}].`),
        },
      ];
    }
    const url = part['type'] === 'input_image' ? part['image_url'] : null;
    return typeof url === 'string'
      ? [{ type: 'image', source: imageSource(url) }]
      : [];
  });
}

function decodeTools(value: unknown): CanonicalTool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidType('tools', 'an array', value);
  return value.flatMap((entry: unknown, index): CanonicalTool[] => {
    const param = `tools[${index}]`;
    const tool = requireObject(entry, param);
    // Hosted tools (web search, file search…) are named untranslatable.
    if (tool['type'] !== 'function') return [];
    const parameters = tool['parameters'];
    return [
      {
        name: requireString(tool, 'name', `${param}.`),
        description: optionalString(tool, 'description', `${param}.`),
        inputSchema:
          parameters === undefined || parameters === null
            ? { type: 'object', properties: {} }
            : requireObject(parameters, `${param}.parameters`),
      },
    ];
  });
}

function decodeToolChoice(value: unknown): ToolChoice | null {
  if (value === undefined || value === null) return null;
  if (value === 'auto' || value === 'none') return { type: value };
  if (value === 'required') return { type: 'any' };
  if (typeof value === 'string') {
    throw invalidValue(
      'tool_choice',
      `Invalid value: '${value}'. Supported values are: 'none', 'auto', ` +
        "and 'required'.",
    );
  }
  const choice = requireObject(value, 'tool_choice');
  if (choice['type'] === 'function') {
    return {
      type: 'tool',
      name: requireString(choice, 'name', 'tool_choice.'),
    };
  }
  // allowed_tools, hosted tools, custom: named untranslatable.
  return null;
}
