/**
 * What the upstream reads beyond a request's body, as each API spells it:
 * the allowance for tool prompts, and the first field that brings in
 * content the body does not carry.
 */
import { describe, expect, it } from 'vitest';

import {
  BUILTIN_TOOL_ALLOWANCE,
  countBodyImages,
  hiddenInput,
  TOOL_PROMPT_ALLOWANCE,
  unmodelledText,
} from '../../src/metering/hidden-input.js';
import { worstCase } from '../../src/metering/reserve.js';

const user = (content: unknown) => ({ role: 'user', content });
const fn = { type: 'function', function: { name: 'f', parameters: {} } };

describe('Chat Completions', () => {
  it.each([
    ['plain text', { messages: [user('hi')] }, 0, null],
    ['a function tool', { messages: [user('hi')], tools: [fn] }, 1, null],
    [
      'the older functions field',
      { messages: [user('hi')], functions: [{ name: 'f' }] },
      1,
      null,
    ],
    [
      'an image by URL (bounded by its own allowance)',
      {
        messages: [
          user([{ type: 'image_url', image_url: { url: 'https://x/y.png' } }]),
        ],
      },
      0,
      null,
    ],
    [
      'a file part',
      {
        messages: [
          user('a'),
          user([
            { type: 'text', text: 'read' },
            { type: 'file', file: { file_id: 'file-1' } },
          ]),
        ],
      },
      0,
      'messages[1].content[1]',
    ],
    [
      'web search',
      { messages: [user('hi')], web_search_options: {} },
      0,
      'web_search_options',
    ],
    [
      'a hosted tool',
      { messages: [user('hi')], tools: [fn, { type: 'web_search' }] },
      1,
      'tools[1]',
    ],
  ])('%s', (_name, body, tools, unseen) => {
    expect(hiddenInput('openai-chat', body)).toEqual({
      toolTokens: tools * TOOL_PROMPT_ALLOWANCE,
      unseen,
    });
  });
});

describe('Responses', () => {
  it.each([
    ['text input', { input: 'hi' }, null],
    [
      'a previous response',
      { input: 'go on', previous_response_id: 'r' },
      'previous_response_id',
    ],
    ['a conversation', { input: 'hi', conversation: 'conv_1' }, 'conversation'],
    ['a stored prompt', { prompt: { id: 'pmpt_1' } }, 'prompt'],
    [
      'an item by reference',
      { input: [{ type: 'item_reference', id: 'msg_1' }] },
      'input[0]',
    ],
    [
      'a file',
      {
        input: [
          {
            role: 'user',
            content: [
              { type: 'input_text', text: 'x' },
              { type: 'input_file', file_url: 'https://x/a.pdf' },
            ],
          },
        ],
      },
      'input[0].content[1]',
    ],
    [
      'an image by file id',
      {
        input: [
          { role: 'user', content: [{ type: 'input_image', file_id: 'f' }] },
        ],
      },
      'input[0].content[0]',
    ],
    [
      'file search',
      { input: 'hi', tools: [{ type: 'file_search' }] },
      'tools[0]',
    ],
  ])('%s', (_name, body, unseen) => {
    expect(hiddenInput('openai-responses', body).unseen).toBe(unseen);
  });

  it('allows for the tool prompt of function tools', () => {
    expect(
      hiddenInput('openai-responses', {
        input: 'hi',
        tools: [{ type: 'function', name: 'f', parameters: {} }],
      }),
    ).toEqual({ toolTokens: TOOL_PROMPT_ALLOWANCE, unseen: null });
  });
});

describe('Anthropic Messages', () => {
  const custom = { name: 'f', input_schema: { type: 'object' } };

  it('allows for the tool prompt, and more for each built-in client tool', () => {
    expect(
      hiddenInput('anthropic-messages', {
        messages: [user('hi')],
        tools: [
          custom,
          { type: 'bash_20250124', name: 'bash' },
          { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool' },
        ],
      }),
    ).toEqual({
      toolTokens: TOOL_PROMPT_ALLOWANCE + 2 * BUILTIN_TOOL_ALLOWANCE,
      unseen: null,
    });
  });

  it.each([
    [
      'a text document (in the body)',
      [{ type: 'document', source: { type: 'text', data: 'abc' } }],
      null,
    ],
    [
      'a PDF document, whose pages bill as images',
      [{ type: 'document', source: { type: 'base64', data: 'JVBER' } }],
      'messages[0].content[0]',
    ],
    [
      'a document by URL',
      [
        { type: 'text', text: 'summarise' },
        { type: 'document', source: { type: 'url', url: 'https://x/a.pdf' } },
      ],
      'messages[0].content[1]',
    ],
    [
      'an image by file id',
      [{ type: 'image', source: { type: 'file', file_id: 'f' } }],
      'messages[0].content[0]',
    ],
    [
      'a document inside a tool result',
      [
        {
          type: 'tool_result',
          tool_use_id: 't',
          content: [
            { type: 'document', source: { type: 'file', file_id: 'f' } },
          ],
        },
      ],
      'messages[0].content[0].content[0]',
    ],
  ])('%s', (_name, content, unseen) => {
    expect(
      hiddenInput('anthropic-messages', { messages: [user(content)] }).unseen,
    ).toBe(unseen);
  });

  it.each([
    [
      'a server tool',
      { tools: [{ type: 'web_search_20250305', name: 'web_search' }] },
      'tools[0]',
    ],
    [
      'an MCP server',
      { mcp_servers: [{ type: 'url', url: 'https://m' }] },
      'mcp_servers',
    ],
    ['a container', { container: 'container_1' }, 'container'],
  ])('%s', (_name, extra, unseen) => {
    expect(
      hiddenInput('anthropic-messages', { messages: [user('hi')], ...extra })
        .unseen,
    ).toBe(unseen);
  });
});

describe('Bedrock Converse', () => {
  it.each([
    ['text', [{ text: 'hi' }], null],
    [
      'an image in the body',
      [{ image: { format: 'png', source: { bytes: 'iVBOR' } } }],
      null,
    ],
    [
      'an image from S3',
      [
        {
          image: { format: 'png', source: { s3Location: { uri: 's3://b/k' } } },
        },
      ],
      'messages[0].content[0]',
    ],
    [
      'a document',
      [
        { text: 'x' },
        { document: { format: 'pdf', name: 'a', source: { bytes: 'JVBER' } } },
      ],
      'messages[0].content[1]',
    ],
  ])('%s', (_name, content, unseen) => {
    expect(
      hiddenInput('bedrock-converse', { messages: [user(content)] }).unseen,
    ).toBe(unseen);
  });

  it('allows for the tool prompt', () => {
    expect(
      hiddenInput('bedrock-converse', {
        messages: [user([{ text: 'hi' }])],
        toolConfig: { tools: [{ toolSpec: { name: 'f' } }] },
      }).toolTokens,
    ).toBe(TOOL_PROMPT_ALLOWANCE);
  });
});

describe('the worst case', () => {
  const base = {
    bodyBytes: 300,
    images: 0,
    maxOutputTokens: 16,
    choices: 1,
    defaultMaxOutputTokens: 4096,
  };

  it('adds the tool allowance and, for unseen content, unseenInputTokens', () => {
    expect(
      worstCase({
        ...base,
        hidden: { toolTokens: 1_024, unseen: 'previous_response_id' },
        unseenInputTokens: 200_000,
      }).inputTokens,
    ).toBe(300 + 1_024 + 200_000);
    // The default is a 1M-token context window.
    expect(
      worstCase({ ...base, hidden: { toolTokens: 0, unseen: 'prompt' } })
        .inputTokens,
    ).toBe(300 + 1_000_000);
    expect(worstCase(base).inputTokens).toBe(300);
  });
});

describe('found where a review found them missed', () => {
  it('a file or stored image in a Responses tool output', () => {
    for (const part of [
      { type: 'input_file', file_id: 'file-abc' },
      { type: 'input_image', file_id: 'file-abc' },
    ]) {
      expect(
        hiddenInput('openai-responses', {
          input: [
            { type: 'function_call_output', call_id: 'c', output: [part] },
          ],
        }).unseen,
      ).toBe('input[0].output[0]');
    }
  });

  it('an image by file inside a content document', () => {
    expect(
      hiddenInput('anthropic-messages', {
        messages: [
          user([
            {
              type: 'document',
              source: {
                type: 'content',
                content: [
                  { type: 'text', text: 'x' },
                  { type: 'image', source: { type: 'file', file_id: 'f' } },
                ],
              },
            },
          ]),
        ],
      }).unseen,
    ).toBe('messages[0].content[0].source.content[1]');
  });

  it('a PDF a web fetch brought into the history', () => {
    expect(
      hiddenInput('anthropic-messages', {
        messages: [
          {
            role: 'assistant',
            content: [
              {
                type: 'web_fetch_tool_result',
                tool_use_id: 's',
                content: {
                  type: 'web_fetch_result',
                  url: 'https://x/a.pdf',
                  content: {
                    type: 'document',
                    source: { type: 'base64', data: 'JVBERi0=' },
                  },
                },
              },
            ],
          },
        ],
      }).unseen,
    ).toBe('messages[0].content[0].content.content');
  });

  it('a Converse system tool, and Claude tools in the model fields', () => {
    expect(
      hiddenInput('bedrock-converse', {
        messages: [user([{ text: 'news?' }])],
        toolConfig: { tools: [{ systemTool: { name: 'nova_grounding' } }] },
      }).unseen,
    ).toBe('toolConfig.tools[0]');
    expect(
      hiddenInput('bedrock-converse', {
        messages: [user([{ text: 'click' }])],
        additionalModelRequestFields: {
          tools: [{ type: 'computer_20250124', name: 'computer' }],
        },
      }),
    ).toEqual({
      toolTokens: TOOL_PROMPT_ALLOWANCE + BUILTIN_TOOL_ALLOWANCE,
      unseen: null,
    });
  });
});

describe('not taken for unseen input', () => {
  it('client-run OpenAI tools, with the built-in allowance', () => {
    for (const type of ['local_shell', 'shell', 'apply_patch']) {
      expect(
        hiddenInput('openai-responses', { input: 'hi', tools: [{ type }] }),
        type,
      ).toEqual({
        toolTokens: TOOL_PROMPT_ALLOWANCE + BUILTIN_TOOL_ALLOWANCE,
        unseen: null,
      });
    }
  });

  it("Anthropic's client-run memory tool", () => {
    expect(
      hiddenInput('anthropic-messages', {
        messages: [user('hi')],
        tools: [{ type: 'memory_20250818', name: 'memory' }],
      }).unseen,
    ).toBeNull();
  });

  it('fields a serializer sends as null', () => {
    expect(
      hiddenInput('openai-responses', {
        input: [
          {
            role: 'user',
            content: [
              {
                type: 'input_image',
                image_url: 'https://x/a.png',
                file_id: null,
              },
            ],
          },
        ],
        previous_response_id: null,
        prompt: null,
      }).unseen,
    ).toBeNull();
  });

  it('names in a tool schema or in text', () => {
    expect(
      hiddenInput('openai-responses', {
        input: [
          {
            role: 'user',
            content: [{ type: 'input_text', text: 'previous_response_id' }],
          },
        ],
        tools: [
          {
            type: 'function',
            name: 'f',
            parameters: { properties: { file_id: { type: 'string' } } },
          },
        ],
      }).unseen,
    ).toBeNull();
  });
});

describe('countBodyImages', () => {
  it('finds images wherever they sit, and not in schemas', () => {
    const url = { type: 'image_url', image_url: { url: 'https://x/a.png' } };
    const block = { type: 'image', source: { type: 'url', url: 'u' } };
    expect(
      countBodyImages({
        messages: [
          user([url, url]),
          {
            role: 'developer',
            content: [{ type: 'input_image', image_url: 'u' }],
          },
          user([
            {
              type: 'document',
              source: { type: 'content', content: [block, block, block] },
            },
          ]),
          user([{ image: { format: 'png', source: { bytes: 'iVBOR' } } }]),
        ],
        tools: [
          {
            type: 'function',
            parameters: { properties: { image: { type: 'string' } } },
          },
        ],
      }),
    ).toBe(2 + 1 + 3 + 1);
  });
});

describe('countBodyImages, in what a provider bills as images only', () => {
  const image = { type: 'image', url: 'https://x/a.png' };

  it("passes over tool calls' arguments and JSON tool results", () => {
    expect(
      countBodyImages({
        messages: [
          {
            role: 'assistant',
            content: [
              {
                type: 'tool_use',
                id: 't',
                name: 'add',
                input: { items: [image, image] },
              },
            ],
          },
          {
            role: 'user',
            content: [
              { toolUse: { toolUseId: 't', name: 'add', input: { image } } },
              {
                toolResult: { toolUseId: 't', content: [{ json: { image } }] },
              },
            ],
          },
        ],
        tools: [{ name: 'add', input_examples: [{ items: [image] }] }],
      }),
    ).toBe(0);
  });

  it('counts a tool result image, and a computer-use screenshot', () => {
    expect(
      countBodyImages({
        messages: [
          {
            role: 'user',
            content: [
              {
                type: 'tool_result',
                tool_use_id: 't',
                content: [
                  { type: 'image', source: { type: 'base64', data: 'x' } },
                ],
              },
            ],
          },
        ],
        input: [
          {
            type: 'computer_call_output',
            call_id: 'c',
            output: {
              type: 'computer_screenshot',
              image_url: 'data:image/png;base64,x',
            },
          },
        ],
      }),
    ).toBe(2);
  });

  it('takes a stored screenshot for unseen input', () => {
    expect(
      hiddenInput('openai-responses', {
        input: [
          {
            type: 'computer_call_output',
            call_id: 'c',
            output: { type: 'computer_screenshot', file_id: 'file-1' },
          },
        ],
      }).unseen,
    ).toBe('input[0].output');
  });
});

describe('unmodelledText', () => {
  it("is a Responses body's output schema", () => {
    const format = {
      type: 'json_schema',
      name: 'r',
      schema: { type: 'object' },
    };
    expect(unmodelledText('openai-responses', { text: { format } })).toBe(
      JSON.stringify(format),
    );
    expect(unmodelledText('openai-responses', { input: 'x' })).toBe('');
    expect(unmodelledText('openai-chat', { text: { format } })).toBe('');
  });
});

describe('a body nested past any API', () => {
  it('is scanned to a depth, not to the stack', () => {
    let content: unknown = [{ type: 'text', text: 'x' }];
    for (let i = 0; i < 10_000; i += 1) {
      content = [{ type: 'tool_result', tool_use_id: 't', content }];
    }
    const body = { messages: [{ role: 'user', content }] };
    // Content no API nests: its bound is the unseen allowance.
    expect(hiddenInput('anthropic-messages', body).unseen).not.toBeNull();
    expect(countBodyImages(body)).toBe(0);
  });
});
