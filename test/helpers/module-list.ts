/**
 * What a server process loaded, as it reports at exit: a module to preload (`node --require`)
 * that writes the built-in modules and the files it required, and a reader of those lists.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

/**
 * A module to preload (`node --require`) into a server process: when the process exits it writes
 * the built-in modules it loaded (process.moduleLoadList) to stderr as one line `MODULES <json>`,
 * and the files it required (the CommonJS cache: the bundle's `require` is node's) as `FILES <json>`.
 */
const PRELOAD_SOURCE = `'use strict';
process.on('exit', () => require('node:fs').writeSync(2, '\\nMODULES ' + JSON.stringify(process.moduleLoadList) + '\\nFILES ' + JSON.stringify(Object.keys(require.cache)) + '\\n'));
`;

/**
 * Writes the preload to a temporary directory (removed at teardown) and returns the options of
 * startServerProcess that load it, and no other: not tap's own preload (@tapjs/processinfo),
 * which tap adds to every child it sees spawned even when the child's NODE_OPTIONS is replaced,
 * and which loads modules of its own (crypto.webcrypto among them).
 */
export function withModuleList(t: Test): { withoutPreload: true; nodeArgs: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'bindle-preload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'module-list.cjs');
  writeFileSync(file, PRELOAD_SOURCE);
  return { withoutPreload: true, nodeArgs: ['--require', file] };
}

/** The list PRELOAD_SOURCE writes at exit on the line starting with `tag` (`MODULES` or `FILES`). */
export function exitList(output: string, tag: 'MODULES' | 'FILES'): string[] {
  const line = output.split('\n').find((l) => l.startsWith(`${tag} `));
  if (line === undefined) throw new Error(`no ${tag} list in the output:\n${output}`);
  return JSON.parse(line.slice(tag.length + 1)) as string[];
}
