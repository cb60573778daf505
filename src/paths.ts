/**
 * Files the server reads beside its code (SDL, migrations, the demo atlas, the built UI), located from
 * the package root so that the same code runs from src/ through tsx and from dist/ after `npm run build`.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

export const PACKAGE_ROOT = packageRoot();
export const SCHEMA_DIR = join(PACKAGE_ROOT, 'src', 'schema');
export const MIGRATIONS_DIR = join(PACKAGE_ROOT, 'migrations');
export const DEMO_ASSETS_DIR = join(PACKAGE_ROOT, 'assets', 'demo');
export const WEB_DIST_DIR = join(PACKAGE_ROOT, 'dist', 'web');
