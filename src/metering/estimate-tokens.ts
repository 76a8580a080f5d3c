/**
 * Token estimates for usage the provider never reported: a stream cut off
 * before its final usage chunk. Estimated usage is always marked so
 * (DESIGN.md, "Streams").
 *
 * The o200k tokenizer (GPT-4o's) stands in for every model; for other
 * vendors it is an estimate, which is all a cut-off stream can have. It is
 * loaded on first use, as most processes never need it.
 */

import { randomInt } from 'node:crypto';

type CountTokens = (text: string) => number;

let counter: Promise<CountTokens> | undefined;

function loadCounter(): Promise<CountTokens> {
  counter ??= import('gpt-tokenizer').then(
    (module) => (text: string) =>
      // Text that spells a special token (`<|endoftext|>`) is just text
      // here; the tokenizer would otherwise refuse it.
      module.countTokens(text, { disallowedSpecial: new Set() }),
  );
  return counter;
}

/**
 * BPE merging costs time quadratic in the length of a run without a word
 * break ("aaaa…"), and this runs on the request path. Text is therefore
 * counted in slices of at most this many characters (a word cut at a slice
 * edge may count one token more)...
 */
const SLICE_CHARS = 512;
/**
 * ...and, past this many characters, from a sample: the text is cut into
 * `SAMPLE_CHARS / SLICE_CHARS` equal strata, one slice at a random place
 * in each is counted, and the total scaled to the whole. Spread over the
 * whole text at places nobody can know in advance, the sample cannot be
 * steered (by padding that tokenizes cheaply, say) the way a prefix can.
 */
const SAMPLE_CHARS = 128 * 1024;

/**
 * Estimated tokens in `text`, in bounded time. Never throws: if the
 * tokenizer fails, it falls back to one token per four UTF-8 bytes.
 */
export async function estimateTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  try {
    const count = await loadCounter();
    if (text.length <= SAMPLE_CHARS) {
      let tokens = 0;
      for (let at = 0; at < text.length; at += SLICE_CHARS) {
        tokens += count(text.slice(at, at + SLICE_CHARS));
      }
      return tokens;
    }
    const strata = SAMPLE_CHARS / SLICE_CHARS;
    const width = text.length / strata;
    let tokens = 0;
    for (let i = 0; i < strata; i += 1) {
      const start = Math.floor(i * width);
      const room = Math.max(0, Math.floor(width) - SLICE_CHARS);
      const at = start + (room > 0 ? randomInt(room + 1) : 0);
      tokens += count(text.slice(at, at + SLICE_CHARS));
    }
    return Math.ceil((tokens * text.length) / SAMPLE_CHARS);
  } catch {
    return Math.ceil(Buffer.byteLength(text) / 4);
  }
}

/** Chat framing: about 3 tokens per message plus 3 to prime the reply. */
export const TOKENS_PER_MESSAGE = 3;
export const TOKENS_PER_REPLY = 3;

/**
 * Tokens estimated per input image: about the most the catalog's models
 * bill for one (GPT-4o's 1,105 for 2048×2048 in high detail, Claude's
 * about 1,600), not the far larger allowance of the worst case.
 */
export const ESTIMATED_IMAGE_TOKENS = 1_600;

/**
 * Estimated input tokens of a Chat Completions request: everything the
 * model reads in its messages (text, tool calls and their arguments,
 * images at an estimate each) and its tool and response-format schemas,
 * plus `extraTokens` (the allowance for a provider's tool prompt).
 */
export async function estimateChatInputTokens(
  body: Readonly<Record<string, unknown>>,
  extraTokens = 0,
): Promise<number> {
  const messages = Array.isArray(body['messages']) ? body['messages'] : [];
  let text = '';
  let images = 0;
  for (const message of messages as unknown[]) {
    const read = messageText(message);
    text += read.text + '\n';
    images += read.images;
  }
  for (const field of ['tools', 'functions', 'response_format']) {
    if (body[field] !== undefined) text += JSON.stringify(body[field]) + '\n';
  }
  const tokens = await estimateTokens(text);
  return (
    tokens +
    messages.length * TOKENS_PER_MESSAGE +
    TOKENS_PER_REPLY +
    images * ESTIMATED_IMAGE_TOKENS +
    extraTokens
  );
}

function messageText(message: unknown): { text: string; images: number } {
  if (typeof message !== 'object' || message === null) {
    return { text: '', images: 0 };
  }
  const { content, name, tool_calls, function_call } = message as Record<
    string,
    unknown
  >;
  let text = typeof name === 'string' ? name + ' ' : '';
  let images = 0;
  if (typeof content === 'string') text += content;
  if (Array.isArray(content)) {
    for (const part of content as unknown[]) {
      if (typeof part !== 'object' || part === null) continue;
      const { type, text: partText } = part as Record<string, unknown>;
      if (typeof partText === 'string') text += partText;
      else if (type === 'image_url' || type === 'input_image') images += 1;
      else if (type !== undefined) text += JSON.stringify(part);
    }
  }
  // What the assistant called earlier is read back as input.
  for (const calls of [tool_calls, function_call]) {
    if (calls !== undefined && calls !== null) text += JSON.stringify(calls);
  }
  return { text, images };
}
