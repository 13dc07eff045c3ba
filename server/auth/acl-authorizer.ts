/**
 * Authorization by name: an ACL file (TOML, schema/access-control-list.schema.json) grants
 * principals and groups `push`, `yank` or `admin` (both) on bindle-name prefixes, plus a default
 * every authenticated principal holds on every name. Reads are open to everyone; anonymous writes
 * are refused as by AnonymousGetAuthorizer. The file is re-read by `reload()` (the server calls it
 * on SIGHUP and when the file changes); a reload that fails keeps the last good version.
 *
 * A prefix matches the names that start with it, character for character (names are
 * case-sensitive): `example.com/` covers `example.com/app`, and `example.com/app` covers
 * `example.com/app` and `example.com/apple` alike. A prefix that no valid bindle name starts with
 * (prefixProblem) is refused, since it would grant nothing without a word.
 */
import { readFile } from 'node:fs/promises';
import type { AccessControlList } from '../../schema/index.js';
import { parseDocument } from '../../core/codec/document-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { nameProblem } from '../../core/ids/bindle-id.js';
import { anonymousWrite } from './authorizers.js';
import type { Action, Authorizer, Principal } from './types.js';

/** What an ACL can grant; admin includes push and yank, and allows hard deletes (the admin action). */
export type Grant = 'push' | 'yank' | 'admin';

const GROUP = 'group:';

/** One compiled grant: who, what, where. */
interface Rule {
  readonly principals: ReadonlySet<string>;
  readonly actions: ReadonlySet<Action>;
  readonly prefixes: readonly string[];
}

/** The compiled file: the default actions and the rules, groups already expanded. */
interface CompiledAcl {
  readonly defaults: ReadonlySet<Action>;
  readonly rules: readonly Rule[];
}

function actionsOf(grants: readonly Grant[]): Set<Action> {
  const out = new Set<Action>();
  for (const g of grants) {
    if (g === 'push' || g === 'admin') out.add('push');
    if (g === 'yank' || g === 'admin') out.add('yank');
    if (g === 'admin') out.add('admin');
  }
  return out;
}

/**
 * A character that, appended to a prefix, ends a valid name when the prefix can begin one: a
 * digit is of no script (so it mixes with any), no combining mark, and composes with nothing
 * before it (so the name stays in NFC exactly when the prefix is).
 */
const NAME_END = '0';

/**
 * Why no valid bindle name (core/ids/bindle-id.ts's nameProblem) starts with `prefix`, or
 * undefined when some does. The empty prefix starts every name. Otherwise the prefix must be a
 * valid name, or become one with a character added: its complete segments must be valid and
 * non-empty, and its last segment may be partial (`example.com/ap`), `.` or `..` (the start of
 * `.hidden`, `..x`) or empty (a trailing `/`). So `/x`, `a//b`, `a/../b`, `a b/` and a prefix not in NFC can match
 * nothing; neither can one of 512 bytes ending in `/` (a name has at most 512).
 */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === '' || nameProblem(prefix) === undefined) return undefined;
  const completed = nameProblem(prefix + NAME_END);
  if (completed === undefined) return undefined;
  // The problem of the prefix as written names its own segments; for a trailing "/" or a last
  // segment of dots (valid once completed), that of the completed name names the real fault.
  const last = prefix.slice(prefix.lastIndexOf('/') + 1);
  return last === '' || last === '.' || last === '..' ? completed : (nameProblem(prefix) ?? completed);
}

/** Validates and compiles an ACL document; a problem is invalid_config naming `origin`. */
function compile(text: string, origin: string): CompiledAcl {
  let acl: AccessControlList;
  try {
    acl = parseDocument('AccessControlList', text, 'toml', 'invalid_config', `ACL ${origin}`);
  } catch (err) {
    if (err instanceof BindleError && err.code !== 'invalid_config') {
      throw new BindleError('invalid_config', `ACL ${origin}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  const groups = new Map(Object.entries(acl.groups ?? {}));
  const rules = (acl.grant ?? []).map((g, i): Rule => {
    const principals = new Set<string>();
    for (const who of g.to) {
      if (!who.startsWith(GROUP)) {
        principals.add(who);
        continue;
      }
      const members = groups.get(who.slice(GROUP.length));
      if (members === undefined) {
        throw new BindleError('invalid_config', `ACL ${origin}: grant[${i}].to names ${JSON.stringify(who)}, which is not in [groups]`);
      }
      for (const m of members) principals.add(m);
    }
    for (const [j, prefix] of g.on.entries()) {
      const problem = prefixProblem(prefix);
      if (problem !== undefined) {
        throw new BindleError(
          'invalid_config',
          `ACL ${origin}: grant[${i}].on[${j}] ${JSON.stringify(prefix)} is a prefix of no valid bindle name, so it would grant nothing: ${problem}`,
        );
      }
    }
    return { principals, actions: actionsOf(g.allow), prefixes: g.on };
  });
  return { defaults: actionsOf(acl.default ?? []), rules };
}

function describeName(name: string | undefined): string {
  return name === undefined ? 'any name' : JSON.stringify(name);
}

export class AclAuthorizer implements Authorizer {
  readonly path: string;
  #acl: CompiledAcl;

  private constructor(path: string, acl: CompiledAcl) {
    this.path = path;
    this.#acl = acl;
  }

  /** Reads the ACL file; an unreadable or invalid file is invalid_config. */
  static async load(path: string): Promise<AclAuthorizer> {
    return new AclAuthorizer(path, await AclAuthorizer.#read(path));
  }

  static async #read(path: string): Promise<CompiledAcl> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new BindleError('invalid_config', `cannot read ACL file ${path}: ${reason}`, { cause: err });
    }
    return compile(text, `file ${path}`);
  }

  /** Re-reads the file. On failure the previous version stays in force and the error is thrown. */
  async reload(): Promise<void> {
    this.#acl = await AclAuthorizer.#read(this.path);
  }

  /** The default grants of authenticated principals, as actions (for the start-up log). */
  get defaultActions(): Action[] {
    return [...this.#acl.defaults];
  }

  authorize(principal: Principal | undefined, action: Action, name?: string): void {
    if (action === 'read') return;
    if (principal === undefined) throw anonymousWrite();
    const { defaults, rules } = this.#acl;
    if (defaults.has(action)) return;
    const allowed = rules.some(
      (r) => r.actions.has(action) && r.principals.has(principal.id) && (name === undefined || r.prefixes.some((p) => name.startsWith(p))),
    );
    if (allowed) return;
    throw new BindleError(
      'forbidden',
      `${principal.id} lacks the ${action} grant on ${describeName(name)}: ask an administrator for ${action === 'admin' ? 'admin' : `${action} (or admin)`} on a prefix of it in the ACL`,
    );
  }
}
