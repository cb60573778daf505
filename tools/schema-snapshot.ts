/**
 * Writes the schema snapshot that test/schema-contract.test.ts diffs the SDL against (part of
 * `npm run codegen`): run it when a change to src/schema/*.graphql is intended.
 */
import { writeFileSync } from 'node:fs';
import { SNAPSHOT, printedSchema } from '../test/helpers/schema-snapshot.js';

writeFileSync(SNAPSHOT, printedSchema());
console.log(`wrote ${SNAPSHOT}`);
