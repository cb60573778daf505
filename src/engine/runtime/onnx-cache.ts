/**
 * Converted ONNX graphs cached on disk, content-addressed: `<dataDir>/onnx/<sha256>/model.onnx`
 * where the hash covers the checkpoint bytes and the builder version, so a restart reuses the file
 * and a new builder never reads a stale graph. Entries are built in a temporary folder and renamed
 * into place, so a crash leaves no half-written entry and two processes building the same model
 * both end up with one complete copy. A model loaded in this process holds its entry (`holdEntry`), so
 * that pruning here never removes a folder it still cuts graphs from.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export const MODEL_FILE = 'model.onnx';

/** sha256 over the builder version and the bytes of each file, streamed. */
export async function cacheKey(files: string[], builderVersion: string): Promise<string> {
  const hash = createHash('sha256');
  hash.update(`${builderVersion}\0`);
  for (const file of files) {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    hash.update('\0');
  }
  return hash.digest('hex');
}

function tempName(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * The folder `final`, building it first with `build(tmp)` in a temporary sibling that is renamed into
 * place when `complete(final)` says it is not there yet. A crash leaves no half-written folder, and of
 * two processes building it both end up using one complete copy.
 */
export async function buildOnce(
  final: string,
  complete: (folder: string) => boolean,
  build: (folder: string) => Promise<void> | void,
): Promise<string> {
  if (complete(final)) return final;
  mkdirSync(dirname(final), { recursive: true });
  const tmp = tempName(final);
  mkdirSync(tmp);
  try {
    await build(tmp);
    try {
      renameSync(tmp, final);
    } catch (e) {
      // Another process renamed its copy first; theirs is complete, so use it.
      if (!complete(final)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return final;
}

/**
 * The cache entry folder for `key`, building it first with `build(folder)` (which must write
 * MODEL_FILE there) when absent. Returns the folder, its modification time set to now: pruning (in any
 * process) removes only entries no model needs that were not used for its grace period.
 */
export async function cachedEntry(
  dataDir: string,
  key: string,
  build: (folder: string) => Promise<void> | void,
): Promise<string> {
  const folder = await buildOnce(join(dataDir, 'onnx', key), (f) => existsSync(join(f, MODEL_FILE)), build);
  try {
    const now = new Date();
    utimesSync(folder, now, now);
  } catch {
    // A read-only cache (shared, prepared elsewhere) is not pruned from here either.
  }
  return folder;
}

/** Entry folders (absolute) that loaded models of this process read from, with how many hold each. */
const held = new Map<string, number>();

/** Marks `folder` in use until the returned release is called (once). */
export function holdEntry(folder: string): () => void {
  const key = resolve(folder);
  held.set(key, (held.get(key) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (held.get(key) ?? 1) - 1;
    if (n > 0) held.set(key, n);
    else held.delete(key);
  };
}

/** Whether a model loaded in this process holds the entry `folder`. */
export function entryHeld(folder: string): boolean {
  return held.has(resolve(folder));
}

/** A file derived from an entry (a pruned variant), made once and written atomically. */
export function cachedFile(folder: string, name: string, make: () => Uint8Array): string {
  const path = join(folder, name);
  if (existsSync(path)) return path;
  const tmp = tempName(path);
  writeFileSync(tmp, make());
  renameSync(tmp, path);
  return path;
}
