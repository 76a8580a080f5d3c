/**
 * A Chat Completions request body → the canonical request.
 *
 * The decoder accepts every body OpenAI accepts, because a request routed
 * to an OpenAI-family upstream is forwarded as the client sent it and the
 * canonical form only serves the gateway's own reading (limits, the end
 * user). What the canonical form cannot hold (audio parts, `n`, logprobs…)
 * is left out here and named by `openAIChatUntranslatable`, which the
 * gateway consults before translating to another API.
 *
 * @see https://platform.openai.com/docs/api-reference/chat/create
 */
import type {
  CanonicalChatRequest,
  CanonicalMessage,
  CanonicalTool,
  ContentBlock,
  ToolChoice,
} from '../canonical.js';
import { readChatAdmissionFields } from './chat-admission-fields.js';
import {
  imageSource,
  invalidType,
  invalidValue,
  missing,
  optionalNumber,
  optionalString,
  parseArguments,
  requireObject,
  requireString,
  stopSequences,
  type Fields,
} from './request-fields.js';

const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'];

type ToolResultBlock = Extract<ContentBlock, { type: 'tool_result' }>;
type ToolResultPart = ToolResultBlock['content'][number];

export function decodeOpenAIChatRequest(
  body: unknown,
  model: string | null,
): CanonicalChatRequest {
  const fields = requireObject(body, 'body');
  const bodyModel = optionalString(fields, 'model');
  const resolvedModel = model ?? bodyModel;
  if (resolvedModel === null) throw missing('model');

  // Read as parseChatRequest reads them: either path admits alike.
  const admission = readChatAdmissionFields(fields);

  const { system, messages } = decodeMessages(fields['messages']);
  return {
    model: resolvedModel,
    system,
    messages,
    tools: decodeTools(fields['tools']),
    toolChoice: decodeToolChoice(fields['tool_choice']),
    // The cap sent to another API. Passed through, the body is bounded
    // by `outputBound` instead (handle-inference.ts).
    maxOutputTokens: admission.outputCap,
    temperature: optionalNumber(fields, 'temperature'),
    topP: optionalNumber(fields, 'top_p'),
    stopSequences: stopSequences(fields, 'stop'),
    // Chat Completions has `reasoning_effort`, not a token budget; it is
    // named by openAIChatUntranslatable instead.
    thinkingBudgetTokens: null,
    stream: admission.stream,
    includeUsage: admission.includeUsage,
    endUser: admission.endUser,
  };
}

function decodeMessages(value: unknown): {
  system: string[];
  messages: CanonicalMessage[];
} {
  if (value === undefined || value === null) throw missing('messages');
  if (!Array.isArray(value)) {
    throw invalidType('messages', 'an array of objects', value);
  }
  if (value.length === 0) {
    throw invalidValue(
      'messages',
      "Invalid 'messages': empty array. Expected an array with minimum " +
        'length 1, but got an empty array instead.',
    );
  }

  const system: string[] = [];
  const messages: CanonicalMessage[] = [];
  // Consecutive tool messages answer one assistant turn: one user turn.
  let toolResults: ToolResultBlock[] | null = null;

  value.forEach((entry: unknown, index) => {
    const param = `messages[${index}]`;
    const message = requireObject(entry, param);
    const role = requireString(message, 'role', `${param}.`);
    if (!ROLES.includes(role)) {
      throw invalidValue(
        `${param}.role`,
        `Invalid value: '${role}'. Supported values are: 'system', ` +
          "'assistant', 'user', 'function', 'tool', and 'developer'.",
      );
    }
    if (role !== 'tool') toolResults = null;

    switch (role) {
      case 'system':
      case 'developer':
        system.push(...textParts(message['content'], `${param}.content`));
        break;
      case 'user':
        messages.push({
          role: 'user',
          content: userContent(message['content'], `${param}.content`),
        });
        break;
      case 'assistant':
        messages.push({
          role: 'assistant',
          content: assistantContent(message, param),
        });
        break;
      case 'tool': {
        const result: ToolResultBlock = {
          type: 'tool_result',
          toolUseId: requireString(message, 'tool_call_id', `${param}.`),
          content: textParts(message['content'], `${param}.content`).map(
            (text): ToolResultPart => ({ type: 'text', text }),
          ),
          isError: false,
        };
        if (toolResults === null) {
          toolResults = [result];
          messages.push({ role: 'user', content: toolResults });
        } else {
          toolResults.push(result);
        }
        break;
      }
      // 'function' (the pre-tools API) has no canonical form; it is
      // named by openAIChatUntranslatable.
    }
  });
  return { system, messages };
}

/** Content that may only hold text: a string or an array of text parts. */
function textParts(content: unknown, param: string): string[] {
  if (typeof content === 'string') return [content];
  if (content === undefined || content === null) return [];
  if (!Array.isArray(content)) {
    throw invalidType(param, 'a string or an array of text parts', content);
  }
  return content.map((entry: unknown, index) => {
    const part = requireObject(entry, `${param}[${index}]`);
    const type = requireString(part, 'type', `${param}[${index}].`);
    if (type !== 'text') {
      throw invalidValue(
        `${param}[${index}].type`,
        `Invalid value: '${type}'. Supported values are: 'text'.`,
      );
    }
    return requireString(part, 'text', `${param}[${index}].`);
  });
}

function userContent(content: unknown, param: string): ContentBlock[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  if (content === undefined || content === null) throw missing(param);
  if (!Array.isArray(content)) {
    throw invalidType(param, 'a string or an array of parts', content);
  }

  const blocks: ContentBlock[] = [];
  content.forEach((entry: unknown, index) => {
    const partParam = `${param}[${index}]`;
    const part = requireObject(entry, partParam);
    const type = requireString(part, 'type', `${partParam}.`);
    switch (type) {
      case 'text':
        blocks.push({
          type: 'text',
          text: requireString(part, 'text', `${partParam}.`),
        });
        break;
      case 'image_url': {
        const image = requireObject(
          part['image_url'],
          `${partParam}.image_url`,
        );
        const url = requireString(image, 'url', `${partParam}.image_url.`);
        blocks.push({ type: 'image', source: imageSource(url) });
        break;
      }
      case 'input_audio':
      case 'file':
        // Accepted by OpenAI; untranslatable elsewhere (named there).
        break;
      default:
        throw invalidValue(
          `${partParam}.type`,
          `Invalid value: '${type}'. Supported values are: 'text', ` +
            "'image_url', 'input_audio', and 'file'.",
        );
    }
  });
  return blocks;
}

function assistantContent(message: Fields, param: string): ContentBlock[] {
  const blocks: ContentBlock[] = [];
  const content = message['content'];
  if (typeof content === 'string') {
    if (content !== '') blocks.push({ type: 'text', text: content });
  } else if (Array.isArray(content)) {
    content.forEach((entry: unknown, index) => {
      const partParam = `${param}.content[${index}]`;
      const part = requireObject(entry, partParam);
      const type = requireString(part, 'type', `${partParam}.`);
      if (type !== 'text' && type !== 'refusal') {
        throw invalidValue(
          `${partParam}.type`,
          `Invalid value: '${type}'. Supported values are: 'text' and ` +
            "'refusal'.",
        );
      }
      blocks.push({
        type: 'text',
        text: requireString(part, type, `${partParam}.`),
      });
    });
  } else if (content !== undefined && content !== null) {
    throw invalidType(`${param}.content`, 'a string or an array', content);
  }

  const toolCalls = message['tool_calls'];
  if (toolCalls === undefined || toolCalls === null) return blocks;
  if (!Array.isArray(toolCalls)) {
    throw invalidType(`${param}.tool_calls`, 'an array', toolCalls);
  }
  toolCalls.forEach((entry: unknown, index) => {
    const callParam = `${param}.tool_calls[${index}]`;
    const call = requireObject(entry, callParam);
    const type = requireString(call, 'type', `${callParam}.`);
    if (type !== 'function') return; // custom tool calls: untranslatable
    const fn = requireObject(call['function'], `${callParam}.function`);
    const args = requireString(fn, 'arguments', `${callParam}.function.`);
    blocks.push({
      type: 'tool_use',
      id: requireString(call, 'id', `${callParam}.`),
      name: requireString(fn, 'name', `${callParam}.function.`),
      // OpenAI stores any string; one that is not a JSON object cannot be
      // translated and is named by openAIChatUntranslatable.
      input: parseArguments(args) ?? {},
    });
  });
  return blocks;
}

function decodeTools(value: unknown): CanonicalTool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidType('tools', 'an array', value);

  const tools: CanonicalTool[] = [];
  value.forEach((entry: unknown, index) => {
    const param = `tools[${index}]`;
    const tool = requireObject(entry, param);
    const type = requireString(tool, 'type', `${param}.`);
    if (type !== 'function') return; // custom tools: untranslatable
    const fn = requireObject(tool['function'], `${param}.function`);
    const parameters = fn['parameters'];
    tools.push({
      name: requireString(fn, 'name', `${param}.function.`),
      description: optionalString(fn, 'description', `${param}.function.`),
      // OpenAI reads absent parameters as a function taking none.
      inputSchema:
        parameters === undefined || parameters === null
          ? { type: 'object', properties: {} }
          : requireObject(parameters, `${param}.function.parameters`),
    });
  });
  return tools;
}

function decodeToolChoice(value: unknown): ToolChoice | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') {
    switch (value) {
      case 'auto':
        return { type: 'auto' };
      case 'none':
        return { type: 'none' };
      case 'required':
        return { type: 'any' };
    }
    throw invalidValue(
      'tool_choice',
      `Invalid value: '${value}'. Supported values are: 'none', 'auto', ` +
        "and 'required'.",
    );
  }
  const choice = requireObject(value, 'tool_choice');
  if (choice['type'] === 'function') {
    const fn = requireObject(choice['function'], 'tool_choice.function');
    return {
      type: 'tool',
      name: requireString(fn, 'name', 'tool_choice.function.'),
    };
  }
  // allowed_tools and custom: untranslatable, named there.
  return null;
}
