// Starts `tandem serve` on a free loopback port and stops it again.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const BINARY = process.env.TANDEM_BINARY;
export const MODEL = process.env.TANDEM_MODEL;
if (!BINARY || !MODEL) {
  throw new Error('set TANDEM_BINARY (build/tandem) and TANDEM_MODEL (models/demo); ctest does');
}

// Sanitizer builds start and run several times slower.
export const SLOW = /asan/.test(path.dirname(BINARY));

// `model: false` serves only what extraArgs (e.g. --config) names.
export async function startServer(extraArgs = [], { model = true } = {}) {
  const args = ['serve', ...(model ? ['--model', `demo=${MODEL}`] : []), '--port', '0', '--threads', '2', ...extraArgs];
  const proc = spawn(BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), SLOW ? 120000 : 30000);
    proc.stderr.on('data', (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${log}`));
    });
  });
  return {
    proc,
    port,
    exited,
    url: `http://127.0.0.1:${port}`,
    baseURL: `http://127.0.0.1:${port}/v1`,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

// Value of a Prometheus series with the model label, e.g. metric(text, 'tandem_kv_blocks_used').
export function metric(text, name, model = 'demo') {
  const re = new RegExp(`^${name}\\{model="${model}"\\} ([0-9.eE+-]+)$`, 'm');
  const m = text.match(re);
  return m ? Number(m[1]) : undefined;
}

export async function waitFor(cond, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
