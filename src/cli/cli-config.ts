/**
 * The configuration a command runs with: the `--config` file or the
 * built-in one, with command-line flags laid over it.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

import {
  BUILT_IN_CONFIG,
  parseConfig,
  readConfigDocument,
} from '../config/load-config.js';
import { DEFAULT_DATABASE_PATH, type Config } from '../config/config-schema.js';

export interface ConfigFlags {
  readonly config?: string;
  readonly db?: string;
  readonly host?: string;
  readonly port?: string;
  readonly logLevel?: string;
}

export async function loadCliConfig(flags: ConfigFlags): Promise<Config> {
  const document = flags.config
    ? await readConfigDocument(flags.config)
    : structuredClone(BUILT_IN_CONFIG);
  if (typeof document !== 'object' || document === null) {
    return parseConfig(document, flags.config ?? 'the built-in config');
  }
  const config = document as Record<
    string,
    Record<string, unknown> | undefined
  >;
  // A config file's database (its default `tollgate.db` too) and spool
  // live beside that file, wherever the command runs from; --db is taken
  // from the working folder.
  if (flags.config) {
    const beside = (path: unknown) =>
      typeof path === 'string' && path !== ':memory:'
        ? resolve(dirname(flags.config as string), path)
        : path;
    const database = config['database'] ?? {};
    const path = beside(database['path'] ?? DEFAULT_DATABASE_PATH);
    if (database['path'] === undefined && flags.db === undefined) {
      warnIfLeftBehind(path);
    }
    config['database'] = {
      ...database,
      path,
      ...(database['spoolPath'] !== undefined && {
        spoolPath: beside(database['spoolPath']),
      }),
    };
  }
  if (flags.db !== undefined) {
    config['database'] = { ...config['database'], path: flags.db };
  }
  if (flags.host !== undefined || flags.port !== undefined) {
    config['server'] = {
      ...config['server'],
      ...(flags.host !== undefined && { host: flags.host }),
      ...(flags.port !== undefined && { port: parsePort(flags.port) }),
    };
  }
  if (flags.logLevel !== undefined) {
    config['logging'] = { ...config['logging'], level: flags.logLevel };
  }
  return parseConfig(config, flags.config ?? 'the built-in config');
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`--port ${text} is not a port number`);
  }
  return port;
}

/**
 * A config file naming no database once meant `./tollgate.db` in the
 * working folder, and now means the one beside the file: a ledger left in
 * the working folder is said, not silently passed over.
 */
function warnIfLeftBehind(path: unknown): void {
  const old = resolve(DEFAULT_DATABASE_PATH);
  if (path === old || !existsSync(old) || existsSync(String(path))) return;
  console.error(
    `tollgate: using ${String(path)}, beside the config file; the ledger ` +
      `${old} in the working folder is not used (set database.path, or ` +
      'pass --db, to keep using it)',
  );
}
