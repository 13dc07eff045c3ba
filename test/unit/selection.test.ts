import { readFileSync } from 'node:fs';
import t from 'tap';
import type { Group, Invoice, Parcel } from '../../schema/index.js';
import { isValid } from '../../schema/index.js';
import { parseInvoice } from '../../core/codec/invoice-codec.js';
import {
  groupMembers,
  isGlobalParcel,
  parseFeatureFilter,
  selectParcels,
  type Selection,
} from '../../core/selection/index.js';
import { vec } from '../helpers/paths.js';

/** A parcel whose sha256 is derived from its name, so distinct names have distinct digests. */
function parcel(name: string, memberOf?: string[], requires?: string[], feature?: Record<string, Record<string, string>>): Parcel {
  const sha256 = Buffer.from(name).toString('hex').padEnd(64, '0');
  const p: Parcel = { label: { sha256, mediaType: 'application/octet-stream', name, size: 1 } };
  if (feature !== undefined) p.label.feature = feature;
  if (memberOf !== undefined || requires !== undefined) {
    p.conditions = {};
    if (memberOf !== undefined) p.conditions.memberOf = memberOf;
    if (requires !== undefined) p.conditions.requires = requires;
  }
  return p;
}

function invoice(parcels: Parcel[], groups: Group[] = []): Invoice {
  const inv: Invoice = { bindleVersion: '1.0.0', bindle: { name: 'test/selection', version: '0.1.0' }, parcel: parcels };
  if (groups.length > 0) inv.group = groups;
  if (!isValid('Invoice', inv)) throw new Error('test invoice does not match the schema');
  return inv;
}

const names = (s: Selection): string[] => s.parcels.map((p) => p.label.name);

/** The invoice spec's group example with a distinct digest per parcel (the fixture fakes them). */
const specExample = invoice(
  [
    parcel('daemon', ['server'], ['utility']),
    parcel('first', ['cli', 'utility']),
    parcel('second', ['cli']),
    parcel('third', ['utility']),
  ],
  [
    { name: 'server', satisfiedBy: 'allOf' },
    { name: 'cli', satisfiedBy: 'oneOf', required: true },
    { name: 'utility', satisfiedBy: 'optional' },
  ],
);

void t.test('full-invoice.toml fixture: the spec example as written', (t) => {
  const inv = parseInvoice(readFileSync(vec('data', 'full-invoice.toml'), 'utf8'));
  t.same(groupMembers(inv, 'cli').map((p) => p.label.name), ['first', 'second']);
  t.same(groupMembers(inv, 'utility').map((p) => p.label.name), ['first', 'third']);
  t.notOk(inv.parcel?.some(isGlobalParcel), 'every parcel is in a named group');

  const byDefault = selectParcels(inv);
  t.same(byDefault.groups, ['cli'], 'only cli is required');
  t.same(names(byDefault), ['first'], 'cli is satisfied by its first member');

  const server = selectParcels(inv, { groups: ['server'] });
  t.same(server.groups, ['server', 'utility', 'cli'], 'daemon requires utility; oneOf cli is decided last');
  // In the fixture `daemon` and `first` carry the same (fake) digest: one download covers both.
  t.same(names(server), ['daemon'], 'first is the same content as daemon and appears once');
  t.equal(server.parcels[0]?.label.sha256, 'e1706ab0a39ac88094b6d54a3f5cdba41fe5a901');
  t.end();
});

void t.test('spec prose: first or second satisfies cli', (t) => {
  t.same(names(selectParcels(specExample)), ['first']);
  t.same(names(selectParcels(specExample, { choices: { cli: 'second' } })), ['second']);
  const bySha = specExample.parcel?.[2]?.label.sha256 ?? '';
  t.same(names(selectParcels(specExample, { choices: { cli: bySha } })), ['second'], 'a choice may name the sha256');
  t.end();
});

void t.test('spec prose: server pulls daemon and utility; first satisfies both cli and utility', (t) => {
  const s = selectParcels(specExample, { groups: ['server'] });
  t.same(s.groups, ['server', 'utility', 'cli']);
  t.same(names(s), ['daemon', 'first'], 'utility is optional and first already covers it');
  t.end();
});

void t.test('spec prose: with second chosen for cli, utility is optional unless requested', (t) => {
  const s = selectParcels(specExample, { groups: ['server'], choices: { cli: 'second' } });
  t.same(s.groups, ['server', 'utility', 'cli']);
  t.same(names(s), ['daemon', 'second'], 'an optional group pulled in by requires selects nothing');
  const all = selectParcels(specExample, { groups: ['server', 'utility'], choices: { cli: 'second' } });
  t.same(names(all), ['daemon', 'first', 'second', 'third'], 'requesting utility selects all its members');
  t.end();
});

void t.test('oneOf prefers a member selected through another group', (t) => {
  const inv = invoice(
    [parcel('a1', ['pick']), parcel('a2', ['pick', 'extra'])],
    [{ name: 'pick', satisfiedBy: 'oneOf', required: true }, { name: 'extra' }],
  );
  t.same(names(selectParcels(inv)), ['a1']);
  const s = selectParcels(inv, { groups: ['extra'] });
  t.same(s.groups, ['extra', 'pick']);
  t.same(names(s), ['a2'], 'a2 satisfies pick because extra already selected it');
  t.end();
});

void t.test('requires chain across three groups, transitively', (t) => {
  const inv = invoice(
    [parcel('root', undefined, ['one']), parcel('p1', ['one'], ['two']), parcel('p2', ['two'], ['three']), parcel('p3', ['three']), parcel('loose', ['unrelated'])],
    [{ name: 'one' }, { name: 'two' }, { name: 'three' }, { name: 'unrelated' }],
  );
  const s = selectParcels(inv);
  t.same(s.groups, ['one', 'two', 'three']);
  t.same(names(s), ['root', 'p1', 'p2', 'p3']);
  t.end();
});

void t.test('a cycle is an error that names the cycle', (t) => {
  const inv = invoice(
    [parcel('pa', ['a'], ['b']), parcel('pb', ['b'], ['a'])],
    [{ name: 'a', required: true }, { name: 'b' }],
  );
  t.throws(() => selectParcels(inv), { code: 'group_cycle', message: /a -> b -> a/ });

  const longer = invoice(
    [parcel('pa', ['a'], ['b']), parcel('pb', ['b'], ['c']), parcel('pc', ['c'], ['a'])],
    [{ name: 'a' }, { name: 'b' }, { name: 'c' }],
  );
  t.throws(() => selectParcels(longer, { groups: ['b'] }), { code: 'group_cycle', message: /b -> c -> a -> b/ });
  t.same(names(selectParcels(longer)), [], 'nothing is required, so the cycle is never walked');
  t.end();
});

void t.test('a group whose parcel requires the group itself is a self-cycle', (t) => {
  const inv = invoice([parcel('self', ['loop'], ['loop'])], [{ name: 'loop', required: true }]);
  t.throws(() => selectParcels(inv), { code: 'group_cycle', message: /loop -> loop/ });
  t.end();
});

void t.test('feature filters', (t) => {
  const inv = invoice([
    parcel('cli.wasm', undefined, undefined, { wasm: { type: 'entrypoint' } }),
    parcel('lib.wasm', undefined, undefined, { wasm: { type: 'library' } }),
    parcel('other.wasm', undefined, undefined, { wasm: { wasi: 'true' } }),
    parcel('x86.bin', undefined, undefined, { architecture: { type: 'x86' } }),
    parcel('plain.txt'),
  ]);
  t.same(names(selectParcels(inv)), ['cli.wasm', 'lib.wasm', 'other.wasm', 'x86.bin', 'plain.txt']);
  const s = selectParcels(inv, { features: [parseFeatureFilter('wasm.type=entrypoint')] });
  t.same(names(s), ['cli.wasm', 'other.wasm', 'x86.bin', 'plain.txt'], 'only a different value of wasm.type excludes');
  t.throws(
    () => selectParcels(inv, { features: [{ section: 'wasm', name: 'type', value: 'a' }, { section: 'wasm', name: 'type', value: 'b' }] }),
    { code: 'bad_request', message: /conflict/ },
  );

  const grouped = invoice(
    [parcel('ui.wasm', ['entry'], undefined, { wasm: { ui_kit: 'electron' } }), parcel('cli.wasm', ['entry'])],
    [{ name: 'entry', satisfiedBy: 'oneOf', required: true }],
  );
  t.same(names(selectParcels(grouped)), ['ui.wasm']);
  t.same(names(selectParcels(grouped, { features: [parseFeatureFilter('wasm.ui_kit=none')] })), ['cli.wasm'], 'filtered members are not eligible for oneOf');
  t.throws(
    () => selectParcels(grouped, { features: [parseFeatureFilter('wasm.ui_kit=none')], choices: { entry: 'ui.wasm' } }),
    { code: 'bad_request', message: /excluded by feature filter wasm\.ui_kit="none"/ },
  );
  const noneLeft = invoice([parcel('ui.wasm', ['entry'], undefined, { wasm: { ui_kit: 'electron' } })], [{ name: 'entry', satisfiedBy: 'oneOf', required: true }]);
  t.throws(() => selectParcels(noneLeft, { features: [parseFeatureFilter('wasm.ui_kit=none')] }), { code: 'no_choice' });
  t.end();
});

void t.test('parseFeatureFilter', (t) => {
  t.same(parseFeatureFilter('wasm.type=entrypoint'), { section: 'wasm', name: 'type', value: 'entrypoint' });
  t.same(parseFeatureFilter('wasm.type = "entrypoint"'), { section: 'wasm', name: 'type', value: 'entrypoint' });
  t.same(parseFeatureFilter('gpu.mode=a=b'), { section: 'gpu', name: 'mode', value: 'a=b' });
  t.same(parseFeatureFilter('wasm.ui_kit=""'), { section: 'wasm', name: 'ui_kit', value: '' });
  for (const bad of ['wasm.type', 'type=x', '.type=x', 'wasm.=x', 'wasm.type=', 'a.b.c=x', 'wasm.type="x', 'wasm.type=x"y', 'wa sm.type=x']) {
    t.throws(() => parseFeatureFilter(bad), { code: 'bad_request', message: /invalid feature filter/ }, bad);
  }
  t.end();
});

void t.test('oneOf with an explicit choice and with a bad choice', (t) => {
  t.same(names(selectParcels(specExample, { choices: { cli: 'second' } })), ['second']);
  t.throws(() => selectParcels(specExample, { choices: { cli: 'third' } }), {
    code: 'bad_request',
    message: /"third" for group "cli" is not a member of that group \(members: first, second\)/,
  });
  t.throws(() => selectParcels(specExample, { choices: { server: 'daemon' } }), { code: 'bad_request', message: /only to oneOf groups/ });
  t.throws(() => selectParcels(specExample, { choices: { nope: 'first' } }), { code: 'unknown_group' });
  const empty = invoice([parcel('g')], [{ name: 'empty', satisfiedBy: 'oneOf', required: true }]);
  t.throws(() => selectParcels(empty), { code: 'no_choice', message: /has none/ });
  t.end();
});

void t.test('optional group: nothing unless requested, then all members', (t) => {
  const inv = invoice(
    [parcel('core'), parcel('rec1', ['recommended']), parcel('rec2', ['recommended'])],
    [{ name: 'recommended', satisfiedBy: 'optional', required: true }],
  );
  const quiet = selectParcels(inv);
  t.same(quiet.groups, ['recommended'], 'processed because required');
  t.same(names(quiet), ['core']);
  t.same(names(selectParcels(inv, { groups: ['recommended'] })), ['core', 'rec1', 'rec2']);
  t.end();
});

void t.test('duplicates are tolerated', (t) => {
  const dup = parcel('shared', ['a', 'b']);
  const inv = invoice(
    [parcel('g'), dup, parcel('only-b', ['b']), structuredClone(dup), parcel('g')],
    [{ name: 'a' }, { name: 'b', satisfiedBy: 'allOf' }, { name: 'a', required: true }, { name: 'b' }],
  );
  const byDefault = selectParcels(inv);
  t.same(byDefault.groups, ['a'], 'a is required by its second declaration');
  t.same(names(byDefault), ['g', 'shared'], 'each digest once, in invoice order');
  const both = selectParcels(inv, { groups: ['b', 'b'] });
  t.same(both.groups, ['a', 'b'], 'each group processed once');
  t.same(names(both), ['g', 'shared', 'only-b']);
  t.equal(both.parcels[1], inv.parcel?.[1], 'the first occurrence is the one kept');
  t.end();
});

void t.test('groups that are unknown or undeclared', (t) => {
  t.throws(() => selectParcels(specExample, { groups: ['nope'] }), { code: 'unknown_group', message: /"nope"/ });
  const inv = invoice([parcel('g'), parcel('stray', ['undeclared'])]);
  t.same(names(selectParcels(inv)), ['g'], 'a memberOf of an undeclared group is tolerated');
  t.same(names(selectParcels(inv, { groups: ['undeclared'] })), ['g', 'stray'], 'and that group can be requested (allOf)');
  const badRequires = invoice([parcel('g', undefined, ['ghost'])]);
  t.throws(() => selectParcels(badRequires), { code: 'unknown_group', message: /"ghost" is required by parcel "g"/ });
  t.end();
});

void t.test('isGlobalParcel and the global group', (t) => {
  t.ok(isGlobalParcel(parcel('none')));
  t.ok(isGlobalParcel(parcel('empty', [])));
  t.ok(isGlobalParcel(parcel('req-only', undefined, ['x'])));
  t.notOk(isGlobalParcel(parcel('member', ['x'])));
  const inv = invoice([parcel('a', []), parcel('b', ['x']), parcel('c')], [{ name: 'x' }]);
  t.same(names(selectParcels(inv)), ['a', 'c'], 'global parcels are always selected');
  t.same(selectParcels(invoice([])), { parcels: [], groups: [] });
  t.end();
});
