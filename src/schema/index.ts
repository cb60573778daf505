/** The SDL lives in .graphql files beside this one; they are concatenated in name order. */
import { readdirSync, readFileSync } from 'node:fs';
import { SCHEMA_DIR } from '../paths.js';
import { join } from 'node:path';

const dir = SCHEMA_DIR;

export const typeDefs = readdirSync(dir)
  .filter((f) => f.endsWith('.graphql'))
  .sort()
  .map((f) => readFileSync(join(dir, f), 'utf8'))
  .join('\n');
