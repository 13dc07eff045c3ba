/**
 * Reading and writing key files (keyrings and secret-key files): read errors and parse errors
 * become `invalid_key_file` naming the path; writes are atomic with mode 0600; creating a file
 * that must not already exist never replaces one written concurrently.
 */
import { link, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BindleError } from '../errors/bindle-error.js';
import { fsyncDir, writeFileAtomic, writeTempFile } from '../fs-atomic.js';

export const KEY_FILE_MODE = 0o600;

function errnoCode(err: unknown): string | undefined {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** The text of a key file, or undefined when it does not exist. Other read errors → `invalid_key_file`. */
export async function readKeyFileIfExists(path: string, what: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    const detail = err instanceof Error ? err.message : String(err);
    throw new BindleError('invalid_key_file', `cannot read ${what} ${path}: ${detail}`, { cause: err });
  }
}

/** The text of a key file; a missing file is `invalid_key_file` too. */
export async function readKeyFile(path: string, what: string): Promise<string> {
  const text = await readKeyFileIfExists(path, what);
  if (text === undefined) throw new BindleError('invalid_key_file', `${what} ${path} does not exist`);
  return text;
}

/** Runs a parser over a key file's text, turning any failure into `invalid_key_file` with the path. */
export function parseKeyFileText<T>(path: string, what: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (err) {
    if (!(err instanceof Error)) throw err;
    throw new BindleError('invalid_key_file', `${what} ${path}: ${err.message}`, { cause: err });
  }
}

/** Writes a key file atomically with mode 0600, replacing any existing file. */
export async function writeKeyFile(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, text, KEY_FILE_MODE);
}

/**
 * Creates `path` with `text` (mode 0600) only if it does not exist yet; returns false, leaving
 * the existing file untouched, when it does. The data is complete before the name appears:
 * it is written and fsynced under a temp name, then hard-linked into place (falling back to a
 * rename on filesystems without hard links).
 */
export async function createKeyFileExclusive(path: string, text: string): Promise<boolean> {
  const temp = await writeTempFile(path, text, KEY_FILE_MODE);
  try {
    try {
      await link(temp, path);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return false;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
      if ((await readKeyFileIfExists(path, 'key file')) !== undefined) return false;
      await rename(temp, path);
    }
  } finally {
    await rm(temp, { force: true });
  }
  await fsyncDir(dirname(path));
  return true;
}
