/**
 * ConverseStream decoding: the recorded binary stream at every byte
 * boundary, the recorded event objects in both forms, and the canonical
 * events they mean. Counts are read by hand from the recordings.
 */
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  UpstreamProtocolError,
  type CanonicalStreamEvent,
  type DecodedFrame,
  type StreamDecoder,
} from '../../../src/protocol/canonical.js';
import { bedrockUpstream } from '../../../src/protocol/bedrock/bedrock-upstream.js';
import {
  encodeEventFrame,
  encodeExceptionFrame,
  encodeFrame,
} from '../../../src/protocol/bedrock/event-stream-frames.js';
import { sharedDataPresent } from '../../helpers/shared-data.js';
import { eventObjects, usage, wireFile } from './bedrock-recordings.js';

const BIN = 'bedrock_conversestream_nova-micro_text.eventstream.bin';
const DECODED = 'bedrock_conversestream_nova-micro_text.events.jsonl';

function decodeAll(
  chunks: Iterable<Buffer | Record<string, unknown>>,
): DecodedFrame[] {
  const decoder: StreamDecoder = bedrockUpstream.createStreamDecoder();
  const frames: DecodedFrame[] = [];
  for (const chunk of chunks) frames.push(...decoder.push(chunk));
  frames.push(...decoder.end());
  return frames;
}

function events(frames: readonly DecodedFrame[]): CanonicalStreamEvent[] {
  return frames.flatMap((frame) => frame.events);
}

function finalUsage(frames: readonly DecodedFrame[]) {
  const found = events(frames).filter(
    (event) => event.type === 'usage' && event.final,
  );
  expect(found).toHaveLength(1);
  return (found[0] as Extract<CanonicalStreamEvent, { type: 'usage' }>).usage;
}

/** The text a stream's text deltas spell. */
function text(frames: readonly DecodedFrame[]): string {
  return events(frames)
    .map((event) => (event.type === 'text_delta' ? event.text : ''))
    .join('');
}

describe.skipIf(!sharedDataPresent)(
  'the recorded binary ConverseStream',
  () => {
    const bytes = (): Buffer => readFileSync(wireFile(BIN));

    it('decodes whole into its 33 frames and final usage', () => {
      const frames = decodeAll([bytes()]);
      // messageStart, 29 contentBlockDelta, contentBlockStop, messageStop,
      // metadata = 33 frames, as in the decoded .events.jsonl.
      expect(frames).toHaveLength(33);
      expect(frames.map((frame) => frame.raw)).toEqual(eventObjects(DECODED));
      // metadata: input 13, output 82, total 95 = 13 + 82.
      expect(finalUsage(frames)).toEqual(
        usage({ inputTokens: 13, outputTokens: 82 }),
      );
      expect(text(frames)).toMatch(/^The capital of France is Paris\./);
      expect(text(frames)).toMatch(/"The City of Love\."$/);
    });

    it('keeps Bedrock\'s "p" padding in raw, and nowhere else', () => {
      const [start] = decodeAll([bytes()]);
      expect(start?.raw).toEqual({
        messageStart: { p: 'abcdefghijklmnopqr', role: 'assistant' },
      });
      expect(start?.events).toEqual([
        { type: 'message_start', id: '', model: '' },
      ]);
    });

    it('maps the frames to canonical events in order', () => {
      const kinds = events(decodeAll([bytes()])).map((event) => event.type);
      expect(kinds).toEqual([
        'message_start',
        'block_start',
        ...Array<string>(29).fill('text_delta'),
        'block_stop',
        'message_stop',
        'usage',
      ]);
    });

    it('decodes the same when split at every byte boundary', () => {
      const whole = bytes();
      // Compared as JSON: 6615 deep comparisons would dominate the run.
      const expected = JSON.stringify(decodeAll([whole]));
      const differing: number[] = [];
      for (let cut = 1; cut < whole.byteLength; cut++) {
        const frames = decodeAll([whole.subarray(0, cut), whole.subarray(cut)]);
        if (JSON.stringify(frames) !== expected) differing.push(cut);
      }
      expect(differing).toEqual([]);
    });

    it('decodes the same fed one byte at a time', () => {
      const whole = bytes();
      const single = Array.from({ length: whole.byteLength }, (_, i) =>
        whole.subarray(i, i + 1),
      );
      expect(decodeAll(single)).toEqual(decodeAll([whole]));
    });

    it('decodes the same from the decoded event objects', () => {
      const fromObjects = decodeAll(eventObjects(DECODED));
      expect(events(fromObjects)).toEqual(events(decodeAll([bytes()])));
    });

    it('refuses a stream that ends inside a frame', () => {
      const whole = bytes();
      const decoder = bedrockUpstream.createStreamDecoder();
      decoder.push(whole.subarray(0, whole.byteLength - 1));
      expect(() => decoder.end()).toThrow(UpstreamProtocolError);
    });

    it('refuses a frame whose checksum is wrong', () => {
      const corrupt = Buffer.from(bytes());
      corrupt[100] = (corrupt[100] ?? 0) ^ 0xff;
      expect(() => decodeAll([corrupt])).toThrow(UpstreamProtocolError);
    });
  },
);

describe.skipIf(!sharedDataPresent)(
  'recorded ConverseStream event objects',
  () => {
    it('decodes the text stream: one text block, usage 22 + 55', () => {
      const frames = decodeAll(
        eventObjects('bedrock_conversestream_text.events.jsonl'),
      );
      expect(finalUsage(frames)).toEqual(
        usage({ inputTokens: 22, outputTokens: 55 }),
      );
      expect(text(frames)).toBe(
        'Let me count the "r"s in "strawberry":\n\ns-t-**r**-a-w-b-e-**r**-' +
          '**r**-y\n\nThere are **3** r\'s in "strawberry."',
      );
      expect(events(frames).at(-2)).toEqual({
        type: 'message_stop',
        stopReason: 'end_turn',
        stopSequence: null,
      });
    });

    it('decodes the reasoning stream: thinking, then text', () => {
      const all = events(
        decodeAll(
          eventObjects('bedrock_conversestream_reasoning.events.jsonl'),
        ),
      );
      const starts = all.filter((event) => event.type === 'block_start');
      expect(starts).toEqual([
        { type: 'block_start', index: 0, block: { type: 'thinking' } },
        { type: 'block_start', index: 1, block: { type: 'text' } },
      ]);
      const thinking = all
        .map((event) => (event.type === 'thinking_delta' ? event.text : ''))
        .join('');
      expect(thinking).toBe(
        'Let me count the r\'s in "strawberry":\n\ns-t-r-a-w-b-e-r-r-y\n\n' +
          "r appears at positions 3, 8, and 9.\n\nSo there are 3 r's.",
      );
      const signatures = all.filter(
        (event) => event.type === 'signature_delta',
      );
      expect(signatures).toHaveLength(1);
      expect(signatures[0]).toMatchObject({ index: 0 });
      expect(
        all.filter((event) => event.type === 'block_stop').map((e) => e.index),
      ).toEqual([0, 1]);
      // metadata: input 51, output 94 (reasoning included), total 145.
      expect(all.at(-1)).toMatchObject({
        type: 'usage',
        final: true,
        usage: usage({ inputTokens: 51, outputTokens: 94 }),
      });
    });
  },
);

describe('ConverseStream decoding', () => {
  it('starts a tool-use block from contentBlockStart and streams its input', () => {
    const frames = decodeAll([
      { messageStart: { role: 'assistant' } },
      {
        contentBlockStart: {
          contentBlockIndex: 0,
          start: { toolUse: { toolUseId: 'tooluse_1', name: 'weather' } },
        },
      },
      {
        contentBlockDelta: {
          contentBlockIndex: 0,
          delta: { toolUse: { input: '{"city":' } },
        },
      },
      {
        contentBlockDelta: {
          contentBlockIndex: 0,
          delta: { toolUse: { input: '"Paris"}' } },
        },
      },
      { contentBlockStop: { contentBlockIndex: 0 } },
      { messageStop: { stopReason: 'tool_use' } },
    ]);
    expect(events(frames).slice(1)).toEqual([
      {
        type: 'block_start',
        index: 0,
        block: { type: 'tool_use', id: 'tooluse_1', name: 'weather' },
      },
      { type: 'tool_input_delta', index: 0, json: '{"city":' },
      { type: 'tool_input_delta', index: 0, json: '"Paris"}' },
      { type: 'block_stop', index: 0 },
      { type: 'message_stop', stopReason: 'tool_use', stopSequence: null },
    ]);
  });

  it('turns an exception member into an error event', () => {
    const frames = decodeAll([
      { throttlingException: { message: 'Too many tokens, please wait.' } },
    ]);
    expect(events(frames)).toEqual([
      {
        type: 'error',
        error: {
          kind: 'rate_limit',
          status: 429,
          message: 'Too many tokens, please wait.',
          retryAfter: null,
          upstreamCode: 'ThrottlingException',
        },
      },
    ]);
  });

  it('reads an exception frame from the bytes', () => {
    const bytes = Buffer.concat([
      encodeEventFrame('messageStart', { role: 'assistant' }),
      encodeExceptionFrame('modelStreamErrorException', {
        message: 'the model stopped',
        originalStatusCode: 500,
      }),
    ]);
    const frames = decodeAll([bytes]);
    expect(frames[1]?.raw).toEqual({
      modelStreamErrorException: {
        message: 'the model stopped',
        originalStatusCode: 500,
      },
    });
    expect(frames[1]?.events).toMatchObject([
      { type: 'error', error: { kind: 'server', status: 424 } },
    ]);
  });

  it('keeps an unmodelled error message as its bytes', () => {
    const bytes = encodeFrame(
      {
        ':message-type': 'error',
        ':error-code': 'InternalFailure',
        ':error-message': 'boom',
      },
      {},
    );
    const [frame] = decodeAll([bytes]);
    expect(frame?.raw).toEqual(bytes);
    expect(frame?.events).toMatchObject([
      {
        type: 'error',
        error: { kind: 'server', upstreamCode: 'InternalFailure' },
      },
    ]);
  });

  it('passes through events it has no canonical form for', () => {
    const event = {
      contentBlockDelta: {
        contentBlockIndex: 0,
        delta: { citation: { title: 'a source' } },
      },
    };
    expect(decodeAll([event])).toEqual([{ raw: event, events: [] }]);
    expect(decodeAll([{ someFutureEvent: { x: 1 } }])).toEqual([
      { raw: { someFutureEvent: { x: 1 } }, events: [] },
    ]);
  });

  it.each<[string, Record<string, unknown>[]]>([
    ['an event with no member', [{}]],
    [
      'a tool input delta for a block never started',
      [
        {
          contentBlockDelta: {
            contentBlockIndex: 0,
            delta: { toolUse: { input: '{}' } },
          },
        },
      ],
    ],
    [
      'a text delta for a tool-use block',
      [
        {
          contentBlockStart: {
            contentBlockIndex: 0,
            start: { toolUse: { toolUseId: 't', name: 'n' } },
          },
        },
        { contentBlockDelta: { contentBlockIndex: 0, delta: { text: 'x' } } },
      ],
    ],
    [
      'a negative block index',
      [{ contentBlockDelta: { contentBlockIndex: -1, delta: { text: 'x' } } }],
    ],
    ['a payload that is not an object', [{ messageStop: 'end_turn' }]],
  ])('refuses %s', (_label, chunks) => {
    expect(() => decodeAll(chunks)).toThrow(UpstreamProtocolError);
  });
});
