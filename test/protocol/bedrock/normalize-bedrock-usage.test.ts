/**
 * Bedrock Converse usage, normalised, checked against every recorded
 * Bedrock answer in `../shared/data/wire`.
 *
 * Each expected value is worked out by hand from the file it names, with
 * the arithmetic beside it. Bedrock counts cache reads and writes outside
 * `inputTokens`, and `totalTokens` is the sum of all four counts.
 */
import { readdirSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  UsageParseError,
  type NormalizedUsage,
} from '../../../src/metering/usage.js';
import { normalizeBedrockUsage } from '../../../src/providers/bedrock/normalize-bedrock-usage.js';
import { sharedDataPresent, sharedFile } from '../../helpers/shared-data.js';
import { eventObjects, readJson, usage, WIRE } from './bedrock-recordings.js';

interface Expectation {
  /** The raw counts as they read in the file; names the test. */
  readonly read: string;
  readonly normalized: NormalizedUsage;
}

/**
 * One row per Bedrock answer recording with usage in JSON form. A
 * recording added without a row here fails the coverage test below.
 */
const EXPECTED: Readonly<Record<string, Expectation>> = {
  'bedrock_converse_nonstream_text.json': {
    read: 'input 22, output 57, cache read 0, cache write 0, total 79',
    // 22 + 57 + 0 + 0 = 79.
    normalized: usage({ inputTokens: 22, outputTokens: 57 }),
  },
  'bedrock_converse_nonstream_reasoning.json': {
    read: 'input 51, output 78 (reasoning inside), total 129',
    // 51 + 78 = 129; Bedrock does not split the reasoning out.
    normalized: usage({ inputTokens: 51, outputTokens: 78 }),
  },
  'bedrock_converse_nonstream_cache-write.response.json': {
    read: 'input 2, output 5, cache write 1322 (legacy 1322), total 1329',
    // 2 + 5 + 1322 = 1329: the written tokens sit outside inputTokens.
    normalized: usage({
      inputTokens: 2,
      cacheWriteTokens: 1322,
      outputTokens: 5,
    }),
  },
  'bedrock_converse_nonstream_cache-read.response.json': {
    read: 'input 2, output 5, cache read 1322 (legacy 1322), total 1329',
    // 2 + 5 + 1322 = 1329.
    normalized: usage({
      inputTokens: 2,
      cacheReadTokens: 1322,
      outputTokens: 5,
    }),
  },
  'bedrock_converse_nonstream_nova-lite_cache-write.response.json': {
    read: 'input 10, output 2, cache write 1298 (legacy 1298), total 1310',
    // 10 + 2 + 1298 = 1310.
    normalized: usage({
      inputTokens: 10,
      cacheWriteTokens: 1298,
      outputTokens: 2,
    }),
  },
  'bedrock_converse_nonstream_nova-micro_text.response.json': {
    read: 'input 7, output 30, total 37, no cache fields',
    normalized: usage({ inputTokens: 7, outputTokens: 30 }),
  },
  'bedrock_conversestream_text.events.jsonl': {
    read: 'metadata: input 22, output 55, total 77',
    normalized: usage({ inputTokens: 22, outputTokens: 55 }),
  },
  'bedrock_conversestream_reasoning.events.jsonl': {
    read: 'metadata: input 51, output 94, total 145',
    normalized: usage({ inputTokens: 51, outputTokens: 94 }),
  },
  'bedrock_conversestream_nova-micro_text.events.jsonl': {
    read: 'metadata (decoded frames): input 13, output 82, total 95',
    normalized: usage({ inputTokens: 13, outputTokens: 82 }),
  },
};

/** Answers with usage: not requests, not the raw bytes, not the error. */
function isUsageRecording(name: string): boolean {
  return (
    name.startsWith('bedrock_') &&
    !name.endsWith('.request.json') &&
    !name.endsWith('.eventstream.bin') &&
    !name.includes('_error_')
  );
}

/** The usage block of a recording, read the way a client would. */
function recordedUsage(name: string): unknown {
  if (name.endsWith('.json')) return readJson(name)['usage'];
  const last = eventObjects(name).at(-1) as Record<string, unknown>;
  return (last['metadata'] as Record<string, unknown>)['usage'];
}

describe.skipIf(!sharedDataPresent)('recorded Bedrock usage', () => {
  it('has an expectation for every Bedrock answer recording', () => {
    const recordings = readdirSync(sharedFile(WIRE))
      .filter(isUsageRecording)
      .sort();
    expect(recordings).toEqual(Object.keys(EXPECTED).sort());
  });

  it.each(
    Object.entries(EXPECTED).map(([name, e]) => [name, e.read, e.normalized]),
  )('%s (%s)', (name, _read, normalized) => {
    expect(normalizeBedrockUsage(recordedUsage(name))).toEqual(normalized);
  });

  it.each(
    Object.keys(EXPECTED).filter((name) => name.endsWith('.events.jsonl')),
  )('%s carries usage only in its last event, metadata', (name) => {
    const events = eventObjects(name);
    expect(Object.keys(events.at(-1) ?? {})).toEqual(['metadata']);
    for (const event of events.slice(0, -1)) {
      expect(JSON.stringify(event)).not.toContain('inputTokens');
    }
  });
});

describe('normalizeBedrockUsage', () => {
  it('reads a block without cache fields, as Nova and Llama send it', () => {
    expect(normalizeBedrockUsage({ inputTokens: 7, outputTokens: 30 })).toEqual(
      usage({ inputTokens: 7, outputTokens: 30 }),
    );
  });

  it('reads legacy cache counts when the current fields are absent', () => {
    // 3 + 4 + 100 + 200 = 307.
    expect(
      normalizeBedrockUsage({
        inputTokens: 3,
        outputTokens: 4,
        cacheReadInputTokenCount: 100,
        cacheWriteInputTokenCount: 200,
        totalTokens: 307,
      }),
    ).toEqual(
      usage({
        inputTokens: 3,
        cacheReadTokens: 100,
        cacheWriteTokens: 200,
        outputTokens: 4,
      }),
    );
  });

  it('splits cache writes by lifetime from cacheDetails', () => {
    // 1000 written = 600 for an hour + 400 for five minutes;
    // total 5 + 10 + 0 + 1000 = 1015.
    expect(
      normalizeBedrockUsage({
        inputTokens: 5,
        outputTokens: 10,
        totalTokens: 1015,
        cacheWriteInputTokens: 1000,
        cacheDetails: [
          { ttl: '1h', inputTokens: 600 },
          { ttl: '5m', inputTokens: 400 },
        ],
      }),
    ).toEqual(
      usage({
        inputTokens: 5,
        cacheWriteTokens: 400,
        cacheWrite1hTokens: 600,
        outputTokens: 10,
      }),
    );
  });

  it('takes an empty cacheDetails as no cache writes', () => {
    expect(
      normalizeBedrockUsage({
        inputTokens: 5,
        outputTokens: 10,
        cacheWriteInputTokens: 0,
        cacheDetails: [],
      }),
    ).toEqual(usage({ inputTokens: 5, outputTokens: 10 }));
  });

  it('names server-side tool calls as units, leaving out zeros', () => {
    expect(
      normalizeBedrockUsage({
        inputTokens: 5,
        outputTokens: 10,
        serverToolUsage: { webSearch: 2, codeRun: 0, nested: { calls: 1 } },
      }),
    ).toEqual(
      usage({
        inputTokens: 5,
        outputTokens: 10,
        units: { 'serverTool.webSearch': 2, 'serverTool.nested.calls': 1 },
      }),
    );
  });

  const valid = {
    inputTokens: 2,
    outputTokens: 5,
    totalTokens: 1329,
    cacheReadInputTokens: 1322,
    cacheReadInputTokenCount: 1322,
    cacheWriteInputTokens: 0,
    cacheWriteInputTokenCount: 0,
  };

  it.each<[string, unknown]>([
    ['a null block', null],
    ['an array', [valid]],
    ['no inputTokens', { outputTokens: 5 }],
    ['no outputTokens', { inputTokens: 2 }],
    ['a string inputTokens', { ...valid, inputTokens: '2' }],
    ['a negative outputTokens', { ...valid, outputTokens: -5 }],
    ['a fractional count', { ...valid, cacheReadInputTokens: 1321.5 }],
    ['a count beyond 2^53', { ...valid, inputTokens: 2 ** 53 }],
    // 2 + 5 + 1322 = 1329, not 1330.
    ['a totalTokens that is not the sum', { ...valid, totalTokens: 1330 }],
    [
      // Counting the cache read inside inputTokens (OpenAI's way) gives
      // 1324 + 5 = 1329 too, but then the parts sum to 2651.
      'cache reads counted inside inputTokens',
      { ...valid, inputTokens: 1324 },
    ],
    [
      'a legacy cache read count that disagrees',
      { ...valid, cacheReadInputTokenCount: 1000 },
    ],
    [
      'a legacy cache write count that disagrees',
      { ...valid, cacheWriteInputTokenCount: 7, totalTokens: 1329 },
    ],
    ['a cacheDetails that is not an array', { ...valid, cacheDetails: {} }],
    [
      'a cache lifetime that cannot be priced',
      {
        ...valid,
        cacheWriteInputTokens: 10,
        cacheWriteInputTokenCount: 10,
        totalTokens: 1339,
        cacheDetails: [{ ttl: '24h', inputTokens: 10 }],
      },
    ],
    [
      'cacheDetails that do not add up to the writes',
      {
        ...valid,
        cacheWriteInputTokens: 10,
        cacheWriteInputTokenCount: 10,
        totalTokens: 1339,
        cacheDetails: [{ ttl: '5m', inputTokens: 9 }],
      },
    ],
    ['a serverToolUsage that is a number', { ...valid, serverToolUsage: 3 }],
    [
      'a server tool count that is a string',
      { ...valid, serverToolUsage: { webSearch: '2' } },
    ],
  ])('throws UsageParseError on %s', (_label, raw) => {
    expect(() => normalizeBedrockUsage(raw)).toThrow(UsageParseError);
  });

  it('normalises the valid block those cases are built from', () => {
    expect(normalizeBedrockUsage(valid)).toEqual(
      usage({ inputTokens: 2, cacheReadTokens: 1322, outputTokens: 5 }),
    );
  });
});
