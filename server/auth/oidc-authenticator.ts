/**
 * Bearer authentication with OIDC-issued JWTs: verifies the signature against a local JWKS file
 * or the issuer's published keys (found through OIDC discovery, fetched lazily on first use and
 * refreshed by jose when an unknown key id shows up), and checks issuer, audience and expiry.
 */
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type CryptoKey,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  type JWTPayload,
} from 'jose';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { credentialsFor, parseAuthorization } from './authorization-header.js';
import type { Principal, SchemeAuthenticator } from './types.js';

/** What the server is configured with (ServerConfig['oidc']). */
export interface OidcSettings {
  readonly issuerUrl: string;
  readonly clientId: string;
  readonly deviceUrl: string;
  /** A local JWKS file to verify with, instead of the issuer's published keys. */
  readonly jwksFile?: string;
}

export interface OidcOptions {
  /** Allowed clock skew for exp/nbf/iat, in seconds (default 30). */
  readonly clockToleranceSec?: number;
  /** Timeout for discovery and key-set requests, in milliseconds (default 5000). */
  readonly fetchTimeoutMs?: number;
}

/** The parts of the issuer's OIDC discovery document we use. */
export interface OidcDiscovery {
  readonly issuer?: string;
  readonly jwks_uri: string;
  readonly token_endpoint?: string;
}

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** Asymmetric algorithms only: a JWKS never legitimately verifies an HMAC token. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

function unauthenticated(message: string, cause?: unknown): BindleError {
  return new BindleError('unauthenticated', message, { cause });
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class OidcAuthenticator implements SchemeAuthenticator {
  readonly scheme = 'bearer' as const;
  readonly issuerUrl: string;
  readonly clientId: string;
  /** The provider's device-code authorization URL, for the /login device flow. */
  readonly deviceUrl: string;
  /** The configured issuer without trailing slashes: the one spelling principal ids use. */
  readonly #issuer: string;
  readonly #issuers: string[];
  readonly #clockToleranceSec: number;
  readonly #fetchTimeoutMs: number;
  /** The local key set, or undefined to use the issuer's (see #remoteKeys). */
  readonly #localKeys: KeyResolver | undefined;
  #discovery: Promise<OidcDiscovery> | undefined;
  #remoteKeys: KeyResolver | undefined;

  private constructor(settings: OidcSettings, localKeys: KeyResolver | undefined, options: OidcOptions) {
    this.issuerUrl = settings.issuerUrl;
    this.clientId = settings.clientId;
    this.deviceUrl = settings.deviceUrl;
    const trimmed = settings.issuerUrl.replace(/\/+$/, '');
    // Providers differ on a trailing slash in `iss`; both spellings name the same issuer.
    this.#issuer = trimmed;
    this.#issuers = [trimmed, `${trimmed}/`];
    this.#localKeys = localKeys;
    this.#clockToleranceSec = options.clockToleranceSec ?? 30;
    this.#fetchTimeoutMs = options.fetchTimeoutMs ?? 5000;
  }

  /**
   * Creates the authenticator. With `jwksFile` the key set is read now (unreadable or invalid →
   * invalid_config); without it nothing is fetched until the first bearer token arrives.
   */
  static async create(settings: OidcSettings, options: OidcOptions = {}): Promise<OidcAuthenticator> {
    let localKeys: KeyResolver | undefined;
    if (settings.jwksFile !== undefined) {
      const path = settings.jwksFile;
      let jwks: unknown;
      try {
        jwks = JSON.parse(await readFile(path, 'utf8'));
      } catch (err) {
        throw new BindleError('invalid_config', `cannot read OIDC JWKS file ${path}: ${reasonOf(err)}`, { cause: err });
      }
      try {
        localKeys = createLocalJWKSet(jwks as JSONWebKeySet);
      } catch (err) {
        throw new BindleError('invalid_config', `OIDC JWKS file ${path} is not a JSON Web Key Set: ${reasonOf(err)}`, { cause: err });
      }
    }
    return new OidcAuthenticator(settings, localKeys, options);
  }

  /**
   * The issuer's discovery document (`<issuer>/.well-known/openid-configuration`), fetched once;
   * a failed fetch is 'unavailable' and retried on the next call.
   */
  discovery(): Promise<OidcDiscovery> {
    this.#discovery ??= this.#fetchDiscovery().catch((err: unknown) => {
      this.#discovery = undefined;
      throw err;
    });
    return this.#discovery;
  }

  /** The provider's token endpoint (from discovery), for the /login device flow. */
  async tokenUrl(): Promise<string> {
    const doc = await this.discovery();
    if (doc.token_endpoint === undefined) {
      throw new BindleError('unavailable', `the OIDC issuer ${this.issuerUrl} publishes no token_endpoint`);
    }
    return doc.token_endpoint;
  }

  async #fetchDiscovery(): Promise<OidcDiscovery> {
    const url = `${this.#issuer}/.well-known/openid-configuration`;
    let body: unknown;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.#fetchTimeoutMs), headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = await res.json();
    } catch (err) {
      throw new BindleError('unavailable', `cannot fetch OIDC discovery document ${url}: ${reasonOf(err)}`, { cause: err });
    }
    const doc = body as Partial<Record<keyof OidcDiscovery, unknown>> | null;
    const jwksUri = doc?.jwks_uri;
    if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri)) {
      throw new BindleError('unavailable', `OIDC discovery document ${url} has no valid jwks_uri`);
    }
    return {
      jwks_uri: jwksUri,
      ...(typeof doc?.issuer === 'string' ? { issuer: doc.issuer } : {}),
      ...(typeof doc?.token_endpoint === 'string' ? { token_endpoint: doc.token_endpoint } : {}),
    };
  }

  /** Resolves a token's key from the issuer's key set; fetch failures are 'unavailable'. */
  readonly #remoteKey: KeyResolver = async (header, token) => {
    if (this.#remoteKeys === undefined) {
      const doc = await this.discovery();
      this.#remoteKeys = createRemoteJWKSet(new URL(doc.jwks_uri), { timeoutDuration: this.#fetchTimeoutMs });
    }
    try {
      return await this.#remoteKeys(header, token);
    } catch (err) {
      const fetchFailed =
        !(err instanceof errors.JOSEError) ||
        err instanceof errors.JWKSTimeout ||
        err instanceof errors.JWKSInvalid ||
        err.code === 'ERR_JOSE_GENERIC';
      if (fetchFailed) {
        throw new BindleError('unavailable', `cannot fetch the OIDC issuer's keys: ${reasonOf(err)}`, { cause: err });
      }
      throw err;
    }
  };

  async authenticate(authorizationHeader: string | undefined): Promise<Principal | undefined> {
    const parsed = parseAuthorization(authorizationHeader);
    if (parsed === undefined) return undefined;
    const token = credentialsFor(parsed, this.scheme);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#localKeys ?? this.#remoteKey, {
        issuer: this.#issuers,
        audience: this.clientId,
        algorithms: ALGORITHMS,
        requiredClaims: ['exp', 'sub'],
        clockTolerance: this.#clockToleranceSec,
      }));
    } catch (err) {
      throw describeFailure(err);
    }
    return { id: principalId(payload, this.#issuer), kind: 'oidc' };
  }
}

/** Maps a verification failure to unauthenticated with a reason a client can act on. */
function describeFailure(err: unknown): Error {
  if (isBindleError(err)) return err;
  if (err instanceof errors.JWTExpired) return unauthenticated('bearer token has expired', err);
  if (err instanceof errors.JWTClaimValidationFailed) return unauthenticated(`bearer token rejected: ${err.message}`, err);
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthenticated('bearer token signature is invalid', err);
  if (err instanceof errors.JWKSNoMatchingKey) return unauthenticated("bearer token is not signed by any of the issuer's keys", err);
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated('bearer token uses a signature algorithm that is not accepted', err);
  if (err instanceof errors.JOSEError) return unauthenticated(`malformed bearer token: ${err.message}`, err);
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * The principal id, as the reference builds it: `preferred_username`, else `email` when
 * `email_verified` is true, else `sub`; then `@` and the issuer, so that equal user names at
 * different providers stay distinct. The issuer is the configured one without trailing slashes
 * (`issuer`), not the token's `iss`: both spellings of it are accepted, and one user has one id.
 */
function principalId(payload: JWTPayload, issuer: string): string {
  const preferred = payload.preferred_username;
  const email = payload.email;
  const name =
    typeof preferred === 'string' && preferred !== ''
      ? preferred
      : typeof email === 'string' && email !== '' && payload.email_verified === true
        ? email
        : (payload.sub ?? '');
  return `${name}@${issuer}`;
}
