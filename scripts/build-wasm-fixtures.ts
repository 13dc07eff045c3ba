/**
 * Assembles the WebAssembly fixtures (`fixtures/wasm/*.wat`, WASI preview1 commands) into
 * `.wasm` binaries with wabt. The binaries are never committed: tests build them into a temp
 * directory, and `npx tsx scripts/build-wasm-fixtures.ts <out-dir>` builds them by hand.
 */
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

/** Where the WAT sources live. */
export const WASM_FIXTURES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'wasm');

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Promise<Wabt> | undefined;

/** Assembles WAT text into a validated wasm binary; `filename` only names the source in errors. */
export async function assembleWat(source: string, filename = 'module.wat'): Promise<Uint8Array> {
  wabt ??= wabtInit();
  const module = (await wabt).parseWat(filename, source);
  try {
    module.resolveNames();
    module.validate();
    return module.toBinary({}).buffer.slice();
  } finally {
    module.destroy();
  }
}

/**
 * Assembles every `fixtures/wasm/*.wat` into `<outDir>/<stem>.wasm`. Returns stem → binary
 * path, e.g. `hello` → `<outDir>/hello.wasm`.
 */
export async function buildWasmFixtures(outDir: string): Promise<Map<string, string>> {
  await mkdir(outDir, { recursive: true });
  const built = new Map<string, string>();
  const sources = (await readdir(WASM_FIXTURES_DIR)).filter((f) => f.endsWith('.wat')).sort();
  for (const file of sources) {
    const stem = basename(file, '.wat');
    const binary = await assembleWat(await readFile(join(WASM_FIXTURES_DIR, file), 'utf8'), file);
    const target = join(outDir, `${stem}.wasm`);
    await writeFile(target, binary);
    built.set(stem, target);
  }
  return built;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = process.argv[2];
  if (outDir === undefined) {
    process.stderr.write('usage: npx tsx scripts/build-wasm-fixtures.ts <out-dir>\n');
    process.exit(2);
  }
  const built = await buildWasmFixtures(resolve(outDir));
  for (const path of built.values()) process.stdout.write(`${path}\n`);
}
