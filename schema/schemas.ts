/**
 * The JSON Schema files of the Bindle data model and wire replies, as one list, and the custom
 * `format`s they use. The one source every validator is compiled from (./validators.ts at run
 * time, ./standalone-validators.ts ahead of time for the server and client bundles).
 */
import accessControlList from './access-control-list.schema.json' with { type: 'json' };
import annotations from './annotations.schema.json' with { type: 'json' };
import bindleSpec from './bindle-spec.schema.json' with { type: 'json' };
import condition from './condition.schema.json' with { type: 'json' };
import errorCode from './error-code.schema.json' with { type: 'json' };
import errorReply from './error-reply.schema.json' with { type: 'json' };
import featureMap from './feature-map.schema.json' with { type: 'json' };
import group from './group.schema.json' with { type: 'json' };
import healthReply from './health-reply.schema.json' with { type: 'json' };
import invoiceCreateReply from './invoice-create-reply.schema.json' with { type: 'json' };
import invoice from './invoice.schema.json' with { type: 'json' };
import keyEntry from './key-entry.schema.json' with { type: 'json' };
import keyring from './keyring.schema.json' with { type: 'json' };
import label from './label.schema.json' with { type: 'json' };
import messageReply from './message-reply.schema.json' with { type: 'json' };
import missingReply from './missing-reply.schema.json' with { type: 'json' };
import parcelBatchReply from './parcel-batch-reply.schema.json' with { type: 'json' };
import parcel from './parcel.schema.json' with { type: 'json' };
import queryReply from './query-reply.schema.json' with { type: 'json' };
import readinessReply from './readiness-reply.schema.json' with { type: 'json' };
import secretKeyEntry from './secret-key-entry.schema.json' with { type: 'json' };
import secretKeyFile from './secret-key-file.schema.json' with { type: 'json' };
import signatureRole from './signature-role.schema.json' with { type: 'json' };
import signature from './signature.schema.json' with { type: 'json' };
import { isMediaType } from '../core/ids/media-type.js';

/** Every schema, each with its `$id`; e.g. for `fastify.addSchema`. */
export const ALL_SCHEMAS = [
  accessControlList, annotations, bindleSpec, condition, errorCode, errorReply, featureMap, group, healthReply,
  invoiceCreateReply, invoice, keyEntry, keyring, label, messageReply, missingReply, parcelBatchReply, parcel,
  queryReply, readinessReply, secretKeyEntry, secretKeyFile, signatureRole, signature,
] as const;

/** Each schema's `$id`, by its title. */
export const SCHEMA_IDS: ReadonlyMap<string, string> = new Map(ALL_SCHEMAS.map((s) => [s.title, s.$id]));

/** The custom `format`s the schemas use; any Ajv that compiles them must add these. */
export const SCHEMA_FORMATS = { 'media-type': { type: 'string', validate: isMediaType } } as const;
