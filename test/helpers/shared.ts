/**
 * Files from ../shared (the real stories260K checkpoint beside the repository; CI lays it there).
 * A missing file fails the test file that needs it, loudly, instead of skipping it: a run without
 * ../shared has not tested run.c fidelity.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SHARED_DIR = resolve(import.meta.dirname, '../../../shared');

export function sharedFile(relative: string): string {
  const path = join(SHARED_DIR, relative);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: these tests need ../shared beside the repository (CI provides it).`);
  }
  return path;
}

export const STORIES_CHECKPOINT = 'models/stories260K/stories260K.bin';
export const STORIES_TOKENIZER = 'models/stories260K/tok512.bin';
