/**
 * Writes docs/schema/canonical-event.v1.json from the TypeBox schema of the canonical event.
 *
 *   node docs/schema/generate.ts
 *
 * packages/platform/test/contract/schema-file.test.ts fails while the file is out of date.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CANONICAL_EVENT_SCHEMA_FILE, canonicalEventJsonSchemaText } from '../../packages/platform/src/contract/json-schema.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const file = join(root, CANONICAL_EVENT_SCHEMA_FILE);
writeFileSync(file, canonicalEventJsonSchemaText());
console.log(`wrote ${CANONICAL_EVENT_SCHEMA_FILE}`);
