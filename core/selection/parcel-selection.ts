/**
 * Parcel selection: which parcels of an invoice a client fetches, given the invoice's
 * `[[group]]` list, the parcels' `conditions` (`memberOf`, `requires`), the groups a caller
 * asks for, its choices for `oneOf` groups and its feature filters (invoice spec, "`group`
 * Lists and `conditions` Fields"; label spec, "Filtering Features").
 *
 * Decisions where the specification is silent or contradicts itself:
 * - `satisfiedBy = "optional"` selects nothing unless the caller requested that group by name,
 *   in which case all its (eligible) members are selected. Being required (`required = true`
 *   or through a `requires`) does not change that: the group definition says an optional group
 *   "can be satisfied even if none of the parcels in the group are selected", which we follow
 *   over the looser prose after the spec's example.
 * - A `memberOf` naming a group that no `[[group]]` declares is tolerated: the parcel is in an
 *   undeclared group that is `allOf` and not required (a caller may still request it by name).
 *   A `requires` naming an undeclared group is an authoring error (`unknown_group`), raised when
 *   the parcel carrying it is selected.
 * - Duplicate `[[group]]` entries with one name merge: required if any says so; `satisfiedBy`
 *   is the first one stated. Parcels are deduplicated by sha256 (first in invoice order wins).
 * - `oneOf` groups are decided after every pending non-`oneOf` group, so that a member already
 *   selected through another group satisfies them whenever possible.
 * - A choice for a `oneOf` group that ends up not required is ignored; a choice does not itself
 *   request its group.
 */
import type { Group, Invoice, Parcel } from '../../schema/index.js';
import { BindleError } from '../errors/bindle-error.js';

/**
 * One feature filter: `section.name = value` (e.g. `wasm.type = "entrypoint"`). A parcel whose
 * label has feature `section.name` with a different value is excluded; parcels without that
 * feature are kept.
 */
export interface FeatureFilter {
  section: string;
  name: string;
  value: string;
}

/** What the caller asks of a selection. Every field is optional. */
export interface SelectionRequest {
  /** Groups to process in addition to the required ones; each must exist on the invoice (`unknown_group`). */
  groups?: readonly string[];
  /** For `oneOf` groups: group name → the member to use, by parcel name or sha256 (`bad_request` if not a member). */
  choices?: Readonly<Record<string, string>>;
  /** Feature filters; two filters on one `section.name` with different values are a `bad_request`. */
  features?: readonly FeatureFilter[];
}

/** The outcome of a selection. */
export interface Selection {
  /** The parcels to fetch, in invoice order, each sha256 once. */
  parcels: Parcel[];
  /** The named groups that were processed, in order of processing. */
  groups: string[];
}

type SatisfiedBy = NonNullable<Group['satisfiedBy']>;

/** A group after merging duplicate declarations. */
interface GroupInfo {
  required: boolean;
  satisfiedBy: SatisfiedBy;
}

/** True when the parcel is in the implicit global group: no `memberOf`, or an empty one. */
export function isGlobalParcel(parcel: Parcel): boolean {
  return (parcel.conditions?.memberOf ?? []).length === 0;
}

/** The parcels whose `memberOf` names `group`, in invoice order (duplicates included, no filtering). */
export function groupMembers(invoice: Invoice, group: string): Parcel[] {
  return (invoice.parcel ?? []).filter((p) => isMemberOf(p, group));
}

function isMemberOf(parcel: Parcel, group: string): boolean {
  return (parcel.conditions?.memberOf ?? []).includes(group);
}

const FILTER_SHAPE = 'expected section.name=value, e.g. wasm.type=entrypoint';

/**
 * Parses `section.name=value` (spaces around `=` allowed; the value may be double-quoted, as in
 * `wasm.type = "entrypoint"`). Throws `bad_request` naming what is wrong.
 */
export function parseFeatureFilter(text: string): FeatureFilter {
  const eq = text.indexOf('=');
  if (eq < 0) throw badFilter(text, `no "=" (${FILTER_SHAPE})`);
  const key = text.slice(0, eq).trim();
  const rawValue = text.slice(eq + 1).trim();
  const dot = key.indexOf('.');
  if (dot < 0) throw badFilter(text, `the key "${key}" has no section (${FILTER_SHAPE})`);
  const section = key.slice(0, dot);
  const name = key.slice(dot + 1);
  if (section === '') throw badFilter(text, `empty section (${FILTER_SHAPE})`);
  if (name === '') throw badFilter(text, `empty feature name (${FILTER_SHAPE})`);
  if (name.includes('.')) {
    throw badFilter(text, `"${key}" is ambiguous: more than one "." (feature sections and names should not contain ".")`);
  }
  if (/\s/u.test(key)) throw badFilter(text, `whitespace inside "${key}"`);
  let value: string;
  if (rawValue.startsWith('"')) {
    if (rawValue.length < 2 || !rawValue.endsWith('"') || rawValue.slice(1, -1).includes('"')) {
      throw badFilter(text, 'unbalanced double quotes around the value');
    }
    value = rawValue.slice(1, -1);
  } else {
    if (rawValue === '') throw badFilter(text, `no value (${FILTER_SHAPE}; write "" for an empty value)`);
    if (rawValue.includes('"')) throw badFilter(text, 'stray double quote in the value');
    value = rawValue;
  }
  return { section, name, value };
}

function badFilter(text: string, why: string): BindleError {
  return new BindleError('bad_request', `invalid feature filter ${JSON.stringify(text)}: ${why}`);
}

function formatFilter(f: FeatureFilter): string {
  return `${f.section}.${f.name}=${JSON.stringify(f.value)}`;
}

/** Checks the filters and drops exact repeats; conflicting values for one feature are refused. */
function checkFilters(filters: readonly FeatureFilter[]): FeatureFilter[] {
  const byKey = new Map<string, FeatureFilter>();
  for (const f of filters) {
    if (f.section === '' || f.name === '') {
      throw new BindleError('bad_request', `feature filter ${formatFilter(f)} has an empty section or name`);
    }
    const key = JSON.stringify([f.section, f.name]);
    const earlier = byKey.get(key);
    if (earlier === undefined) byKey.set(key, f);
    else if (earlier.value !== f.value) {
      throw new BindleError(
        'bad_request',
        `feature filters ${formatFilter(earlier)} and ${formatFilter(f)} conflict: values of one feature are mutually exclusive`,
      );
    }
  }
  return [...byKey.values()];
}

/** The first filter that excludes the parcel, if any. */
function excludingFilter(parcel: Parcel, filters: readonly FeatureFilter[]): FeatureFilter | undefined {
  const features = parcel.label.feature;
  if (features === undefined) return undefined;
  return filters.find((f) => {
    if (!Object.hasOwn(features, f.section)) return false;
    const section = features[f.section];
    if (section === undefined || !Object.hasOwn(section, f.name)) return false;
    return section[f.name] !== f.value;
  });
}

/** Declared groups, duplicates merged, in order of first declaration. */
function declaredGroups(invoice: Invoice): Map<string, GroupInfo> {
  const merged = new Map<string, { required: boolean; satisfiedBy: SatisfiedBy | undefined }>();
  for (const g of invoice.group ?? []) {
    const seen = merged.get(g.name);
    if (seen === undefined) merged.set(g.name, { required: g.required === true, satisfiedBy: g.satisfiedBy });
    else {
      seen.required ||= g.required === true;
      seen.satisfiedBy ??= g.satisfiedBy;
    }
  }
  const out = new Map<string, GroupInfo>();
  for (const [name, g] of merged) out.set(name, { required: g.required, satisfiedBy: g.satisfiedBy ?? 'allOf' });
  return out;
}

function describeParcel(p: Parcel): string {
  return `parcel "${p.label.name}" (${p.label.sha256})`;
}

/**
 * Computes the parcels to fetch. Throws `unknown_group` (a requested group that the invoice
 * neither declares nor uses, or a `requires` of an undeclared group), `bad_request` (bad choice or
 * filters), `no_choice` (a required `oneOf` group with no eligible member) or `group_cycle`.
 */
export function selectParcels(invoice: Invoice, request: SelectionRequest = {}): Selection {
  const parcels = invoice.parcel ?? [];
  const declared = declaredGroups(invoice);
  const filters = checkFilters(request.features ?? []);
  const excludedBy = parcels.map((p) => excludingFilter(p, filters));
  const bindle = `${invoice.bindle.name}/${invoice.bindle.version}`;

  const usedInMemberOf = new Set(parcels.flatMap((p) => p.conditions?.memberOf ?? []));
  const infoOf = (group: string): GroupInfo | undefined =>
    declared.get(group) ?? (usedInMemberOf.has(group) ? { required: false, satisfiedBy: 'allOf' } : undefined);
  const unknownGroup = (group: string, why: string): BindleError =>
    new BindleError('unknown_group', `group "${group}" ${why} on invoice ${bindle}`);
  const membersOf = (group: string): number[] =>
    parcels.flatMap((p, i) => (isMemberOf(p, group) ? [i] : []));

  const requested = new Set<string>();
  for (const group of request.groups ?? []) {
    if (infoOf(group) === undefined) throw unknownGroup(group, 'was requested but is neither declared nor used');
    requested.add(group);
  }

  // Each choice, validated up front, resolved to a parcel index.
  const choices = new Map<string, number>();
  for (const [group, choice] of Object.entries(request.choices ?? {})) {
    const info = infoOf(group);
    if (info === undefined) throw unknownGroup(group, `has a choice ("${choice}") but is neither declared nor used`);
    if (info.satisfiedBy !== 'oneOf') {
      throw new BindleError(
        'bad_request',
        `a choice was given for group "${group}", which is satisfied by ${info.satisfiedBy}; choices apply only to oneOf groups`,
      );
    }
    const members = membersOf(group);
    const byName = members.find((i) => parcels[i]?.label.name === choice);
    const chosen = byName ?? members.find((i) => parcels[i]?.label.sha256 === choice.toLowerCase());
    if (chosen === undefined) {
      const names = members.map((i) => parcels[i]?.label.name ?? '').join(', ');
      throw new BindleError(
        'bad_request',
        `choice "${choice}" for group "${group}" is not a member of that group (members: ${names === '' ? 'none' : names})`,
      );
    }
    const filter = excludedBy[chosen];
    if (filter !== undefined) {
      throw new BindleError(
        'bad_request',
        `choice "${choice}" for group "${group}" is excluded by feature filter ${formatFilter(filter)}`,
      );
    }
    choices.set(group, chosen);
  }

  const selected = new Set<number>();
  const selectedShas = new Set<string>();
  const pending: string[] = [];
  const queued = new Set<string>();
  const processed: string[] = [];
  const edges = new Map<string, Set<string>>();

  const enqueue = (group: string): void => {
    if (queued.has(group)) return;
    queued.add(group);
    pending.push(group);
  };
  const select = (from: string | undefined, indexes: readonly number[]): void => {
    for (const i of indexes) {
      const p = parcels[i];
      if (p === undefined) continue;
      selected.add(i);
      selectedShas.add(p.label.sha256);
    }
    for (const i of indexes) {
      const p = parcels[i];
      if (p === undefined) continue;
      for (const needed of p.conditions?.requires ?? []) {
        if (!declared.has(needed)) throw unknownGroup(needed, `is required by ${describeParcel(p)} but not declared in [[group]]`);
        if (from !== undefined) {
          const out = edges.get(from) ?? new Set<string>();
          out.add(needed);
          edges.set(from, out);
        }
        enqueue(needed);
      }
    }
  };
  const eligibleMembers = (group: string): number[] => membersOf(group).filter((i) => excludedBy[i] === undefined);

  const decide = (group: string, info: GroupInfo): number[] => {
    const eligible = eligibleMembers(group);
    switch (info.satisfiedBy) {
      case 'allOf':
        return eligible;
      case 'optional':
        return requested.has(group) ? eligible : [];
      case 'oneOf': {
        const choice = choices.get(group);
        if (choice !== undefined) return [choice];
        const already = eligible.find((i) => selectedShas.has(parcels[i]?.label.sha256 ?? ''));
        const pick = already ?? eligible[0];
        if (pick === undefined) {
          const total = membersOf(group).length;
          throw new BindleError(
            'no_choice',
            total === 0
              ? `group "${group}" must be satisfied by oneOf its members but has none`
              : `group "${group}" must be satisfied by oneOf its members but all ${total} are excluded by the feature filters`,
          );
        }
        return [pick];
      }
    }
  };

  select(undefined, parcels.flatMap((p, i) => (isGlobalParcel(p) && excludedBy[i] === undefined ? [i] : [])));
  for (const [group, info] of declared) if (info.required) enqueue(group);
  for (const group of requested) enqueue(group);

  while (pending.length > 0) {
    const next = pending.findIndex((g) => infoOf(g)?.satisfiedBy !== 'oneOf');
    const [group] = pending.splice(next < 0 ? 0 : next, 1);
    if (group === undefined) break;
    const info = infoOf(group);
    if (info === undefined) throw unknownGroup(group, 'is not declared');
    processed.push(group);
    select(group, decide(group, info));
  }

  assertAcyclic(processed, edges);

  const out: Parcel[] = [];
  const emitted = new Set<string>();
  parcels.forEach((p, i) => {
    if (!selected.has(i) || emitted.has(p.label.sha256)) return;
    emitted.add(p.label.sha256);
    out.push(p);
  });
  return { parcels: out, groups: processed };
}

/**
 * Edges run from a group to each group that one of its selected parcels requires. Any cycle is a
 * `group_cycle`, spelled out from the earliest-processed group on it, e.g. `a -> b -> a`.
 */
function assertAcyclic(order: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>): void {
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (group: string): void => {
    stack.push(group);
    for (const next of edges.get(group) ?? []) {
      const at = stack.indexOf(next);
      if (at >= 0) {
        const cycle = [...stack.slice(at), next].join(' -> ');
        throw new BindleError(
          'group_cycle',
          `group cycle: ${cycle} (a group's parcels require, directly or through other groups, that group itself)`,
        );
      }
      if (!done.has(next)) visit(next);
    }
    stack.pop();
    done.add(group);
  };
  for (const group of order) if (!done.has(group)) visit(group);
}
