/**
 * The command line as a user runs it: failures end the process with a
 * one-line reason, and the replay reports only its own requests.
 */
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { builtInWorkload } from '../../src/replay/trace.js';
import { SqliteStore } from '../../src/storage/sqlite/sqlite-store.js';
import { parseKey } from '../../src/tenants/api-keys.js';
import { createApiKey, createTenant } from '../../src/tenants/tenants.js';
import { startTestGateway, type TestGateway } from '../helpers/test-gateway.js';

const run = promisify(execFile);

/** Runs `tollgate …` from source; resolves with its exit code and output. */
async function tollgate(...args: string[]) {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', ...args],
      { timeout: 30_000 },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('tollgate CLI', () => {
  let folder: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'tollgate-cli-'));
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('serve exits with the reason when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) =>
      blocker.listen(0, '127.0.0.1', resolve),
    );
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const result = await tollgate(
        'serve',
        '--port',
        String(port),
        '--db',
        join(folder, 'taken.db'),
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('EADDRINUSE');
    } finally {
      blocker.close();
    }
  });

  it('replay names a missing trace file without a stack trace', async () => {
    const result = await tollgate(
      'replay',
      '--trace',
      join(folder, 'nope.csv'),
      '--keys',
      'x',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^tollgate: cannot read trace .*nope\.csv: ENOENT/,
    );
    expect(result.stderr).not.toContain('    at ');
  });

  it('models lists each name with the prices in force', async () => {
    const result = await tollgate('models', '--json');
    const rows = JSON.parse(result.stdout) as {
      model: string;
      input: string | null;
    }[];
    // Nova Lite's catalog input rate: 0.06 USD per 1M tokens.
    expect(rows.find((r) => r.model === 'nova-lite')?.input).toBe('0.06');
    // The built-in self-hosted model is explicitly free.
    expect(rows.find((r) => r.model === 'llama-local')?.input).toBe('0');
  });
});

describe('tollgate limits set', () => {
  let folder: string;
  let db: string;
  let key: string;
  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'tollgate-cli-limits-'));
    db = join(folder, 'tollgate.db');
    const store = new SqliteStore({ path: db });
    const tenant = await createTenant(store, { name: 'acme' });
    key = (await createApiKey(store, tenant, {})).key;
    await store.close();
  });
  afterAll(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it('refuses the virtual key itself, naming only its id, and a tenant by a wrong case', async () => {
    const byKey = await tollgate(
      'limits',
      'set',
      'by-key',
      JSON.stringify({ key, requests: 1, per: 'day' }),
      '--db',
      db,
    );
    expect(byKey.code).toBe(1);
    expect(byKey.stderr).toBe(
      'tollgate: key: this is the virtual key itself, secret included; ' +
        `give its id, ${parseKey(key)?.id ?? ''}, instead\n`,
    );
    const byTenant = await tollgate(
      'limits',
      'set',
      'by-tenant',
      JSON.stringify({ tenant: 'ACME', requests: 1, per: 'day' }),
      '--db',
      db,
    );
    expect(byTenant.code).toBe(1);
    expect(byTenant.stderr).toBe(
      'tollgate: tenant: no tenant has the name or id "ACME"; the match is ' +
        'case-sensitive: did you mean "acme"?\n',
    );
    const store = new SqliteStore({ path: db });
    try {
      expect(await store.listLimits()).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('lists each limit in force with where it comes from', async () => {
    const config = join(folder, 'tollgate.json');
    await writeFile(
      config,
      JSON.stringify({
        database: { path: 'tollgate.db' },
        providers: { sim: { type: 'simulated' } },
        models: { m: { deployments: [{ provider: 'sim', model: 'gpt-4o' }] } },
        limits: [{ id: 'from-file', requests: 5, per: 'day' }],
        entitlements: { acme: { included: { usd: '5' }, overage: 'block' } },
      }),
    );
    const set = await tollgate(
      'limits',
      'set',
      'from-cli',
      JSON.stringify({ tenant: 'acme', requests: 1, per: 'day' }),
      '--config',
      config,
    );
    expect(set.code).toBe(0);
    const listed = await tollgate('limits', 'list', '--config', config);
    expect(listed.code).toBe(0);
    const limits = JSON.parse(listed.stdout) as {
      id: string;
      source: string;
    }[];
    expect(limits.map((l) => [l.id, l.source])).toEqual([
      ['from-file', 'config'],
      ['plan.acme', 'plan'],
      ['from-cli', 'managed'],
    ]);
  });
});

describe('tollgate replay --keys', () => {
  let t: TestGateway;
  beforeAll(async () => {
    t = await startTestGateway();
  });
  afterAll(async () => {
    await t.close();
  });

  it('reports its own requests even when the tenant has other traffic', async () => {
    // Traffic of the same tenant just before the replay: 5,000 + 1,000.
    await t.tenant.client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'hi' }],
      metadata: {
        tollgate_sim_prompt_tokens: '5000',
        tollgate_sim_completion_tokens: '1000',
      },
    });
    const result = await tollgate(
      'replay',
      '--url',
      t.url,
      '--keys',
      t.tenant.key,
      '--models',
      'gpt-4o',
      '--requests',
      '10',
      '--json',
    );
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      tenants: {
        sent: number;
        metered: { requests: number; input_tokens: number };
      }[];
    };
    const [tenant] = report.tenants;
    expect(tenant?.sent).toBe(10);
    expect(tenant?.metered.requests).toBe(10);
    // The workload's own counts (the replay's input), not the earlier 5,000.
    const sent = builtInWorkload(10).reduce(
      (sum, row) => sum + row.inputTokens,
      0,
    );
    expect(tenant?.metered.input_tokens).toBe(sent);
  });
});

describe('tollgate fake', () => {
  it('serves a provider API on its own until SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'fake',
        '--provider',
        'anthropic',
        '--port',
        '0',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', resolve),
    );
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString('utf8');
        const match = /upstream on (http:\/\/\S+)/.exec(stderr);
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', () => reject(new Error(stderr)));
    });
    const response = await fetch(`${url}/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': 'any',
        'anthropic-version': '2023-06-01',
      },
      body: JSON.stringify({
        model: 'claude-sonnet-4-5',
        max_tokens: 5,
        // 8 bytes: the fake's default input is ceil(bytes / 4).
        system: 'Be brief',
        messages: [{ role: 'user', content: 'Hi, you!' }],
      }),
    });
    const message = (await response.json()) as {
      type: string;
      usage: { input_tokens: number; output_tokens: number };
    };
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(response.status).toBe(200);
    expect(message.type).toBe('message');
    // min(max_tokens, 16) output; input from system and messages.
    expect(message.usage.output_tokens).toBe(5);
    expect(message.usage.input_tokens).toBeGreaterThan(0);
  });
});

describe('a config file that names no database', () => {
  it('says so when it leaves a ledger in the working folder behind', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'tollgate-cli-left-'));
    try {
      // A ledger where the working folder's default used to put it.
      const old = new SqliteStore({ path: join(folder, 'tollgate.db') });
      await old.close();
      const config = join(folder, 'conf', 'tollgate.json');
      await mkdir(join(folder, 'conf'));
      await writeFile(
        config,
        JSON.stringify({
          providers: { sim: { type: 'simulated' } },
          models: { m: { deployments: [{ provider: 'sim', model: 'x' }] } },
        }),
      );
      const { stderr } = await run(
        process.execPath,
        [
          // Resolved from here: the working folder has no node_modules.
          '--import',
          import.meta.resolve('tsx'),
          join(process.cwd(), 'src/cli/main.ts'),
          'tenants',
          'list',
          '--config',
          config,
        ],
        { cwd: folder, timeout: 30_000 },
      );
      expect(stderr).toBe(
        `tollgate: using ${join(folder, 'conf', 'tollgate.db')}, beside the ` +
          `config file; the ledger ${join(folder, 'tollgate.db')} in the ` +
          'working folder is not used (set database.path, or pass --db, to ' +
          'keep using it)\n',
      );
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
