/**
 * A new PGlite data folder starts as a copy of a template cluster instead of running initdb: initdb inside
 * PGlite's WebAssembly Postgres takes 6–8 s of CPU, copying the 40 MB cluster it leaves about 0.2 s (then opening
 * it 0.5 s), which every new ATLAS_DATA_DIR, every test database and every demo set-up paid.
 * - The template is a cluster exactly as PGlite's initdb made it and closed it: no extension, no table (the
 *   migrations run on the copy as on a fresh cluster). It is kept per PGlite and pgvector build, in
 *   `<cache>/feature-atlas/pglite-template-<pglite version>-<pgvector version>`, cache being $XDG_CACHE_HOME or
 *   ~/.cache: a user's own folder, as a cluster planted by someone else would be trusted.
 * - The first process that needs it makes it in a folder of its own and renames that into place, so a process
 *   never copies half a template; when two make one at once, the first rename wins and the other is removed.
 * - A copy goes only into a folder that does not exist or is empty, so no cluster is ever overwritten; where the
 *   template cannot be made or copied (a read-only home), the folder is left for PGlite to initdb, as before.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';

/** The version of an installed package, read from the package.json above its entry (which it does not export). */
function packageVersion(name: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Where the template of this PGlite and pgvector build lives. */
export function templateDir(cacheRoot = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')): string {
  const build = `${packageVersion('@electric-sql/pglite')}-${packageVersion('@electric-sql/pglite-pgvector')}`;
  return join(cacheRoot, 'feature-atlas', `pglite-template-${build}`);
}

/** Whether `dir` holds nothing (or is absent): the only folders a template is copied into. */
function isEmpty(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/** Removes a folder of ours if it is there; a path that cannot even be looked at has nothing to remove. */
function discard(path: string): void {
  try {
    rmSync(path, { recursive: true, force: true });
  } catch {
    /* nothing there to remove */
  }
}

/** The template, made if missing; null where it cannot be. */
async function ensureTemplate(template: string): Promise<string | null> {
  if (existsSync(join(template, 'PG_VERSION'))) return template;
  const making = `${template}.${process.pid}.${Date.now()}`;
  try {
    mkdirSync(dirname(template), { recursive: true });
    const client = await PGlite.create(making, { extensions: { vector } });
    await client.close();
    try {
      renameSync(making, template);
    } catch (e) {
      // Another process renamed its template first: use that one.
      if (!existsSync(join(template, 'PG_VERSION'))) throw e;
    }
    return template;
  } catch {
    return null;
  } finally {
    discard(making);
  }
}

/**
 * Fills `clusterDir` (PGlite's folder) with a copy of the template when it does not exist or is empty; returns
 * whether it did. Anything else is left untouched for PGlite to open or to initdb itself.
 */
export async function seedFromTemplate(clusterDir: string, template = templateDir()): Promise<boolean> {
  if (!isEmpty(clusterDir)) return false;
  const source = await ensureTemplate(template);
  if (!source) return false;
  const copying = `${clusterDir}.copying`;
  try {
    rmSync(copying, { recursive: true, force: true });
    cpSync(source, copying, { recursive: true });
    // Still empty? (The data folder is locked, so only a stray file could have appeared.)
    if (!isEmpty(clusterDir)) return false;
    rmSync(clusterDir, { recursive: true, force: true });
    renameSync(copying, clusterDir);
    return true;
  } catch {
    return false;
  } finally {
    discard(copying);
  }
}
