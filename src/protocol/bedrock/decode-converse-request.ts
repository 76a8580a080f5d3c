/**
 * A Bedrock client's Converse request, checked as Bedrock checks it and
 * read into a canonical request.
 *
 * Some valid Converse has no canonical form: cache points, documents,
 * guardrails, prompt variables, model fields other than `thinking`, and
 * more. Reading does not refuse them, because a request to a Bedrock
 * upstream passes its body through untouched and loses nothing. The
 * canonical request leaves them out, and `bedrockUntranslatable` lists
 * them, so the gateway refuses only when it would translate the request
 * for another API.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html#API_runtime_Converse_RequestSyntax
 */
import { isRecord } from '../../metering/usage.js';
import {
  InvalidRequestError,
  UntranslatableError,
  type CanonicalChatRequest,
  type CanonicalMessage,
  type CanonicalTool,
  type ContentBlock,
  type ToolChoice,
} from '../canonical.js';
import {
  decodeConverseBlock,
  unionMember,
  type BlockIssues,
} from './converse-content.js';

/** Every top-level field Converse and ConverseStream take (bar modelId). */
const REQUEST_FIELDS = new Set([
  'messages',
  'system',
  'inferenceConfig',
  'toolConfig',
  'guardrailConfig',
  'additionalModelRequestFields',
  'promptVariables',
  'additionalModelResponseFieldPaths',
  'requestMetadata',
  'performanceConfig',
  'serviceTier',
  'outputConfig',
  'projectIdentifier',
]);

/**
 * Fields that change what the model does or what it costs, which no other
 * API can be told. `requestMetadata` is not among them: it only tags
 * Bedrock's invocation logs.
 */
const UNTRANSLATABLE_FIELDS: Readonly<Record<string, string>> = {
  guardrailConfig: 'Bedrock guardrails',
  promptVariables: 'Bedrock prompt management variables',
  additionalModelResponseFieldPaths: 'additional model response fields',
  performanceConfig: 'Bedrock latency-optimised inference',
  serviceTier: 'Bedrock service tiers',
  outputConfig: 'Bedrock output configuration',
  projectIdentifier: 'Bedrock projects',
};

const INFERENCE_FIELDS = new Set([
  'maxTokens',
  'temperature',
  'topP',
  'stopSequences',
]);

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** A Converse request read, with what it holds that cannot be translated. */
export interface ConverseRequestReading {
  readonly request: CanonicalChatRequest;
  readonly untranslatable: readonly UntranslatableError[];
}

/**
 * Reads a Converse body; throws InvalidRequestError where Bedrock would
 * answer a ValidationException.
 *
 * @param model the `modelId` of the path, URL-decoded
 * @param stream whether the path was `converse-stream`
 */
export function readConverseRequest(
  body: unknown,
  model: string | null,
  stream: boolean,
): ConverseRequestReading {
  const untranslatable: UntranslatableError[] = [];
  const issues: BlockIssues = {
    invalid(message, param, problem = 'invalid_value') {
      throw new InvalidRequestError(problem, message, param);
    },
    untranslatable(message, param) {
      untranslatable.push(new UntranslatableError(message, param));
    },
  };

  if (model === null || model === '') {
    throw new InvalidRequestError(
      'missing_required_parameter',
      'The model id is missing from the path /model/{modelId}/converse',
      'modelId',
    );
  }
  if (!isRecord(body)) {
    throw new InvalidRequestError(
      'invalid_type',
      'The request body must be a JSON object',
    );
  }
  for (const field of Object.keys(body)) {
    if (!REQUEST_FIELDS.has(field)) {
      throw new InvalidRequestError(
        'invalid_value',
        `Unknown field ${field} in the Converse request`,
        field,
      );
    }
    const what = UNTRANSLATABLE_FIELDS[field];
    if (what !== undefined && body[field] !== undefined) {
      issues.untranslatable(
        `${what} have no equivalent in the upstream API`,
        field,
      );
    }
  }

  const inference = readInferenceConfig(body['inferenceConfig'], issues);
  const tools = readToolConfig(body['toolConfig'], issues);
  const thinkingBudgetTokens = readModelFields(
    body['additionalModelRequestFields'],
    issues,
  );

  const request: CanonicalChatRequest = {
    model,
    system: readSystem(body['system'], issues),
    messages: readMessages(body['messages'], issues),
    tools: tools.tools,
    toolChoice: tools.choice,
    maxOutputTokens: inference.maxTokens,
    temperature: inference.temperature,
    topP: inference.topP,
    stopSequences: inference.stopSequences,
    thinkingBudgetTokens,
    stream,
    includeUsage: true,
    endUser: null,
  };
  return { request, untranslatable };
}

function readMessages(value: unknown, issues: BlockIssues): CanonicalMessage[] {
  if (value === undefined) {
    throw new InvalidRequestError(
      'missing_required_parameter',
      'messages is required',
      'messages',
    );
  }
  if (!Array.isArray(value)) {
    issues.invalid('messages must be an array', 'messages', 'invalid_type');
  }
  if (value.length === 0) {
    issues.invalid(
      'A conversation must start with a user message. Try again with a ' +
        'conversation that starts with a user message.',
      'messages',
    );
  }

  return (value as unknown[]).map((message, index) => {
    const param = `messages[${index}]`;
    if (!isRecord(message)) {
      issues.invalid(`${param} must be an object`, param, 'invalid_type');
    }
    const role = message['role'];
    if (role !== 'user' && role !== 'assistant') {
      issues.invalid(
        `${param}.role must be user or assistant`,
        `${param}.role`,
      );
    }
    if (index === 0 && role !== 'user') {
      issues.invalid(
        'A conversation must start with a user message. Try again with a ' +
          'conversation that starts with a user message.',
        `${param}.role`,
      );
    }
    const content = message['content'];
    if (!Array.isArray(content) || content.length === 0) {
      issues.invalid(
        `${param}.content must be a non-empty array`,
        `${param}.content`,
      );
    }
    const blocks: ContentBlock[] = [];
    (content as unknown[]).forEach((block, position) => {
      const decoded = decodeConverseBlock(
        block,
        `${param}.content[${position}]`,
        issues,
      );
      if (decoded !== null) blocks.push(decoded);
    });
    return { role, content: blocks };
  });
}

function readSystem(value: unknown, issues: BlockIssues): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    issues.invalid('system must be an array', 'system', 'invalid_type');
  }
  const members = new Set(['text', 'cachePoint', 'guardContent']);
  const parts: string[] = [];
  (value as unknown[]).forEach((block, index) => {
    const param = `system[${index}]`;
    const member = unionMember(block, members, param, issues);
    if (member.name === 'text') {
      if (typeof member.value !== 'string') {
        issues.invalid(
          `${param}.text must be a string`,
          `${param}.text`,
          'invalid_type',
        );
      }
      parts.push(member.value);
      return;
    }
    issues.untranslatable(
      `${member.name === 'cachePoint' ? 'cache points' : 'guardrail content'}` +
        ' in the system prompt have no equivalent in the upstream API',
      `${param}.${member.name}`,
    );
  });
  return parts;
}

interface Inference {
  readonly maxTokens: number | null;
  readonly temperature: number | null;
  readonly topP: number | null;
  readonly stopSequences: readonly string[];
}

function readInferenceConfig(value: unknown, issues: BlockIssues): Inference {
  if (value === undefined) {
    return {
      maxTokens: null,
      temperature: null,
      topP: null,
      stopSequences: [],
    };
  }
  if (!isRecord(value)) {
    issues.invalid(
      'inferenceConfig must be an object',
      'inferenceConfig',
      'invalid_type',
    );
  }
  for (const field of Object.keys(value)) {
    if (!INFERENCE_FIELDS.has(field)) {
      issues.invalid(
        `Unknown field ${field} in inferenceConfig`,
        `inferenceConfig.${field}`,
      );
    }
  }

  const maxTokens = value['maxTokens'];
  if (
    maxTokens !== undefined &&
    (typeof maxTokens !== 'number' ||
      !Number.isSafeInteger(maxTokens) ||
      maxTokens < 1)
  ) {
    issues.invalid(
      'inferenceConfig.maxTokens must be an integer of at least 1',
      'inferenceConfig.maxTokens',
      typeof maxTokens === 'number' ? 'invalid_value' : 'invalid_type',
    );
  }
  const stop = value['stopSequences'];
  if (
    stop !== undefined &&
    (!Array.isArray(stop) ||
      !stop.every((item) => typeof item === 'string' && item !== ''))
  ) {
    issues.invalid(
      'inferenceConfig.stopSequences must be an array of non-empty strings',
      'inferenceConfig.stopSequences',
      'invalid_type',
    );
  }
  return {
    maxTokens: maxTokens ?? null,
    temperature: unitInterval(value, 'temperature', issues),
    topP: unitInterval(value, 'topP', issues),
    stopSequences: (stop as string[] | undefined) ?? [],
  };
}

function unitInterval(
  config: Record<string, unknown>,
  field: string,
  issues: BlockIssues,
): number | null {
  const value = config[field];
  if (value === undefined) return null;
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    issues.invalid(
      `inferenceConfig.${field} must be a number from 0 to 1`,
      `inferenceConfig.${field}`,
      typeof value === 'number' ? 'invalid_value' : 'invalid_type',
    );
  }
  return value;
}

function readToolConfig(
  value: unknown,
  issues: BlockIssues,
): { tools: CanonicalTool[]; choice: ToolChoice | null } {
  if (value === undefined) return { tools: [], choice: null };
  if (!isRecord(value)) {
    issues.invalid(
      'toolConfig must be an object',
      'toolConfig',
      'invalid_type',
    );
  }
  const list = value['tools'];
  if (!Array.isArray(list) || list.length === 0) {
    issues.invalid(
      'toolConfig.tools must be a non-empty array',
      'toolConfig.tools',
    );
  }

  const members = new Set(['toolSpec', 'cachePoint', 'systemTool']);
  const tools: CanonicalTool[] = [];
  (list as unknown[]).forEach((tool, index) => {
    const param = `toolConfig.tools[${index}]`;
    const member = unionMember(tool, members, param, issues);
    if (member.name !== 'toolSpec') {
      issues.untranslatable(
        `${member.name === 'cachePoint' ? 'cache points' : 'system tools'} ` +
          'among the tools have no equivalent in the upstream API',
        `${param}.${member.name}`,
      );
      return;
    }
    tools.push(readToolSpec(member.value, `${param}.toolSpec`, issues));
  });

  return { tools, choice: readToolChoice(value['toolChoice'], issues) };
}

function readToolSpec(
  value: unknown,
  param: string,
  issues: BlockIssues,
): CanonicalTool {
  if (!isRecord(value)) {
    issues.invalid(`${param} must be an object`, param, 'invalid_type');
  }
  const name = value['name'];
  if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
    issues.invalid(
      `${param}.name must be 1 to 64 letters, digits, _ or -`,
      `${param}.name`,
    );
  }
  const description = value['description'];
  if (description !== undefined && typeof description !== 'string') {
    issues.invalid(
      `${param}.description must be a string`,
      `${param}.description`,
      'invalid_type',
    );
  }
  const schema = unionMember(
    value['inputSchema'],
    new Set(['json']),
    `${param}.inputSchema`,
    issues,
  );
  if (!isRecord(schema.value)) {
    issues.invalid(
      `${param}.inputSchema.json must be a JSON Schema object`,
      `${param}.inputSchema.json`,
      'invalid_type',
    );
  }
  return { name, description: description ?? null, inputSchema: schema.value };
}

function readToolChoice(
  value: unknown,
  issues: BlockIssues,
): ToolChoice | null {
  if (value === undefined) return null;
  const param = 'toolConfig.toolChoice';
  const member = unionMember(
    value,
    new Set(['auto', 'any', 'tool']),
    param,
    issues,
  );
  if (!isRecord(member.value)) {
    issues.invalid(
      `${param}.${member.name} must be an object`,
      `${param}.${member.name}`,
      'invalid_type',
    );
  }
  if (member.name !== 'tool') return { type: member.name as 'auto' | 'any' };
  const name = member.value['name'];
  if (typeof name !== 'string' || name === '') {
    issues.invalid(
      `${param}.tool.name must be a tool's name`,
      `${param}.tool.name`,
    );
  }
  return { type: 'tool', name };
}

/**
 * `additionalModelRequestFields`: Anthropic's `thinking` becomes the
 * canonical thinking budget; any other field is the model's own and is
 * reported as untranslatable.
 */
function readModelFields(value: unknown, issues: BlockIssues): number | null {
  if (value === undefined) return null;
  const param = 'additionalModelRequestFields';
  if (!isRecord(value)) {
    issues.invalid(`${param} must be an object`, param, 'invalid_type');
  }
  for (const field of Object.keys(value)) {
    if (field !== 'thinking') {
      issues.untranslatable(
        `the model field ${field} has no equivalent in the upstream API`,
        `${param}.${field}`,
      );
    }
  }

  const thinking = value['thinking'];
  if (thinking === undefined) return null;
  if (!isRecord(thinking)) {
    issues.invalid(
      `${param}.thinking must be an object`,
      `${param}.thinking`,
      'invalid_type',
    );
  }
  if (thinking['type'] === 'disabled') return null;
  const budget = thinking['budget_tokens'];
  if (
    thinking['type'] !== 'enabled' ||
    typeof budget !== 'number' ||
    !Number.isSafeInteger(budget) ||
    budget < 1
  ) {
    issues.invalid(
      `${param}.thinking must be { type: "enabled", budget_tokens: <integer> }` +
        ' or { type: "disabled" }',
      `${param}.thinking`,
    );
  }
  return budget;
}
