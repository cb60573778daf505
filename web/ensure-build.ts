/**
 * Builds the UI into dist/web when it is missing or older than its sources, so `npm start` and the
 * browser tests work on a fresh clone with no separate build step. Run directly (`prestart`;
 * `--force` for `npm run build`) or imported by the tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(WEB);
const OUT = join(ROOT, 'dist', 'web');
/** Written after a successful build; its mtime is the build's. */
const STAMP = join(OUT, '.built');

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

/** Why a build is needed, or null when dist/web is current. */
export function webBuildNeeded(): string | null {
  if (!existsSync(STAMP)) return `${OUT} has not been built`;
  const built = statSync(STAMP).mtimeMs;
  // package-lock.json: a dependency upgrade changes what gets bundled.
  const newest = Math.max(newestMtime(WEB), statSync(join(ROOT, 'package-lock.json')).mtimeMs);
  return newest > built ? 'the UI sources changed since the last build' : null;
}

export function ensureWebBuild(opts: { force?: boolean; log?: (line: string) => void } = {}): void {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const why = opts.force ? 'npm run build' : webBuildNeeded();
  if (!why) return;
  log(`Building the web UI (${why})…`);
  const vite = join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js');
  const run = spawnSync(
    process.execPath,
    [vite, 'build', '--config', join(WEB, 'vite.config.ts'), '--logLevel', 'warn'],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (run.status !== 0)
    throw new Error(`vite build failed (exit ${run.status ?? run.signal}); run \`npm run build:web\` to see why.`);
  writeFileSync(STAMP, new Date().toISOString());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1])
  ensureWebBuild({ force: process.argv.includes('--force') });
