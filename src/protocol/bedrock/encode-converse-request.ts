/**
 * A canonical chat request as a Converse request body.
 *
 * The body is Bedrock's REST JSON (blobs as base64 strings), without
 * `modelId`: the model goes in the URL path, `/model/{modelId}/converse`.
 * It is the same form a Bedrock client sends the gateway, so a body
 * passed through from a Bedrock client and one translated here reach
 * `BedrockClient` alike.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html
 */
import {
  UntranslatableError,
  type CanonicalChatRequest,
  type CanonicalMessage,
  type ContentBlock,
  type ToolChoice,
} from '../canonical.js';

type Json = Record<string, unknown>;

/** Converse's image formats, by media type. */
const IMAGE_FORMATS: Readonly<Record<string, string>> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

/**
 * Anthropic models on Bedrock, by model id, inference profile
 * (`us.anthropic.…`) or ARN: the only ones that take a thinking budget.
 */
const ANTHROPIC_MODEL = /(?:^|[./:])anthropic\./;

export function encodeConverseRequest(
  request: CanonicalChatRequest,
  upstreamModel: string,
): Json {
  const body: Json = {
    messages: request.messages.map(encodeMessage),
  };
  if (request.system.length > 0) {
    body['system'] = request.system.map((text) => ({ text }));
  }

  const inference = inferenceConfig(request);
  if (inference !== undefined) body['inferenceConfig'] = inference;

  const tools = toolConfig(request.tools, request.toolChoice);
  if (tools !== undefined) body['toolConfig'] = tools;

  if (request.thinkingBudgetTokens !== null) {
    if (!ANTHROPIC_MODEL.test(upstreamModel)) {
      throw new UntranslatableError(
        `${upstreamModel} on Bedrock takes no thinking budget: only ` +
          'Anthropic models accept one through Converse',
        'thinking',
      );
    }
    body['additionalModelRequestFields'] = {
      thinking: {
        type: 'enabled',
        budget_tokens: request.thinkingBudgetTokens,
      },
    };
  }
  return body;
}

function encodeMessage(message: CanonicalMessage, index: number): Json {
  return {
    role: message.role,
    content: message.content.map((block, position) =>
      encodeBlock(block, `messages[${index}].content[${position}]`),
    ),
  };
}

function encodeBlock(block: ContentBlock, param: string): Json {
  switch (block.type) {
    case 'text':
      return { text: block.text };
    case 'image':
      return { image: encodeImage(block, param) };
    case 'tool_use':
      return {
        toolUse: { toolUseId: block.id, name: block.name, input: block.input },
      };
    case 'tool_result':
      return {
        toolResult: {
          toolUseId: block.toolUseId,
          content: block.content.map((part, position) =>
            part.type === 'text'
              ? { text: part.text }
              : { image: encodeImage(part, `${param}.content[${position}]`) },
          ),
          // Only some models take a status; it is sent only where it
          // carries news, so a success reads the same to every model.
          ...(block.isError && { status: 'error' }),
        },
      };
    case 'thinking':
      return {
        reasoningContent: {
          reasoningText: {
            text: block.text,
            ...(block.signature !== null && { signature: block.signature }),
          },
        },
      };
  }
}

function encodeImage(
  block: Extract<ContentBlock, { type: 'image' }>,
  param: string,
): Json {
  const { source } = block;
  if (source.kind === 'url') {
    throw new UntranslatableError(
      'Bedrock Converse takes images only as bytes, not by URL',
      param,
    );
  }
  const format = IMAGE_FORMATS[source.mediaType.toLowerCase()];
  if (format === undefined) {
    throw new UntranslatableError(
      `Bedrock Converse takes png, jpeg, gif and webp images, not ` +
        source.mediaType,
      param,
    );
  }
  return { format, source: { bytes: source.data } };
}

function inferenceConfig(request: CanonicalChatRequest): Json | undefined {
  const config: Json = {};
  if (request.maxOutputTokens !== null) {
    config['maxTokens'] = request.maxOutputTokens;
  }
  if (request.temperature !== null) config['temperature'] = request.temperature;
  if (request.topP !== null) config['topP'] = request.topP;
  if (request.stopSequences.length > 0) {
    config['stopSequences'] = [...request.stopSequences];
  }
  return Object.keys(config).length > 0 ? config : undefined;
}

function toolConfig(
  tools: CanonicalChatRequest['tools'],
  choice: ToolChoice | null,
): Json | undefined {
  if (tools.length === 0) {
    if (choice?.type === 'any' || choice?.type === 'tool') {
      throw new UntranslatableError(
        'a tool choice that forces a tool needs tools to choose from',
        'tool_choice',
      );
    }
    return undefined;
  }
  if (choice?.type === 'none') {
    // Converse has no way to offer tools and forbid their use; leaving
    // the tools out would change what the model may be told about them.
    throw new UntranslatableError(
      'Bedrock Converse cannot offer tools while forbidding their use ' +
        '(tool_choice none); leave the tools out instead',
      'tool_choice',
    );
  }

  const config: Json = {
    tools: tools.map((tool) => ({
      toolSpec: {
        name: tool.name,
        ...(tool.description !== null && { description: tool.description }),
        inputSchema: { json: tool.inputSchema },
      },
    })),
  };
  if (choice !== null) config['toolChoice'] = encodeToolChoice(choice);
  return config;
}

function encodeToolChoice(choice: Exclude<ToolChoice, { type: 'none' }>): Json {
  switch (choice.type) {
    case 'auto':
      return { auto: {} };
    case 'any':
      return { any: {} };
    case 'tool':
      return { tool: { name: choice.name } };
  }
}
