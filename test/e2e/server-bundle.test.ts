/**
 * The built server bundle (scripts/bundle-server.mjs, run by `npm run build`) is pure ASCII, so
 * that V8 holds each of its modules' source text one byte per character, not two: a single
 * non-Latin-1 character in a comment doubled the memory the 1.4 MB bundle's text took.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

const BUNDLE_DIR = join(REPO_ROOT, 'dist', 'server', 'bundle');

t.test('every module of the server bundle is pure ASCII', (t) => {
  t.ok(existsSync(join(BUNDLE_DIR, 'bindle-server.mjs')), `${BUNDLE_DIR} is built (npm run build)`);
  const modules = readdirSync(BUNDLE_DIR).filter((name) => name.endsWith('.mjs'));
  t.ok(modules.length > 1, 'the entry and its chunks');
  for (const name of modules) {
    const text = readFileSync(join(BUNDLE_DIR, name), 'utf8');
    const offset = text.search(/[\u0080-\uffff]/);
    t.equal(offset, -1, `${name} is ASCII${offset < 0 ? '' : `; not at ${JSON.stringify(text.slice(Math.max(0, offset - 40), offset + 10))}`}`);
  }
  t.end();
});
