/**
 * Generates the project's own test vectors in `fixtures/vectors/` with the project's own code
 * (key files, signing, invoice rendering, standalone writer and exporter). The layout mirrors the
 * reference implementation's fixtures (`scaffolds/…`, `data/…`), so a test can run against
 * either set; the keys, labels, signatures and timestamps are ours. Keys come from fixed seeds
 * and every timestamp is fixed, so a re-run reproduces the committed files byte for byte:
 *
 *   npx tsx scripts/gen-fixtures.ts            # rewrite fixtures/vectors/
 *   npx tsx scripts/gen-fixtures.ts --check    # exit 1 when the committed files differ
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import bcrypt from 'bcryptjs';
import nacl from 'tweetnacl';
import type { Invoice, SecretKeyEntry, SignatureRole } from '../schema/index.js';
import { renderInvoice } from '../core/codec/invoice-codec.js';
import { renderKeyRing, renderSecretKeyFile, KEY_FILE_VERSION } from '../core/codec/key-file-codec.js';
import { encodeBase64, publicKeyEntry, signInvoice } from '../core/signing/index.js';
import { exportTarball, writeStandalone } from '../client/standalone/standalone-bindle.js';

/** Where the vectors go. */
export const VECTORS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'vectors');

/** Every signature's `at`, and the mtime of every file in the standalone tarball. */
const SIGNED_AT = 1764547200;
/** The htpasswd user's password (README.md of the vectors says so). */
export const HTPASSWD_PASSWORD = 'sw0rdf1sh';

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A secret key derived from a fixed seed (sha256 of `seedText`), so it is the same every run. */
function seededKey(seedText: string, label: string, roles: SignatureRole[]): SecretKeyEntry {
  const pair = nacl.sign.keyPair.fromSeed(createHash('sha256').update(seedText).digest());
  return { label, keypair: encodeBase64(pair.secretKey), roles };
}

const CREATOR = seededKey('bindle-ts fixtures: creator', 'Bindle-TS Test Creator <creator@bindle-ts.test>', ['creator']);
const APPROVER = seededKey('bindle-ts fixtures: approver', 'Bindle-TS Test Approver <approver@bindle-ts.test>', ['approver']);
const PROXY = seededKey('bindle-ts fixtures: proxy', 'Bindle-TS Test Proxy <proxy@bindle-ts.test>', ['proxy']);

/** A scaffold: an invoice, the parcel files its directory holds (file stem → bytes), its signers. */
interface ScaffoldSpec {
  name: string;
  bindle: Invoice['bindle'];
  annotations?: Record<string, string>;
  /** Label of each parcel; `data` is written as parcels/<file>.dat unless `file` is undefined. */
  parcels: { file?: string; name: string; data: string; sha256?: string; size?: number }[];
  signers: SecretKeyEntry[];
}

const RED = 'a red one';
const GREEN = 'a green one';
const WARPCORE = { name: 'enterprise.com/warpcore', description: 'Warp core components', authors: ['Bindle-TS Tests <tests@bindle-ts.test>'] };
/** A made-up 40-hex digest for parcels that are only listed (as in the specification's examples). */
const FAKE_SHA = 'e1706ab0a39ac88094b6d54a3f5cdba41fe5a901';

const SCAFFOLDS: ScaffoldSpec[] = [
  {
    name: 'valid_v1',
    bindle: { ...WARPCORE, version: '1.0.0' },
    annotations: { engineering_location: 'main' },
    parcels: [{ file: 'parcel', name: 'isolinear_chip.txt', data: RED }],
    signers: [CREATOR],
  },
  {
    name: 'valid_v2',
    bindle: { ...WARPCORE, version: '2.0.0' },
    annotations: { engineering_location: 'main' },
    parcels: [
      { file: 'other', name: 'isolinear_chip.txt', data: RED },
      { file: 'parcel', name: 'isolinear_chip_v2.txt', data: GREEN },
    ],
    signers: [CREATOR],
  },
  {
    name: 'lotsa_parcels',
    bindle: { name: 'enterprise.com/cargobay', version: '1.0.0', description: 'The cargo bay manifest', authors: WARPCORE.authors },
    annotations: { engineering_location: 'main' },
    parcels: [
      { file: 'parcel', name: 'isolinear_chip.txt', data: RED },
      { file: 'barrel', name: 'barrel.txt', data: 'unstable plasma' },
      { file: 'crate', name: 'crate.txt', data: 'isolinear rods' },
    ],
    signers: [CREATOR],
  },
  {
    name: 'incomplete',
    bindle: { name: 'enterprise.com/bridge', version: '1.0.0', description: 'Command deck', authors: WARPCORE.authors },
    parcels: [{ name: 'make_it_so.txt', data: '', sha256: FAKE_SHA, size: 11 }],
    signers: [CREATOR],
  },
  {
    name: 'invalid',
    bindle: { name: 'enterprise.com/holodeck', version: '1.0.0', description: 'A diversionary room', authors: WARPCORE.authors },
    annotations: { broken: 'yes' },
    parcels: [{ file: 'invalid_sha', name: 'moriarty.txt', data: 'archnemesis for data', sha256: FAKE_SHA, size: 12345 }],
    signers: [CREATOR],
  },
  {
    name: 'multi_signed',
    bindle: { name: 'enterprise.com/shuttle', version: '1.0.0', description: 'Signed by creator, approver and proxy', authors: WARPCORE.authors },
    parcels: [{ file: 'parcel', name: 'isolinear_chip.txt', data: RED }],
    signers: [CREATOR, APPROVER, PROXY],
  },
];

function scaffoldInvoice(spec: ScaffoldSpec): Invoice {
  let invoice: Invoice = {
    bindleVersion: '1.0.0',
    bindle: spec.bindle,
    ...(spec.annotations !== undefined ? { annotations: spec.annotations } : {}),
    parcel: spec.parcels.map((p) => ({
      label: { sha256: p.sha256 ?? sha256(p.data), mediaType: 'text/plain', name: p.name, size: p.size ?? Buffer.byteLength(p.data) },
    })),
  };
  for (const signer of spec.signers) invoice = signInvoice(invoice, signer.roles[0] ?? 'creator', signer, SIGNED_AT);
  return invoice;
}

/** Unsigned invoices that must parse: the specification's examples, in three TOML spellings. */
const SIMPLE_INVOICE = `bindleVersion = "1.0.0"

[bindle]
name = "mybindle"
version = "0.1.0"
authors = ["Bindle-TS Tests <tests@bindle-ts.test>"]
description = "An unsigned invoice with dotted label keys"

[annotations]
myname = "myvalue"

[[parcel]]
label.sha256 = "e1706ab0a39ac88094b6d54a3f5cdba41fe5a901"
label.mediaType = "text/html"
label.name = "myparcel.html"
label.size = 248098

[[parcel]]
label.sha256 = "098fa798779ac88094b6d54a3f5cdba41fe5a901"
label.name = "style.css"
label.mediaType = "text/css"
label.size = 248098

[[parcel]]
label.sha256 = "5b992e90b71d5fadab3cd3777230ef370df75f5b"
label.mediaType = "application/x-javascript"
label.name = "foo.js"
label.size = 248098
label.origin = "footastic 1.2.3"
`;

const FULL_INVOICE = `# The specification's groups example; the digests are made up.
bindleVersion = "1.0.0"

[bindle]
name = "mybindle"
version = "0.1.0"

[[group]]
name = "server"
satisfiedBy = "allOf"

[[group]]
name = "cli"
satisfiedBy = "oneOf"
required = true

[[group]]
name = "utility"
satisfiedBy = "optional"

[[parcel]]
label.sha256 = "e1706ab0a39ac88094b6d54a3f5cdba41fe5a901"
label.mediaType = "application/bin"
label.name = "daemon"
label.size = 248098
conditions.memberOf = ["server"]
conditions.requires = ["utility"]

[[parcel]]
label.sha256 = "e1706ab0a39ac88094b6d54a3f5cdba41fe5a901"
label.mediaType = "application/bin"
label.name = "first"
label.size = 248098
conditions.memberOf = ["cli", "utility"]

[[parcel]]
label.sha256 = "a1706ab0a39ac88094b6d54a3f5cdba41fe5a901"
label.mediaType = "application/bin"
label.name = "second"
label.size = 248098
conditions.memberOf = ["cli"]

[[parcel]]
label.sha256 = "5b992e90b71d5fadab3cd3777230ef370df75f5b"
label.mediaType = "application/x-javascript"
label.name = "third"
label.size = 248098
conditions.memberOf = ["utility"]
`;

const ALT_FORMAT_INVOICE = `bindleVersion = "1.0.0"

[bindle]
name = "mybindle"
version = "0.1.0"
authors = ["Bindle-TS Tests <tests@bindle-ts.test>"]
description = "Label tables, dotted keys and a conditions table mixed"

[annotations]
myname = "myvalue"

[[parcel]]

[parcel.label]
sha256 = "e1706ab0a39ac88094b6d54a3f5cdba41fe5a901"
mediaType = "text/html"
name = "myparcel.html"
size = 123456

[parcel.conditions]
memberOf = ["server"]

[[parcel]]
label.sha256 = "098fa798779ac88094b6d54a3f5cdba41fe5a901"
label.name = "style.css"
label.mediaType = "text/css"
label.size = 248098

[[parcel]]
label = { sha256 = "5b992e90b71d5fadab3cd3777230ef370df75f5b", mediaType = "application/x-javascript", name = "foo.js", size = 248098 }
`;

const README = `# Our own test vectors

Generated by \`npx tsx scripts/gen-fixtures.ts\` with this project's own signing and standalone
code; do not edit by hand (\`--check\` tells whether the committed files are current). The layout
mirrors the reference implementation's fixtures, so tests run against both; names and parcel
contents follow the reference scenarios, the keys and signatures are ours.

- \`scaffolds/keys/\`: the creator key (${CREATOR.label}): \`secret_keys.toml\` and \`keyring.toml\`.
- \`scaffolds/<name>/invoice.toml\` + \`parcels/*.dat\`: \`valid_v1\`, \`valid_v2\` (two parcels),
  \`lotsa_parcels\` (three), \`incomplete\` (lists a parcel it does not hold), \`invalid\` (its parcel
  does not match its label), \`multi_signed\` (creator, approver and proxy signatures, for the
  verification strategies; its \`keys/\` hold all three keys), all signed at ${SIGNED_AT}.
- \`data/keyring.toml\`, \`data/secret_keys.toml\`: a second key (${APPROVER.label}).
- \`data/simple-invoice.toml\`, \`data/full-invoice.toml\` (groups), \`data/alt-format-invoice.toml\`
  (label tables and an inline table): unsigned invoices that must parse.
- \`data/standalone/<sha256(name/version)>/\` and its \`.tar.gz\`: a standalone bindle (valid_v1).
- \`data/htpasswd\`: bcrypt (\`$2y$\`), user \`admin\`, password \`${HTPASSWD_PASSWORD}\`.
`;

/** Writes every vector under `root`. */
async function generate(root: string): Promise<void> {
  const write = async (path: string, text: string | Buffer): Promise<void> => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  };
  const ring = (...keys: SecretKeyEntry[]): string => renderKeyRing({ version: KEY_FILE_VERSION, key: keys.map(publicKeyEntry) });
  const secrets = (...keys: SecretKeyEntry[]): string => renderSecretKeyFile({ version: KEY_FILE_VERSION, key: keys });

  await write('README.md', README);
  await write('scaffolds/keys/keyring.toml', ring(CREATOR));
  await write('scaffolds/keys/secret_keys.toml', secrets(CREATOR));
  await write('data/keyring.toml', ring(APPROVER));
  await write('data/secret_keys.toml', secrets(APPROVER));
  await write('scaffolds/multi_signed/keys/keyring.toml', ring(CREATOR, APPROVER, PROXY));
  await write('scaffolds/multi_signed/keys/secret_keys.toml', secrets(CREATOR, APPROVER, PROXY));
  for (const spec of SCAFFOLDS) {
    await write(`scaffolds/${spec.name}/invoice.toml`, renderInvoice(scaffoldInvoice(spec)));
    for (const p of spec.parcels) if (p.file !== undefined) await write(`scaffolds/${spec.name}/parcels/${p.file}.dat`, p.data);
  }
  await write('data/simple-invoice.toml', SIMPLE_INVOICE);
  await write('data/full-invoice.toml', FULL_INVOICE);
  await write('data/alt-format-invoice.toml', ALT_FORMAT_INVOICE);
  // bcryptjs writes $2b$; htpasswd -B writes $2y$, the same algorithm under Apache's prefix.
  const hash = bcrypt.hashSync(HTPASSWD_PASSWORD, bcrypt.genSaltSync(5)).replace(/^\$2b\$/, '$2y$');
  await write('data/htpasswd', `admin:${hash}\n`);

  const v1 = SCAFFOLDS[0];
  if (v1 === undefined) throw new Error('no valid_v1 scaffold');
  const standalone = join(root, 'data', 'standalone');
  const dir = await writeStandalone(standalone, scaffoldInvoice(v1), new Map(v1.parcels.map((p) => [sha256(p.data), Buffer.from(p.data)])));
  for (const path of [dir, join(dir, 'invoice.toml'), join(dir, 'parcels'), ...(await readdir(join(dir, 'parcels'))).map((f) => join(dir, 'parcels', f))]) {
    await utimes(path, SIGNED_AT, SIGNED_AT);
  }
  await exportTarball(dir, standalone);
}

/** Relative path → bytes of every file under `root`. */
async function snapshot(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(root, path), await readFile(path));
  }
  return files;
}

/** Paths that differ between two snapshots; the htpasswd salt and the tarball are compared by meaning elsewhere. */
function differences(a: Map<string, Buffer>, b: Map<string, Buffer>): string[] {
  const unstable = (path: string): boolean => path === 'data/htpasswd' || path.endsWith('.tar.gz');
  const paths = new Set([...a.keys(), ...b.keys()]);
  return [...paths].filter((p) => !unstable(p) && !(a.get(p)?.equals(b.get(p) ?? Buffer.alloc(0)) === true)).sort();
}

/** Committed vector files that differ from a fresh generation (empty when current). */
export async function staleVectors(): Promise<string[]> {
  const temp = await mkdtemp(join(tmpdir(), 'bindle-vectors-'));
  try {
    await generate(temp);
    return differences(await snapshot(temp), await snapshot(VECTORS_DIR));
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.argv.includes('--check')) {
    const stale = await staleVectors();
    if (stale.length > 0) {
      process.stderr.write(`fixtures/vectors is stale (run npx tsx scripts/gen-fixtures.ts): ${stale.join(', ')}\n`);
      process.exitCode = 1;
    }
    return;
  }
  await rm(VECTORS_DIR, { recursive: true, force: true });
  await generate(VECTORS_DIR);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
