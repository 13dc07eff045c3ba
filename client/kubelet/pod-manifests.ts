/**
 * Static Pod manifests: parsing and validating Kubernetes `v1` `Pod` documents (YAML or JSON,
 * one Pod per file) into the subset the kubelet runs, the `bindle.dev/*` annotations that tune
 * module selection, and reading a manifest directory.
 *
 * Annotations (values are strings; a per-container form `<key>.<container-name>` overrides the
 * pod-wide key for that container):
 * - `bindle.dev/allow-yanked: "true"`: the pod may run yanked bindles (pod-wide only);
 * - `bindle.dev/allow-unsigned-images: "true"`: the pod may run OCI images that are plain Wasm,
 *   not signed bindles (pod-wide only; nothing verifies who made them);
 * - `bindle.dev/groups`: groups to select besides the required ones, e.g. `"extras, debug"`;
 * - `bindle.dev/features`: feature filters `section.name=value`, e.g. `"wasm.ui_kit=none"`;
 * - `bindle.dev/choose`: choices for `oneOf` groups, `group=parcel-name`, e.g. `"lang=fr.txt"`;
 * - `bindle.dev/module`: the label name of the entry module (the container's `command[0]` does
 *   the same and wins).
 * Lists are separated by commas or newlines; a feature value may be double-quoted.
 *
 * Also honoured: `metadata.namespace` (default `default`) and `metadata.uid` (default: derived
 * from the manifest's bytes, as static pods' UIDs are), `spec.activeDeadlineSeconds`, per
 * container `resources.limits.memory` / `resources.limits.cpu` (Kubernetes quantities) and
 * `env[].valueFrom.fieldRef` for the pod's own fields (see `FIELD_REFS`), resolved when the
 * manifest is parsed, as are `$(VAR)` references in `env[].value` to the entries before it
 * (./env-refs.ts; a `valueFrom` value is taken as it is).
 */
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { BindleError } from '../../core/errors/bindle-error.js';
import { parseFeatureFilter, type FeatureFilter } from '../../core/selection/index.js';
import { expandEnvRefs } from './env-refs.js';
import type { ModuleRequest, PullPolicy } from './module-store.js';
import { isMovingRef, parseModuleRef } from './module-ref.js';

export type RestartPolicy = 'Always' | 'OnFailure' | 'Never';

/** One environment variable of a container. */
export interface EnvVar {
  name: string;
  value: string;
}

/** The part of a Kubernetes container spec that the kubelet honours. */
export interface ContainerSpec {
  /** A DNS-1123 label, unique in the pod; names the log file and data directory. */
  name: string;
  /** The module reference, `bindle:<name>/<version>` or `bindle:<name>@<range>`. */
  image: string;
  /** `command[0]` names the entry module parcel; further elements are passed before `args`. */
  command: string[];
  args: string[];
  env: EnvVar[];
  /** As written; undefined means the Kubernetes default (see `pullPolicyOf`). */
  imagePullPolicy: PullPolicy | undefined;
  /** `resources.limits`: memory in bytes, CPU in cores; absent means unlimited. */
  limits: ContainerLimits;
}

/** A container's `resources.limits`, parsed. */
export interface ContainerLimits {
  memoryBytes?: number;
  cpu?: number;
}

/** A validated static pod. */
export interface PodSpec {
  /** A DNS-1123 subdomain; names the pod's state directory. */
  name: string;
  /** `metadata.namespace`, default `default`. */
  namespace: string;
  /** `metadata.uid`, or a UUID derived from the manifest's sha256. */
  uid: string;
  /** `spec.activeDeadlineSeconds`: the pod is ended this long after it started (`DeadlineExceeded`). */
  activeDeadlineSeconds: number | undefined;
  annotations: Record<string, string>;
  containers: ContainerSpec[];
  /** Default `Always`, as in Kubernetes. */
  restartPolicy: RestartPolicy;
}

/** The annotation keys the kubelet reads. */
export const ANNOTATIONS = Object.freeze({
  allowYanked: 'bindle.dev/allow-yanked',
  allowUnsigned: 'bindle.dev/allow-unsigned-images',
  groups: 'bindle.dev/groups',
  features: 'bindle.dev/features',
  choose: 'bindle.dev/choose',
  module: 'bindle.dev/module',
});

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const PULL_POLICIES: readonly PullPolicy[] = ['Always', 'IfNotPresent', 'Never'];
const RESTART_POLICIES: readonly RestartPolicy[] = ['Always', 'OnFailure', 'Never'];

/** File names the manifest directory watch considers (dotfiles are ignored, as by the kubelet). */
export function isManifestFileName(name: string): boolean {
  return !name.startsWith('.') && /\.(ya?ml|json)$/iu.test(name);
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses one manifest. `source` (the file path) prefixes every message. Throws
 * `malformed_body` for YAML/JSON syntax errors and `bad_request` for a document that is not a
 * runnable v1 Pod (each message says which field and why).
 */
export function parsePodManifest(text: string, source: string): PodSpec {
  const fail = (why: string): BindleError => new BindleError('bad_request', `pod manifest ${source}: ${why}`);
  const docs = parseAllDocuments(text).filter((d) => d.contents !== null);
  const broken = docs.flatMap((d) => d.errors);
  if (broken.length > 0) {
    throw new BindleError('malformed_body', `pod manifest ${source} is not valid YAML or JSON: ${broken[0]?.message ?? 'syntax error'}`);
  }
  if (docs.length !== 1) throw fail(`expected exactly one Pod document, found ${docs.length}`);
  const root: unknown = docs[0]?.toJS();
  if (!isObject(root)) throw fail('the document is not a mapping');
  if (root.apiVersion !== 'v1') throw fail(`apiVersion must be "v1" (found ${JSON.stringify(root.apiVersion)})`);
  if (root.kind !== 'Pod') throw fail(`kind must be "Pod" (found ${JSON.stringify(root.kind)})`);
  const metadata = root.metadata;
  if (!isObject(metadata)) throw fail('metadata is missing');
  const name = metadata.name;
  if (typeof name !== 'string' || name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw fail(`metadata.name ${JSON.stringify(name)} must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)`);
  }
  const namespace = metadata.namespace ?? 'default';
  if (typeof namespace !== 'string' || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw fail(`metadata.namespace ${JSON.stringify(namespace)} must be a DNS-1123 label`);
  }
  const uid = metadata.uid ?? manifestUid(text);
  if (typeof uid !== 'string' || uid === '') throw fail('metadata.uid must be a non-empty string');
  const labels = stringMap(metadata.labels, 'label', fail);
  const annotations = stringMap(metadata.annotations, 'annotation', fail);
  const spec = root.spec;
  if (!isObject(spec)) throw fail('spec is missing');
  const restartPolicy = spec.restartPolicy ?? 'Always';
  if (!RESTART_POLICIES.includes(restartPolicy as RestartPolicy)) {
    throw fail(`spec.restartPolicy must be one of ${RESTART_POLICIES.join(', ')} (found ${JSON.stringify(restartPolicy)})`);
  }
  const deadline = spec.activeDeadlineSeconds;
  if (deadline !== undefined && deadline !== null && (typeof deadline !== 'number' || !Number.isSafeInteger(deadline) || deadline < 1)) {
    throw fail(`spec.activeDeadlineSeconds must be a whole number of seconds, at least 1 (found ${JSON.stringify(deadline)})`);
  }
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) throw fail('spec.containers must list at least one container');
  const fields: PodFields = { name, namespace, uid, labels, annotations };
  const seen = new Set<string>();
  const containers = spec.containers.map((c: unknown, i: number) => {
    const container = parseContainer(c, `spec.containers[${i}]`, fields, fail);
    if (seen.has(container.name)) throw fail(`two containers are named "${container.name}"`);
    seen.add(container.name);
    return container;
  });
  const pod: PodSpec = {
    name,
    namespace,
    uid,
    activeDeadlineSeconds: typeof deadline === 'number' ? deadline : undefined,
    annotations,
    containers,
    restartPolicy: restartPolicy as RestartPolicy,
  };
  for (const container of containers) containerModuleRequest(pod, container, source);
  return pod;
}

function stringList(value: unknown, where: string, fail: (why: string) => BindleError): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw fail(`${where} must be a list of strings`);
  return value as string[];
}

/** A UUID (version-4 layout) from the manifest's sha256: a static pod keeps its UID while its manifest is unchanged. */
function manifestUid(text: string): string {
  const hex = createHash('sha256').update(text).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 17), 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** `metadata.labels` or `metadata.annotations` (`what` is `label` or `annotation`). */
function stringMap(value: unknown, what: string, fail: (why: string) => BindleError): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw fail(`metadata.${what}s must be a mapping of strings`);
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw fail(`${what} ${key} must be a string (quote it, e.g. "true")`);
    out[key] = v;
  }
  return out;
}

/** The pod's own fields that `env[].valueFrom.fieldRef` can name. */
interface PodFields {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** The `fieldRef.fieldPath`s the kubelet resolves (plus `metadata.labels['k']` and `metadata.annotations['k']`). */
export const FIELD_REFS = Object.freeze(['metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName']);

function fieldRefValue(path: string, pod: PodFields): string | undefined {
  switch (path) {
    case 'metadata.name':
      return pod.name;
    case 'metadata.namespace':
      return pod.namespace;
    case 'metadata.uid':
      return pod.uid;
    case 'spec.nodeName':
      return hostname();
  }
  const keyed = /^metadata\.(labels|annotations)\['([^']*)'\]$/u.exec(path);
  if (keyed === null) return undefined;
  const map = keyed[1] === 'labels' ? pod.labels : pod.annotations;
  return map[keyed[2] ?? ''] ?? '';
}

const QUANTITY = /^([+]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/u;
const QUANTITY_SUFFIX: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

/** A Kubernetes resource quantity (`64Mi`, `100m`, `0.5`, `1e9`, or a YAML number) as a number; undefined when malformed or negative. */
export function parseQuantity(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = QUANTITY.exec(value.trim());
  if (m === null) return undefined;
  const suffix = m[2] ?? '';
  const scale = suffix === '' ? 1 : (QUANTITY_SUFFIX[suffix] ?? 10 ** Number(suffix.slice(1)));
  const n = Number(m[1]) * scale;
  return Number.isFinite(n) ? n : undefined;
}

function parseLimits(value: unknown, at: string, fail: (why: string) => BindleError): ContainerLimits {
  if (value === undefined || value === null) return {};
  if (!isObject(value)) throw fail(`${at}: resources must be a mapping`);
  const limits = value.limits;
  if (limits === undefined || limits === null) return {};
  if (!isObject(limits)) throw fail(`${at}: resources.limits must be a mapping`);
  const out: ContainerLimits = {};
  if (limits.memory !== undefined) {
    const bytes = parseQuantity(limits.memory);
    if (bytes === undefined || bytes < 1) throw fail(`${at}: resources.limits.memory ${JSON.stringify(limits.memory)} is not a memory quantity such as "64Mi"`);
    out.memoryBytes = Math.ceil(bytes);
  }
  if (limits.cpu !== undefined) {
    const cpu = parseQuantity(limits.cpu);
    if (cpu === undefined || cpu < 0.001) throw fail(`${at}: resources.limits.cpu ${JSON.stringify(limits.cpu)} is not a CPU quantity such as "100m" or "0.5"`);
    out.cpu = cpu;
  }
  return out;
}

function envValueFrom(valueFrom: unknown, at: string, pod: PodFields, fail: (why: string) => BindleError): string {
  const path = isObject(valueFrom) && isObject(valueFrom.fieldRef) ? valueFrom.fieldRef.fieldPath : undefined;
  if (typeof path !== 'string') {
    throw fail(`${at}: valueFrom supports only fieldRef (${FIELD_REFS.join(', ')}, metadata.labels['…'], metadata.annotations['…'])`);
  }
  const value = fieldRefValue(path, pod);
  if (value === undefined) throw fail(`${at}: valueFrom.fieldRef.fieldPath ${JSON.stringify(path)} is not supported (use ${FIELD_REFS.join(', ')}, metadata.labels['…'] or metadata.annotations['…'])`);
  return value;
}

function parseContainer(value: unknown, where: string, pod: PodFields, fail: (why: string) => BindleError): ContainerSpec {
  if (!isObject(value)) throw fail(`${where} is not a mapping`);
  const name = value.name;
  if (typeof name !== 'string' || name.length > 63 || !DNS_LABEL.test(name)) {
    throw fail(`${where}.name ${JSON.stringify(name)} must be a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters)`);
  }
  const at = `container "${name}"`;
  if (typeof value.image !== 'string' || value.image === '') throw fail(`${at}: image is missing`);
  try {
    parseModuleRef(value.image);
  } catch (err) {
    throw fail(`${at}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const pull = value.imagePullPolicy;
  if (pull !== undefined && !PULL_POLICIES.includes(pull as PullPolicy)) {
    throw fail(`${at}: imagePullPolicy must be one of ${PULL_POLICIES.join(', ')} (found ${JSON.stringify(pull)})`);
  }
  const env: EnvVar[] = [];
  // What the entries so far define: an entry's value expands `$(VAR)` from them, as Kubernetes does.
  const defined: Record<string, string> = Object.create(null) as Record<string, string>;
  const define = (name: string, val: string): void => {
    defined[name] = val;
    env.push({ name, value: val });
  };
  if (value.env !== undefined && value.env !== null) {
    if (!Array.isArray(value.env)) throw fail(`${at}: env must be a list of {name, value}`);
    for (const e of value.env as unknown[]) {
      if (!isObject(e) || typeof e.name !== 'string' || e.name === '' || /[=\0]/u.test(e.name)) {
        throw fail(`${at}: every env entry needs a name without "=" (found ${JSON.stringify(e)})`);
      }
      if (e.valueFrom !== undefined && e.valueFrom !== null) {
        if (e.value !== undefined && e.value !== null && e.value !== '') throw fail(`${at}: env ${e.name}: give value or valueFrom, not both`);
        define(e.name, envValueFrom(e.valueFrom, `${at}: env ${e.name}`, pod, fail));
        continue;
      }
      if (e.value !== undefined && e.value !== null && typeof e.value !== 'string') {
        throw fail(`${at}: env ${e.name}: value must be a string (quote it)`);
      }
      define(e.name, typeof e.value === 'string' ? expandEnvRefs(e.value, defined) : '');
    }
  }
  return {
    name,
    image: value.image,
    command: stringList(value.command, `${at}: command`, fail),
    args: stringList(value.args, `${at}: args`, fail),
    env,
    imagePullPolicy: pull as PullPolicy | undefined,
    limits: parseLimits(value.resources, at, fail),
  };
}

/**
 * The pull policy in force: the container's own, else Kubernetes' default, which is `Always`
 * for a moving reference (a version range, like a `:latest` tag) and `IfNotPresent` for an
 * exact `name/version`.
 */
export function pullPolicyOf(container: ContainerSpec): PullPolicy {
  if (container.imagePullPolicy !== undefined) return container.imagePullPolicy;
  return isMovingRef(parseModuleRef(container.image)) ? 'Always' : 'IfNotPresent';
}

/** Splits an annotation list at commas and newlines outside double quotes; trims; drops empty items. */
export function splitAnnotationList(value: string): string[] {
  const items: string[] = [];
  let current = '';
  let quoted = false;
  for (const ch of value) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ',' || ch === '\n')) {
      items.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  items.push(current);
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

function annotation(pod: PodSpec, key: string, container: string): string | undefined {
  return pod.annotations[`${key}.${container}`] ?? pod.annotations[key];
}

/**
 * What the module store should select for `container`, from the pod's annotations (see the
 * module comment) and the container's `command[0]`. Throws `bad_request` naming the annotation
 * for a malformed value.
 */
export function containerModuleRequest(pod: PodSpec, container: ContainerSpec, source = `pod ${pod.name}`): ModuleRequest {
  const fail = (key: string, why: string): BindleError =>
    new BindleError('bad_request', `${source}: container "${container.name}": annotation ${key}: ${why}`);
  const request: ModuleRequest = {};
  const flag = (key: string): boolean | undefined => {
    const value = pod.annotations[key];
    if (value === undefined) return undefined;
    const v = value.trim().toLowerCase();
    if (v !== 'true' && v !== 'false') throw fail(key, `expected "true" or "false", found ${JSON.stringify(value)}`);
    return v === 'true';
  };
  const allowYanked = flag(ANNOTATIONS.allowYanked);
  if (allowYanked !== undefined) request.allowYanked = allowYanked;
  const allowUnsigned = flag(ANNOTATIONS.allowUnsigned);
  if (allowUnsigned !== undefined) request.allowUnsigned = allowUnsigned;
  const groups = annotation(pod, ANNOTATIONS.groups, container.name);
  if (groups !== undefined) request.groups = splitAnnotationList(groups);
  const features = annotation(pod, ANNOTATIONS.features, container.name);
  if (features !== undefined) {
    const filters: FeatureFilter[] = [];
    for (const item of splitAnnotationList(features)) {
      try {
        filters.push(parseFeatureFilter(item));
      } catch (err) {
        throw fail(ANNOTATIONS.features, err instanceof Error ? err.message : String(err));
      }
    }
    request.features = filters;
  }
  const choose = annotation(pod, ANNOTATIONS.choose, container.name);
  if (choose !== undefined) {
    const choices: Record<string, string> = {};
    for (const item of splitAnnotationList(choose)) {
      const eq = item.indexOf('=');
      const group = eq < 0 ? '' : item.slice(0, eq).trim();
      const parcel = eq < 0 ? '' : item.slice(eq + 1).trim();
      if (group === '' || parcel === '') throw fail(ANNOTATIONS.choose, `expected group=parcel-name, found ${JSON.stringify(item)}`);
      if (Object.hasOwn(choices, group)) throw fail(ANNOTATIONS.choose, `group "${group}" is chosen twice`);
      choices[group] = parcel;
    }
    request.choices = choices;
  }
  const module = container.command[0] ?? annotation(pod, ANNOTATIONS.module, container.name)?.trim();
  if (module !== undefined && module !== '') request.module = module;
  return request;
}

/** A manifest file as read from the directory. */
export interface ManifestFile {
  path: string;
  text: string;
  /** sha256 of the text: a changed file is a new pod. */
  digest: string;
}

/** Reads every manifest file (see `isManifestFileName`) in `dir`, sorted by name. A missing directory reads as empty. */
export async function readManifestDir(dir: string): Promise<ManifestFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && isManifestFileName(e.name)).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: ManifestFile[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    files.push({ path, text, digest: createHash('sha256').update(text).digest('hex') });
  }
  return files;
}
