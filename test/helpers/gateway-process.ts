/**
 * The gateway as its own process (`tollgate serve`), for tests that kill
 * it or signal it the way an operator or an orchestrator would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
);

export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal's name) when it ends. */
  readonly exited: Promise<number | string>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
}

export async function spawnGateway(args: {
  readonly config: string;
  readonly db: string;
  readonly env?: Readonly<Record<string, string>>;
}): Promise<GatewayProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(projectRoot, 'src', 'cli', 'main.ts'),
      'serve',
      '--config',
      args.config,
      '--db',
      args.db,
      '--port',
      '0',
    ],
    {
      cwd: projectRoot,
      env: { ...process.env, ...args.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  const exited = new Promise<number | string>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit(code ?? signal ?? -1));
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway did not start:\n${stderr}`)),
      20_000,
    );
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr += text;
      const match = /listening on (http:\/\/\S+) /.exec(stderr);
      if (match?.[1]) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`gateway exited (${code}) before listening:\n${stderr}`),
      );
    });
  });
  return { url, child, exited, stderr: () => stderr };
}
