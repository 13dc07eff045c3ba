// Generates schema/openapi.json, the OpenAPI 3.1 description of bindle-server's HTTP API, from
// the JSON Schemas in schema/*.schema.json (every one becomes a component schema) and the table
// of routes below. The server serves the committed file at /openapi.json as it is; nothing is
// assembled at start-up. `--check` fails when the committed file is stale (part of `npm test`).
// test/http/openapi.test.ts validates the document and checks that every route the server
// registers is described here.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localizeRefs, readSchemas, schemaDir } from './schema-files.mjs';

const outFile = join(schemaDir, 'openapi.json');
const check = process.argv.includes('--check');
const pkg = JSON.parse(readFileSync(join(schemaDir, '..', 'package.json'), 'utf8'));

const byFile = readSchemas();
const schemas = {};
for (const schema of byFile.values()) schemas[schema.title] = localizeRefs(schema, byFile, '#/components/schemas/');

const ref = (title) => {
  if (schemas[title] === undefined) throw new Error(`no schema titled ${title}`);
  return { $ref: `#/components/schemas/${title}` };
};
/** A reply in the negotiated format: TOML unless Accept asks for JSON first. */
const document = (title, description) => ({
  description,
  content: { 'application/toml': { schema: ref(title) }, 'application/json': { schema: ref(title) } },
});
const json = (title, description) => ({ description, content: { 'application/json': { schema: ref(title) } } });
const errors = {
  '4XX': { $ref: '#/components/responses/Error' },
  '5XX': { $ref: '#/components/responses/Error' },
};
const param = (name) => ({ $ref: `#/components/parameters/${name}` });
const notModified = { description: 'Not modified (If-None-Match matched the ETag)' };
const writes = [{ basic: [] }, { bearer: [] }];

const idParams = [param('name'), param('version')];
const parcelParams = [param('name'), param('version'), param('sha256')];
const conditional = [param('ifNoneMatch'), param('ifMatch')];

const queryParams = [
  ['q', 'Space-separated terms (at most 32, 1024 characters); empty matches everything'],
  ['query', 'Long form of q'],
  ['v', 'An exact version or an npm SemVer range (at most 256 characters)'],
  ['version', 'Long form of v'],
  ['o', 'Offset of the first match (default 0)'],
  ['offset', 'Long form of o'],
  ['l', 'Matches per page, 1-255 (default 50)'],
  ['limit', 'Long form of l'],
  ['strict', 'true: every term is a case-sensitive substring of the name'],
].map(([name, description]) => ({
  name, in: 'query', required: false, description,
  schema: ['o', 'offset', 'l', 'limit'].includes(name) ? { type: 'integer', minimum: 0 } : name === 'strict' ? { type: 'boolean' } : { type: 'string' },
}));

const batchDownload = {
  name: 'parcels',
  in: 'query',
  required: false,
  description:
    'Batch download (an extension): comma-separated sha256 digests of parcels on the invoice, at most 200. The reply is then those parcels ' +
    'instead of the invoice, as multipart/form-data: one part per parcel, named by its sha256, with its label\'s media type and its length; ' +
    'a parcel that its single GET would refuse fails the whole request with that error. Conditional headers do not apply.',
  schema: { type: 'string', pattern: '^[0-9a-f]{64}(,[0-9a-f]{64})*$' },
};
const batchParts = {
  schema: {
    type: 'object',
    description: 'One part per parcel asked for, in that order: its name the parcel\'s sha256, its body the parcel\'s bytes',
    propertyNames: { pattern: '^[0-9a-f]{64}$' },
    additionalProperties: { type: 'string', contentMediaType: 'application/octet-stream' },
  },
};
const getInvoice = (head) => ({
  operationId: head ? 'headInvoice' : 'getInvoice',
  summary: head ? 'Headers of an invoice, as GET' : 'An invoice (403 yanked unless ?yanked=true); with ?parcels=, some of its parcels in one reply',
  tags: ['invoices'],
  parameters: [...idParams, param('yanked'), batchDownload, ...conditional],
  responses: {
    200: head
      ? { description: 'The invoice exists (with ?parcels=, the headers of the batch)' }
      : (({ description, content }) => ({ description, content: { ...content, 'multipart/form-data': batchParts } }))(
          document('Invoice', 'The invoice, with an ETag of the bytes served; with ?parcels=, the parcels asked for'),
        ),
    304: notModified,
    ...errors,
  },
});
const getParcel = (head) => ({
  operationId: head ? 'headParcel' : 'getParcel',
  summary: head ? 'Headers of a parcel, as GET' : "A parcel's data (Range, If-Range, ETag)",
  tags: ['parcels'],
  parameters: [...parcelParams, param('yanked'), ...conditional, ...(head ? [] : [param('range'), param('ifRange')])],
  responses: {
    200: { description: 'The parcel data, with its label media type', ...(head ? {} : { content: { '*/*': {} } }) },
    ...(head ? {} : { 206: { description: 'The requested byte range', content: { '*/*': {} } } }),
    304: notModified,
    ...errors,
  },
});
const search = (head) => ({
  operationId: head ? 'headQuery' : 'queryInvoices',
  summary: head ? 'Headers of a search, as GET' : 'Search invoices (name, then SemVer descending; total/more paging)',
  tags: ['invoices'],
  parameters: [...queryParams, param('yanked')],
  responses: { 200: head ? { description: 'The search is valid' } : document('QueryReply', 'One page of matches'), ...errors },
});
const keys = (head) => ({
  operationId: head ? 'headHostKeys' : 'getHostKeys',
  summary: head ? 'Headers of the host keys, as GET' : "The host's public keys",
  tags: ['keys'],
  parameters: [{ name: 'roles', in: 'query', required: false, description: 'Comma-separated roles (creator, approver, host, proxy)', schema: { type: 'string' } }],
  responses: { 200: head ? { description: 'The keyring exists' } : document('KeyRing', 'A keyring'), ...errors },
});
const operational = (operationId, summary, responses) => ({ operationId, summary, tags: ['operations'], security: [{}], responses });

const paths = {
  '/v1/_i': {
    post: {
      operationId: 'createInvoice',
      summary: 'Create an invoice: verified against the keyring, counter-signed as host',
      tags: ['invoices'],
      security: writes,
      parameters: [
        {
          name: 'allow_deleted', in: 'query', required: false,
          description: "Re-create a hard-deleted invoice, replacing its tombstone (an admin's)", schema: { type: 'boolean' },
        },
      ],
      requestBody: {
        required: true,
        content: { 'application/toml': { schema: ref('Invoice') }, 'application/json': { schema: ref('Invoice') } },
      },
      responses: {
        201: document('InvoiceCreateReply', 'Created; every parcel is already stored'),
        202: document('InvoiceCreateReply', 'Created; `missing` lists the parcels to upload'),
        ...errors,
      },
    },
  },
  '/v1/_i/{name}/{version}': {
    get: getInvoice(false),
    head: getInvoice(true),
    post: {
      operationId: 'uploadParcels',
      summary:
        'Upload a batch of parcels listed on the invoice (an extension): one multipart part per parcel, named by its sha256, each stored as its single upload would be',
      tags: ['parcels'],
      security: writes,
      parameters: idParams,
      requestBody: {
        required: true,
        content: {
          'multipart/form-data': {
            schema: {
              ...batchParts.schema,
              description: 'One part per parcel: its name the parcel\'s sha256, its body the parcel\'s bytes; more parts than the server takes in one request fail with 413',
            },
          },
        },
      },
      responses: { 200: document('ParcelBatchReply', 'Every part stored, or already there'), ...errors },
    },
    delete: {
      operationId: 'yankInvoice',
      summary: 'Yank an invoice (idempotent; the host signs the yank); with ?hard=true, an admin hard-deletes it instead',
      tags: ['invoices'],
      security: writes,
      parameters: [
        ...idParams,
        { name: 'hard', in: 'query', required: false, description: 'Hard-delete (admin): remove the invoice, leave a host-signed tombstone', schema: { type: 'boolean' } },
        { name: 'reason', in: 'query', required: false, description: 'Why (kept in the tombstone and the audit log)', schema: { type: 'string' } },
      ],
      responses: { 200: document('MessageReply', 'Yanked or deleted'), ...errors },
    },
  },
  '/v1/_i/{name}/{version}@{sha256}': {
    post: {
      operationId: 'uploadParcel',
      summary: 'Upload a parcel listed on the invoice (streamed; size and digest checked)',
      tags: ['parcels'],
      security: writes,
      parameters: parcelParams,
      requestBody: { required: true, content: { '*/*': {} } },
      responses: { 200: document('MessageReply', 'Stored'), ...errors },
    },
    get: getParcel(false),
    head: getParcel(true),
  },
  '/v1/_r/missing/{name}/{version}': {
    get: {
      operationId: 'getMissingParcels',
      summary: 'Labels of the parcels of an invoice not uploaded yet',
      tags: ['parcels'],
      parameters: idParams,
      responses: { 200: document('MissingReply', 'The missing parcels'), ...errors },
    },
  },
  '/v1/_q': { get: search(false), head: search(true) },
  '/v1/bindle-keys': { get: keys(false), head: keys(true) },
  '/v1/login': {
    get: {
      operationId: 'startDeviceLogin',
      summary: 'Start the OIDC device flow (only with --oidc-* configured)',
      tags: ['auth'],
      parameters: [{ name: 'provider', in: 'query', required: true, schema: { type: 'string' } }],
      responses: {
        200: {
          description: "The provider's device authorization reply plus client_id and token_url",
          content: { 'application/toml': { schema: { type: 'object' } }, 'application/json': { schema: { type: 'object' } } },
        },
        ...errors,
      },
    },
  },
  '/v2/_catalog': {
    get: {
      operationId: 'getOciCatalog',
      summary:
        'The OCI repository catalog (the distribution-spec extension, as the CNCF registry serves it): the names of the bindles ' +
        'the requester may pull that are OCI repository names, in byte order. The rest of /v2 is the OCI Distribution API, described by its own spec',
      tags: ['oci'],
      parameters: [
        { name: 'n', in: 'query', required: false, description: 'Names per page, 0-10000 (default 1000)', schema: { type: 'integer', minimum: 0, maximum: 10000 } },
        { name: 'last', in: 'query', required: false, description: 'The last name of the previous page: this page starts after it', schema: { type: 'string' } },
      ],
      responses: {
        200: {
          description: 'One page of names; when more follow, a `Link: </v2/_catalog?n=<n>&last=<name>>; rel="next"` header names the next page',
          headers: { Link: { description: 'The next page, when there is one', schema: { type: 'string' } } },
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['repositories'],
                properties: { repositories: { type: 'array', items: { type: 'string' } } },
                additionalProperties: false,
              },
            },
          },
        },
        '4XX': { $ref: '#/components/responses/OciError' },
        '5XX': { $ref: '#/components/responses/OciError' },
      },
    },
  },
  '/healthz': {
    get: operational('getHealth', 'Health, as the reference server answers it (503 while shutting down)', {
      200: json('HealthReply', 'Serving'),
      503: { $ref: '#/components/responses/Error' },
    }),
  },
  '/livez': {
    get: operational('getLiveness', 'Liveness: the process serves HTTP', { 200: json('HealthReply', 'Alive') }),
  },
  '/readyz': {
    get: operational('getReadiness', 'Readiness: serving, and the invoice index and parcel store answer within the deadline', {
      200: json('ReadinessReply', 'Ready'),
      503: json('ReadinessReply', 'Not ready: starting, stopping, or a storage check failed (see checks and error)'),
    }),
  },
  '/metrics': {
    get: operational('getMetrics', 'Prometheus metrics (here unless --metrics-address moves them to a listener of their own)', {
      200: { description: 'The Prometheus text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } },
    }),
  },
  '/openapi.json': {
    get: operational('getOpenApi', 'This document', {
      200: { description: 'The OpenAPI 3.1 document', content: { 'application/json': { schema: { type: 'object' } } } },
    }),
  },
};

/** The HEAD of a GET operation: the same status and headers, no body (`headMissingParcels` for `getMissingParcels`). */
const headOf = (get) => ({
  ...get,
  operationId: `head${get.operationId.replace(/^get/, '').replace(/^./, (c) => c.toUpperCase())}`,
  summary: `${get.summary}: the headers only`,
  responses: Object.fromEntries(Object.entries(get.responses).map(([status, reply]) => [status, reply.$ref !== undefined ? reply : { description: reply.description }])),
});
// Every GET route is served to HEAD too (the server's exposeHeadRoutes); those with a HEAD of their own describe it above.
for (const item of Object.values(paths)) {
  if (item.get !== undefined && item.head === undefined) item.head = headOf(item.get);
}

const doc = {
  openapi: '3.1.0',
  info: {
    title: 'bindle-server',
    version: pkg.version,
    summary: 'The Bindle v1 HTTP API: invoices, parcels, search and keys; plus health, metrics and this document.',
    description:
      'Replies are TOML unless the Accept header asks for JSON first; error bodies are `error` plus a stable `code`. ' +
      'A bindle name may contain slashes (example.com/app): the `name` path parameter spans several path segments, ' +
      'sent as they are (not percent-encoded), and ends at the last segment before the version.',
    license: { name: pkg.license, identifier: pkg.license },
  },
  servers: [{ url: '/' }],
  security: [{}, ...writes],
  tags: [
    { name: 'invoices' }, { name: 'parcels' }, { name: 'keys' }, { name: 'auth' },
    { name: 'oci', description: 'Under /v2: only what the OCI Distribution spec leaves to registries (the catalog extension)' },
    { name: 'operations', description: 'Outside /v1 and without authentication' },
  ],
  paths,
  components: {
    schemas,
    securitySchemes: {
      basic: { type: 'http', scheme: 'basic', description: 'htpasswd users (--htpasswd-file)' },
      bearer: { type: 'http', scheme: 'bearer', description: 'Static tokens (--token-file) or OIDC ID tokens (--oidc-*)' },
    },
    parameters: {
      name: { name: 'name', in: 'path', required: true, description: 'The bindle name; may contain slashes', schema: { type: 'string' } },
      version: { name: 'version', in: 'path', required: true, description: 'A strict SemVer version', schema: { type: 'string' } },
      sha256: { name: 'sha256', in: 'path', required: true, description: "The parcel's SHA-256", schema: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
      yanked: { name: 'yanked', in: 'query', required: false, description: 'Include yanked invoices', schema: { type: 'boolean' } },
      ifNoneMatch: { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } },
      ifMatch: { name: 'If-Match', in: 'header', required: false, schema: { type: 'string' } },
      range: { name: 'Range', in: 'header', required: false, description: 'One byte range, e.g. bytes=0-99', schema: { type: 'string' } },
      ifRange: { name: 'If-Range', in: 'header', required: false, description: "Honoured only for the parcel's strong ETag", schema: { type: 'string' } },
    },
    responses: {
      Error: document('ErrorReply', 'An error: `error` says what went wrong, `code` is stable'),
      OciError: {
        description: 'An OCI error (under /v2): distribution-spec codes, the Bindle code in detail.code',
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['errors'],
              properties: {
                errors: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['code', 'message'],
                    properties: {
                      code: { type: 'string' },
                      message: { type: 'string' },
                      detail: { type: 'object', properties: { code: { type: 'string' } } },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
};

const text = `${JSON.stringify(doc, null, 2)}\n`;
if (check) {
  if (readFileSync(outFile, 'utf8') !== text) {
    console.error('schema/openapi.json is stale: run `npm run gen:openapi` and commit the result.');
    process.exit(1);
  }
  console.log('schema/openapi.json is up to date.');
} else {
  writeFileSync(outFile, text);
  console.log(`wrote ${outFile}`);
}
