/**
 * The answers the Bedrock fake gives: synthesised from token counts,
 * replayed from recordings, or errors, each as Converse JSON or as
 * ConverseStream's binary event stream.
 */
import { readFileSync } from 'node:fs';

import { isRecord } from '../../metering/usage.js';
import { bedrockErrorTypeHeader } from '../../protocol/bedrock/bedrock-errors.js';
import {
  encodeEventObject,
  encodeExceptionFrame,
  encodeFrame,
  EVENT_STREAM_CONTENT_TYPE,
} from '../../protocol/bedrock/event-stream-frames.js';

/** Token counts a synthesised answer reports, exactly. */
export interface FakeUsage {
  readonly input: number;
  readonly cacheRead?: number;
  readonly cacheWrite?: number;
  readonly output: number;
}

export interface SynthesizedAnswer {
  readonly usage: FakeUsage;
  /** The answer's text; a filler of `usage.output` words when absent. */
  readonly text?: string;
  /** A reasoning block before the text, with a made-up signature. */
  readonly reasoning?: string;
  /** A tool call after the text; the stop reason becomes `tool_use`. */
  readonly toolUse?: {
    readonly name: string;
    readonly input: Readonly<Record<string, unknown>>;
    readonly toolUseId?: string;
  };
  /** @default 'tool_use' with a tool call, else 'end_turn' */
  readonly stopReason?: string;
}

/** A whole answer, ready to deliver. */
export interface FakeAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** Bedrock pads every stream payload with a random-length `p` field. */
const PADDING =
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Words per synthesised text delta. */
const WORDS_PER_DELTA = 3;

const LATENCY_MS = 42;

/** The ConverseStream event objects of a synthesised answer, in order. */
export function synthesizedEvents(
  answer: SynthesizedAnswer,
): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [
    { messageStart: { role: 'assistant' } },
  ];
  let index = 0;
  if (answer.reasoning !== undefined) {
    for (const piece of pieces(answer.reasoning)) {
      events.push(delta(index, { reasoningContent: { text: piece } }));
    }
    events.push(
      delta(index, { reasoningContent: { signature: signatureOf(answer) } }),
    );
    events.push({ contentBlockStop: { contentBlockIndex: index } });
    index++;
  }
  const text = answerText(answer);
  if (text !== '') {
    for (const piece of pieces(text))
      events.push(delta(index, { text: piece }));
    events.push({ contentBlockStop: { contentBlockIndex: index } });
    index++;
  }
  if (answer.toolUse !== undefined) {
    const { name, input } = answer.toolUse;
    events.push({
      contentBlockStart: {
        contentBlockIndex: index,
        start: { toolUse: { toolUseId: toolUseIdOf(answer), name } },
      },
    });
    events.push(delta(index, { toolUse: { input: JSON.stringify(input) } }));
    events.push({ contentBlockStop: { contentBlockIndex: index } });
  }
  events.push({ messageStop: { stopReason: stopReasonOf(answer) } });
  events.push({
    metadata: {
      usage: usageBlock(answer.usage),
      metrics: { latencyMs: LATENCY_MS },
    },
  });
  return events.map(padded);
}

/** The Converse JSON of a synthesised answer. */
export function synthesizedJson(answer: SynthesizedAnswer): unknown {
  const content: unknown[] = [];
  if (answer.reasoning !== undefined) {
    content.push({
      reasoningContent: {
        reasoningText: {
          text: answer.reasoning,
          signature: signatureOf(answer),
        },
      },
    });
  }
  const text = answerText(answer);
  if (text !== '') content.push({ text });
  if (answer.toolUse !== undefined) {
    content.push({
      toolUse: {
        toolUseId: toolUseIdOf(answer),
        name: answer.toolUse.name,
        input: answer.toolUse.input,
      },
    });
  }
  return {
    output: { message: { role: 'assistant', content } },
    stopReason: stopReasonOf(answer),
    usage: usageBlock(answer.usage),
    metrics: { latencyMs: LATENCY_MS },
  };
}

/** An answer of JSON, status 200 unless told. */
export function jsonAnswer(value: unknown, status = 200): FakeAnswer {
  return {
    status,
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify(value)),
  };
}

/** An answer of event-stream frames. */
export function streamAnswer(frames: readonly Buffer[]): FakeAnswer {
  return {
    status: 200,
    headers: { 'content-type': EVENT_STREAM_CONTENT_TYPE },
    body: Buffer.concat(frames),
  };
}

/** A non-streamed error, as Bedrock writes one. */
export function errorAnswer(
  status: number,
  type: string,
  message: string,
): FakeAnswer {
  return {
    status,
    headers: {
      'content-type': 'application/json',
      'x-amzn-errortype': bedrockErrorTypeHeader(type),
    },
    body: Buffer.from(JSON.stringify({ message })),
  };
}

/**
 * A stream that fails after `afterEvents` events of a synthesised answer,
 * with the exception frame of `type` (`ThrottlingException` is sent as
 * member `throttlingException`).
 */
export function failingStream(
  answer: SynthesizedAnswer,
  afterEvents: number,
  type: string,
  message: string,
): FakeAnswer {
  const events = synthesizedEvents(answer).slice(0, afterEvents);
  const member = type.charAt(0).toLowerCase() + type.slice(1);
  return streamAnswer([
    ...events.map(encodeEventObject),
    encodeExceptionFrame(member, { message }),
  ]);
}

/**
 * A recording from `../shared/data/wire` (or anywhere), served as it was
 * recorded: `.eventstream.bin` byte for byte; `.events.jsonl` lines (SDK
 * event objects, or `{headers, payload}` frames) encoded as frames; JSON
 * files as their JSON value.
 */
export function recordedAnswer(
  file: string,
  stream: boolean,
  status: number,
  errorType: string | undefined,
): FakeAnswer {
  const isStream = /\.(eventstream\.bin|events\.jsonl)$/.test(file);
  if (isStream !== stream) {
    return errorAnswer(
      500,
      'InternalServerException',
      `bedrock fake: recording ${file} is ${isStream ? '' : 'not '}a ` +
        `stream, but the request was ${stream ? '' : 'not '}ConverseStream`,
    );
  }
  if (file.endsWith('.eventstream.bin')) {
    return streamAnswer([readFileSync(file)]);
  }
  if (file.endsWith('.events.jsonl')) {
    return streamAnswer(
      readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => recordedFrame(JSON.parse(line) as unknown, file)),
    );
  }
  const value = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (errorType !== undefined) {
    return {
      ...jsonAnswer(value, status),
      headers: {
        'content-type': 'application/json',
        'x-amzn-errortype': bedrockErrorTypeHeader(errorType),
      },
    };
  }
  return jsonAnswer(value, status);
}

function recordedFrame(line: unknown, file: string): Buffer {
  if (!isRecord(line)) {
    throw new Error(`bedrock fake: a line of ${file} is not an object`);
  }
  const { headers, payload } = line;
  if (isRecord(headers) && payload !== undefined) {
    const strings: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) {
      strings[name] = String(value);
    }
    return encodeFrame(strings, payload);
  }
  return encodeEventObject(line);
}

/** Bedrock's usage block for the counts, `totalTokens` their sum. */
function usageBlock(usage: FakeUsage): Record<string, number> {
  const cacheRead = usage.cacheRead ?? 0;
  const cacheWrite = usage.cacheWrite ?? 0;
  return {
    inputTokens: usage.input,
    outputTokens: usage.output,
    totalTokens: usage.input + usage.output + cacheRead + cacheWrite,
    cacheReadInputTokens: cacheRead,
    cacheWriteInputTokens: cacheWrite,
  };
}

function answerText(answer: SynthesizedAnswer): string {
  if (answer.text !== undefined) return answer.text;
  if (answer.toolUse !== undefined) return '';
  const words = Math.max(1, Math.min(answer.usage.output, 64));
  return Array.from({ length: words }, (_, n) => `word${n}`).join(' ');
}

function stopReasonOf(answer: SynthesizedAnswer): string {
  return answer.stopReason ?? (answer.toolUse ? 'tool_use' : 'end_turn');
}

function toolUseIdOf(answer: SynthesizedAnswer): string {
  return answer.toolUse?.toolUseId ?? 'tooluse_fake0000000000000001';
}

function signatureOf(answer: SynthesizedAnswer): string {
  return Buffer.from(`fake-signature:${answer.reasoning ?? ''}`).toString(
    'base64',
  );
}

/** Text split into deltas of a few words, spaces kept. */
function pieces(text: string): string[] {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const out: string[] = [];
  for (let i = 0; i < words.length; i += WORDS_PER_DELTA) {
    out.push(words.slice(i, i + WORDS_PER_DELTA).join(''));
  }
  return out.length > 0 ? out : [text];
}

function delta(index: number, body: Record<string, unknown>) {
  return { contentBlockDelta: { contentBlockIndex: index, delta: body } };
}

/** The n-th event with Bedrock's `p` padding added to its payload. */
function padded(
  event: Record<string, unknown>,
  n: number,
): Record<string, unknown> {
  const [[type, payload]] = Object.entries(event) as [[string, object]];
  const length = ((n * 7) % PADDING.length) + 1;
  return { [type]: { ...payload, p: PADDING.slice(0, length) } };
}
