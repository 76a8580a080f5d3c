/**
 * Token estimates for cut-off streams: exact below the sampling size, and
 * past it a sample spread over the whole text, which padding at the front
 * cannot steer.
 */
import { countTokens } from 'gpt-tokenizer';
import { describe, expect, it } from 'vitest';

import { estimateTokens } from '../../src/metering/estimate-tokens.js';

/** Every 512-character slice counted: what the sample stands in for. */
function countAll(text: string): number {
  let tokens = 0;
  for (let at = 0; at < text.length; at += 512) {
    tokens += countTokens(text.slice(at, at + 512), {
      disallowedSpecial: new Set(),
    });
  }
  return tokens;
}

/** Characters from a fixed seed, so a failure can be replayed. */
function cjk(length: number, seed = 7): string {
  let state = seed;
  let text = '';
  for (let i = 0; i < length; i += 1) {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    text += String.fromCharCode(0x4e00 + (state % 20_000));
  }
  return text;
}

describe('estimateTokens', () => {
  it('counts a short text exactly', async () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(8);
    expect(text.length).toBeLessThan(512);
    expect(await estimateTokens(text)).toBe(countTokens(text));
  });

  it('counts a text up to the sample size in full', async () => {
    const text = cjk(100_000);
    expect(await estimateTokens(text)).toBe(countAll(text));
  });

  it('is not steered by cheap padding ahead of dear text', async () => {
    // 128K spaces tokenize to a few hundred tokens; the CJK after them to
    // tens of thousands. A prefix sample would see only the spaces.
    const text = ' '.repeat(128 * 1024) + cjk(60_000);
    const exact = countAll(text);
    const estimate = await estimateTokens(text);
    expect(estimate).toBeGreaterThan(exact * 0.8);
    expect(estimate).toBeLessThan(exact * 1.2);
  });

  it('is empty for empty text', async () => {
    expect(await estimateTokens('')).toBe(0);
  });
});
