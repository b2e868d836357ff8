// ctest entry point: fails loudly when the npm dependencies are missing, then
// runs every *.test.mjs here with node's built-in test runner.
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
if (!existsSync(path.join(here, 'node_modules', 'openai', 'package.json'))) {
  console.error(
    `e2e: the openai npm package is not installed in ${here}/node_modules.\n` +
      'Run `make e2e-deps` (npm ci in tests/server/e2e); `make test` does it for you.',
  );
  process.exit(1);
}
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.mjs'))
  .map((f) => path.join(here, f));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
