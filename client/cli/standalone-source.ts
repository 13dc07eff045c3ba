/**
 * Finding the standalone bindle a command means (`push`, `package`): a standalone directory
 * or `<id>.tar.gz` given directly, or, as in the reference CLI, a bindle id with `-p <dir>`
 * naming the directory that holds `<sha256 of name/version>.tar.gz` or that bindle's
 * `<sha256 of name/version>/` directory (the tarball wins when both exist).
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { BindleError } from '../../core/errors/bindle-error.js';
import { canonicalId, formatId, parseId, type BindleId } from '../../core/ids/bindle-id.js';
import { usageFailure } from './cli-error.js';

/** A standalone bindle to read: a directory or a tarball, and the id it must hold when one was named. */
export interface StandaloneSource {
  readonly path: string;
  readonly kind: 'directory' | 'tarball';
  readonly expectedId: BindleId | undefined;
}

async function kindOf(path: string): Promise<'file' | 'directory' | undefined> {
  try {
    const info = await stat(path);
    if (info.isDirectory()) return 'directory';
    return info.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
}

function tryParseId(text: string): BindleId | undefined {
  try {
    return parseId(text);
  } catch {
    return undefined;
  }
}

async function byId(id: BindleId, base: string, directoryOnly: boolean): Promise<StandaloneSource> {
  const sha = canonicalId(id);
  const tarball = join(base, `${sha}.tar.gz`);
  if (!directoryOnly && (await kindOf(tarball)) === 'file') return { path: tarball, kind: 'tarball', expectedId: id };
  const dir = join(base, sha);
  if ((await kindOf(dir)) === 'directory') return { path: dir, kind: 'directory', expectedId: id };
  const expected = directoryOnly ? `the directory ${sha}/` : `${sha}.tar.gz or the directory ${sha}/`;
  throw new BindleError('not_found', `no standalone bindle ${formatId(id)} in ${base}: expected ${expected} there`);
}

/**
 * Resolves `source` (a path, or an id when `pathOption` is given or no such path exists) and
 * `pathOption` (`-p`) against `cwd`. With `directoryOnly`, an id never resolves to a tarball.
 * Throws a usage failure when neither names anything usable, `not_found` when an id's bindle is
 * not under the path.
 */
export async function resolveStandaloneSource(
  source: string | undefined,
  pathOption: string | undefined,
  cwd: string,
  directoryOnly = false,
): Promise<StandaloneSource> {
  if (source === undefined) {
    throw usageFailure('nothing to read', 'give a standalone bindle directory or <sha>.tar.gz, or a bindle id with -p <dir>');
  }
  if (pathOption !== undefined) {
    const id = tryParseId(source);
    if (id === undefined) throw usageFailure(`invalid bindle id ${JSON.stringify(source)}`, 'with -p/--path the argument must be <name>/<version>');
    return byId(id, resolve(cwd, pathOption), directoryOnly);
  }
  const path = resolve(cwd, source);
  const kind = await kindOf(path);
  if (kind === 'file') return { path, kind: 'tarball', expectedId: undefined };
  if (kind === 'directory') return { path, kind: 'directory', expectedId: undefined };
  const id = tryParseId(source);
  if (id !== undefined) return byId(id, cwd, directoryOnly);
  throw usageFailure(`no such standalone bindle ${JSON.stringify(source)}`, `${path} does not exist and is not a <name>/<version> id`);
}
