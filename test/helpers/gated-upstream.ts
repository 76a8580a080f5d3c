/**
 * An OpenAI Chat Completions upstream that holds every answer until the
 * test opens its gate, so that concurrent requests truly overlap: each
 * admitted request is in flight, holding its reservation, while the
 * others are decided.
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface GatedUpstream {
  /** Base URL ending in `/v1`. */
  readonly url: string;
  /** Requests that have arrived and are being held. */
  readonly arrived: number;
  /** Answers every held request, and every later one at once. */
  open(): void;
  close(): Promise<void>;
}

/** Each answer reports 10 prompt and 5 completion tokens, by default. */
export const GATED_USAGE = { prompt_tokens: 10, completion_tokens: 5 };

export async function startGatedUpstream(
  options: {
    /**
     * The usage every answer reports; GATED_USAGE by default, and none
     * at all for null (a server that ignores the usage contract).
     */
    readonly usage?: {
      prompt_tokens: number;
      completion_tokens: number;
    } | null;
  } = {},
): Promise<GatedUpstream> {
  const reported = options.usage === undefined ? GATED_USAGE : options.usage;
  const held: { stream: boolean; response: ServerResponse }[] = [];
  let opened = false;
  let arrived = 0;

  const answer = (stream: boolean, response: ServerResponse) => {
    const usage = reported && {
      ...reported,
      total_tokens: reported.prompt_tokens + reported.completion_tokens,
    };
    const base = {
      id: 'chatcmpl-gated',
      created: 1,
      model: 'gpt-4o-2024-08-06',
    };
    if (!stream) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          ...base,
          object: 'chat.completion',
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content: 'ok' },
              finish_reason: 'stop',
            },
          ],
          ...(usage && { usage }),
        }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    const chunk = (fields: object) =>
      `data: ${JSON.stringify({ ...base, object: 'chat.completion.chunk', ...fields })}\n\n`;
    response.end(
      chunk({
        choices: [{ index: 0, delta: { content: 'ok' }, finish_reason: null }],
      }) +
        chunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) +
        (usage ? chunk({ choices: [], usage }) : '') +
        'data: [DONE]\n\n',
    );
  };

  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    request.on('end', () => {
      arrived += 1;
      const stream = (JSON.parse(text) as { stream?: boolean }).stream === true;
      if (opened) answer(stream, response);
      else held.push({ stream, response });
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    get arrived() {
      return arrived;
    },
    open() {
      opened = true;
      for (const { stream, response } of held.splice(0)) {
        answer(stream, response);
      }
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
