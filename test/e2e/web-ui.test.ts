/**
 * Issue 15 item 4 end to end: the web UI of the real `bindle-server` process (the built bundle)
 * in headless Chromium (Debian's `chromium`, driven by playwright-core). With JavaScript turned
 * off, as the UI needs none: load the list, search, see a yanked bindle marked, open an invoice
 * and follow a parcel's link (the downloaded bytes are the parcel's). axe-core finds no
 * accessibility violation on any of these pages. Screenshots go to test-screenshots/ (ignored
 * by git). Without Chromium the file is skipped with the reason, except under CI=true.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import axe from 'axe-core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import type { Invoice } from '../../schema/index.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { OWN_SET, REPO_ROOT } from '../helpers/paths.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const CHROMIUM = process.env.BINDLE_TEST_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];
const SCREENSHOTS = join(REPO_ROOT, 'test-screenshots');
/** Generous bounds for a loaded 2-core machine: they only stop a hung browser. */
const TIMEOUT_MS = 60_000;

const WASM = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0xff, 0x10, 0x80]);
const NOTES = Buffer.from('release notes\n');

/** What axe reports for one violated rule (the fields this test prints). */
interface AxeViolation {
  id: string;
  impact?: string | null;
  help: string;
  nodes: Array<{ target: unknown; html: string }>;
}

async function post(server: ServerProcess, path: string, body: string | Buffer, contentType: string): Promise<void> {
  const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
}

async function publish(server: ServerProcess, inv: Invoice, parcels: ReadonlyMap<string, Buffer>): Promise<void> {
  await post(server, '_i', renderInvoice(inv), 'application/toml');
  for (const p of inv.parcel ?? []) {
    const data = parcels.get(p.label.sha256);
    if (data !== undefined) await post(server, `_i/${inv.bindle.name}/${inv.bindle.version}@${p.label.sha256}`, data, 'application/octet-stream');
  }
}

async function seed(server: ServerProcess): Promise<void> {
  const base = signedInvoice('example.com/web-app', '1.2.0', [
    { name: 'app.wasm', data: WASM, mediaType: 'application/wasm' },
    { name: 'NOTES.txt', data: NOTES, mediaType: 'text/plain' },
  ], { description: 'A web application', authors: ['Ann <ann@example.com>'] });
  const app = signedInvoice('example.com/web-app', '1.2.0', [], {
    description: 'A web application',
    authors: ['Ann <ann@example.com>'],
    extra: {
      annotations: { team: 'platform' },
      group: [{ name: 'runtime', required: true }, { name: 'docs', satisfiedBy: 'optional' }],
      parcel: (base.parcel ?? []).map((p, i) => ({ ...p, conditions: { memberOf: [i === 0 ? 'runtime' : 'docs'] } })),
    },
  });
  const data = new Map([[sha256(WASM), WASM], [sha256(NOTES), NOTES]]);
  await publish(server, app, data);
  await publish(server, signedInvoice('example.com/web-app', '1.1.0', [], { description: 'The previous release' }), data);
  await publish(server, signedInvoice('example.com/old-tool', '0.9.0', [], { description: 'Withdrawn: do not use' }), data);
  const yank = await fetch(`${server.url}_i/example.com/old-tool/0.9.0`, { method: 'DELETE' });
  if (yank.status !== 200) throw new Error(`yank: ${yank.status} ${await yank.text()}`);
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Runs axe-core on what `page` shows; resolves with its violations. */
async function axeViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axe.source);
  const result = await page.evaluate<{ violations: AxeViolation[] }>('axe.run(document, { resultTypes: ["violations"] })');
  return result.violations;
}

function describeViolations(violations: readonly AxeViolation[]): string {
  return violations.map((v) => `${v.id} (${v.impact ?? '?'}): ${v.help}: ${v.nodes.map((n) => n.html).join(' | ')}`).join('\n');
}

function chromiumPresent(t: Test): boolean {
  if (existsSync(CHROMIUM)) return true;
  const reason = `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set BINDLE_TEST_CHROMIUM)`;
  if (process.env.CI === 'true') t.fail(`CI=true needs Chromium: ${reason}`);
  else t.plan(0, reason);
  return false;
}

if (chromiumPresent(t)) {
  t.test('browse, search, open an invoice, download a parcel, see a yanked bindle; no accessibility violations', async (t) => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const server = await startServerProcess(t, { args: ['--keyring', OWN_SET.path('scaffolds', 'keys', 'keyring.toml')] });
    await seed(server);

    const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: TIMEOUT_MS });
    t.teardown(() => browser.close());
    // Reading needs no JavaScript: the whole walk runs with it off.
    const context = await browser.newContext({ javaScriptEnabled: false, acceptDownloads: true });
    context.setDefaultTimeout(TIMEOUT_MS);
    const page = await context.newPage();
    const visited: string[] = [];

    await page.goto(`${server.origin}/`);
    t.equal(new URL(page.url()).pathname, '/ui/', '/ leads to the UI');
    visited.push(page.url());
    t.equal(await page.getByRole('heading', { level: 1 }).textContent(), 'Bindles');
    const rows = page.locator('tbody tr');
    t.equal(await rows.count(), 2, 'the two available releases; the yanked one is left out');
    t.equal(await page.getByText('Yanked', { exact: true }).count(), 0);
    await screenshot(page, '1-list');

    await page.getByLabel('Name or text').fill('previous');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/q=previous/);
    visited.push(page.url());
    t.same(await page.locator('tbody tr td:first-child').allTextContents(), ['example.com/web-app'], 'search by description');
    t.equal(await page.locator('tbody tr td:nth-child(2)').first().textContent(), '1.1.0');

    await page.getByLabel('Name or text').fill('');
    await page.getByLabel('Version range').fill('>=0.1.0');
    await page.getByLabel('Include yanked').check();
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/yanked=true/);
    visited.push(page.url());
    t.equal(await rows.count(), 3, 'with yanked ones');
    const yankedRow = rows.filter({ hasText: 'old-tool' });
    t.ok(await yankedRow.getByText('Yanked', { exact: true }).isVisible(), 'the yanked bindle is visibly marked');
    await screenshot(page, '2-search-yanked');

    await yankedRow.getByRole('link').click();
    await page.waitForURL(/\/ui\/bindles\/example\.com\/old-tool\/0\.9\.0$/);
    visited.push(page.url());
    t.ok(await page.getByRole('heading', { level: 1 }).getByText('Yanked', { exact: true }).isVisible(), 'marked on its page too');
    await screenshot(page, '3-yanked-invoice');

    await page.goto(`${server.origin}/ui/?q=web-app`);
    await rows.filter({ hasText: '1.2.0' }).getByRole('link', { name: 'example.com/web-app' }).click();
    await page.waitForURL(/\/ui\/bindles\/example\.com\/web-app\/1\.2\.0$/);
    visited.push(page.url());
    t.match(await page.getByRole('heading', { level: 1 }).textContent(), /^example\.com\/web-app\s+1\.2\.0$/);
    const parcels = page.locator('table', { has: page.locator('caption', { hasText: 'parcels' }) });
    t.match(await parcels.locator('tbody tr').first().textContent(), /app\.wasm[\s\S]*11 B[\s\S]*application\/wasm[\s\S]*runtime/);
    t.ok(await page.getByText('The invoice verifies now under GreedyVerification').isVisible());
    t.equal(await page.locator('.status.trusted').count(), 2, 'the creator and host signatures verify against the keyring');
    await screenshot(page, '4-invoice');

    const downloaded = page.waitForEvent('download');
    await page.getByRole('link', { name: 'app.wasm' }).click();
    const download = await downloaded;
    t.equal(download.suggestedFilename(), 'app.wasm');
    const file = await download.path();
    t.ok(readFileSync(file).equals(WASM), 'the downloaded bytes are the parcel');
    t.equal(new URL(download.url()).pathname, `/v1/_i/example.com/web-app/1.2.0@${sha256(WASM)}`);

    // axe-core needs script: a second context, with JavaScript on, visits the same pages.
    const checker = await browser.newContext();
    checker.setDefaultTimeout(TIMEOUT_MS);
    const axePage = await checker.newPage();
    await axePage.setContent('<html><body><img src="x.png"><input type="text"></body></html>');
    const known = (await axeViolations(axePage)).map((v) => v.id);
    t.ok(known.includes('html-has-lang') && known.includes('image-alt'), `axe runs and reports violations on a bad page (${known.join(', ')})`);
    for (const url of [...visited, `${server.origin}/ui/bindles/example.com/none/1.0.0`]) {
      await axePage.goto(url);
      const violations = await axeViolations(axePage);
      t.same(violations.map((v) => v.id), [], `axe: no violations on ${new URL(url).pathname}${new URL(url).search}`, { diagnostic: violations.length > 0, violations: describeViolations(violations) });
    }
    await checker.close();
    await context.close();
  });
}
