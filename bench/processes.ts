/**
 * The processes a benchmark runs beside its load generator (the gateway,
 * the upstreams), started from the built code so that they do not share
 * an event loop with the client that times them.
 */
import {
  spawn,
  type ChildProcess,
  type StdioOptions,
} from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** The built `tollgate` command line. */
export const CLI = fileURLToPath(
  new URL('../src/cli/main.js', import.meta.url),
);

/** The admin token the benchmarks' gateways are started with. */
export const ADMIN_TOKEN = 'bench-admin-token';

export interface StartOptions {
  readonly env?: Readonly<Record<string, string>>;
  /** Node flags before the script, such as `--cpu-prof`. */
  readonly nodeArgs?: readonly string[];
  /** Opens an IPC channel, for `child.send`. */
  readonly ipc?: boolean;
}

export interface StartedProcess {
  readonly child: ChildProcess;
  /** What the ready pattern captured from the child's stderr. */
  readonly ready: string;
}

/**
 * Runs `node script ...args` and resolves once its stderr matches `ready`
 * (with the first capture group), or rejects if it exits first. The child
 * is added to `children` at once, so that the caller can stop it whatever
 * happens.
 */
export async function startProcess(
  script: string,
  args: readonly string[],
  ready: RegExp,
  children: ChildProcess[],
  options: StartOptions = {},
): Promise<StartedProcess> {
  const stdio: StdioOptions = options.ipc
    ? ['ignore', 'ignore', 'pipe', 'ipc']
    : ['ignore', 'ignore', 'pipe'];
  const child: ChildProcess = spawn(
    process.execPath,
    [...(options.nodeArgs ?? []), script, ...args],
    { env: { ...process.env, ...options.env }, stdio },
  );
  children.push(child);
  let output = '';
  const captured = await new Promise<string>((resolve, reject) => {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      output += text;
      const match = ready.exec(output);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) =>
      reject(new Error(`${script} exited ${code}: ${output}`)),
    );
  });
  return { child, ready: captured };
}

/** Creates a tenant named `name` and returns a new virtual key of it. */
export async function createKey(
  gatewayUrl: string,
  name = 'bench',
): Promise<string> {
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${gatewayUrl}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    return (await response.json()) as { key?: string };
  };
  await post('/admin/v1/tenants', { name });
  const { key } = await post(`/admin/v1/tenants/${name}/keys`, {});
  if (!key) throw new Error('could not create a key');
  return key;
}

/** A process's peak resident set (VmHWM), in KiB. */
export async function peakRss(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) : Number.NaN;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Stops the children with SIGTERM and waits until each has exited; one
 * still running after `graceMs` is killed.
 */
export async function stopAll(
  children: readonly ChildProcess[],
  graceMs = 10_000,
): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            resolve();
            return;
          }
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}
