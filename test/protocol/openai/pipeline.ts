/**
 * A translation pipeline for tests: a request goes to the OpenAI fake
 * through the real client, and the upstream's answer comes back decoded
 * into canonical events or a canonical response, ready for an encoder.
 */
import { Agent } from 'undici';

import type {
  CanonicalChatResponse,
  CanonicalStreamEvent,
  UpstreamProtocol,
} from '../../../src/protocol/canonical.js';
import {
  OpenAIClient,
  type OpenAIWireApi,
} from '../../../src/providers/openai/openai-client.js';
import type { UpstreamResponse } from '../../../src/providers/upstream.js';

export const dispatcher = new Agent();

export function openAIClient(baseUrl: string, api: OpenAIWireApi) {
  return new OpenAIClient({
    api,
    baseUrl,
    apiKey: 'sk-fake',
    headersTimeoutMs: 5_000,
    bodyTimeoutMs: 5_000,
    dispatcher,
  });
}

export async function readAll(response: UpstreamResponse): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Streams the call and decodes each network chunk as it comes. */
export async function streamedEvents(
  response: UpstreamResponse,
  protocol: UpstreamProtocol,
): Promise<CanonicalStreamEvent[]> {
  const decoder = protocol.createStreamDecoder();
  const events: CanonicalStreamEvent[] = [];
  for await (const chunk of response.body) {
    for (const frame of decoder.push(chunk as Buffer)) {
      events.push(...frame.events);
    }
  }
  for (const frame of decoder.end()) events.push(...frame.events);
  return events;
}

export async function decodedResponse(
  response: UpstreamResponse,
  protocol: UpstreamProtocol,
): Promise<CanonicalChatResponse> {
  const body = JSON.parse(
    (await readAll(response)).toString('utf8'),
  ) as unknown;
  return protocol.decodeResponse(body);
}

/** Runs every event through an encoder; the bytes a client receives. */
export function encodeAll(
  encoder: { encode(event: CanonicalStreamEvent): Buffer },
  events: readonly CanonicalStreamEvent[],
): Buffer {
  return Buffer.concat(events.map((event) => encoder.encode(event)));
}
