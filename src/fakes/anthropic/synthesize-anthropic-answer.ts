/**
 * Builds a correct Anthropic Messages answer, streamed or not, whose usage
 * is exactly the counts a test asks for, so that metering can be asserted
 * against numbers the test chose.
 *
 * A stream follows Anthropic's event order: `message_start` (provisional
 * usage: the input counts and one output token), a `ping`, one block per
 * part (thinking, text, tool call) with its deltas, `message_delta` with
 * the final cumulative usage, and `message_stop`.
 */
import { createHash } from 'node:crypto';

export interface SynthesizedUsage {
  /** Input tokens neither read from nor written to the cache. */
  readonly input: number;
  readonly cacheRead?: number;
  readonly cacheWrite5m?: number;
  readonly cacheWrite1h?: number;
  readonly output: number;
}

export interface SynthesizedAnswer {
  readonly usage: SynthesizedUsage;
  /** The answer's text; a fixed sentence when neither it nor `toolUse` is given. */
  readonly text?: string;
  /** Thinking shown before the text, with a made-up signature. */
  readonly thinking?: string;
  /** A tool call after the text; the stop reason becomes `tool_use`. */
  readonly toolUse?: {
    readonly name: string;
    readonly input: Readonly<Record<string, unknown>>;
    readonly id?: string;
  };
}

const DEFAULT_TEXT = 'Hello from the Anthropic fake.';

/** The answer's blocks, in Anthropic's non-streamed shape. */
function contentBlocks(answer: SynthesizedAnswer, seed: string) {
  const blocks: Record<string, unknown>[] = [];
  if (answer.thinking !== undefined) {
    blocks.push({
      type: 'thinking',
      thinking: answer.thinking,
      signature: fakeSignature(answer.thinking),
    });
  }
  const text =
    answer.text ?? (answer.toolUse === undefined ? DEFAULT_TEXT : undefined);
  if (text !== undefined) blocks.push({ type: 'text', text });
  if (answer.toolUse !== undefined) {
    blocks.push({
      type: 'tool_use',
      id: answer.toolUse.id ?? `toolu_fake${shortHash(seed)}`,
      name: answer.toolUse.name,
      input: answer.toolUse.input,
    });
  }
  return blocks;
}

function usageBlock(usage: SynthesizedUsage) {
  const write5m = usage.cacheWrite5m ?? 0;
  const write1h = usage.cacheWrite1h ?? 0;
  return {
    input_tokens: usage.input,
    cache_creation_input_tokens: write5m + write1h,
    cache_read_input_tokens: usage.cacheRead ?? 0,
    cache_creation: {
      ephemeral_5m_input_tokens: write5m,
      ephemeral_1h_input_tokens: write1h,
    },
    output_tokens: usage.output,
    service_tier: 'standard',
  };
}

/** A non-streamed answer's JSON body. */
export function synthesizeMessage(
  answer: SynthesizedAnswer,
  model: string,
  id: string,
): Record<string, unknown> {
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content: contentBlocks(answer, id),
    stop_reason: answer.toolUse === undefined ? 'end_turn' : 'tool_use',
    stop_sequence: null,
    usage: usageBlock(answer.usage),
  };
}

/** A streamed answer's SSE bytes. */
export function synthesizeStream(
  answer: SynthesizedAnswer,
  model: string,
  id: string,
): Buffer {
  const message = synthesizeMessage(answer, model, id);
  const usage = usageBlock(answer.usage);
  const events: [string, unknown][] = [
    [
      'message_start',
      {
        type: 'message_start',
        message: {
          ...message,
          content: [],
          stop_reason: null,
          usage: { ...usage, output_tokens: Math.min(1, usage.output_tokens) },
        },
      },
    ],
    ['ping', { type: 'ping' }],
  ];

  const blocks = message['content'] as Record<string, unknown>[];
  blocks.forEach((block, index) => {
    const [start, deltas] = streamedBlock(block);
    events.push([
      'content_block_start',
      { type: 'content_block_start', index, content_block: start },
    ]);
    for (const delta of deltas) {
      events.push([
        'content_block_delta',
        { type: 'content_block_delta', index, delta },
      ]);
    }
    events.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });

  events.push(
    [
      'message_delta',
      {
        type: 'message_delta',
        delta: { stop_reason: message['stop_reason'], stop_sequence: null },
        usage: {
          input_tokens: usage.input_tokens,
          cache_creation_input_tokens: usage.cache_creation_input_tokens,
          cache_read_input_tokens: usage.cache_read_input_tokens,
          output_tokens: usage.output_tokens,
        },
      },
    ],
    ['message_stop', { type: 'message_stop' }],
  );
  return Buffer.from(
    events
      .map(
        ([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`,
      )
      .join(''),
    'utf8',
  );
}

/** A block's empty start and the deltas that fill it. */
function streamedBlock(
  block: Record<string, unknown>,
): [Record<string, unknown>, Record<string, unknown>[]] {
  switch (block['type']) {
    case 'thinking':
      return [
        { type: 'thinking', thinking: '', signature: '' },
        [
          ...pieces(block['thinking'] as string).map((thinking) => ({
            type: 'thinking_delta',
            thinking,
          })),
          { type: 'signature_delta', signature: block['signature'] },
        ],
      ];
    case 'tool_use':
      return [
        { ...block, input: {} },
        pieces(JSON.stringify(block['input'])).map((partial_json) => ({
          type: 'input_json_delta',
          partial_json,
        })),
      ];
    default:
      return [
        { type: 'text', text: '' },
        pieces(block['text'] as string).map((text) => ({
          type: 'text_delta',
          text,
        })),
      ];
  }
}

/** Text cut into a few deltas at word boundaries, as models stream. */
function pieces(text: string): string[] {
  const words = text.match(/\s*\S+/g) ?? [text];
  const pieces: string[] = [];
  for (let i = 0; i < words.length; i += 3) {
    pieces.push(words.slice(i, i + 3).join(''));
  }
  const trailing = text.length - pieces.join('').length;
  if (trailing > 0) pieces.push(text.slice(text.length - trailing));
  return pieces.length > 0 ? pieces : [''];
}

function fakeSignature(thinking: string): string {
  return createHash('sha256').update(thinking).digest('base64');
}

function shortHash(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 20);
}
