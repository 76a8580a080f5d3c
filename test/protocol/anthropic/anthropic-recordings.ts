/**
 * The Anthropic recordings in `../shared/data/wire`, read the way a client
 * receives them: `.sse` as its bytes, `.chunks.jsonl` rebuilt into the
 * SSE stream it was cut from (README: `event: <type>\ndata: <line>\n\n`).
 */
import { readdirSync, readFileSync } from 'node:fs';

import { sharedFile } from '../../helpers/shared-data.js';

export const WIRE_DIR = sharedFile('wire');

export function isAnthropicAnswer(name: string): boolean {
  return name.startsWith('anthropic_') && !name.endsWith('.request.json');
}

export function anthropicAnswerFiles(): string[] {
  return readdirSync(WIRE_DIR).filter(isAnthropicAnswer).sort();
}

export function isStreamRecording(name: string): boolean {
  return name.endsWith('.sse') || name.endsWith('.chunks.jsonl');
}

export function recordingJson(name: string): unknown {
  return JSON.parse(readFileSync(`${WIRE_DIR}/${name}`, 'utf8'));
}

/** A stream recording's bytes as they travel on the wire. */
export function streamBytes(name: string): Buffer {
  const file = readFileSync(`${WIRE_DIR}/${name}`);
  if (name.endsWith('.sse')) return file;
  const events = file
    .toString('utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const { type } = JSON.parse(line) as { type: string };
      return `event: ${type}\ndata: ${line}\n\n`;
    });
  return Buffer.from(events.join(''), 'utf8');
}

/** The `(event, data)` pairs of an SSE byte stream, in order. */
export function sseEvents(bytes: Buffer): { event: string; data: unknown }[] {
  return bytes
    .toString('utf8')
    .split(/\n\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? '';
      const data = lines
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      return { event, data: JSON.parse(data) as unknown };
    });
}
