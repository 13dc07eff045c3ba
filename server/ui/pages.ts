/**
 * The web UI's pages, rendered on the server as plain HTML (no script: the UI reads without
 * JavaScript and its Content-Security-Policy allows none): the search page, the invoice page and
 * the error page. Every value from an invoice, a name or a request goes through the `html` tag,
 * which escapes it. Parcels appear only as links to the API's download URL, never inline.
 */
import type { Invoice, Label, Parcel, Signature } from '../../schema/index.js';
import type { SignatureStanding } from '../../core/signing/signature-standing.js';
import type { SignatureReport } from '../service/bindle-service.js';
import { html, path, withQuery, type Html } from './html.js';
import { STYLESHEET_FILE } from './stylesheet.js';

/** Where the UI lives: its search page, and everything else below it. */
export const UI_PREFIX = '/ui';
export const UI_HOME = `${UI_PREFIX}/`;
export const UI_STATIC = `${UI_PREFIX}/static`;

/** The invoice page of `name`/`version`. */
export function invoicePageUrl(name: string, version: string): string {
  return path(UI_PREFIX.slice(1), 'bindles', ...name.split('/'), version);
}

/** The API URL of an invoice (`?yanked=true` for a yanked one, which the API refuses otherwise). */
function invoiceApiUrl(name: string, version: string, yanked: boolean): string {
  return withQuery(path('v1', '_i', ...name.split('/'), version), { yanked: yanked ? 'true' : undefined });
}

/** The API URL that downloads a parcel of an invoice. */
export function parcelApiUrl(name: string, version: string, sha256: string, yanked: boolean): string {
  return withQuery(`${path('v1', '_i', ...name.split('/'), version)}@${sha256}`, { yanked: yanked ? 'true' : undefined });
}

/** Facts every page shows in its header. */
export interface SiteInfo {
  readonly version: string;
}

function layout(site: SiteInfo, title: string, main: Html): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Bindle</title>
<link rel="stylesheet" href="${`${UI_STATIC}/${STYLESHEET_FILE}`}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site">
<a class="home" href="${UI_HOME}">Bindle</a>
<span class="meta">bindle-server ${site.version} · <a href="/v1/bindle-keys">host keys</a></span>
</header>
<main id="main">
${main}
</main>
<footer class="site">Parcels download from the Bindle API (<code>/v1/_i/…</code>); nothing is shown inline.</footer>
</body>
</html>
`;
}

const YANKED_BADGE = html`<span class="badge yanked">Yanked</span>`;

function bytes(size: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = size;
  let unit = '';
  for (const u of units) {
    if (value < 1024) break;
    value /= 1024;
    unit = u;
  }
  const exact = `${size.toLocaleString('en')} B`;
  return unit === '' ? exact : `${value.toFixed(1)} ${unit} (${exact})`;
}

function when(unixSeconds: number): string {
  const date = new Date(unixSeconds * 1000);
  return Number.isNaN(date.getTime()) ? String(unixSeconds) : `${date.toISOString().replace('T', ' ').slice(0, 19)} UTC`;
}

// ---------------------------------------------------------------------------------------------
// Search

/** The search form as the request gave it. */
export interface SearchForm {
  readonly q: string;
  readonly v: string;
  readonly yanked: boolean;
}

/** One page of results (already filtered to what the principal may read). */
export interface SearchPage {
  readonly form: SearchForm;
  readonly invoices: readonly Invoice[];
  /** 1-based page number. */
  readonly page: number;
  readonly more: boolean;
  /** Why the search failed (a bad version range…): shown instead of results. */
  readonly error?: string;
}

/** A search page URL for `form` at `page`. */
export function searchUrl(form: SearchForm, page: number): string {
  return withQuery(UI_HOME, {
    q: form.q === '' ? undefined : form.q,
    v: form.v === '' ? undefined : form.v,
    yanked: form.yanked ? 'true' : undefined,
    page: page > 1 ? String(page) : undefined,
  });
}

function searchForm(form: SearchForm): Html {
  return html`<form class="search" method="get" action="${UI_HOME}" role="search" aria-label="Bindles">
<label>Name or text <input type="search" name="q" value="${form.q}" autocomplete="off"></label>
<label>Version range <input type="text" name="v" value="${form.v}" placeholder="e.g. ^1.2.0" autocomplete="off"></label>
<label class="check"><input type="checkbox" name="yanked" value="true"${form.yanked ? html` checked` : ''}> Include yanked</label>
<button type="submit">Search</button>
</form>`;
}

function resultRows(invoices: readonly Invoice[]): Html {
  return html`${invoices.map((inv) => {
    const { name, version, description } = inv.bindle;
    const yanked = inv.yanked === true;
    return html`<tr${yanked ? html` class="yanked"` : ''}>
<td><a href="${invoicePageUrl(name, version)}">${name}</a></td>
<td>${version}${yanked ? html` ${YANKED_BADGE}` : ''}</td>
<td>${description ?? ''}</td>
<td class="num">${(inv.parcel ?? []).length}</td>
</tr>`;
  })}`;
}

export function renderSearchPage(site: SiteInfo, page: SearchPage): Html {
  const { form } = page;
  const filtered = form.q !== '' || form.v !== '';
  const heading = filtered ? 'Search results' : 'Bindles';
  let results: Html;
  if (page.error !== undefined) {
    results = html`<p class="notice error" role="alert">${page.error}</p>`;
  } else if (page.invoices.length === 0) {
    results = html`<p class="notice">${page.page > 1 ? 'No more bindles.' : filtered ? 'No bindle matches.' : 'No bindles yet.'}</p>`;
  } else {
    results = html`<table>
<caption>Page ${page.page}: ${page.invoices.length} bindle${page.invoices.length === 1 ? '' : 's'}${form.yanked ? ', yanked ones included' : ''}</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Version</th><th scope="col">Description</th><th scope="col">Parcels</th></tr></thead>
<tbody>
${resultRows(page.invoices)}
</tbody>
</table>`;
  }
  const previous = page.page > 1 ? html`<a href="${searchUrl(form, page.page - 1)}" rel="prev">Previous page</a>` : '';
  const next = page.error === undefined && page.more ? html`<a href="${searchUrl(form, page.page + 1)}" rel="next">Next page</a>` : '';
  const nav = previous === '' && next === '' ? '' : html`<nav class="pages" aria-label="Pages">${previous}${next}</nav>`;
  return layout(site, heading, html`<h1>${heading}</h1>
${searchForm(form)}
${results}
${nav}`);
}

// ---------------------------------------------------------------------------------------------
// Invoice

/** What the invoice page shows. */
export interface InvoicePage {
  readonly invoice: Invoice;
  readonly yanked: boolean;
  readonly report: SignatureReport;
}

function annotationList(annotations: Readonly<Record<string, string>> | undefined): Html | '' {
  const entries = Object.entries(annotations ?? {});
  if (entries.length === 0) return '';
  return html`<ul>${entries.map(([k, v]) => html`<li><code>${k}</code> = ${v}</li>`)}</ul>`;
}

function facts(inv: Invoice, yanked: boolean): Html {
  const { bindle } = inv;
  const authors = bindle.authors ?? [];
  return html`<dl class="facts">
<dt>Name</dt><dd>${bindle.name}</dd>
<dt>Version</dt><dd>${bindle.version}</dd>
${bindle.description !== undefined ? html`<dt>Description</dt><dd>${bindle.description}</dd>` : ''}
${authors.length > 0 ? html`<dt>Authors</dt><dd>${authors.join(', ')}</dd>` : ''}
<dt>Status</dt><dd>${yanked ? html`${YANKED_BADGE} yanked: new clients should not use it` : 'available'}</dd>
${inv.annotations !== undefined && Object.keys(inv.annotations).length > 0 ? html`<dt>Annotations</dt><dd>${annotationList(inv.annotations)}</dd>` : ''}
<dt>Invoice</dt><dd><a href="${invoiceApiUrl(bindle.name, bindle.version, yanked)}">TOML</a></dd>
</dl>`;
}

function labelDetails(label: Label): Html | '' {
  const features = Object.entries(label.feature ?? {}).flatMap(([group, values]) =>
    Object.entries(values).map(([k, v]) => html`<li>feature <code>${group}.${k}</code> = ${v}</li>`),
  );
  const annotations = Object.entries(label.annotations ?? {}).map(([k, v]) => html`<li><code>${k}</code> = ${v}</li>`);
  const origin = label.origin !== undefined ? [html`<li>origin: ${label.origin}</li>`] : [];
  const items = [...origin, ...features, ...annotations];
  return items.length === 0 ? '' : html`<ul>${items}</ul>`;
}

function parcelRows(inv: Invoice, yanked: boolean): Html {
  const { name, version } = inv.bindle;
  return html`${(inv.parcel ?? []).map((p: Parcel) => {
    const { label } = p;
    const memberOf = p.conditions?.memberOf ?? [];
    const requires = p.conditions?.requires ?? [];
    return html`<tr>
<td><a href="${parcelApiUrl(name, version, label.sha256, yanked)}" download="${label.name}">${label.name}</a>${labelDetails(label)}</td>
<td class="num">${bytes(label.size)}</td>
<td><code>${label.mediaType}</code></td>
<td>${memberOf.length > 0 ? memberOf.join(', ') : html`<span class="muted">global</span>`}</td>
<td>${requires.length > 0 ? requires.join(', ') : html`<span class="muted">none</span>`}</td>
<td><span class="hash">${label.sha256}</span></td>
</tr>`;
  })}`;
}

function parcelsSection(inv: Invoice, yanked: boolean): Html {
  const count = (inv.parcel ?? []).length;
  if (count === 0) return html`<h2>Parcels</h2><p class="notice">This bindle has no parcels.</p>`;
  return html`<h2>Parcels</h2>
<table>
<caption>${count} parcel${count === 1 ? '' : 's'}; each name downloads the parcel</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Media type</th><th scope="col">Member of</th><th scope="col">Requires groups</th><th scope="col">SHA-256</th></tr></thead>
<tbody>
${parcelRows(inv, yanked)}
</tbody>
</table>`;
}

function groupsSection(inv: Invoice): Html | '' {
  const groups = inv.group ?? [];
  if (groups.length === 0) return '';
  const members = (group: string): string[] =>
    (inv.parcel ?? []).filter((p) => (p.conditions?.memberOf ?? []).includes(group)).map((p) => p.label.name);
  const requiredBy = (group: string): string[] =>
    (inv.parcel ?? []).filter((p) => (p.conditions?.requires ?? []).includes(group)).map((p) => p.label.name);
  return html`<h2>Groups</h2>
<table>
<caption>Groups of parcels and their conditions</caption>
<thead><tr><th scope="col">Group</th><th scope="col">Required</th><th scope="col">Satisfied by</th><th scope="col">Members</th><th scope="col">Required by parcels</th></tr></thead>
<tbody>
${groups.map((g) => {
    const m = members(g.name);
    const r = requiredBy(g.name);
    return html`<tr>
<td>${g.name}</td>
<td>${g.required === true ? 'yes' : 'no'}</td>
<td>${g.satisfiedBy ?? 'allOf'}</td>
<td>${m.length > 0 ? m.join(', ') : html`<span class="muted">none</span>`}</td>
<td>${r.length > 0 ? r.join(', ') : html`<span class="muted">none</span>`}</td>
</tr>`;
  })}
</tbody>
</table>`;
}

const STANDING_TEXT: Readonly<Record<SignatureStanding['status'], string>> = {
  trusted: 'Verifies: key in the server’s keyring',
  unknown_key: 'Signature valid, but its key is not in the server’s keyring',
  invalid: 'Does not verify',
};

function standingCell(standing: SignatureStanding): Html {
  const detail = standing.status === 'trusted'
    ? html`<br><span class="muted">keyring label: ${standing.keyLabel}</span>`
    : standing.status === 'invalid' ? html`<br><span class="muted">${standing.problem}</span>` : '';
  return html`<span class="status ${standing.status}">${STANDING_TEXT[standing.status]}</span>${detail}`;
}

function signatureTable(caption: string, standings: readonly SignatureStanding[]): Html {
  return html`<table>
<caption>${caption}</caption>
<thead><tr><th scope="col">Role</th><th scope="col">Signer</th><th scope="col">Against the server’s keyring</th><th scope="col">Signed at</th><th scope="col">Key</th></tr></thead>
<tbody>
${standings.map((st) => signatureRow(st.signature, standingCell(st)))}
</tbody>
</table>`;
}

function signatureRow(s: Signature, standing: Html): Html {
  return html`<tr>
<td>${s.role}</td>
<td>${s.by}</td>
<td>${standing}</td>
<td>${when(s.at)}</td>
<td><span class="hash">${s.key}</span></td>
</tr>`;
}

function signaturesSection(report: SignatureReport): Html {
  const { verdict, standings } = report;
  const summary = verdict.trusted
    ? html`<p class="notice">The invoice verifies now under <code>${report.strategy}</code> against the server’s keyring.</p>`
    : html`<p class="notice error">The invoice does not verify now under <code>${report.strategy}</code>: ${verdict.problem}</p>`;
  const sigCount = standings.signatures.length;
  return html`<h2>Signatures</h2>
${summary}
${sigCount === 0 ? html`<p class="notice error">The invoice has no signatures.</p>` : signatureTable(`${sigCount} signature${sigCount === 1 ? '' : 's'}`, standings.signatures)}
${standings.yankSignatures.length > 0 ? html`<h2>Yank signatures</h2>${signatureTable('Signatures of the yank', standings.yankSignatures)}` : ''}`;
}

export function renderInvoicePage(site: SiteInfo, page: InvoicePage): Html {
  const { invoice: inv, yanked } = page;
  const title = `${inv.bindle.name} ${inv.bindle.version}`;
  return layout(site, title, html`<h1>${inv.bindle.name} <span class="muted">${inv.bindle.version}</span>${yanked ? html` ${YANKED_BADGE}` : ''}</h1>
${yanked ? html`<p class="notice yanked">This bindle has been yanked.</p>` : ''}
${facts(inv, yanked)}
${parcelsSection(inv, yanked)}
${groupsSection(inv)}
${signaturesSection(page.report)}`);
}

// ---------------------------------------------------------------------------------------------
// Errors

export function renderErrorPage(site: SiteInfo, status: number, message: string): Html {
  const heading = status === 404 ? 'Not found' : status === 401 ? 'Sign-in needed' : status >= 500 ? 'Server error' : 'Cannot show this';
  return layout(site, heading, html`<h1>${heading}</h1>
<p class="notice error" role="alert">${message}</p>
<p><a href="${UI_HOME}">Back to all bindles</a></p>`);
}
