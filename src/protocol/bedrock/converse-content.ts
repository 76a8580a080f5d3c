/**
 * Converse content blocks, read into canonical ones.
 *
 * A content block is a union: an object with exactly one member, such as
 * `{ text }`, `{ image }`, `{ toolUse }` or `{ cachePoint }`. Requests
 * from Bedrock clients and answers from Bedrock share the shape, so both
 * sides read them here; they differ only in how a problem is reported,
 * which the caller decides through `BlockIssues`.
 *
 * @see https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ContentBlock.html
 */
import { isRecord } from '../../metering/usage.js';
import type { ContentBlock } from '../canonical.js';

/** A value of the wrong JSON type, or of the right type but not allowed. */
export type Problem = 'invalid_type' | 'invalid_value';

export interface BlockIssues {
  /** The block breaks Converse's own rules; must throw. */
  invalid(message: string, param: string, problem?: Problem): never;
  /**
   * The block is valid Converse that canonical blocks cannot hold. The
   * block is left out of the canonical request, so a caller that returns
   * here must refuse any translation of it.
   */
  untranslatable(message: string, param: string): void;
}

/** Every content block member Converse knows. */
const CONTENT_MEMBERS = new Set([
  'text',
  'image',
  'document',
  'video',
  'audio',
  'toolUse',
  'toolResult',
  'guardContent',
  'cachePoint',
  'reasoningContent',
  'citationsContent',
  'searchResult',
  'toolAddition',
  'toolRemoval',
]);

const TOOL_RESULT_MEMBERS = new Set([
  'text',
  'image',
  'json',
  'document',
  'video',
  'searchResult',
]);

/** What each member that has no canonical form is, for messages. */
const UNTRANSLATABLE_MEMBERS: Readonly<Record<string, string>> = {
  document: 'document blocks',
  video: 'video blocks',
  audio: 'audio blocks',
  guardContent: 'guardrail content blocks',
  cachePoint: 'cache points',
  citationsContent: 'citation blocks',
  searchResult: 'search result blocks',
  toolAddition: 'tool addition blocks',
  toolRemoval: 'tool removal blocks',
};

const IMAGE_FORMATS = new Set(['png', 'jpeg', 'gif', 'webp']);

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The one member of a Converse union object, checked against the members
 * the union allows.
 */
export function unionMember(
  value: unknown,
  allowed: ReadonlySet<string>,
  param: string,
  issues: BlockIssues,
): { readonly name: string; readonly value: unknown } {
  if (!isRecord(value))
    issues.invalid(`${param} must be an object`, param, 'invalid_type');
  const keys = Object.keys(value).filter((key) => value[key] !== undefined);
  if (keys.length !== 1) {
    issues.invalid(
      `${param} must set exactly one member, not ${keys.length}` +
        (keys.length > 0 ? ` (${keys.join(', ')})` : ''),
      param,
    );
  }
  const name = keys[0] as string;
  if (!allowed.has(name)) {
    issues.invalid(`${param} has an unknown member ${name}`, param);
  }
  return { name, value: value[name] };
}

/**
 * A Converse content block as a canonical block, or null when it has no
 * canonical form (reported through `issues.untranslatable`).
 */
export function decodeConverseBlock(
  block: unknown,
  param: string,
  issues: BlockIssues,
): ContentBlock | null {
  const member = unionMember(block, CONTENT_MEMBERS, param, issues);
  const at = `${param}.${member.name}`;
  switch (member.name) {
    case 'text':
      return { type: 'text', text: requireString(member.value, at, issues) };
    case 'image':
      return decodeImage(member.value, at, issues);
    case 'toolUse':
      return decodeToolUse(member.value, at, issues);
    case 'toolResult':
      return decodeToolResult(member.value, at, issues);
    case 'reasoningContent':
      return decodeReasoning(member.value, at, issues);
  }
  if (!isRecord(member.value))
    issues.invalid(`${at} must be an object`, at, 'invalid_type');
  issues.untranslatable(
    `${UNTRANSLATABLE_MEMBERS[member.name] ?? member.name} have no ` +
      'equivalent in the upstream API',
    at,
  );
  return null;
}

function decodeImage(
  value: unknown,
  param: string,
  issues: BlockIssues,
): Extract<ContentBlock, { type: 'image' }> | null {
  const image = requireRecord(value, param, issues);
  const format = image['format'];
  if (typeof format !== 'string' || !IMAGE_FORMATS.has(format)) {
    issues.invalid(
      `${param}.format must be one of png, jpeg, gif, webp`,
      `${param}.format`,
    );
  }
  const source = unionMember(
    image['source'],
    new Set(['bytes', 's3Location']),
    `${param}.source`,
    issues,
  );
  if (source.name === 's3Location') {
    issues.untranslatable(
      'images in S3 have no equivalent in the upstream API',
      `${param}.source.s3Location`,
    );
    return null;
  }
  const bytes = requireString(source.value, `${param}.source.bytes`, issues);
  if (bytes === '' || !BASE64.test(bytes)) {
    issues.invalid(
      `${param}.source.bytes must be non-empty base64`,
      `${param}.source.bytes`,
    );
  }
  return {
    type: 'image',
    source: { kind: 'base64', mediaType: `image/${format}`, data: bytes },
  };
}

function decodeToolUse(
  value: unknown,
  param: string,
  issues: BlockIssues,
): ContentBlock | null {
  const toolUse = requireRecord(value, param, issues);
  const id = requireString(toolUse['toolUseId'], `${param}.toolUseId`, issues);
  const name = requireString(toolUse['name'], `${param}.name`, issues);
  const input = toolUse['input'];
  if (input === undefined) {
    issues.invalid(`${param}.input is required`, `${param}.input`);
  }
  if (!isRecord(input)) {
    // Converse takes any JSON document; the canonical form only objects.
    issues.untranslatable(
      'tool input that is not a JSON object has no equivalent in the ' +
        'upstream API',
      `${param}.input`,
    );
    return null;
  }
  return { type: 'tool_use', id, name, input };
}

function decodeToolResult(
  value: unknown,
  param: string,
  issues: BlockIssues,
): ContentBlock | null {
  const result = requireRecord(value, param, issues);
  const toolUseId = requireString(
    result['toolUseId'],
    `${param}.toolUseId`,
    issues,
  );
  const status = result['status'];
  if (status !== undefined && status !== 'success' && status !== 'error') {
    issues.invalid(
      `${param}.status must be success or error`,
      `${param}.status`,
    );
  }
  const parts = result['content'];
  if (!Array.isArray(parts)) {
    issues.invalid(
      `${param}.content must be an array`,
      `${param}.content`,
      'invalid_type',
    );
  }

  const content: Extract<
    ContentBlock,
    { type: 'tool_result' }
  >['content'][number][] = [];
  let complete = true;
  (parts as unknown[]).forEach((part, index) => {
    const at = `${param}.content[${index}]`;
    const member = unionMember(part, TOOL_RESULT_MEMBERS, at, issues);
    if (member.name === 'text') {
      content.push({
        type: 'text',
        text: requireString(member.value, `${at}.text`, issues),
      });
    } else if (member.name === 'json') {
      // A JSON result reads the same to a model as its text.
      content.push({ type: 'text', text: JSON.stringify(member.value) });
    } else if (member.name === 'image') {
      const image = decodeImage(member.value, `${at}.image`, issues);
      if (image === null) complete = false;
      else content.push(image);
    } else {
      complete = false;
      issues.untranslatable(
        `${UNTRANSLATABLE_MEMBERS[member.name] ?? member.name} in tool ` +
          'results have no equivalent in the upstream API',
        `${at}.${member.name}`,
      );
    }
  });
  if (!complete) return null;
  return {
    type: 'tool_result',
    toolUseId,
    content,
    isError: status === 'error',
  };
}

function decodeReasoning(
  value: unknown,
  param: string,
  issues: BlockIssues,
): ContentBlock | null {
  const member = unionMember(
    value,
    new Set(['reasoningText', 'redactedContent']),
    param,
    issues,
  );
  if (member.name === 'redactedContent') {
    issues.untranslatable(
      'redacted reasoning has no equivalent in the upstream API',
      `${param}.redactedContent`,
    );
    return null;
  }
  const at = `${param}.reasoningText`;
  const reasoning = requireRecord(member.value, at, issues);
  const text = requireString(reasoning['text'], `${at}.text`, issues);
  const signature = reasoning['signature'];
  if (signature !== undefined && typeof signature !== 'string') {
    issues.invalid(
      `${at}.signature must be a string`,
      `${at}.signature`,
      'invalid_type',
    );
  }
  return { type: 'thinking', text, signature: signature ?? null };
}

export function requireRecord(
  value: unknown,
  param: string,
  issues: BlockIssues,
): Record<string, unknown> {
  if (!isRecord(value))
    issues.invalid(`${param} must be an object`, param, 'invalid_type');
  return value;
}

export function requireString(
  value: unknown,
  param: string,
  issues: BlockIssues,
): string {
  if (typeof value !== 'string') {
    issues.invalid(`${param} must be a string`, param, 'invalid_type');
  }
  return value;
}
