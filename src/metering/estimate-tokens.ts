/**
 * Token estimates for usage the provider never reported: a stream cut off
 * before its final usage chunk. Estimated usage is always marked so
 * (DESIGN.md, "Streams").
 *
 * The o200k tokenizer (GPT-4o's) stands in for every model; for other
 * vendors it is an estimate, which is all a cut-off stream can have. It is
 * loaded on first use, as most processes never need it.
 */

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
/** ...and only this much of it; the rest is extrapolated at the same rate. */
const SAMPLE_CHARS = 128 * 1024;

/**
 * Estimated tokens in `text`, in bounded time. Never throws: if the
 * tokenizer fails, it falls back to one token per four UTF-8 bytes.
 */
export async function estimateTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  try {
    const count = await loadCounter();
    const sample = text.slice(0, SAMPLE_CHARS);
    let tokens = 0;
    for (let at = 0; at < sample.length; at += SLICE_CHARS) {
      tokens += count(sample.slice(at, at + SLICE_CHARS));
    }
    return sample.length === text.length
      ? tokens
      : Math.ceil((tokens * text.length) / sample.length);
  } catch {
    return Math.ceil(Buffer.byteLength(text) / 4);
  }
}

/** Chat framing: about 3 tokens per message plus 3 to prime the reply. */
const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_REPLY = 3;

/** Estimated input tokens of a chat request's messages. */
export async function estimateChatInputTokens(
  messages: readonly unknown[],
): Promise<number> {
  let text = '';
  for (const message of messages) text += messageText(message) + '\n';
  const tokens = await estimateTokens(text);
  return tokens + messages.length * TOKENS_PER_MESSAGE + TOKENS_PER_REPLY;
}

function messageText(message: unknown): string {
  if (typeof message !== 'object' || message === null) return '';
  const { content } = message as { content?: unknown };
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) =>
      typeof part === 'object' &&
      part !== null &&
      typeof (part as { text?: unknown }).text === 'string'
        ? (part as { text: string }).text
        : '',
    )
    .join('');
}
