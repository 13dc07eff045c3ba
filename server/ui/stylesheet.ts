/**
 * The web UI's one stylesheet, kept in the code (so the bundled server needs no asset files) and
 * served under a name that contains its digest: a changed stylesheet has a new URL, so browsers
 * may cache it for a year without asking again.
 */
import { createHash } from 'node:crypto';

const CSS = `
:root { color-scheme: light; --ink: #1b1f24; --muted: #4f5661; --line: #d4d8dd; --accent: #0b5cad; --bad: #a4161a; --good: #1a6b34; --warn: #7a4a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #fff; }
a { color: var(--accent); }
a:focus-visible, button:focus-visible, input:focus-visible { outline: 3px solid #f0b429; outline-offset: 2px; }
.skip { position: absolute; left: -10000px; }
.skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 1; }
header.site { border-bottom: 1px solid var(--line); padding: .75rem 1.5rem; display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
header.site .home { font-weight: 700; font-size: 1.15rem; text-decoration: none; color: var(--ink); }
header.site .meta { color: var(--muted); font-size: .9rem; }
main { padding: 1rem 1.5rem 2rem; max-width: 80rem; }
footer.site { border-top: 1px solid var(--line); padding: .75rem 1.5rem; color: var(--muted); font-size: .9rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; overflow-wrap: anywhere; }
h2 { font-size: 1.25rem; margin: 1.75rem 0 .5rem; }
form.search { display: flex; flex-wrap: wrap; gap: .75rem 1.25rem; align-items: flex-end; margin-bottom: 1rem; }
form.search label { display: flex; flex-direction: column; font-weight: 600; font-size: .9rem; }
form.search label.check { flex-direction: row; align-items: center; gap: .4rem; }
input[type=search], input[type=text] { font: inherit; padding: .35rem .5rem; border: 1px solid #767c85; border-radius: 4px; min-width: 14rem; }
button { font: inherit; padding: .4rem 1rem; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
caption { text-align: left; color: var(--muted); padding-bottom: .25rem; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem; border-bottom: 1px solid var(--line); overflow-wrap: break-word; }
th { background: #f3f5f7; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
code, .hash { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; margin: 0 0 1rem; }
dl.facts dt { font-weight: 600; color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; font-size: .8rem; font-weight: 700; padding: .05rem .5rem; border-radius: 999px; border: 1px solid currentColor; vertical-align: middle; text-transform: uppercase; letter-spacing: .03em; }
.badge.yanked { color: var(--bad); background: #fdecec; }
.status.trusted { color: var(--good); font-weight: 600; }
.status.unknown_key { color: var(--warn); font-weight: 600; }
.status.invalid { color: var(--bad); font-weight: 600; }
.notice { border: 1px solid var(--line); border-left: 4px solid var(--accent); padding: .5rem .75rem; margin: 0 0 1rem; }
.notice.error { border-left-color: var(--bad); }
.notice.yanked { border-left-color: var(--bad); background: #fdecec; }
nav.pages { display: flex; gap: 1rem; align-items: center; }
.muted { color: var(--muted); }
`;

/** The stylesheet's bytes. */
export const STYLESHEET = Buffer.from(CSS.trimStart(), 'utf8');

/** The first 16 hex digits of its SHA-256: part of its URL and its ETag. */
export const STYLESHEET_DIGEST = createHash('sha256').update(STYLESHEET).digest('hex').slice(0, 16);

/** Its file name under the UI's static path. */
export const STYLESHEET_FILE = `style-${STYLESHEET_DIGEST}.css`;
