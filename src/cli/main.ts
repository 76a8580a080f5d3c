#!/usr/bin/env node
/**
 * The `tollgate` command line.
 */
import { Command, Option } from 'commander';

import { ApiError } from '../gateway/api-error.js';
import {
  checkManagedLimit,
  LimitError,
  limitsInForce,
  limitSource,
} from '../admission/managed-limits.js';
import { startAnthropicFake } from '../fakes/anthropic/anthropic-fake-server.js';
import { createLogger } from '../observability/logger.js';
import { startBedrockFake } from '../fakes/bedrock/bedrock-fake-server.js';
import { startOpenAIFake } from '../fakes/openai/openai-fake-server.js';
import { startSimulatedUpstream } from '../providers/simulated/simulated-upstream.js';
import { SqliteStore } from '../storage/sqlite/sqlite-store.js';
import type { Store } from '../storage/store.js';
import type { Config } from '../config/config-schema.js';
import { loadCliConfig } from './cli-config.js';
import { modelsText } from './models-command.js';
import { packageVersion } from './package-version.js';
import { DEMO_MODELS, demoCommand } from './demo-command.js';
import { invoiceText } from './invoice-command.js';
import { replayCommand } from './replay-command.js';
import { serveCommand } from './serve-command.js';
import {
  createKeyText,
  createTenantText,
  listKeysText,
  listTenantsText,
  revokeKeyText,
} from './tenant-commands.js';

const program = new Command('tollgate')
  .description('An AI gateway that meters, prices and bills every LLM token.')
  .version(packageVersion())
  .showHelpAfterError();

const configOption = new Option('--config <file>', 'YAML or JSON config file');
const dbOption = new Option('--db <path>', 'SQLite database file').default(
  undefined,
  "the config's database.path (default tollgate.db beside the config file), else ./tollgate.db",
);
const jsonOption = new Option('--json', 'print JSON for machines');

program
  .command('serve')
  .description('run the gateway until SIGTERM or SIGINT')
  .addOption(configOption)
  .addOption(dbOption)
  .option('--host <host>', 'address to listen on (default 127.0.0.1)')
  .option('--port <port>', 'port to listen on (default 8787)')
  .addOption(
    new Option(
      '--log-level <level>',
      "log level (default: the config's, info)",
    ).choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  )
  .action(serveCommand);

program
  .command('models')
  .description('list the model names a config serves, and their prices today')
  .addOption(configOption)
  .addOption(jsonOption)
  .action(async (flags: { config?: string; json?: boolean }) => {
    console.log(modelsText(await loadCliConfig(flags), flags.json ?? false));
  });

program
  .command('demo')
  .description(
    'run an embedded gateway and the simulated upstream, replay a workload ' +
      'for three tenants, and print their invoices',
  )
  .option('--trace <file>', 'an Azure LLM inference trace CSV to replay')
  .option('--requests <n>', 'size of the built-in workload', '300')
  .option('--limit <n>', 'replay only the first n rows of the trace')
  .option('--concurrency <n>', 'requests in flight at once', '16')
  .addOption(jsonOption)
  .action(demoCommand);

program
  .command('replay')
  .description('drive a running gateway with the openai SDK from a trace')
  .option('--trace <file>', 'an Azure LLM inference trace CSV')
  .option(
    '--requests <n>',
    'size of the built-in workload without --trace',
    '300',
  )
  .option('--limit <n>', 'replay only the first n rows')
  .option('--url <url>', 'the gateway', 'http://127.0.0.1:8787')
  .option(
    '--admin-token <token>',
    'creates fresh tenants (default: $TOLLGATE_ADMIN_TOKEN)',
  )
  .option('--keys <keys>', 'comma-separated keys of existing tenants instead')
  .option(
    '--tenants <n>',
    'tenants to create; row i goes to tenant i mod n',
    '3',
  )
  .option(
    '--models <list>',
    'comma-separated model names; row i goes to model i mod m',
    DEMO_MODELS.join(','),
  )
  .option('--concurrency <n>', 'requests in flight at once', '16')
  .option(
    '--speed <x>',
    '"max", or a factor on the trace\'s own arrival times (1 = real time)',
    'max',
  )
  .option('--stream <mode>', 'off, on, or mixed (odd rows stream)', 'mixed')
  .addOption(jsonOption)
  .action(replayCommand);

program
  .command('invoice')
  .description("print a tenant's invoice for a month")
  .requiredOption('--tenant <name>', 'tenant name or id')
  .option(
    '--period <YYYY-MM>',
    "month, in the tenant's time zone (default: the current one)",
  )
  .addOption(configOption)
  .addOption(dbOption)
  .addOption(jsonOption)
  .action(
    async (flags: {
      tenant: string;
      period: string;
      json?: boolean;
      config?: string;
      db?: string;
    }) => {
      if (flags.config === undefined) {
        // Plans live in the config file: without one, list charges.
        console.error(
          'tollgate: no --config given, so no plan is applied: the ' +
            'invoice is at list charges',
        );
      }
      await withStore(flags, async (store, config) =>
        console.log(
          await invoiceText(
            store,
            flags.tenant,
            flags.period,
            flags.json ?? false,
            config,
          ),
        ),
      );
    },
  );

const tenants = program
  .command('tenants')
  .description('create and list tenants (straight on the database)');
tenants
  .command('create <name>')
  .description('create a tenant')
  .option('--timezone <zone>', 'IANA time zone for days and months', 'UTC')
  .addOption(configOption)
  .addOption(dbOption)
  .addOption(jsonOption)
  .action(
    async (
      name: string,
      flags: { timezone: string; json?: boolean; config?: string; db?: string },
    ) => {
      await withStore(flags, async (store) =>
        console.log(
          await createTenantText(
            store,
            name,
            flags.timezone,
            flags.json ?? false,
          ),
        ),
      );
    },
  );
tenants
  .command('list')
  .description('list tenants')
  .addOption(configOption)
  .addOption(dbOption)
  .addOption(jsonOption)
  .action(async (flags: { json?: boolean; config?: string; db?: string }) => {
    await withStore(flags, async (store) =>
      console.log(await listTenantsText(store, flags.json ?? false)),
    );
  });

const keys = program
  .command('keys')
  .description("manage tenants' virtual keys");
keys
  .command('create')
  .description('create a key; it is shown once')
  .requiredOption('--tenant <name>', 'tenant name or id')
  .option('--name <name>', 'a label for the key')
  .option(
    '--models <list>',
    'comma-separated model names it may call (default all)',
  )
  .addOption(configOption)
  .addOption(dbOption)
  .addOption(jsonOption)
  .action(
    async (flags: {
      tenant: string;
      name?: string;
      models?: string;
      json?: boolean;
      config?: string;
      db?: string;
    }) => {
      await withStore(flags, async (store, config) =>
        console.log(
          await createKeyText(
            store,
            flags.config ? config : undefined,
            flags.tenant,
            {
              ...(flags.name && { name: flags.name }),
              ...(flags.models && {
                models: flags.models.split(',').map((m) => m.trim()),
              }),
            },
            flags.json ?? false,
          ),
        ),
      );
    },
  );
keys
  .command('list')
  .description("list a tenant's keys (never their secrets)")
  .requiredOption('--tenant <name>', 'tenant name or id')
  .addOption(configOption)
  .addOption(dbOption)
  .addOption(jsonOption)
  .action(
    async (flags: {
      tenant: string;
      json?: boolean;
      config?: string;
      db?: string;
    }) => {
      await withStore(flags, async (store) =>
        console.log(
          await listKeysText(store, flags.tenant, flags.json ?? false),
        ),
      );
    },
  );
keys
  .command('revoke <key>')
  .description('revoke a key, given its id (key_...) or the key itself')
  .requiredOption('--tenant <name>', 'tenant name or id')
  .addOption(configOption)
  .addOption(dbOption)
  .action(
    async (
      keyId: string,
      flags: { tenant: string; config?: string; db?: string },
    ) => {
      await withStore(flags, async (store) =>
        console.log(await revokeKeyText(store, flags.tenant, keyId)),
      );
    },
  );

program
  .command('simulate')
  .description('run the simulated OpenAI-compatible upstream on its own')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '8788')
  .option('--latency <ms>', 'delay before the first byte', '0')
  .option('--chunk-interval <ms>', 'delay between streamed chunks', '0')
  .action(
    async (flags: {
      host: string;
      port: string;
      latency: string;
      chunkInterval: string;
    }) => {
      const upstream = await startSimulatedUpstream({
        host: flags.host,
        port: Number(flags.port),
        latencyMs: Number(flags.latency),
        chunkIntervalMs: Number(flags.chunkInterval),
      });
      console.error(`simulated upstream on ${upstream.url}`);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await upstream.close();
    },
  );

const limits = program
  .command('limits')
  .description(
    'list, set and delete managed limits (straight on the database; a ' +
      'running gateway picks changes up within seconds)',
  );
limits
  .command('list')
  .description('the limits in force: the config file’s and the managed ones')
  .addOption(configOption)
  .addOption(dbOption)
  .action(async (flags: { config?: string; db?: string }) => {
    await withStore(flags, async (store, config) => {
      const inForce = await limitsInForce(config, store, createLogger('warn'));
      // As the admin API lists them: each with where it comes from.
      const listed = inForce.map((limit) => ({
        ...limit,
        source: limitSource(config, limit.id),
      }));
      console.log(JSON.stringify(listed, null, 2));
    });
  });
limits
  .command('set <id> <definition>')
  .description(
    "create or replace a managed limit; <definition> is the limit's JSON " +
      'without its id, e.g. \'{"tenant":"acme","budgetUsd":"50","per":"month"}\'',
  )
  .addOption(configOption)
  .addOption(dbOption)
  .action(
    async (
      id: string,
      definition: string,
      flags: { config?: string; db?: string },
    ) => {
      await withStore(flags, async (store, config) => {
        let input: unknown;
        try {
          input = JSON.parse(definition) as unknown;
        } catch {
          throw new LimitError('the definition is not JSON');
        }
        const limit = await checkManagedLimit(id, input, config, store);
        await store.putLimit({
          id,
          definition: JSON.stringify(limit),
          updatedAt: Date.now(),
        });
        console.log(JSON.stringify(limit, null, 2));
      });
    },
  );
limits
  .command('delete <id>')
  .description('delete a managed limit')
  .addOption(configOption)
  .addOption(dbOption)
  .action(async (id: string, flags: { config?: string; db?: string }) => {
    await withStore(flags, async (store) => {
      if (!(await store.deleteLimit(id))) {
        throw new LimitError(`no managed limit "${id}"`);
      }
      console.log(`deleted ${id}`);
    });
  });

program
  .command('fake')
  .description(
    "run a provider's fake upstream on its own, synthesising answers in " +
      'its wire format (for demos and trying providers without keys)',
  )
  .addOption(
    new Option('--provider <name>', 'which API to speak')
      .choices(['openai', 'anthropic', 'bedrock'])
      .makeOptionMandatory(),
  )
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--port <port>', 'port to listen on', '8789')
  .action(async (flags: { provider: string; host: string; port: string }) => {
    const where = { host: flags.host, port: Number(flags.port) };
    const fake =
      flags.provider === 'anthropic'
        ? await startAnthropicFake(where)
        : flags.provider === 'bedrock'
          ? await startBedrockFake(where)
          : await startOpenAIFake(where);
    console.error(`fake ${flags.provider} upstream on ${fake.url}`);
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    await fake.close();
  });

async function withStore(
  flags: { config?: string; db?: string },
  run: (store: Store, config: Config) => Promise<void>,
): Promise<void> {
  const config = await loadCliConfig(flags);
  const store = new SqliteStore({ path: config.database.path });
  try {
    await run(store, config);
  } finally {
    await store.close();
  }
}

program.parseAsync().catch((error: unknown) => {
  const message =
    error instanceof ApiError || error instanceof Error
      ? error.message
      : String(error);
  console.error(`tollgate: ${message}`);
  process.exitCode = 1;
});
