/**
 * Issue 15 item 4, the web UI over `app.inject`: the search page (query, version range, yanked
 * toggle, paging), the invoice page (parcels with download links, groups and conditions, every
 * signature's standing against the server's keyring, the yanked badge), escaping of hostile
 * names, labels and annotations, authorization by name (hidden from lists, 404 for the page),
 * 404/400 pages, and the headers (Content-Security-Policy, the cached stylesheet).
 */
import t from 'tap';
import type { Invoice } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { createSecretKey } from '../../core/signing/keys.js';
import { signInvoice } from '../../core/signing/sign.js';
import { AnonymousGetAuthorizer, StaticTokenAuthenticator, tokenDigest, type Action, type Authorizer, type Principal } from '../../server/auth/index.js';
import { PAGE_SIZE, UI_CONTENT_SECURITY_POLICY } from '../../server/ui/web-ui.js';
import { STYLESHEET_FILE } from '../../server/ui/stylesheet.js';
import { signedInvoice, type TestParcel } from '../helpers/bindles.js';
import { makeTestApp, storeInvoiceDirect, type TestApp } from '../helpers/test-app.js';

const HOSTILE = `<script>alert("x")</script>'&`;
const HOSTILE_ESCAPED = '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;&amp;';

async function create(ta: TestApp, inv: Invoice, headers: Record<string, string> = {}): Promise<void> {
  const res = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml', ...headers }, payload: renderInvoice(inv) });
  if (res.statusCode !== 201 && res.statusCode !== 202) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
}

async function page(ta: TestApp, url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const res = await ta.app.inject({ url, headers });
  return { status: res.statusCode, body: res.body, headers: res.headers };
}

/** The bindle ids a search page links to, in order. */
function listed(body: string): string[] {
  return [...body.matchAll(/<a href="\/ui\/bindles\/([^"]+)">/g)].map((m) => decodeURIComponent(m[1] ?? ''));
}

t.test('the search page lists, searches, filters by version range, toggles yanked and pages', async (t) => {
  const ta = await makeTestApp(t);
  for (const [name, version, description] of [
    ['example.com/alpha', '1.0.0', 'first letter'],
    ['example.com/alpha', '1.2.0', 'first letter'],
    ['example.com/alpha', '2.0.0', 'first letter'],
    ['example.com/beta', '0.1.0', 'about warp cores'],
  ] as const) {
    await create(ta, signedInvoice(name, version, [], { description }));
  }
  t.equal((await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/alpha/1.2.0' })).statusCode, 200);

  const root = await ta.app.inject({ url: '/' });
  t.equal(root.statusCode, 302, '/ redirects to the UI');
  t.equal(root.headers.location, '/ui/');

  let res = await page(ta, '/ui/');
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/);
  t.same(listed(res.body), ['example.com/alpha/2.0.0', 'example.com/alpha/1.0.0', 'example.com/beta/0.1.0'], 'yanked left out by default');
  t.notMatch(res.body, /Yanked</);

  res = await page(ta, '/ui/?yanked=true');
  t.same(listed(res.body), ['example.com/alpha/2.0.0', 'example.com/alpha/1.2.0', 'example.com/alpha/1.0.0', 'example.com/beta/0.1.0']);
  t.match(res.body, /<td>1\.2\.0 <span class="badge yanked">Yanked<\/span><\/td>/, 'the yanked one is marked');
  t.match(res.body, /<input type="checkbox" name="yanked" value="true" checked>/, 'the toggle stays on');

  res = await page(ta, '/ui/?q=warp');
  t.same(listed(res.body), ['example.com/beta/0.1.0'], 'searches descriptions as /_q does');
  t.match(res.body, /<input type="search" name="q" value="warp"/);
  res = await page(ta, '/ui/?q=alpha&v=%5E1.0.0&yanked=true');
  t.same(listed(res.body), ['example.com/alpha/1.2.0', 'example.com/alpha/1.0.0'], 'version range');
  res = await page(ta, '/ui/?q=nothing-like-this');
  t.match(res.body, /No bindle matches\./);

  res = await page(ta, '/ui/?v=%3E%3E%3Enot-a-range');
  t.equal(res.status, 400, 'a bad range is a 400 page that keeps the form');
  t.match(res.body, /role="alert">[^<]*version/);
  t.match(res.body, /name="v" value="&gt;&gt;&gt;not-a-range"/);
  res = await page(ta, '/ui/?page=0');
  t.equal(res.status, 400);
  t.match(res.body, /page/);
  res = await page(ta, '/ui/?utm_source=x');
  t.equal(res.status, 400, 'unknown parameters are refused, as the API does');
  t.match(res.body, /utm_source/);

  for (let i = 0; i < PAGE_SIZE + 2; i += 1) await storeInvoiceDirect(ta, signedInvoice('example.com/many', `1.0.${i}`, []));
  res = await page(ta, '/ui/?q=many');
  t.equal(listed(res.body).length, PAGE_SIZE);
  t.equal(listed(res.body)[0], `example.com/many/1.0.${PAGE_SIZE + 1}`);
  t.match(res.body, /<a href="\/ui\/\?q=many&amp;page=2" rel="next">Next page<\/a>/);
  t.notMatch(res.body, /Previous page/);
  res = await page(ta, '/ui/?q=many&page=2');
  t.same(listed(res.body), ['example.com/many/1.0.1', 'example.com/many/1.0.0'], 'page 2 goes on where page 1 ended');
  t.match(res.body, /<a href="\/ui\/\?q=many" rel="prev">Previous page<\/a>/);
  t.notMatch(res.body, /Next page/);
  res = await page(ta, '/ui/?q=many&page=3');
  t.same(listed(res.body), []);
  t.match(res.body, /No more bindles\./);
});

t.test('the invoice page: parcels, groups and conditions, signatures and their standing, the yanked badge', async (t) => {
  const ta = await makeTestApp(t);
  const parcels: TestParcel[] = [
    { name: 'main.wasm', data: Buffer.alloc(3000, 1), mediaType: 'application/wasm' },
    { name: 'extra.txt', data: Buffer.from('extra'), mediaType: 'text/plain' },
  ];
  const base = signedInvoice('example.com/app', '1.0.0', parcels, { description: 'An app', authors: ['Ann <ann@example.com>'] });
  const inv = signedInvoice('example.com/app', '1.0.0', parcels, {
    description: 'An app',
    authors: ['Ann <ann@example.com>'],
    extra: {
      annotations: { team: 'platform' },
      group: [{ name: 'server', required: true, satisfiedBy: 'allOf' }, { name: 'docs', satisfiedBy: 'oneOf' }],
      parcel: (base.parcel ?? []).map((p, i) => ({ ...p, conditions: i === 0 ? { memberOf: ['server'], requires: ['docs'] } : { memberOf: ['docs'] } })),
    },
  });
  await create(ta, inv);
  const extraSha = inv.parcel?.[1]?.label.sha256 ?? '';
  await ta.app.inject({ method: 'POST', url: `/v1/_i/example.com/app/1.0.0@${extraSha}`, payload: Buffer.from('extra') });

  let res = await page(ta, '/ui/bindles/example.com/app/1.0.0');
  t.equal(res.status, 200);
  t.equal(res.headers['content-security-policy'], UI_CONTENT_SECURITY_POLICY);
  t.notMatch(UI_CONTENT_SECURITY_POLICY, /script-src|unsafe/, 'no script is allowed at all');
  t.equal(res.headers['x-content-type-options'], 'nosniff');
  t.notMatch(res.body, /<script/i, 'no script in the page');
  t.match(res.body, /<h1>example\.com\/app <span class="muted">1\.0\.0<\/span><\/h1>/);
  t.match(res.body, /<dt>Description<\/dt><dd>An app<\/dd>/);
  t.match(res.body, /<code>team<\/code> = platform/);
  t.match(res.body, new RegExp(`<a href="/v1/_i/example\\.com/app/1\\.0\\.0@${extraSha}" download="extra\\.txt">extra\\.txt</a>`), 'a download link per parcel');
  t.match(res.body, /<td class="num">2\.9 KiB \(3,000 B\)<\/td>\s*<td><code>application\/wasm<\/code><\/td>/, 'size and media type');
  t.notMatch(res.body, /\bextra<\/|>extra</, 'parcel content is never shown');
  t.match(res.body, /<td>server<\/td>\s*<td>yes<\/td>\s*<td>allOf<\/td>\s*<td>main\.wasm<\/td>\s*<td><span class="muted">none<\/span><\/td>/, 'a required group and its members');
  t.match(res.body, /<td>docs<\/td>\s*<td>no<\/td>\s*<td>oneOf<\/td>\s*<td>extra\.txt<\/td>\s*<td>main\.wasm<\/td>/, 'who requires a group');
  t.match(res.body, /The invoice verifies now under <code>GreedyVerification<\/code>/);
  t.match(res.body, /<td>creator<\/td>\s*<td>Bindle-TS Test Creator &lt;creator@bindle-ts\.test&gt;<\/td>\s*<td><span class="status trusted">[^<]+<\/span><br><span class="muted">keyring label: Bindle-TS Test Creator/);
  t.match(res.body, /<td>host<\/td>\s*<td>Test Host &lt;host@bindle\.test&gt;<\/td>\s*<td><span class="status trusted">/, 'the host counter-signature');
  t.notMatch(res.body, /Yanked</);

  // The API's own download link serves the parcel's bytes.
  const download = await ta.app.inject({ url: `/v1/_i/example.com/app/1.0.0@${extraSha}` });
  t.equal(download.body, 'extra');

  await ta.app.inject({ method: 'DELETE', url: '/v1/_i/example.com/app/1.0.0' });
  res = await page(ta, '/ui/bindles/example.com/app/1.0.0');
  t.equal(res.status, 200, 'a yanked bindle still has its page');
  t.match(res.body, /<h1>[^\n]*<span class="badge yanked">Yanked<\/span><\/h1>/);
  t.match(res.body, /This bindle has been yanked\./);
  t.match(res.body, new RegExp(`href="/v1/_i/example\\.com/app/1\\.0\\.0@${extraSha}\\?yanked=true"`), 'links that the API serves for a yanked bindle');
  t.match(res.body, /<h2>Yank signatures<\/h2>[\s\S]*<td>host<\/td>[\s\S]*status trusted/);
  const yankedDownload = await ta.app.inject({ url: `/v1/_i/example.com/app/1.0.0@${extraSha}?yanked=true` });
  t.equal(yankedDownload.body, 'extra');
});

t.test('signatures by unknown keys and signatures that do not verify are shown as such', async (t) => {
  const ta = await makeTestApp(t);
  const outsider = createSecretKey('Outsider <out@example.com>', ['approver']);
  const approved = signInvoice(signedInvoice('example.com/odd', '1.0.0', []), 'approver', outsider);
  const forged = structuredClone(approved);
  const other = signedInvoice('example.com/other', '1.0.0', []);
  const first = forged.signature?.[0];
  const otherSig = other.signature?.[0]?.signature;
  if (first === undefined || otherSig === undefined) throw new Error('signatures expected');
  first.signature = otherSig;
  forged.bindle.version = '2.0.0';
  await storeInvoiceDirect(ta, approved);
  await storeInvoiceDirect(ta, forged);

  let res = await page(ta, '/ui/bindles/example.com/odd/1.0.0');
  t.match(res.body, /The invoice does not verify now under <code>GreedyVerification<\/code>:[^<]*not in the keyring/);
  t.match(res.body, /<td>approver<\/td>\s*<td>Outsider &lt;out@example\.com&gt;<\/td>\s*<td><span class="status unknown_key">Signature valid, but its key is not in the server’s keyring<\/span><\/td>/);
  res = await page(ta, '/ui/bindles/example.com/odd/2.0.0');
  t.match(res.body, /<td>creator<\/td>\s*<td>[^<]+<\/td>\s*<td><span class="status invalid">Does not verify<\/span><br><span class="muted">[^<]*does not verify/);
});

t.test('hostile names, labels, annotations, signers and queries are escaped', async (t) => {
  const ta = await makeTestApp(t);
  const data = Buffer.from('x');
  const base = signedInvoice('example.com/hostile', '1.0.0', [{ name: HOSTILE, data }]);
  const hostileParcel = base.parcel?.[0];
  if (hostileParcel === undefined) throw new Error('a parcel expected');
  const inv = signInvoice({
    ...base,
    signature: [],
    bindle: { ...base.bindle, description: HOSTILE, authors: [HOSTILE] },
    annotations: { [HOSTILE]: HOSTILE },
    group: [{ name: HOSTILE }],
    parcel: [{
      label: { ...hostileParcel.label, annotations: { [HOSTILE]: HOSTILE }, feature: { [HOSTILE]: { [HOSTILE]: HOSTILE } }, origin: HOSTILE },
      conditions: { memberOf: [HOSTILE], requires: [HOSTILE] },
    }],
  }, 'creator', createSecretKey(HOSTILE, ['creator']));
  await storeInvoiceDirect(ta, inv);

  const res = await page(ta, '/ui/bindles/example.com/hostile/1.0.0');
  t.equal(res.status, 200);
  t.notMatch(res.body, /<script/i, 'no hostile markup gets through');
  t.notMatch(res.body, /alert\("x"\)/);
  const occurrences = res.body.split(HOSTILE_ESCAPED).length - 1;
  t.ok(occurrences >= 12, `every hostile field appears escaped (${occurrences} times)`);
  t.match(res.body, `download="${HOSTILE_ESCAPED}">${HOSTILE_ESCAPED}</a>`, 'in attributes too');

  const search = await page(ta, `/ui/?q=${encodeURIComponent('"><script>alert(1)</script>')}`);
  t.notMatch(search.body, /<script/i, 'a reflected query is escaped');
  t.match(search.body, 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
  const listing = await page(ta, '/ui/?q=hostile');
  t.notMatch(listing.body, /<script/i);
  t.match(listing.body, `<td>${HOSTILE_ESCAPED}</td>`, 'the description in the list');
});

/**
 * An authorizer that restricts reads by name (none of ours does yet: they decide reads without
 * a name): names under `private.example/` may be read by alice only; writes as AnonymousGetAuthorizer.
 */
class PrivatePrefixAuthorizer implements Authorizer {
  readonly #writes = new AnonymousGetAuthorizer();

  authorize(principal: Principal | undefined, action: Action, name?: string): void {
    if (action !== 'read') return this.#writes.authorize(principal, action, name);
    if (name === undefined || !name.startsWith('private.example/') || principal?.id === 'alice') return;
    if (principal === undefined) throw new BindleError('unauthenticated', `sign in to read ${name}`);
    throw new BindleError('forbidden', `${principal.id} may not read ${name}`);
  }
}

t.test('a bindle the principal may not read is in no list and has no page', async (t) => {
  const tokens = `alice:${tokenDigest('alice-token')}\nbob:${tokenDigest('bob-token')}\n`;
  const ta = await makeTestApp(t, { authenticator: StaticTokenAuthenticator.parse(tokens, 'test'), authorizer: new PrivatePrefixAuthorizer() });
  const alice = { authorization: 'Bearer alice-token' };
  const bob = { authorization: 'Bearer bob-token' };
  await create(ta, signedInvoice('private.example/secret', '1.0.0', [], { description: 'shared term' }), alice);
  await create(ta, signedInvoice('public.example/open', '1.0.0', [], { description: 'shared term' }), alice);

  t.same(listed((await page(ta, '/ui/?q=shared', alice)).body), ['private.example/secret/1.0.0', 'public.example/open/1.0.0']);
  for (const [who, headers] of [['bob', bob], ['anonymous', {}]] as const) {
    t.same(listed((await page(ta, '/ui/?q=shared', headers)).body), ['public.example/open/1.0.0'], `${who} does not see it listed`);
    const hidden = await page(ta, '/ui/bindles/private.example/secret/1.0.0', headers);
    const absent = await page(ta, '/ui/bindles/private.example/absent/1.0.0', headers);
    t.equal(hidden.status, 404, `${who} gets 404 for its page`);
    t.equal(hidden.body.replace('secret', 'absent'), absent.body, 'the same as for a bindle that does not exist');
    t.notMatch(hidden.body, /shared term/);
  }
  t.equal((await page(ta, '/ui/bindles/private.example/secret/1.0.0', alice)).status, 200);
  const bad = await page(ta, '/ui/', { authorization: 'Bearer wrong' });
  t.equal(bad.status, 401, 'bad credentials are refused as by the API');
  t.match(bad.headers['www-authenticate'], /Basic/);
  t.match(bad.body, /<h1>Sign-in needed<\/h1>/);
});

t.test('404 and 400 pages; the stylesheet is cached', async (t) => {
  const ta = await makeTestApp(t);
  let res = await page(ta, '/ui/bindles/example.com/none/1.0.0');
  t.equal(res.status, 404);
  t.match(res.body, /<h1>Not found<\/h1>/);
  t.match(res.body, /bindle example\.com\/none\/1\.0\.0 not found/);
  t.equal(res.headers['content-security-policy'], UI_CONTENT_SECURITY_POLICY, 'error pages carry the policy too');
  res = await page(ta, '/ui/no/such/page');
  t.equal(res.status, 404);
  t.match(res.body, /There is no page at \/ui\/no\/such\/page\./);
  res = await page(ta, '/ui/bindles/example.com/app/v1');
  t.equal(res.status, 400);
  t.match(res.body, /strict SemVer/);
  res = await page(ta, '/ui/bindles/example.com/app/1.0.0?x=1');
  t.equal(res.status, 400);

  const css = await ta.app.inject({ url: `/ui/static/${STYLESHEET_FILE}` });
  t.equal(css.statusCode, 200);
  t.match(css.headers['content-type'], /^text\/css/);
  t.equal(css.headers['cache-control'], 'public, max-age=31536000, immutable');
  const etag = css.headers.etag;
  t.type(etag, 'string');
  const again = await ta.app.inject({ url: `/ui/static/${STYLESHEET_FILE}`, headers: { 'if-none-match': String(etag) } });
  t.equal(again.statusCode, 304);
  t.equal((await ta.app.inject({ url: '/ui/static/style-0000000000000000.css' })).statusCode, 404, 'only the current stylesheet');
  const home = await page(ta, '/ui/');
  t.match(home.body, `<link rel="stylesheet" href="/ui/static/${STYLESHEET_FILE}">`);
  t.match(home.headers['cache-control'], /no-cache/);
});
