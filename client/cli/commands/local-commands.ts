/**
 * The commands that work on local files only: `generate-label`, `package` (a standalone
 * directory into `<sha256 of name/version>.tar.gz`) and `clean` (empties the bindle cache).
 */
import { readdir, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { canonicalLabel } from '../../../core/codec/invoice-codec.js';
import { renderDocument } from '../../../core/codec/document-codec.js';
import { isSha256Hex } from '../../../core/ids/bindle-id.js';
import type { CliContext } from '../cli-context.js';
import { attempt, usageFailure } from '../cli-error.js';
import { action, addOutputOptions, chosenFormat, exportWithProgress, type ContextProvider } from '../command-kit.js';
import { labelForFile } from '../file-labels.js';
import { resolveStandaloneSource } from '../standalone-source.js';

interface GenerateLabelOptions {
  name?: string;
  mediaType?: string;
  output?: string;
  outputFormat?: string;
}

interface PackageOptions {
  path?: string;
  exportDir: string;
}

async function generateLabel(ctx: CliContext, file: string, opts: GenerateLabelOptions): Promise<void> {
  const path = resolve(ctx.io.cwd, file);
  const label = await attempt(`could not label ${path}`, () =>
    labelForFile(path, {
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.mediaType !== undefined ? { mediaType: opts.mediaType } : {}),
    }),
  );
  const format = chosenFormat(opts, 'toml');
  ctx.print(format === 'json' ? JSON.stringify(canonicalLabel(label), null, 2) : renderDocument(canonicalLabel(label), 'toml'));
}

async function packageBindle(ctx: CliContext, source: string, opts: PackageOptions): Promise<void> {
  const located = await resolveStandaloneSource(source, opts.path, ctx.io.cwd, true);
  const exportDir = resolve(ctx.io.cwd, opts.exportDir);
  if (located.kind === 'tarball') throw usageFailure(`cannot package ${located.path}`, 'it is already a standalone bindle tarball');
  ctx.print(`Packaging standalone bindle directory ${located.path}`);
  const { exportTarball } = await import('../../standalone/standalone-bindle.js');
  const tarball = await attempt(`could not package ${located.path}`, () => exportWithProgress(ctx, exportTarball, located.path, exportDir));
  ctx.print(`Wrote standalone bindle tarball to ${tarball}`);
}

/**
 * Removes the cached bindles (`<64 hex>/` directories and leftover temp entries) from the
 * bindle directory, then the directory itself if that left it empty. Anything else in it is
 * kept, so a mistaken `--bindle-dir` cannot wipe unrelated files.
 */
async function clean(ctx: CliContext): Promise<void> {
  const dir = ctx.settings.bindleDir;
  ctx.print(`Cleaning up bindles in ${dir}...`);
  const removed = await attempt(`could not clean ${dir}`, async () => {
    let entries: string[];
    try {
      entries = await readdir(dir);
    } catch (err) {
      if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return 0;
      throw err;
    }
    let count = 0;
    for (const entry of entries) {
      const cacheEntry = isSha256Hex(entry) || (entry.startsWith('.') && (entry.endsWith('.tmp') || isSha256Hex(entry.slice(1, 65))));
      if (!cacheEntry) continue;
      await rm(join(dir, entry), { recursive: true, force: true });
      if (isSha256Hex(entry)) count += 1;
    }
    try {
      await rmdir(dir);
    } catch {
      // not empty: other files were left alone on purpose
    }
    return count;
  });
  ctx.print(`Clean up successful: removed ${removed} cached bindle(s)`);
}

/** Registers the local-only commands on `program`. */
export function registerLocalCommands(program: Command, contextOf: ContextProvider): void {
  addOutputOptions(
    program
      .command('generate-label')
      .description("Print a parcel label (sha256, mediaType, name, size) for a file: the fields of a [parcel.label] table, under an invoice's [[parcel]]")
      .argument('<file>', 'the file to label')
      .option('-n, --name <name>', 'the parcel name (default: the file name)')
      .option('-m, --media-type <type>', 'the media type (default: guessed from the extension, else application/octet-stream)'),
    ['toml', 'json'],
    'toml',
  ).action(action(contextOf, generateLabel));

  program
    .command('package')
    .description('Pack a standalone bindle directory into <export-dir>/<sha256 of name/version>.tar.gz')
    .argument('<bindle>', 'the bindle id (its directory <sha256>/ is looked up under --path), or the standalone directory itself')
    .option('-p, --path <dir>', 'the directory holding the standalone bindle directory <sha256>/ (default: ./)')
    .option('-e, --export-dir <dir>', 'where to write the tarball', './')
    .action(action(contextOf, packageBindle));

  program
    .command('clean')
    .description('Remove the cached bindles from the bindle directory (-d/--bindle-dir)')
    .action(action(contextOf, clean));
}
