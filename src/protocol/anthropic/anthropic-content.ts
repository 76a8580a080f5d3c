/**
 * Anthropic content blocks ↔ canonical content blocks, and stop reasons.
 *
 * Reading is shared by the request decoder (a client's body) and the
 * response decoder (an upstream's answer); the two differ only in what a
 * malformed block is (the client's 400, or the upstream's protocol error),
 * so the caller passes a `BlockReader` that decides.
 *
 * @see https://docs.anthropic.com/en/api/messages
 */
import {
  UntranslatableError,
  type ContentBlock,
  type StopReason,
} from '../canonical.js';
import { isRecord } from '../../metering/usage.js';

type ToolResultPart = Extract<
  ContentBlock,
  { type: 'tool_result' }
>['content'][number];

/** What to do with a block that is malformed, or that has no canonical form. */
export interface BlockReader {
  /** A malformed block; throws. `param` is a dotted path (`messages.0.content.1`). */
  fail(
    code: 'missing_required_parameter' | 'invalid_type' | 'invalid_value',
    message: string,
    param: string,
  ): never;
  /** Notes a feature canonical form cannot carry; reading goes on. */
  untranslatable(error: UntranslatableError): void;
}

/**
 * Reads one Anthropic content block. Returns undefined for a block with no
 * canonical form (a document, a server tool's call or result, redacted
 * thinking), after telling `reader` about it.
 */
export function readAnthropicBlock(
  value: unknown,
  path: string,
  reader: BlockReader,
): ContentBlock | undefined {
  if (!isRecord(value)) {
    return reader.fail(
      'invalid_type',
      `${path}: Input should be an object`,
      path,
    );
  }
  const type = value['type'];
  if (typeof type !== 'string') {
    return reader.fail(
      'missing_required_parameter',
      `${path}.type: Field required`,
      `${path}.type`,
    );
  }
  if (isSet(value['cache_control'])) {
    reader.untranslatable(
      new UntranslatableError(
        `${path}.cache_control: prompt caching cannot be expressed in the ` +
          "upstream's API",
        `${path}.cache_control`,
      ),
    );
  }

  switch (type) {
    case 'text':
      if (isSet(value['citations'])) {
        reader.untranslatable(
          new UntranslatableError(
            `${path}.citations: citations cannot be expressed in the ` +
              "upstream's API",
            `${path}.citations`,
          ),
        );
      }
      return { type, text: readString(value, 'text', path, reader) };
    case 'image':
      return readImage(value, path, reader);
    case 'tool_use':
      return {
        type,
        id: readString(value, 'id', path, reader),
        name: readString(value, 'name', path, reader),
        input: readObject(value, 'input', path, reader),
      };
    case 'tool_result':
      return readToolResult(value, path, reader);
    case 'thinking':
      return {
        type,
        text: readString(value, 'thinking', path, reader),
        signature: readString(value, 'signature', path, reader),
      };
  }
  reader.untranslatable(
    new UntranslatableError(
      `${path}: a content block of type '${type}' cannot be expressed in ` +
        "the upstream's API",
      `${path}.type`,
    ),
  );
  return undefined;
}

/** Present and not empty: `null` and `[]` ask for nothing. */
export function isSet(value: unknown): boolean {
  return (
    value !== undefined &&
    value !== null &&
    !(Array.isArray(value) && value.length === 0)
  );
}

function readImage(
  value: Readonly<Record<string, unknown>>,
  path: string,
  reader: BlockReader,
): ContentBlock | undefined {
  const source = readObject(value, 'source', path, reader);
  const at = `${path}.source`;
  switch (source['type']) {
    case 'base64':
      return {
        type: 'image',
        source: {
          kind: 'base64',
          mediaType: readString(source, 'media_type', at, reader),
          data: readString(source, 'data', at, reader),
        },
      };
    case 'url':
      return {
        type: 'image',
        source: { kind: 'url', url: readString(source, 'url', at, reader) },
      };
  }
  reader.untranslatable(
    new UntranslatableError(
      `${at}.type: an image source of type ` +
        `${JSON.stringify(source['type'])} cannot be expressed in the ` +
        "upstream's API",
      `${at}.type`,
    ),
  );
  return undefined;
}

function readToolResult(
  value: Readonly<Record<string, unknown>>,
  path: string,
  reader: BlockReader,
): ContentBlock {
  const toolUseId = readString(value, 'tool_use_id', path, reader);
  const isError = value['is_error'] ?? false;
  if (typeof isError !== 'boolean') {
    return reader.fail(
      'invalid_type',
      `${path}.is_error: Input should be a valid boolean`,
      `${path}.is_error`,
    );
  }

  const raw = value['content'] ?? [];
  let content: ToolResultPart[];
  if (typeof raw === 'string') {
    content = [{ type: 'text', text: raw }];
  } else if (Array.isArray(raw)) {
    content = [];
    raw.forEach((part: unknown, i) => {
      const at = `${path}.content.${i}`;
      const block = readAnthropicBlock(part, at, reader);
      if (block === undefined) return;
      if (block.type !== 'text' && block.type !== 'image') {
        reader.fail(
          'invalid_value',
          `${at}.type: a tool result holds only text and image blocks`,
          `${at}.type`,
        );
      }
      content.push(block);
    });
  } else {
    return reader.fail(
      'invalid_type',
      `${path}.content: Input should be a string or a list of blocks`,
      `${path}.content`,
    );
  }
  return { type: 'tool_result', toolUseId, content, isError };
}

function readString(
  value: Readonly<Record<string, unknown>>,
  field: string,
  path: string,
  reader: BlockReader,
): string {
  const text = value[field];
  if (text === undefined) {
    return reader.fail(
      'missing_required_parameter',
      `${path}.${field}: Field required`,
      `${path}.${field}`,
    );
  }
  if (typeof text !== 'string') {
    return reader.fail(
      'invalid_type',
      `${path}.${field}: Input should be a valid string`,
      `${path}.${field}`,
    );
  }
  return text;
}

function readObject(
  value: Readonly<Record<string, unknown>>,
  field: string,
  path: string,
  reader: BlockReader,
): Readonly<Record<string, unknown>> {
  const object = value[field];
  if (object === undefined) {
    return reader.fail(
      'missing_required_parameter',
      `${path}.${field}: Field required`,
      `${path}.${field}`,
    );
  }
  if (!isRecord(object)) {
    return reader.fail(
      'invalid_type',
      `${path}.${field}: Input should be an object`,
      `${path}.${field}`,
    );
  }
  return object;
}

/**
 * A canonical block in Anthropic's wire shape. Thinking without a
 * signature cannot go back to Anthropic, which checks signatures, so it is
 * refused rather than dropped.
 */
export function encodeAnthropicBlock(
  block: ContentBlock,
  path: string,
): Record<string, unknown> {
  switch (block.type) {
    case 'text':
      return { type: 'text', text: block.text };
    case 'image':
      return { type: 'image', source: encodeImageSource(block.source) };
    case 'tool_use':
      return {
        type: 'tool_use',
        id: block.id,
        name: block.name,
        input: block.input,
      };
    case 'tool_result':
      return {
        type: 'tool_result',
        tool_use_id: block.toolUseId,
        content: block.content.map((part, i) =>
          encodeAnthropicBlock(part, `${path}.content.${i}`),
        ),
        ...(block.isError && { is_error: true }),
      };
    case 'thinking':
      if (block.signature === null) {
        throw new UntranslatableError(
          `${path}: Anthropic accepts thinking only with the signature it ` +
            'issued, and this thinking has none',
          path,
        );
      }
      return {
        type: 'thinking',
        thinking: block.text,
        signature: block.signature,
      };
  }
}

function encodeImageSource(
  source: Extract<ContentBlock, { type: 'image' }>['source'],
): Record<string, unknown> {
  return source.kind === 'base64'
    ? { type: 'base64', media_type: source.mediaType, data: source.data }
    : { type: 'url', url: source.url };
}

/**
 * Anthropic's stop reason in canonical terms; null when there is none or
 * it is one this version does not know (the answer is still good).
 */
export function canonicalStopReason(value: unknown): StopReason | null {
  switch (value) {
    case 'end_turn':
    case 'max_tokens':
    case 'stop_sequence':
    case 'tool_use':
      return value;
    case 'refusal':
      return 'content_filter';
    // The server paused a long turn; for the client the turn is over.
    case 'pause_turn':
      return 'end_turn';
    // The answer was cut by the context window: a length stop.
    case 'model_context_window_exceeded':
      return 'max_tokens';
  }
  return null;
}

/** A canonical stop reason as Anthropic writes it. */
export function anthropicStopReason(reason: StopReason | null): string | null {
  return reason === 'content_filter' ? 'refusal' : reason;
}
