/**
 * The wire APIs side by side: each one's upstream protocol, what of a
 * client's body another API cannot carry, and how a body passes through
 * unchanged to an upstream of the same API.
 */
import { anthropicUntranslatable } from '../../protocol/anthropic/anthropic-inbound.js';
import { anthropicUpstream } from '../../protocol/anthropic/anthropic-upstream.js';
import { bedrockUntranslatable } from '../../protocol/bedrock/bedrock-inbound.js';
import { bedrockUpstream } from '../../protocol/bedrock/bedrock-upstream.js';
import {
  UntranslatableError,
  type UpstreamProtocol,
  type WireApi,
} from '../../protocol/canonical.js';
import { openAIChatUntranslatable } from '../../protocol/openai/openai-chat-untranslatable.js';
import { openAIChatUpstream } from '../../protocol/openai/openai-chat-upstream.js';
import { openAIResponsesUntranslatable } from '../../protocol/openai/openai-responses-untranslatable.js';
import { openAIResponsesUpstream } from '../../protocol/openai/openai-responses-upstream.js';

export const UPSTREAM_PROTOCOLS: Readonly<Record<WireApi, UpstreamProtocol>> = {
  'openai-chat': openAIChatUpstream,
  'openai-responses': openAIResponsesUpstream,
  'anthropic-messages': anthropicUpstream,
  'bedrock-converse': bedrockUpstream,
};

/** How each API is named to a user in an error message. */
export const API_NAMES: Readonly<Record<WireApi, string>> = {
  'openai-chat': 'OpenAI Chat Completions',
  'openai-responses': 'the OpenAI Responses API',
  'anthropic-messages': 'Anthropic Messages',
  'bedrock-converse': 'Bedrock Converse',
};

/**
 * The first part of a client's body (in `api`) that canonical form cannot
 * carry, or undefined when it translates whole.
 */
export function firstUntranslatable(
  api: WireApi,
  body: unknown,
): UntranslatableError | undefined {
  switch (api) {
    case 'openai-chat':
      return (
        unknownField(body, CHAT_FIELDS) ??
        fieldRefusal(openAIChatUntranslatable(body))
      );
    case 'openai-responses':
      return (
        unknownField(body, RESPONSES_FIELDS) ??
        fieldRefusal(openAIResponsesUntranslatable(body))
      );
    case 'anthropic-messages':
      return anthropicUntranslatable(body)[0];
    case 'bedrock-converse':
      return bedrockUntranslatable(body)[0];
  }
}

/**
 * The top-level fields of each OpenAI API's request, as its reference
 * lists them. The Anthropic and Bedrock decoders refuse unknown fields
 * themselves; OpenAI's are checked here, so a field the gateway does not
 * know (or a typo such as `max_token`) is refused when translating, not
 * dropped. To an OpenAI upstream it passes through, for OpenAI to judge.
 */
const CHAT_FIELDS = new Set([
  'model',
  'messages',
  'audio',
  'frequency_penalty',
  'function_call',
  'functions',
  'logit_bias',
  'logprobs',
  'max_completion_tokens',
  'max_tokens',
  'metadata',
  'modalities',
  'n',
  'parallel_tool_calls',
  'prediction',
  'presence_penalty',
  'prompt_cache_key',
  'prompt_cache_retention',
  'reasoning_effort',
  'response_format',
  'safety_identifier',
  'seed',
  'service_tier',
  'stop',
  'store',
  'stream',
  'stream_options',
  'temperature',
  'tool_choice',
  'tools',
  'top_logprobs',
  'top_p',
  'user',
  'verbosity',
  'web_search_options',
]);

const RESPONSES_FIELDS = new Set([
  'model',
  'input',
  'instructions',
  'background',
  'conversation',
  'include',
  'max_output_tokens',
  'max_tool_calls',
  'metadata',
  'parallel_tool_calls',
  'previous_response_id',
  'prompt',
  'prompt_cache_key',
  'prompt_cache_retention',
  'reasoning',
  'safety_identifier',
  'service_tier',
  'store',
  'stream',
  'stream_options',
  'temperature',
  'text',
  'tool_choice',
  'tools',
  'top_logprobs',
  'top_p',
  'truncation',
  'user',
]);

function unknownField(
  body: unknown,
  known: ReadonlySet<string>,
): UntranslatableError | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const field = Object.keys(body).find((key) => !known.has(key));
  if (field === undefined) return undefined;
  return new UntranslatableError(`'${field}' is not a known parameter`, field);
}

function fieldRefusal(
  fields: readonly string[],
): UntranslatableError | undefined {
  const [field] = fields;
  if (field === undefined) return undefined;
  return new UntranslatableError(`'${field}' has no equivalent`, field);
}

/**
 * A client's body for an upstream of its own API: as the client sent it,
 * naming the deployment's model instead of the alias. Bedrock names the
 * model in the path, so its body is unchanged; Chat Completions always
 * asks for the usage chunk, which the gateway meters from.
 */
export function passthroughBody(
  api: WireApi,
  body: Readonly<Record<string, unknown>>,
  upstreamModel: string,
): Readonly<Record<string, unknown>> {
  switch (api) {
    case 'bedrock-converse':
      return body;
    case 'openai-chat': {
      if (body['stream'] !== true) return { ...body, model: upstreamModel };
      const options = body['stream_options'];
      return {
        ...body,
        model: upstreamModel,
        stream_options: {
          ...(typeof options === 'object' && options !== null && options),
          include_usage: true,
        },
      };
    }
    case 'openai-responses':
    case 'anthropic-messages':
      return { ...body, model: upstreamModel };
  }
}
