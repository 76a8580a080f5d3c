/**
 * Answers the fake builds from token counts, in each OpenAI wire format:
 * Chat Completions and Responses (JSON or an event stream, text or a tool
 * call) and embeddings.
 *
 * Counts are given in canonical classes (input not cached, cache reads,
 * cache writes, output with its reasoning) and the fake builds OpenAI's
 * numbers from them, cached tokens *inside* the prompt total as OpenAI
 * reports them. A test then states the canonical classes it expects and
 * checks that the gateway's reading of OpenAI's shape gets them back.
 */

export interface SynthUsage {
  /** Input tokens neither read from nor written to the cache. */
  readonly input: number;
  readonly cacheRead?: number;
  readonly cacheWrite?: number;
  /** Output tokens, reasoning included. */
  readonly output: number;
  /** The part of `output` spent reasoning. */
  readonly reasoning?: number;
}

export interface SynthToolCall {
  readonly name: string;
  /** An object, or its JSON text as the model would write it. */
  readonly arguments: Readonly<Record<string, unknown>> | string;
}

export interface SynthPlan {
  /** Distinguishes ids between answers of one fake. */
  readonly serial: number;
  readonly model: string;
  readonly usage: SynthUsage;
  readonly text: string | null;
  readonly toolCall: SynthToolCall | null;
  /**
   * Chat Completions' `finish_reason` in place of the one the content
   * implies (`stop`, or `tool_calls` with a tool call): `content_filter`
   * for an answer the provider's filter cut, `length` for one cut at
   * `max_tokens`.
   */
  readonly finishReason?: string;
}

/** A whole answer: its content type and its bytes, piece by piece. */
export interface SynthBody {
  readonly contentType: string;
  readonly pieces: readonly Buffer[];
}

/** Seconds since the epoch on every synthesised answer (2026-01-01). */
const CREATED = 1_767_225_600;

const WORDS = 'the quick brown fox jumps over the lazy dog'.split(' ');

/** Filler text of one word per output token. */
export function fillerText(tokens: number): string {
  return Array.from({ length: tokens }, (_, i) => WORDS[i % WORDS.length]).join(
    ' ',
  );
}

/** Streamed text goes out a word at a time, as a model's tokens do. */
function textPieces(text: string): string[] {
  return text.match(/\s*\S+/g) ?? (text === '' ? [] : [text]);
}

/** Arguments go out in short fragments, as OpenAI streams them. */
function argumentPieces(json: string): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += 8) pieces.push(json.slice(i, i + 8));
  return pieces;
}

function argumentsJson(call: SynthToolCall): string {
  return typeof call.arguments === 'string'
    ? call.arguments
    : JSON.stringify(call.arguments);
}

function promptTokens(usage: SynthUsage): number {
  return usage.input + (usage.cacheRead ?? 0) + (usage.cacheWrite ?? 0);
}

export function chatUsage(usage: SynthUsage) {
  const prompt = promptTokens(usage);
  return {
    prompt_tokens: prompt,
    completion_tokens: usage.output,
    total_tokens: prompt + usage.output,
    prompt_tokens_details: {
      cached_tokens: usage.cacheRead ?? 0,
      ...((usage.cacheWrite ?? 0) > 0 && {
        cache_write_tokens: usage.cacheWrite,
      }),
      audio_tokens: 0,
    },
    completion_tokens_details: {
      reasoning_tokens: usage.reasoning ?? 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

export function responsesUsage(usage: SynthUsage) {
  const input = promptTokens(usage);
  return {
    input_tokens: input,
    input_tokens_details: {
      cached_tokens: usage.cacheRead ?? 0,
      ...((usage.cacheWrite ?? 0) > 0 && {
        cache_write_tokens: usage.cacheWrite,
      }),
    },
    output_tokens: usage.output,
    output_tokens_details: { reasoning_tokens: usage.reasoning ?? 0 },
    total_tokens: input + usage.output,
  };
}

function json(value: unknown): SynthBody {
  return {
    contentType: 'application/json',
    pieces: [Buffer.from(JSON.stringify(value))],
  };
}

/** Azure's verdict of its content filters on a harmless text. */
const AZURE_FILTERS = {
  hate: { filtered: false, severity: 'safe' },
  self_harm: { filtered: false, severity: 'safe' },
  sexual: { filtered: false, severity: 'safe' },
  violence: { filtered: false, severity: 'safe' },
};
const AZURE_PROMPT_FILTERS = [
  { prompt_index: 0, content_filter_results: AZURE_FILTERS },
];

export interface ChatShape {
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** Add Azure's content filter results, as Azure OpenAI does. */
  readonly azure: boolean;
}

export function synthesizeChat(plan: SynthPlan, shape: ChatShape): SynthBody {
  const id = `chatcmpl-fake${plan.serial}`;
  const callId = `call_fake${plan.serial}`;
  const finishReason =
    plan.finishReason ?? (plan.toolCall === null ? 'stop' : 'tool_calls');
  const filters = shape.azure ? { content_filter_results: AZURE_FILTERS } : {};

  if (!shape.stream) {
    const call = plan.toolCall;
    return json({
      id,
      object: 'chat.completion',
      created: CREATED,
      model: plan.model,
      ...(shape.azure && { prompt_filter_results: AZURE_PROMPT_FILTERS }),
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: plan.text,
            refusal: null,
            ...(call !== null && {
              tool_calls: [
                {
                  id: callId,
                  type: 'function',
                  function: { name: call.name, arguments: argumentsJson(call) },
                },
              ],
            }),
            annotations: [],
          },
          logprobs: null,
          finish_reason: finishReason,
          ...filters,
        },
      ],
      usage: chatUsage(plan.usage),
      service_tier: 'default',
      system_fingerprint: 'fp_fake',
    });
  }

  const frames: string[] = [];
  const chunk = (choices: unknown[], usage: unknown = null) =>
    frames.push(
      `data: ${JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created: CREATED,
        model: plan.model,
        system_fingerprint: 'fp_fake',
        choices,
        ...(shape.includeUsage && { usage }),
      })}\n\n`,
    );
  const delta = (fields: object, finish: string | null = null) =>
    chunk([
      {
        index: 0,
        delta: fields,
        logprobs: null,
        finish_reason: finish,
        ...filters,
      },
    ]);

  if (shape.azure) {
    // Azure opens with its prompt filter results, under an empty id.
    frames.push(
      `data: ${JSON.stringify({
        choices: [],
        created: 0,
        id: '',
        model: '',
        object: '',
        prompt_filter_results: AZURE_PROMPT_FILTERS,
      })}\n\n`,
    );
  }
  delta({ role: 'assistant', content: '', refusal: null });
  for (const piece of textPieces(plan.text ?? '')) delta({ content: piece });
  if (plan.toolCall !== null) {
    const { name } = plan.toolCall;
    delta({
      tool_calls: [
        {
          index: 0,
          id: callId,
          type: 'function',
          function: { name, arguments: '' },
        },
      ],
    });
    for (const piece of argumentPieces(argumentsJson(plan.toolCall))) {
      delta({ tool_calls: [{ index: 0, function: { arguments: piece } }] });
    }
  }
  delta({}, finishReason);
  if (shape.includeUsage) chunk([], chatUsage(plan.usage));
  frames.push('data: [DONE]\n\n');
  return {
    contentType: 'text/event-stream; charset=utf-8',
    pieces: frames.map((frame) => Buffer.from(frame)),
  };
}

export function synthesizeResponses(
  plan: SynthPlan,
  stream: boolean,
): SynthBody {
  const response = (status: string, output: unknown[], usage: unknown) => ({
    id: `resp_fake${plan.serial}`,
    object: 'response',
    created_at: CREATED,
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: plan.model,
    output,
    parallel_tool_calls: true,
    previous_response_id: null,
    tool_choice: 'auto',
    tools: [],
    usage,
  });
  const message = (text: string, status: string) => ({
    id: `msg_fake${plan.serial}`,
    type: 'message',
    status,
    role: 'assistant',
    content:
      status === 'in_progress'
        ? []
        : [{ type: 'output_text', annotations: [], logprobs: [], text }],
  });
  const functionCall = (call: SynthToolCall, args: string, status: string) => ({
    id: `fc_fake${plan.serial}`,
    type: 'function_call',
    status,
    arguments: args,
    call_id: `call_fake${plan.serial}`,
    name: call.name,
  });

  const done: unknown[] = [];
  if (plan.text !== null) done.push(message(plan.text, 'completed'));
  if (plan.toolCall !== null) {
    done.push(
      functionCall(plan.toolCall, argumentsJson(plan.toolCall), 'completed'),
    );
  }
  const usage = responsesUsage(plan.usage);
  if (!stream) return json(response('completed', done, usage));

  const frames: string[] = [];
  const emit = (type: string, fields: object) =>
    frames.push(
      `event: ${type}\ndata: ${JSON.stringify({
        type,
        sequence_number: frames.length,
        ...fields,
      })}\n\n`,
    );
  emit('response.created', { response: response('in_progress', [], null) });
  emit('response.in_progress', { response: response('in_progress', [], null) });

  let outputIndex = 0;
  if (plan.text !== null) {
    const item_id = `msg_fake${plan.serial}`;
    const at = { item_id, output_index: outputIndex, content_index: 0 };
    const part = {
      type: 'output_text',
      annotations: [],
      logprobs: [],
      text: '',
    };
    emit('response.output_item.added', {
      output_index: outputIndex,
      item: message('', 'in_progress'),
    });
    emit('response.content_part.added', { ...at, part });
    for (const delta of textPieces(plan.text)) {
      emit('response.output_text.delta', { ...at, delta, logprobs: [] });
    }
    emit('response.output_text.done', { ...at, text: plan.text, logprobs: [] });
    emit('response.content_part.done', {
      ...at,
      part: { ...part, text: plan.text },
    });
    emit('response.output_item.done', {
      output_index: outputIndex,
      item: message(plan.text, 'completed'),
    });
    outputIndex++;
  }
  if (plan.toolCall !== null) {
    const args = argumentsJson(plan.toolCall);
    const at = { item_id: `fc_fake${plan.serial}`, output_index: outputIndex };
    emit('response.output_item.added', {
      output_index: outputIndex,
      item: functionCall(plan.toolCall, '', 'in_progress'),
    });
    for (const delta of argumentPieces(args)) {
      emit('response.function_call_arguments.delta', { ...at, delta });
    }
    emit('response.function_call_arguments.done', { ...at, arguments: args });
    emit('response.output_item.done', {
      output_index: outputIndex,
      item: functionCall(plan.toolCall, args, 'completed'),
    });
  }
  emit('response.completed', { response: response('completed', done, usage) });
  return {
    contentType: 'text/event-stream; charset=utf-8',
    pieces: frames.map((frame) => Buffer.from(frame)),
  };
}

/** Dimensions of the fake's embeddings: small, and enough to compare. */
const DIMENSIONS = 8;

export function synthesizeEmbeddings(
  model: string,
  count: number,
  inputTokens: number,
  base64: boolean,
): SynthBody {
  const data = Array.from({ length: count }, (_, index) => {
    const vector = Array.from(
      { length: DIMENSIONS },
      (_, i) => ((index + 1) * (i + 1)) / 64,
    );
    return {
      object: 'embedding',
      index,
      embedding: base64
        ? Buffer.from(new Float32Array(vector).buffer).toString('base64')
        : vector,
    };
  });
  return json({
    object: 'list',
    data,
    model,
    usage: { prompt_tokens: inputTokens, total_tokens: inputTokens },
  });
}
