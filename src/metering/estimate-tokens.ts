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
  counter ??= import('gpt-tokenizer').then((module) => module.countTokens);
  return counter;
}

export async function estimateTokens(text: string): Promise<number> {
  if (text.length === 0) return 0;
  const count = await loadCounter();
  return count(text);
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
