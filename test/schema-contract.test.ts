/**
 * The SDL is a contract: a breaking change (a removed field, a nullable field made non-null, an enum
 * value dropped…; graphql-inspector's criticality) to the committed snapshot fails here, and so does
 * any other difference until `npm run codegen` records it. The generated resolver and UI types must
 * match what codegen makes of the current SDL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildSchema } from 'graphql';
import { diff, CriticalityLevel } from '@graphql-inspector/core';
import { generate } from '@graphql-codegen/cli';
import * as prettier from 'prettier';
import config from '../codegen.js';
import { SNAPSHOT, printedSchema } from './helpers/schema-snapshot.js';

const snapshot = readFileSync(SNAPSHOT, 'utf8');

test('the SDL makes no breaking change to the snapshot, and the snapshot is current', async () => {
  const changes = await diff(buildSchema(snapshot), buildSchema(printedSchema()));
  const breaking = changes.filter((c) => c.criticality.level === CriticalityLevel.Breaking);
  assert.deepEqual(
    breaking.map((c) => c.message),
    [],
    'breaking changes to the schema: if intended, run `npm run codegen` to accept them and say so in the change',
  );
  assert.deepEqual(
    changes.map((c) => c.message),
    [],
    'the schema changed: run `npm run codegen` to update the snapshot and generated types',
  );
});

test('the diff catches a breaking change (a field removed, a non-null field made nullable)', async () => {
  const changed = snapshot
    .replace(
      `cached inside their parent).\n  """\n  tokenId: Int!`,
      `cached inside their parent).\n  """\n  index: Int!`,
    )
    .replace('  dModel: Int!\n', '  dModel: Int\n');
  const changes = await diff(buildSchema(snapshot), buildSchema(changed));
  const breaking = changes.filter((c) => c.criticality.level === CriticalityLevel.Breaking).map((c) => c.path);
  assert.deepEqual(breaking.sort(), ['Model.dModel', 'Token.tokenId'].sort());
});

test('the generated types are what codegen makes of the current SDL', async () => {
  const outputs = await generate({ ...config, hooks: {}, silent: true }, false);
  for (const { filename, content } of outputs) {
    const options = await prettier.resolveConfig(filename);
    const formatted = await prettier.format(content, { ...options, filepath: filename });
    assert.equal(readFileSync(filename, 'utf8'), formatted, `${filename} is stale: run \`npm run codegen\``);
  }
});
