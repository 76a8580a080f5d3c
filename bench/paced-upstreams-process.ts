/**
 * The upstreams of the stream benchmark, in a process of their own: the
 * OpenAI, Anthropic and Bedrock fakes, each answering a streamed request
 * with its headers after a fixed latency and then one chunk of the body
 * every interval.
 *
 * The OpenAI fake writes one SSE event per chunk. The Anthropic and
 * Bedrock fakes cut their bodies at fixed byte counts, so an event can
 * straddle two chunks, as it can on a real network.
 *
 * The OpenAI and Bedrock fakes take a delivery for every answer; the
 * Anthropic fake takes one per scripted answer, so the parent has answers
 * queued ahead of each run. It also asks when each request arrived, on
 * the clock `performance.timeOrigin + performance.now()`, which processes
 * of one machine share, so it can tell the time a request took to reach
 * the upstream from the time the answer took to come back. Requests the
 * parent sends directly carry an `x-bench-direct` header; the others came
 * through the gateway. Both go over IPC (`UpstreamsCommand`, answered with
 * `UpstreamsReply`). Ready once stderr says `paced upstreams: {urls}`.
 *
 *   node dist/bench/paced-upstreams-process.js '<UpstreamPacing as JSON>'
 */
import type { IncomingHttpHeaders } from 'node:http';

import { startAnthropicFake } from '../src/fakes/anthropic/anthropic-fake-server.js';
import { startBedrockFake } from '../src/fakes/bedrock/bedrock-fake-server.js';
import { startOpenAIFake } from '../src/fakes/openai/openai-fake-server.js';
import {
  DIRECT_HEADER,
  type UpstreamPacing,
  type UpstreamsCommand,
  type UpstreamsReply,
  type UpstreamUrls,
} from './paced-upstreams.js';

const pacing = JSON.parse(process.argv[2] ?? '') as UpstreamPacing;
const delivery = {
  latencyMs: pacing.latencyMs,
  chunkIntervalMs: pacing.chunkIntervalMs,
};

const [openai, anthropic, bedrock] = await Promise.all([
  startOpenAIFake({ delivery }),
  startAnthropicFake(),
  startBedrockFake({ ...delivery, chunkBytes: pacing.bedrockChunkBytes }),
]);

const words = Array.from(
  { length: pacing.outputTokens },
  (_, i) => `word${i}`,
).join(' ');
const anthropicAnswer = {
  kind: 'synthesize',
  usage: { input: 12, output: pacing.outputTokens },
  text: words,
  ...delivery,
  chunkBytes: pacing.anthropicChunkBytes,
} as const;

const arrivals = { direct: [] as number[], gateway: [] as number[] };
const lists: readonly (readonly { headers: IncomingHttpHeaders }[])[] = [
  openai.requests,
  anthropic.requests,
  bedrock.requests,
];
for (const requests of lists) {
  // Each fake appends a request to its `requests` once the body is in,
  // before it starts answering: that moment is the arrival. Only the time
  // is kept, so that a long run does not hold every body.
  const list = requests as { headers: IncomingHttpHeaders }[];
  list.push = (...received) => {
    const at = performance.timeOrigin + performance.now();
    for (const request of received) {
      const direct = request.headers[DIRECT_HEADER] !== undefined;
      (direct ? arrivals.direct : arrivals.gateway).push(at);
    }
    return 0;
  };
}

process.on('message', (command: UpstreamsCommand) => {
  let reply: UpstreamsReply;
  if (command.type === 'queue-anthropic') {
    for (let i = 0; i < command.count; i++) anthropic.enqueue(anthropicAnswer);
    reply = { type: 'queued' };
  } else {
    reply = { type: 'arrivals', ...arrivals };
    arrivals.direct = [];
    arrivals.gateway = [];
  }
  process.send?.(reply);
});

process.once('SIGTERM', () => {
  void Promise.all([openai.close(), anthropic.close(), bedrock.close()]).then(
    () => process.exit(0),
  );
});

const urls: UpstreamUrls = {
  openai: openai.url,
  anthropic: anthropic.url,
  bedrock: bedrock.url,
};
console.error(`paced upstreams: ${JSON.stringify(urls)}`);
