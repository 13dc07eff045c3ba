/**
 * Authorization by name: an ACL file (TOML, schema/access-control-list.schema.json) grants
 * principals and groups `push`, `yank` or `admin` (both) on bindle-name prefixes, plus a default
 * every authenticated principal holds on every name. Reads are open to everyone; anonymous writes
 * are refused as by AnonymousGetAuthorizer. The file is re-read by `reload()` (the server calls it
 * on SIGHUP and when the file changes); a reload that fails keeps the last good version.
 */
import { readFile } from 'node:fs/promises';
import type { AccessControlList } from '../../schema/index.js';
import { parseDocument } from '../../core/codec/document-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
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
