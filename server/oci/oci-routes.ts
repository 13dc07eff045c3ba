/**
 * The OCI Distribution API (distribution-spec v1.1) at `/v2`, over the same bindles as `/v1`
 * (README "OCI"): the version check, manifests by tag and digest, blobs with Range, both with
 * conditional GET/HEAD by ETag (../http/conditional.ts), tags/list with `n`/`last` paging and
 * `Link`, referrers with artifactType filtering, and pushes: blob uploads (monolithic, mounts
 * and sessions: POST, PATCH, GET status, closing PUT, DELETE; state in
 * server/service/oci-uploads.ts; a stored blob is linked in its repository and served there at
 * once) and manifest PUTs, and the repository catalog (`_catalog`, filtered to what the requester
 * may pull). Paths are parsed from the right (./oci-path.ts); errors are the OCI envelope
 * (./oci-errors.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { BINDLE_YANKED_HEADER, OCI_MANIFEST_MEDIA_TYPE, isDigestLike, isOciName, renderIndex } from '../../core/oci/index.js';
import { carriesCredentials, type Authorizer } from '../auth/types.js';
import { authorizeBindleName } from '../auth/request-auth.js';
import { evaluatePreconditions } from '../http/conditional.js';
import { bodyOf, contentLength, parseInteger, parseRange, readBody, single, type QueryParams, type RangeRequest } from '../http/request-parsing.js';
import type { BindleService } from '../service/bindle-service.js';
import { sendParcel, type ServedParcel } from '../http/parcel-reply.js';
import type { ByteRange } from '../storage/parcel-store.js';
import type { ChunkPosition } from '../service/oci-uploads.js';
import type { OciUploadSession } from '../storage/oci-uploads.js';
import { setEndpoint } from './oci-errors.js';
import { assertOciName, parseOciPath, type OciPath } from './oci-path.js';

export interface OciRouteOptions {
  service: BindleService;
  authorizer: Authorizer;
}

type WildcardRequest = FastifyRequest<{ Params: { '*': string }; Querystring: QueryParams }>;

/** The most tags one tags/list reply holds (more are paged with `Link`). */
export const MAX_TAGS_PAGE = 10_000;
/** The repositories one `_catalog` reply holds without `n`, and the most it may ask for (more are paged with `Link`). */
export const DEFAULT_CATALOG_PAGE = 1000;
export const MAX_CATALOG_PAGE = 10_000;
/** The largest manifest a PUT may send. */
export const MAX_MANIFEST_BYTES = 4 * 2 ** 20;

/** Parses the request's path, records its endpoint for the error handler and checks the name. */
function target(request: WildcardRequest): OciPath {
  const path = parseOciPath(request.params['*']);
  assertOciName(path.name);
  // Only a name that can exist makes the endpoint's own codes apply (an unknown name is NAME_UNKNOWN).
  setEndpoint(request, path.endpoint);
  return path;
}

/** parseRange, where a range whose last byte comes before its first (`bytes=500-0`) is unsatisfiable. */
function blobRange(header: string | undefined, size: number): RangeRequest {
  const range = parseRange(header, size);
  const m = header === undefined ? null : /^bytes=(\d+)-(\d+)$/.exec(header.trim());
  if (range.kind === 'none' && m !== null && Number(m[2]) < Number(m[1])) return { kind: 'unsatisfiable' };
  return range;
}

/**
 * A chunk's position from `Content-Range: <start>-<end>` (distribution-spec; `bytes ` and a
 * `/<size>` suffix are tolerated); undefined without the header (a streamed append). A range
 * whose end is before its start is unsatisfiable; anything else malformed is bad_request.
 */
export function chunkPosition(header: string | undefined): ChunkPosition | undefined {
  if (header === undefined) return undefined;
  const m = /^(?:bytes )?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(header.trim());
  if (m === null) throw new BindleError('bad_request', `Content-Range ${JSON.stringify(header)} is not <start>-<end>`);
  const position = { start: Number(m[1]), end: Number(m[2]) };
  if (position.end < position.start) throw new BindleError('range_not_satisfiable', `Content-Range ${header} ends before it starts`);
  return position;
}

/** The headers of an upload session reply: where to continue, and the bytes received (`Range: 0-<last>`). */
function sessionHeaders(reply: FastifyReply, session: OciUploadSession): FastifyReply {
  return reply
    .header('location', `/v2/${session.name}/blobs/uploads/${session.uuid}`)
    .header('range', `0-${Math.max(session.size - 1, 0)}`)
    .header('docker-upload-uuid', session.uuid)
    .header('content-length', 0);
}

/**
 * True when an anonymous client could not push: then `GET /v2/` without credentials (no
 * Authorization header, or a blank one, as on /v1) answers 401 with the challenge, which is how
 * OCI clients learn to send them.
 */
function credentialsWanted(authorizer: Authorizer): boolean {
  try {
    authorizer.authorize(undefined, 'push');
    return false;
  } catch {
    return true;
  }
}

export function ociRoutes(app: FastifyInstance, opts: OciRouteOptions): void {
  const { service } = opts;
  const oci = service.oci;
  app.get('/', async (request: FastifyRequest, reply: FastifyReply) => {
    if (!carriesCredentials(request.headers.authorization) && credentialsWanted(opts.authorizer)) {
      throw new BindleError('unauthenticated', 'this registry takes pushes from authenticated clients: send credentials');
    }
    return reply.code(200).type('application/json').send('{}');
  });

  /**
   * `lookup`, whose not_found becomes NAME_UNKNOWN when the repository itself does not exist
   * (distribution-spec: the name is unknown to the registry); asked only once a lookup failed.
   */
  const inRepository = async <T>(request: WildcardRequest, name: string, lookup: Promise<T>): Promise<T> => {
    try {
      return await lookup;
    } catch (err) {
      if (!(err instanceof BindleError) || err.code !== 'not_found' || (await oci.repositoryExists(name))) throw err;
      setEndpoint(request, 'base');
      throw new BindleError('not_found', `repository ${name} does not exist`, { cause: err });
    }
  };

  const manifest = async (request: WildcardRequest, reply: FastifyReply, head: boolean): Promise<FastifyReply> => {
    const { name, reference } = target(request);
    const record = await inRepository(request, name, oci.manifest(name, reference));
    const etag = `"${record.digest}"`;
    reply.header('docker-content-digest', record.digest).header('etag', etag);
    if (evaluatePreconditions(request.headers, etag) === 'not_modified') return reply.code(304).send();
    reply.type(OCI_MANIFEST_MEDIA_TYPE).header('content-length', record.bytes.length);
    if (record.yanked) reply.header(BINDLE_YANKED_HEADER, 'true');
    return head ? reply.code(200).send() : reply.code(200).send(record.bytes);
  };

  const blob = async (request: WildcardRequest, reply: FastifyReply, head: boolean): Promise<FastifyReply> => {
    const { name, reference: digest } = target(request);
    const found = await inRepository(request, name, oci.blob(name, digest));
    reply.header('docker-content-digest', digest);
    // Parcels are sent as /v1 sends them (../http/parcel-reply.ts: conditional requests, Range,
    // protective headers), read through the same ParcelReader; the tag is the OCI digest.
    const parcel: ServedParcel = {
      sha256: found.kind === 'parcel' ? found.sha256 : digest,
      size: found.size,
      mediaType: 'application/octet-stream',
      read: (range?: ByteRange) => {
        if (found.kind === 'parcel') return service.readParcel(found.sha256, found.size, range);
        return range === undefined ? found.bytes : found.bytes.subarray(range.start, range.end + 1);
      },
    };
    return sendParcel(request, reply, parcel, head, { etag: `"${digest}"`, range: blobRange });
  };

  const tags = async (request: WildcardRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { name } = target(request);
    const n = parseInteger('n', single(request.query, 'n'), MAX_TAGS_PAGE, 0, MAX_TAGS_PAGE);
    const last = single(request.query, 'last');
    const page = await oci.tags(name, last, n);
    const lastTag = page.tags.at(-1);
    if (page.more && lastTag !== undefined) {
      reply.header('link', `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(lastTag)}>; rel="next"`);
    }
    return reply.code(200).type('application/json').send(JSON.stringify({ name, tags: page.tags }));
  };

  const referrers = async (request: WildcardRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const { name, reference: digest } = target(request);
    if (!isDigestLike(digest)) throw new BindleError('bad_request', `invalid digest ${JSON.stringify(digest)}: expected algorithm:encoded`);
    const artifactType = single(request.query, 'artifactType');
    const index = renderIndex(await oci.referrers(name, digest, artifactType));
    if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
    return reply.code(200).type(index.mediaType).header('content-length', index.size).send(index.bytes);
  };

  const read = async (request: WildcardRequest, reply: FastifyReply, head: boolean): Promise<FastifyReply> => {
    const { endpoint } = parseOciPath(request.params['*']);
    // A read of a repository is asked of the authorizer with its name, as /v1 reads are.
    if (endpoint !== 'uploads') authorizeBindleName(request, 'read', target(request).name);
    switch (endpoint) {
      case 'manifests':
        return manifest(request, reply, head);
      case 'blobs':
        return blob(request, reply, head);
      case 'tags':
        return tags(request, reply);
      case 'referrers':
        return referrers(request, reply);
      case 'uploads': {
        const { name, reference } = target(request);
        authorizeBindleName(request, 'push', name);
        return sessionHeaders(reply.code(204), await oci.uploads.session(name, reference)).send();
      }
    }
  };
  app.head('/*', (request: WildcardRequest, reply: FastifyReply) => read(request, reply, true));
  app.get('/*', (request: WildcardRequest, reply: FastifyReply) => read(request, reply, false));
  /**
   * Whether the request's principal may pull repository `name`, asked of the authorizer as the
   * auth hook asks it (refusals are an answer, not an error): for names other than the one the
   * request acts on (a mount's `from`, the catalog's names), which the audit record does not name.
   */
  const mayPull = (request: FastifyRequest, name: string): boolean => {
    try {
      opts.authorizer.authorize(request.bindleAuth?.principal, 'read', name);
      return true;
    } catch (err) {
      if (isBindleError(err, 'forbidden') || isBindleError(err, 'unauthenticated')) return false;
      throw err;
    }
  };

  /**
   * The repository catalog (distribution-spec's `_catalog` extension, as the CNCF registry
   * serves it): the names the requester may pull, in byte order, paged with `n` and `last`;
   * `Link` names the next page.
   */
  app.get('/_catalog', async (request: FastifyRequest<{ Querystring: QueryParams }>, reply: FastifyReply) => {
    setEndpoint(request, 'catalog');
    const n = parseInteger('n', single(request.query, 'n'), DEFAULT_CATALOG_PAGE, 0, MAX_CATALOG_PAGE);
    const last = single(request.query, 'last');
    const page = await oci.catalog(last, n, (name) => mayPull(request, name));
    const lastName = page.names.at(-1);
    if (page.more && lastName !== undefined) {
      reply.header('link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(lastName)}>; rel="next"`);
    }
    return reply.code(200).type('application/json').send(JSON.stringify({ repositories: page.names }));
  });

  /** Blob uploads: monolithic (`?digest=` with the bytes), cross-repository mounts, else a new session. */
  app.post('/*', async (request: WildcardRequest, reply: FastifyReply) => {
    const { endpoint, name } = target(request);
    if (endpoint !== 'uploads') throw new BindleError('method_not_allowed', `POST to ${endpoint} is not supported`);
    authorizeBindleName(request, 'push', name);
    const mount = single(request.query, 'mount');
    const digest = single(request.query, 'digest');
    const created = (blob: string): FastifyReply =>
      reply.code(201).header('location', `/v2/${name}/blobs/${blob}`).header('docker-content-digest', blob).header('content-length', 0).send();
    if (mount !== undefined) {
      const from = single(request.query, 'from');
      if (from !== undefined && isOciName(from) && mayPull(request, from) && (await oci.mount(name, mount, from))) return created(mount);
      // Not mountable (unknown here, not in `from`, or `from` not readable by the requester): an
      // ordinary upload session, as the distribution-spec says.
      bodyOf(request).resume();
      return sessionHeaders(reply.code(202), await oci.uploads.start(name)).send();
    }
    if (digest === undefined) {
      bodyOf(request).resume();
      return sessionHeaders(reply.code(202), await oci.uploads.start(name)).send();
    }
    await oci.putBlob(name, digest, contentLength(request.headers['content-length']), bodyOf(request));
    return created(digest);
  });

  /** Manifest pushes (a bindle manifest under the tag of its version, or its digest) and closing PUTs of upload sessions. */
  app.put('/*', async (request: WildcardRequest, reply: FastifyReply) => {
    const { endpoint, name, reference } = target(request);
    if (endpoint === 'uploads' && reference !== '') {
      authorizeBindleName(request, 'push', name);
      const digest = single(request.query, 'digest');
      if (digest === undefined) throw new BindleError('bad_request', 'a closing PUT names the blob: ?digest=<digest>');
      await oci.uploads.close(name, reference, digest, bodyOf(request), chunkPosition(request.headers['content-range']));
      return reply.code(201).header('location', `/v2/${name}/blobs/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
    }
    if (endpoint !== 'manifests') throw new BindleError('not_found', `no upload session at /v2/${request.params['*']}`);
    authorizeBindleName(request, 'push', name);
    const bytes = await readBody(bodyOf(request), MAX_MANIFEST_BYTES, 'the manifest');
    const digest = await oci.putManifest(name, reference, bytes, request.headers['content-type']);
    return reply.code(201).header('location', `/v2/${name}/manifests/${digest}`).header('docker-content-digest', digest).header('content-length', 0).send();
  });

  /** A chunk of an upload session: at the offset Content-Range names (416 when it is not the current one), or appended. */
  app.patch('/*', async (request: WildcardRequest, reply: FastifyReply) => {
    const { endpoint, name, reference } = target(request);
    if (endpoint !== 'uploads' || reference === '') throw new BindleError('not_found', `no upload session at /v2/${request.params['*']}`);
    authorizeBindleName(request, 'push', name);
    const session = await oci.uploads.append(name, reference, bodyOf(request), chunkPosition(request.headers['content-range']));
    return sessionHeaders(reply.code(202), session).send();
  });

  app.delete('/*', async (request: WildcardRequest, reply: FastifyReply) => {
    const { endpoint, name, reference } = target(request);
    if (endpoint === 'uploads' && reference !== '') {
      authorizeBindleName(request, 'push', name);
      await oci.uploads.cancel(name, reference);
      return reply.code(204).send();
    }
    throw new BindleError(
      'method_not_allowed',
      endpoint === 'manifests' ? 'bindles are not deleted but yanked: DELETE /v1/_i/{name}/{version}' : `DELETE of ${endpoint} is not supported`,
    );
  });
}
