/**
 * The `bindle` command line as a user meets it, run in-process against a real local HTTP server
 * that answers every request with a Bindle error document: every documented flag form of every
 * command (with and without a value, `--flag=value`) ends with exit 0, 1 or 2 and never shows
 * JavaScript error text; global options work after the subcommand; help fits 80 columns and
 * does not repeat the global options or a short flag.
 */
import t from 'tap';
import { join } from 'node:path';
import type { Command, Option } from 'commander';
import { buildProgram } from '../../client/cli/program.js';
import { CapturedStream, inProcessCli } from '../helpers/cli-in-process.js';
import { serveLocally } from '../helpers/local-server.js';

/** Text that only a JavaScript failure produces. */
const JS_ERROR = /TypeError|ReferenceError|is not a function|argument must be|must be of type|Cannot read propert|undefined|\[object /;

const ID = 'example.com/flags/1.0.0';
const SHA = 'a'.repeat(64);

/** Every command reachable from the program, with its path of names. */
function commandsOf(program: Command): Array<{ path: string[]; command: Command }> {
  const out: Array<{ path: string[]; command: Command }> = [];
  const visit = (command: Command, path: string[]): void => {
    for (const sub of command.commands) {
      out.push({ path: [...path, sub.name()], command: sub });
      visit(sub, [...path, sub.name()]);
    }
  };
  visit(program, []);
  return out;
}

/** A plausible value for an argument or option, by its name. */
function sample(name: string, dir: string): string {
  if (/bindle|^id$/i.test(name)) return ID;
  if (/sha256/i.test(name)) return SHA;
  if (/role/i.test(name)) return 'creator';
  if (/key$/i.test(name)) return 'bm90IGEga2V5';
  if (/format|output$/i.test(name)) return 'json';
  if (/^(n|offset|limit|seconds|retries|timeout)$/i.test(name)) return '1';
  return join(dir, `sample-${name.replace(/\W/g, '')}`);
}

function argumentsOf(command: Command, dir: string): string[] {
  return command.registeredArguments.filter((a) => a.required).map((a) => sample(a.name(), dir));
}

function optionForms(option: Option, dir: string): string[][] {
  const flag = option.long ?? option.short ?? '';
  const valueName = /<([^>]+)>|\[([^\]]+)\]/.exec(option.flags);
  const value = option.argChoices?.[0] ?? sample(valueName?.[1] ?? valueName?.[2] ?? option.attributeName(), dir);
  const forms: string[][] = [[flag]];
  if (option.required || option.optional) forms.push([flag, value], [`${flag}=${value}`]);
  if (option.short !== undefined && option.short !== flag) forms.push(option.required || option.optional ? [option.short, value] : [option.short]);
  return forms;
}

t.test('every documented flag form ends cleanly, without JavaScript error text', async (t) => {
  const dir = t.testdir();
  const origin = await serveLocally(t, (_req, res) => {
    res.writeHead(404, { 'content-type': 'application/toml' });
    res.end('error = "nothing here"\ncode = "not_found"\n');
  });
  const bindle = inProcessCli(join(dir, 'home'));
  const global = ['-s', `${origin}/v1/`, '--retries', '0', '--timeout', '10', '-d', join(dir, 'cache')];
  const program = buildProgram({ env: {}, cwd: dir, stdout: new CapturedStream(), stderr: new CapturedStream() }, []);
  let runs = 0;
  for (const { path, command } of commandsOf(program)) {
    if (command.commands.length > 0) continue;
    const args = argumentsOf(command, dir);
    for (const option of command.options.filter((o) => !o.hidden)) {
      for (const form of optionForms(option, dir)) {
        const line = [...global, ...path, ...form, ...args];
        const r = await bindle(line);
        runs += 1;
        const shown = `bindle ${[...path, ...form, ...args].join(' ')}`;
        t.ok(r.code === 0 || r.code === 1 || r.code === 2, `${shown}: exit 0, 1 or 2`, { code: r.code, stderr: r.stderr });
        t.notMatch(r.stderr + r.stdout, JS_ERROR, `${shown}: no JavaScript error text`);
      }
    }
  }
  t.ok(runs > 60, `ran ${runs} command lines`);
});

t.test('the forms named in the issue', async (t) => {
  const dir = t.testdir();
  const origin = await serveLocally(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ query: '', strict: false, offset: 0, limit: 50, total: 0, more: false, yanked: req.url?.includes('yanked=true') ?? false, invoices: [] }));
  });
  const bindle = inProcessCli(join(dir, 'home'));
  const server = `${origin}/v1/`;
  for (const flag of ['--yanked', '--strict']) {
    const r = await bindle(['-s', server, 'search', flag]);
    t.equal(r.code, 0, `search ${flag} without a value works`, { stderr: r.stderr });
    t.match(r.stdout, /No matching bindles/);
  }
  const print = await bindle(['keys', 'print', '--keyring']);
  t.equal(print.code, 1, 'keys print --keyring with no keyring fails as an operation');
  t.match(print.stderr, /^bindle: could not read the keyring .*keyring\.toml: .*does not exist/);
});

t.test('global options are accepted after the subcommand', async (t) => {
  const dir = t.testdir();
  const seen: string[] = [];
  const origin = await serveLocally(t, (req, res) => {
    seen.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ query: 'x', strict: false, offset: 0, limit: 50, total: 0, more: false, yanked: false, invoices: [] }));
  });
  const bindle = inProcessCli(join(dir, 'home'));
  const after = await bindle(['search', '-q', 'x', '-s', `${origin}/v1/`, '--retries=0']);
  t.equal(after.code, 0, 'search -q x -s URL', { stderr: after.stderr });
  t.same(seen, ['/v1/_q?q=x'], 'the server given after the subcommand was asked');

  // The value given on the command's own line wins over one given before it.
  const both = await bindle(['-s', 'http://127.0.0.1:1/v1/', 'search', '-s', `${origin}/v1/`]);
  t.equal(both.code, 0, 'the later -s wins', { stderr: both.stderr });

  // A command's own letter keeps its meaning there: sign-invoice -r is the role.
  const sign = await bindle(['sign-invoice', join(dir, 'missing.toml'), '-r', 'approver', '--keyring', join(dir, 'k.toml')]);
  t.equal(sign.code, 1);
  t.match(sign.stderr, /could not read invoice/, 'not a usage error');
});

t.test('help fits 80 columns, names each short flag once and leaves the global options to bindle --help', async (t) => {
  const dir = t.testdir();
  const bindle = inProcessCli(join(dir, 'home'));
  const program = buildProgram({ env: {}, cwd: dir, stdout: new CapturedStream(), stderr: new CapturedStream() }, []);
  const main = await bindle(['--help']);
  t.equal(main.code, 0);
  t.match(main.stdout, /-s, --server <url>/);
  for (const { path } of [{ path: [] as string[] }, ...commandsOf(program)]) {
    const r = await bindle([...path, '--help']);
    const name = `bindle ${[...path, '--help'].join(' ')}`;
    t.equal(r.code, 0, `${name} exits 0`);
    const long = r.stdout.split('\n').filter((l) => l.length > 80);
    t.same(long, [], `${name}: no line over 80 columns`);
    const shorts = [...r.stdout.matchAll(/^\s+(-\w),/gm)].map((m) => m[1]);
    t.same(shorts, [...new Set(shorts)], `${name}: no short flag twice`);
    if (path.length > 0) {
      t.notMatch(r.stdout, /--http-password|Global Options/, `${name}: no global options`);
      t.match(r.stdout, /bindle --help/, `${name}: points to bindle --help`);
    }
  }
  const wide = await bindle(['--help'], { ttyColumns: 120 });
  t.ok(wide.stdout.split('\n').some((l) => l.length > 80), 'on a wide terminal, help uses the width');
  const clean = await bindle(['clean', '--help']);
  t.ok(clean.stdout.split('\n').length < 15, 'clean --help is short');
});

t.test('help for an unknown command is a usage error, as the command without --help is', async (t) => {
  const bindle = inProcessCli(join(t.testdir(), 'home'));
  const plain = await bindle(['frobnicate']);
  t.equal(plain.code, 2);
  t.equal(plain.stderr, "bindle: unknown command 'frobnicate' (see 'bindle --help')\n");
  for (const args of [['frobnicate', '--help'], ['frobnicate', '-h'], ['-s', 'http://127.0.0.1:9/v1/', 'frobnicate', '--help'], ['keys', 'frobnicate', '--help']]) {
    const r = await bindle(args);
    t.equal(r.code, 2, `bindle ${args.join(' ')}: exit 2`);
    t.match(r.stderr, /^bindle: unknown command 'frobnicate'/, `bindle ${args.join(' ')}: says which command is unknown`);
    t.equal(r.stdout, '', `bindle ${args.join(' ')}: prints no help`);
  }
  for (const args of [['--help'], ['help', 'get'], ['get', '--help'], ['--help', 'frobnicate'], ['keys', 'create', '--help']]) {
    const r = await bindle(args);
    t.equal(r.code, 0, `bindle ${args.join(' ')}: help, exit 0`, { stderr: r.stderr });
    t.match(r.stdout, /^Usage: bindle/, `bindle ${args.join(' ')}: prints help`);
  }
});
