/**
 * Where a server's model and dictionary files come from (docs/decisions/0005-artifacts-in-the-database.md).
 *
 * `atlas model add` and `atlas import` store every file a server needs by content (sha256): on
 * PostgreSQL in the database (src/db/artifacts.ts), so that any replica can serve; on PGlite in
 * <data dir>/artifacts/<sha256> (one process, one machine; models there keep pointing at their
 * checkpoint). A catalog row holds the manifest (file names, hashes, and a version hashing them all).
 * A server materialises a manifest once into <cache dir>/<version>/, streaming each file, checking
 * its hash, and renaming the folder into place, so a restart reuses it and a crash leaves nothing
 * half-written. Rows older than the store point at paths; they are read from there until
 * `migrateArtifacts` stores their files. A model's manifest also names the ONNX graph `atlas model add`
 * (or `atlas migrate-artifacts`) converted, fetched into <data dir>/onnx/<key>/ so replicas need not
 * convert. Files no row names any more are pruned once older than a grace period; an importer claims
 * the files it reuses (their age restarts), so a prune never takes one from under an import in flight.
 * Cache folders and converted graphs no row needs go by the same walk and grace.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
} from 'node:fs';
import { basename, dirname, join, posix, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { cacheDirOf, type Config } from '../config.js';
import { CHUNK_BYTES, claimBlob, pruneBlobs, readBlob, referencedBlobs, writeBlob } from '../db/artifacts.js';
import type { Database } from '../db/client.js';
import { listModels, referencedVersions, type DictionaryRow, type ModelRow, type RowVersion } from '../db/catalog.js';
import type { ArtifactManifest } from '../db/schema.js';
import { convertedGraphKey, convertModel, graphBuilderVersion, modelFiles } from '../engine/model/load.js';
import { buildOnce, cachedEntry, entryHeld, MODEL_FILE } from '../engine/runtime/onnx-cache.js';
import { dictionaryFiles } from '../engine/sae/open.js';
import { tokenizerFiles } from '../engine/tokenizers/load.js';
import { AtlasError } from '../errors.js';

export type { ArtifactManifest };

/** Where content-addressed files are kept; every file leaves and enters it with its hash checked. */
interface ArtifactStore {
  /** A folder store's folder, recorded in the manifest so any process on the machine finds the files. */
  folder?: string;
  /** Whether the store has the file, claiming it (its age restarts) so that a prune spares it. */
  has(sha256: string): Promise<boolean>;
  /** Stores the file at `path`, which must still hash to `sha256`. */
  put(path: string, sha256: string, size: number): Promise<void>;
  /** Writes the file `sha256` to `dest`, or returns false when the store does not have it. */
  get(sha256: string, dest: string): Promise<boolean>;
}

/** Passes chunks through while hashing them, and fails at the end unless they hash to `sha256`. */
function checked(sha256: string, what: string) {
  return async function* (chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    for await (const chunk of chunks) {
      hash.update(chunk);
      yield chunk;
    }
    const got = hash.digest('hex');
    if (got !== sha256) {
      throw new AtlasError(
        'BAD_FILE',
        `${what} has sha256 ${got.slice(0, 12)}… but ${sha256.slice(0, 12)}… was expected; it changed or was ` +
          `damaged in transit. Try again; if it repeats, add the model or dictionary again.`,
      );
    }
  };
}

export async function hashFile(path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK_BYTES })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

const tempName = (path: string) => `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;

function databaseStore(database: Database): ArtifactStore {
  return {
    has: (sha256) => claimBlob(database, sha256),
    put: (path, sha256, size) =>
      writeBlob(database, sha256, size, () =>
        checked(sha256, path)(createReadStream(path, { highWaterMark: CHUNK_BYTES }) as AsyncIterable<Buffer>),
      ),
    async get(sha256, dest) {
      const chunks = await readBlob(database, sha256);
      if (!chunks) return false;
      await pipeline(chunks, checked(sha256, `The stored file ${sha256.slice(0, 12)}…`), createWriteStream(dest));
      return true;
    },
  };
}

/** PGlite: files in <data dir>/artifacts, linked (not copied) into the cache when it is on the same disk. */
function folderStore(root: string): ArtifactStore {
  const at = (sha256: string) => join(root, sha256);
  return {
    folder: root,
    async has(sha256) {
      try {
        const now = new Date();
        utimesSync(at(sha256), now, now);
        return true;
      } catch {
        return false;
      }
    },
    async put(path, sha256) {
      mkdirSync(root, { recursive: true });
      const tmp = tempName(at(sha256));
      await pipeline(createReadStream(path), checked(sha256, path), createWriteStream(tmp));
      renameSync(tmp, at(sha256));
    },
    async get(sha256, dest) {
      if (!existsSync(at(sha256))) return false;
      try {
        linkSync(at(sha256), dest);
      } catch {
        await pipeline(createReadStream(at(sha256)), createWriteStream(dest));
      }
      const { sha256: got } = await hashFile(dest);
      if (got !== sha256) throw new AtlasError('BAD_FILE', `${at(sha256)} is damaged: its sha256 is ${got}.`);
      return true;
    },
  };
}

function storeOf(database: Database | undefined, dataDir: string): ArtifactStore {
  return database?.kind === 'postgres' ? databaseStore(database) : folderStore(join(dataDir, 'artifacts'));
}

/** Files of one bundle: stored under `prefix/` followed by their path relative to `root`. */
interface BundlePart {
  prefix: string;
  root: string;
  files: string[];
}

async function storeBundle(
  store: ArtifactStore,
  parts: BundlePart[],
  entry: string,
  tokenizer: string | null,
): Promise<ArtifactManifest> {
  const files: ArtifactManifest['files'] = [];
  for (const part of parts) {
    for (const path of part.files) {
      const { sha256, size } = await hashFile(path);
      if (!(await store.has(sha256))) await store.put(path, sha256, size);
      files.push({ name: posix.join(part.prefix, ...relative(part.root, path).split(/[\\/]/)), sha256, size });
    }
  }
  files.sort((a, b) => (a.name < b.name ? -1 : 1));
  const version = createHash('sha256').update(JSON.stringify({ entry, tokenizer, files })).digest('hex');
  return { version, entry, tokenizer, files, ...(store.folder && { folder: store.folder }) };
}

const isFolder = (path: string) => statSync(path).isDirectory();
const folderOf = (path: string) => (isFolder(path) ? path : dirname(path));
const entryIn = (prefix: string, path: string) => (isFolder(path) ? prefix : `${prefix}/${basename(path)}`);

/**
 * A model's checkpoint and tokenizer files stored in PostgreSQL; null on PGlite, where the catalog
 * keeps pointing at the checkpoint (one process on one machine reads it where it is).
 */
export async function storeModelArtifacts(
  database: Database,
  path: string,
  tokenizerPath: string | undefined,
): Promise<ArtifactManifest | null> {
  if (database.kind !== 'postgres') return null;
  const parts: BundlePart[] = [{ prefix: 'model', root: folderOf(path), files: modelFiles(path) }];
  if (tokenizerPath)
    parts.push({ prefix: 'tokenizer', root: folderOf(tokenizerPath), files: tokenizerFiles(tokenizerPath) });
  return storeBundle(
    databaseStore(database),
    parts,
    entryIn('model', path),
    tokenizerPath ? entryIn('tokenizer', tokenizerPath) : null,
  );
}

/**
 * PostgreSQL: the graph `atlas model add` converted (its cache folder's MODEL_FILE and external data,
 * not the cut copies made later), stored so that replicas fetch it instead of converting; null on PGlite.
 */
export async function storeConvertedGraph(
  database: Database,
  folder: string,
  architecture: string,
): Promise<ArtifactManifest['converted'] | null> {
  const builder = graphBuilderVersion(architecture);
  if (database.kind !== 'postgres' || !builder) return null;
  const files = [MODEL_FILE, `${MODEL_FILE}.data`].map((f) => join(folder, f)).filter((f) => existsSync(f));
  const stored = await storeBundle(databaseStore(database), [{ prefix: '.', root: folder, files }], '.', null);
  return { key: basename(folder), builder, files: stored.files };
}

/** A dictionary's encoder weight files (one flat folder that openSae reads) in the store. */
export function storeDictionaryArtifacts(database: Database, dataDir: string, path: string): Promise<ArtifactManifest> {
  return storeDictionaryIn(storeOf(database, dataDir), path);
}

function storeDictionaryIn(store: ArtifactStore, path: string): Promise<ArtifactManifest> {
  const parts = dictionaryFiles(path).map((f) => ({ prefix: '.', root: dirname(f), files: [f] }));
  return storeBundle(store, parts, '.', null);
}

/**
 * A row's id and the version of its files (legacy rows: their path): what is loaded, batched or cached
 * for a row is kept under this key, so a row replaced through another replica is loaded anew.
 */
export function artifactKey(row: ModelRow | DictionaryRow | RowVersion): string {
  if ('kind' in row) {
    const legacy = row.kind === 'dictionary' ? row.weightsPath : `${row.sourcePath}\0${row.tokenizerPath}`;
    return `${row.id}\0${row.version ?? legacy}`;
  }
  if (row.artifacts) return `${row.id}\0${row.artifacts.version}`;
  return `${row.id}\0${'weightsPath' in row ? row.weightsPath : `${row.sourcePath}\0${row.tokenizerPath}`}`;
}

function missingPath(what: string, path: string): AtlasError {
  return new AtlasError(
    'ARTIFACT_MISSING',
    `${what} points at ${path}, which is not on this server, and its files are not in the database. Run ` +
      '`atlas migrate-artifacts` on the machine that has them, or add it again (`atlas model add` / `atlas import`).',
    { path },
  );
}

/** Resolves catalog rows to local, verified folders, fetching from the store on first use. */
export class ArtifactCache {
  private readonly store: ArtifactStore;
  private readonly root: string;
  private readonly dataDir: string;
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(database: Database | undefined, config: Pick<Config, 'dataDir' | 'cacheDir'>) {
    this.store = storeOf(database, config.dataDir);
    this.root = cacheDirOf(config);
    this.dataDir = config.dataDir;
  }

  /** The checkpoint and tokenizer paths to load a model from. */
  async model(row: ModelRow): Promise<{ path: string; tokenizerPath?: string }> {
    const m = row.artifacts;
    if (!m) {
      if (!existsSync(row.sourcePath)) throw missingPath(`Model "${row.id}"`, row.sourcePath);
      if (row.tokenizerPath && !existsSync(row.tokenizerPath))
        throw missingPath(`Model "${row.id}"`, row.tokenizerPath);
      return { path: row.sourcePath, tokenizerPath: row.tokenizerPath ?? undefined };
    }
    const folder = await this.folder(m, `model "${row.id}"`);
    await this.convertedGraph(row);
    return { path: join(folder, m.entry), tokenizerPath: m.tokenizer ? join(folder, m.tokenizer) : undefined };
  }

  /**
   * Fetches the graph `atlas model add` converted into <data dir>/onnx/<key>/, where loading the model
   * looks before converting. A graph of another builder version (another build of the server) has
   * another key and is not fetched; a graph missing from the store is converted here instead.
   */
  private async convertedGraph(row: ModelRow): Promise<void> {
    const c = row.artifacts?.converted;
    if (!c || c.builder !== graphBuilderVersion(row.architecture)) return;
    const what = `the converted graph of model "${row.id}"`;
    try {
      await cachedEntry(this.dataDir, c.key, (tmp) => this.fetch(c.files, this.store, tmp, what));
    } catch (e) {
      if (!(e instanceof AtlasError && e.code === 'ARTIFACT_MISSING')) throw e;
    }
  }

  /** The folder of a dictionary's encoder weights. */
  async dictionary(row: DictionaryRow): Promise<string> {
    if (row.artifacts) return join(await this.folder(row.artifacts, `dictionary "${row.id}"`), row.artifacts.entry);
    if (!row.weightsPath) {
      throw new AtlasError(
        'UNSUPPORTED',
        `Dictionary "${row.id}" has no encoder weights on this server (it was stored without them); re-import it ` +
          `with \`atlas import\`.`,
      );
    }
    if (!existsSync(row.weightsPath)) throw missingPath(`Dictionary "${row.id}"`, row.weightsPath);
    return row.weightsPath;
  }

  private folder(m: ArtifactManifest, what: string): Promise<string> {
    let loading = this.fetching.get(m.version);
    if (!loading) {
      const store = m.folder ? folderStore(m.folder) : this.store;
      loading = buildOnce(join(this.root, m.version), existsSync, (tmp) => this.fetch(m.files, store, tmp, what)).then(
        (folder) => {
          // Its age tells `removeUnnamed` in other processes sharing the folder that it was used lately.
          const now = new Date();
          utimesSync(folder, now, now);
          return folder;
        },
      );
      loading.finally(() => this.fetching.delete(m.version)).catch(() => undefined);
      this.fetching.set(m.version, loading);
    }
    return loading;
  }

  /**
   * Removes the cached folder of a version no row names any more (renamed aside first, `removeAside`).
   * A version being fetched here is left alone; a folder already gone is no error.
   */
  removeVersion(version: string): boolean {
    return !this.fetching.has(version) && removeAside(join(this.root, version));
  }

  /**
   * Removes the cached folders of versions not in `named` and not used for `graceMinutes`, and what
   * killed fetches left: the versions `atlas prune-artifacts` leaves behind on this machine. Returns
   * how many folders went.
   */
  removeUnnamed(named: Set<string>, graceMinutes: number): number {
    return removeUnnamedFolders(this.root, named, graceMinutes, (version) => this.removeVersion(version));
  }

  private async fetch(
    files: ArtifactManifest['files'],
    store: ArtifactStore,
    tmp: string,
    what: string,
  ): Promise<void> {
    for (const f of files) {
      const dest = join(tmp, f.name);
      // Names come from the database: never let one write outside the bundle.
      if (relative(tmp, dest).startsWith('..')) throw new AtlasError('BAD_FILE', `Bad file name ${f.name} in ${what}.`);
      mkdirSync(dirname(dest), { recursive: true });
      if (!(await store.get(f.sha256, dest))) {
        throw new AtlasError(
          'ARTIFACT_MISSING',
          `File ${f.name} of ${what} (sha256 ${f.sha256.slice(0, 12)}…) is not in the artifact store; add it again ` +
            '(`atlas model add` / `atlas import --replace`).',
          { sha256: f.sha256 },
        );
      }
    }
  }
}

/**
 * How long a stored file no row names is kept (minutes). Longer than an import takes from storing or
 * claiming its files to writing the row that names them, so pruning never takes a file from under an
 * import in flight.
 */
export const PRUNE_GRACE_MINUTES = 60;

export interface PruneReport {
  /** Files deleted from the store, and their bytes. */
  blobs: number;
  bytes: number;
}

/**
 * Deletes the stored files that no model or dictionary row names any more (left by `--replace` and
 * deletions) and were stored or claimed more than `graceMinutes` ago: on PostgreSQL the blobs and their
 * chunks in one statement (src/db/artifacts.ts), on PGlite the files of <data dir>/artifacts.
 */
export async function pruneArtifacts(
  database: Database,
  dataDir: string,
  graceMinutes = PRUNE_GRACE_MINUTES,
): Promise<PruneReport> {
  if (database.kind === 'postgres') return pruneBlobs(database, graceMinutes);
  return pruneFolder(join(dataDir, 'artifacts'), await referencedBlobs(database), graceMinutes);
}

/**
 * Removes from this machine's cache folder the versions no row names that it has not used for
 * `graceMinutes` (servers remove the versions they retire themselves, src/app/freshness.ts). Returns
 * how many folders went.
 */
export async function pruneCache(
  database: Database,
  config: Pick<Config, 'dataDir' | 'cacheDir'>,
  graceMinutes = PRUNE_GRACE_MINUTES,
): Promise<number> {
  return new ArtifactCache(database, config).removeUnnamed(await referencedVersions(database), graceMinutes);
}

/** PGlite's store: files (and temporary files of killed writers) named by no row and older than the grace. */
function pruneFolder(root: string, named: Set<string>, graceMinutes: number): PruneReport {
  const pruned = { blobs: 0, bytes: 0 };
  for (const { name, size } of staleEntries(root, graceMinutes, (n) => named.has(n))) {
    rmSync(join(root, name), { force: true });
    pruned.blobs++;
    pruned.bytes += size;
  }
  return pruned;
}

/**
 * Removes a folder by renaming it aside first, so that a process sharing the folder never sees half of
 * it (it fetches or converts it again, if a row still needs it). False when it was not there.
 */
function removeAside(path: string): boolean {
  const aside = tempName(path);
  try {
    renameSync(path, aside);
  } catch {
    return false;
  }
  rmSync(aside, { recursive: true, force: true });
  return true;
}

/**
 * Of the folders of `root` named by a 64-hex key (cache versions, converted graphs), removes with
 * `remove(key)` those whose key is not in `named` and that nothing touched for `graceMinutes`, and the
 * temporary folders (`<key>.tmp-…`) of killed writers as old. Returns how many went.
 */
function removeUnnamedFolders(
  root: string,
  named: Set<string>,
  graceMinutes: number,
  remove: (key: string) => boolean,
): number {
  let removed = 0;
  const spared = (name: string) => named.has(name.slice(0, 64)) || !/^[0-9a-f]{64}/.test(name);
  for (const { name } of staleEntries(root, graceMinutes, spared)) {
    const key = name.slice(0, 64);
    if (name !== key) rmSync(join(root, name), { recursive: true, force: true });
    else if (!remove(key)) continue;
    removed++;
  }
  return removed;
}

/**
 * The converted-graph folders (<data dir>/onnx/<key>) the model rows need on this machine: a stored
 * graph's key, else the key of the checkpoint's bytes, read from this machine's copy (its cache folder,
 * else its recorded path). A string when a row's checkpoint is not here (or unreadable): then its key is unknown.
 */
async function neededGraphs(database: Database, config: Pick<Config, 'dataDir' | 'cacheDir'>) {
  const keys = new Set<string>();
  for (const row of await listModels(database)) {
    const builder = graphBuilderVersion(row.architecture);
    // A ready .onnx file runs as it is: nothing converted.
    if (!builder || row.sourcePath.endsWith('.onnx')) continue;
    const c = row.artifacts?.converted;
    if (c?.builder === builder) {
      keys.add(c.key);
      continue;
    }
    const m = row.artifacts;
    const local = [...(m ? [join(cacheDirOf(config), m.version, m.entry)] : []), row.sourcePath].find(existsSync);
    if (!local) return `the checkpoint of model "${row.id}" is not on this machine`;
    try {
      const key = await convertedGraphKey(local);
      if (key) keys.add(key);
    } catch (e) {
      return `the checkpoint of model "${row.id}" cannot be read (${(e as Error).message})`;
    }
  }
  return keys;
}

/** What pruning converted graphs did: folders removed, or why none were (`kept`). */
export interface GraphPrune {
  removed: number;
  kept?: string;
}

/**
 * Removes the converted ONNX graphs of <data dir>/onnx/ that no model row needs any more (after `atlas
 * model delete`, a re-added model, a new graph builder), not converted or loaded for `graceMinutes` (a
 * conversion in flight writes its folder before its row), never one a model loaded in this process
 * holds. Keys of rows without a stored graph are read from their checkpoints' bytes; when a checkpoint
 * is not on this machine, nothing is removed.
 */
export async function pruneConvertedGraphs(
  database: Database,
  config: Pick<Config, 'dataDir' | 'cacheDir'>,
  graceMinutes = PRUNE_GRACE_MINUTES,
): Promise<GraphPrune> {
  const root = join(config.dataDir, 'onnx');
  if (!existsSync(root)) return { removed: 0 };
  const needed = await neededGraphs(database, config);
  if (typeof needed === 'string') return { removed: 0, kept: needed };
  const remove = (key: string) => !entryHeld(join(root, key)) && removeAside(join(root, key));
  return { removed: removeUnnamedFolders(root, needed, graceMinutes, remove) };
}

/** The entries of `root` that `spared` does not name and that nothing touched for `graceMinutes`. */
function* staleEntries(
  root: string,
  graceMinutes: number,
  spared: (name: string) => boolean,
): Generator<{ name: string; size: number }> {
  if (!existsSync(root)) return;
  const cutoff = Date.now() - graceMinutes * 60_000;
  for (const name of readdirSync(root)) {
    if (spared(name)) continue;
    const st = statSync(join(root, name), { throwIfNoEntry: false });
    if (st && st.mtimeMs < cutoff) yield { name, size: st.size };
  }
}

/** One line per stored or missing row, for a log or the console. */
export function reportMigration(report: MigrationReport, log: (line: string) => void): void {
  for (const what of report.stored) log(`Stored the files of ${what} in the database.`);
  for (const m of report.missing) log(m.message);
}

export interface MigrationReport {
  stored: string[];
  missing: { id: string; message: string }[];
}

/** Converting checkpoints to ONNX graphs: into this machine's data folder, with progress per model. */
export interface ConvertTo {
  dataDir: string;
  onProgress: (message: string) => void;
}

/**
 * Converts a checkpoint into <data dir>/onnx/ (unless there already) and, on PostgreSQL, stores the
 * graph so replicas fetch it instead of converting; null on PGlite or for a ready .onnx file.
 */
export async function convertAndStoreGraph(
  database: Database,
  path: string,
  architecture: string,
  convert: ConvertTo,
): Promise<ArtifactManifest['converted'] | null> {
  const folder = await convertModel(path, convert);
  return folder ? storeConvertedGraph(database, folder, architecture) : null;
}

/**
 * PostgreSQL: stores the files of rows registered before the artifact store (models by checkpoint
 * path, dictionaries by weights folder) and records their manifests. A row whose files are not on
 * this machine is reported, not fatal, so replicas without the files start anyway. Given `convert`
 * (`atlas migrate-artifacts`; a server starting does not, to start at once), it also stores the
 * converted graph of every model that has none of this build's graph builder: converted from the
 * checkpoint being migrated, or from the stored files fetched into this machine's cache.
 */
export async function migrateArtifacts(
  database: Database,
  convert?: { config: Pick<Config, 'dataDir' | 'cacheDir'>; onProgress: (id: string, message: string) => void },
): Promise<MigrationReport> {
  const report: MigrationReport = { stored: [], missing: [] };
  if (database.kind !== 'postgres') return report;
  const attempt = async (
    what: string,
    path: string | null,
    store: () => Promise<ArtifactManifest | null>,
    save: (m: ArtifactManifest) => Promise<unknown>,
  ) => {
    try {
      if (path && !existsSync(path)) throw missingPath(what, path);
      const manifest = await store();
      if (manifest) await save(manifest);
      report.stored.push(what);
    } catch (e) {
      // A file that is gone or unreadable here is reported; the machine that has it can migrate it.
      if (!(e instanceof AtlasError)) throw e;
      report.missing.push({ id: what, message: `${e.code}: ${e.message}` });
    }
  };
  const to = (id: string): ConvertTo | null =>
    convert ? { dataDir: convert.config.dataDir, onProgress: (message) => convert.onProgress(id, message) } : null;
  const withGraph = async (manifest: ArtifactManifest, id: string, path: string, architecture: string) => {
    const c = to(id);
    const converted = c && (await convertAndStoreGraph(database, path, architecture, c));
    return converted ? { ...manifest, converted } : manifest;
  };
  const models = await database.query<{
    id: string;
    architecture: string;
    source_path: string;
    tokenizer_path: string | null;
  }>('SELECT id, architecture, source_path, tokenizer_path FROM models WHERE artifacts IS NULL ORDER BY id');
  for (const m of models) {
    await attempt(
      `Model "${m.id}"`,
      m.tokenizer_path && !existsSync(m.tokenizer_path) ? m.tokenizer_path : m.source_path,
      async () => {
        const manifest = await storeModelArtifacts(database, m.source_path, m.tokenizer_path ?? undefined);
        return manifest && withGraph(manifest, m.id, m.source_path, m.architecture);
      },
      (manifest) => database.query('UPDATE models SET artifacts = $2 WHERE id = $1', [m.id, manifest]),
    );
  }
  if (convert) {
    const cache = new ArtifactCache(database, convert.config);
    for (const row of await listModels(database)) {
      const m = row.artifacts;
      const builder = graphBuilderVersion(row.architecture);
      if (!m || !builder || row.sourcePath.endsWith('.onnx') || m.converted?.builder === builder) continue;
      await attempt(
        `Model "${row.id}" (its converted graph)`,
        null,
        async () => withGraph(m, row.id, (await cache.model(row)).path, row.architecture),
        // Only onto the files it was converted from: a model added again meanwhile keeps its own graph.
        (manifest) =>
          database.query("UPDATE models SET artifacts = $2 WHERE id = $1 AND artifacts->>'version' = $3", [
            row.id,
            manifest,
            m.version,
          ]),
      );
    }
  }
  const dicts = await database.query<{ id: string; weights_path: string }>(
    'SELECT id, weights_path FROM dictionaries WHERE artifacts IS NULL AND weights_path IS NOT NULL ORDER BY id',
  );
  for (const d of dicts) {
    await attempt(
      `Dictionary "${d.id}"`,
      d.weights_path,
      () => storeDictionaryIn(databaseStore(database), d.weights_path),
      (manifest) => database.query('UPDATE dictionaries SET artifacts = $2 WHERE id = $1', [d.id, manifest]),
    );
  }
  return report;
}
