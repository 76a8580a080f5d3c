/**
 * Helpers for the OpenAI protocol tests: usage literals with every class
 * stated, recordings read and rebuilt as the wire README says, a stream
 * decoder fed at chosen byte boundaries, and an `openai` SDK client whose
 * HTTP answers are bytes a test supplies.
 */
import { readFileSync } from 'node:fs';

import OpenAI from 'openai';

import type {
  CanonicalStreamEvent,
  DecodedFrame,
  StreamDecoder,
} from '../../../src/protocol/canonical.js';
import type { NormalizedUsage } from '../../../src/metering/usage.js';
import { sharedFile } from '../../helpers/shared-data.js';

/** Normalised usage with every class stated; units default to none. */
export function usage(
  counts: Partial<Omit<NormalizedUsage, 'units'>> & {
    units?: Record<string, number>;
  },
): NormalizedUsage {
  return {
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    cacheWrite1hTokens: 0,
    outputTokens: 0,
    reasoningTokens: 0,
    units: {},
    ...counts,
  };
}

export function wireFile(name: string): Buffer {
  return readFileSync(sharedFile(`wire/${name}`));
}

export function wireJson(name: string): Record<string, unknown> {
  return JSON.parse(wireFile(name).toString('utf8')) as Record<string, unknown>;
}

/**
 * A recording's stream bytes: `.sse` as recorded; `.chunks.jsonl` rebuilt
 * (Chat: `data: <line>` and a final `[DONE]`; Responses: `event: <type>`
 * before each `data:` line).
 */
export function wireStream(name: string): Buffer {
  const bytes = wireFile(name);
  if (name.endsWith('.sse')) return bytes;
  const lines = bytes
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '');
  const responses = name.startsWith('openai_responses_');
  const frames = lines.map((line) =>
    responses
      ? `event: ${(JSON.parse(line) as { type: string }).type}\ndata: ${line}\n\n`
      : `data: ${line}\n\n`,
  );
  if (!responses) frames.push('data: [DONE]\n\n');
  return Buffer.from(frames.join(''));
}

/** Feeds `bytes` cut at `cuts` (ascending offsets); returns every frame. */
export function decodeAt(
  decoder: StreamDecoder,
  bytes: Buffer,
  cuts: readonly number[] = [],
): DecodedFrame[] {
  const frames: DecodedFrame[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(from, cut)));
    from = cut;
  }
  frames.push(...decoder.end());
  return frames;
}

export function eventsOf(frames: readonly DecodedFrame[]) {
  return frames.flatMap((frame): CanonicalStreamEvent[] => [...frame.events]);
}

/** The text of every text delta, joined. */
export function textOf(events: readonly CanonicalStreamEvent[]): string {
  return events
    .map((event) => (event.type === 'text_delta' ? event.text : ''))
    .join('');
}

/**
 * An `openai` SDK client that gets `body` as the answer to any request,
 * so a test can check that the SDK parses what an encoder wrote.
 */
export function sdkAnswering(
  body: Buffer | string,
  contentType: string,
  status = 200,
): OpenAI {
  return new OpenAI({
    apiKey: 'sk-test',
    baseURL: 'http://sdk.test/v1',
    maxRetries: 0,
    fetch: () =>
      Promise.resolve(
        new Response(typeof body === 'string' ? body : new Uint8Array(body), {
          status,
          headers: { 'content-type': contentType },
        }),
      ),
  });
}
