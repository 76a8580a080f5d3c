/**
 * Reads, validates and freezes the configuration.
 *
 * Resolution order for every secret: the value in the file, else the
 * environment variable it names, else an error that names both ways to fix
 * it (STYLE.md, habit 9).
 */
import { readFile } from 'node:fs/promises';

import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import {
  configSchema,
  type Config,
  type ConfigInput,
  type Secret,
} from './config-schema.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates a config object; every problem is listed, not just the first. */
export function parseConfig(input: unknown, origin: string): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      `invalid configuration in ${origin}:\n${z.prettifyError(result.error)}`,
    );
  }
  return deepFreeze(result.data);
}

/** Reads a YAML (or JSON) config file. */
export async function readConfigFile(path: string): Promise<Config> {
  return parseConfig(await readConfigDocument(path), path);
}

/** The raw document of a config file, before validation. */
export async function readConfigDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${String(error)}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new ConfigError(
      `config file ${path} is not valid YAML: ${String(error)}`,
    );
  }
  return document;
}

/**
 * A secret's value: inline, or from the environment variable it names.
 * `undefined` when not configured at all.
 */
export function resolveSecret(
  secret: Secret | undefined,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (secret === undefined) return undefined;
  if (typeof secret === 'string') return secret;
  const value = env[secret.env];
  if (value === undefined || value === '') {
    throw new ConfigError(
      `${what} is read from the environment variable ${secret.env}, which ` +
        `is not set. Set ${secret.env}, or give the value in the config file.`,
    );
  }
  return value;
}

/**
 * The built-in configuration: a simulated upstream behind a few public
 * model names, so `tollgate serve` and the demo run with no set-up. Each
 * deployment is priced as the real model it stands in for.
 */
export const BUILT_IN_CONFIG: ConfigInput = {
  providers: {
    simulated: { type: 'simulated' },
  },
  models: {
    'gpt-4o': { deployments: [{ provider: 'simulated', model: 'gpt-4o' }] },
    'gpt-4o-mini': {
      deployments: [{ provider: 'simulated', model: 'gpt-4o-mini' }],
    },
    'claude-sonnet-4-5': {
      deployments: [
        { provider: 'simulated', model: 'claude-sonnet-4-5-20250929' },
      ],
    },
    'nova-lite': {
      deployments: [{ provider: 'simulated', model: 'amazon.nova-lite-v1:0' }],
    },
    'nova-micro': {
      deployments: [{ provider: 'simulated', model: 'amazon.nova-micro-v1:0' }],
    },
    'llama-local': {
      deployments: [
        {
          provider: 'simulated',
          model: 'llama-3.1-8b-instruct',
          prices: [
            {
              effectiveFrom: '2024-01-01',
              input: '0',
              output: '0',
              cacheRead: '0',
              cacheWrite: '0',
              source: 'self-hosted: no per-token charge',
            },
          ],
        },
      ],
    },
  },
};

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
