/**
 * Where a command's database is: beside the config file that names it,
 * or names none; from the working folder for --db and without a file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, expect, it } from 'vitest';

import { loadCliConfig } from '../../src/cli/cli-config.js';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'tollgate-cli-config-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

async function configFile(name: string, database?: unknown) {
  const path = join(folder, name);
  await writeFile(
    path,
    JSON.stringify({
      providers: { sim: { type: 'simulated' } },
      models: { m: { deployments: [{ provider: 'sim', model: 'x' }] } },
      ...(database !== undefined && { database }),
    }),
  );
  return path;
}

it('puts the default database beside a config file that names none', async () => {
  const config = await loadCliConfig({ config: await configFile('a.json') });
  expect(config.database.path).toBe(join(folder, 'tollgate.db'));
});

it('takes a named database and spool relative to the config file', async () => {
  const config = await loadCliConfig({
    config: await configFile('b.json', { path: 'ledger.db', spoolPath: 'q' }),
  });
  expect(config.database.path).toBe(join(folder, 'ledger.db'));
  expect(config.database.spoolPath).toBe(join(folder, 'q'));
});

it('keeps :memory:, --db as given, and the built-in default', async () => {
  const memory = await loadCliConfig({
    config: await configFile('c.json', { path: ':memory:' }),
  });
  expect(memory.database.path).toBe(':memory:');
  const flag = await loadCliConfig({
    config: await configFile('d.json'),
    db: 'here.db',
  });
  expect(flag.database.path).toBe('here.db');
  expect((await loadCliConfig({})).database.path).toBe('tollgate.db');
});
