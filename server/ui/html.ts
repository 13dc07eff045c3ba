/**
 * The web UI's only way to make HTML: the `html` template tag escapes every interpolated value
 * (with html-escaper: `& < > " '`) unless it is already `Html` made by this tag, so text from
 * invoices, names and query strings can never become markup. Attribute values must be written
 * in double quotes (`href="${url}"`); URLs are built by `path` from encoded segments, so none can
 * carry a scheme.
 */
import { escape } from 'html-escaper';

/** Held only by this module, so that only the `html` tag can make Html. */
const MAKER: unique symbol = Symbol('html maker');

/** Markup made by the `html` tag: safe to place anywhere text or markup may go. */
export class Html {
  readonly #text: string;

  constructor(maker: typeof MAKER, text: string) {
    if (maker !== MAKER) throw new Error('Html is made only by the html template tag');
    this.#text = text;
  }

  toString(): string {
    return this.#text;
  }
}

/** What may be interpolated: text (escaped), numbers, markup, nothing (false/undefined/null), or lists of these. */
export type HtmlValue = Html | string | number | false | undefined | null | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === undefined || value === null || value === false) return '';
  if (value instanceof Html) return value.toString();
  if (typeof value === 'number') return String(value);
  if (typeof value === 'string') return escape(value);
  return value.map(render).join('');
}

/** Template tag: the literal parts are markup, every `${value}` is escaped unless it is Html. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new Html(MAKER, out);
}

/** A site-relative URL path from raw segments, each percent-encoded (a `/` inside one stays encoded). */
export function path(...segments: readonly string[]): string {
  return `/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
}

/** A URL with a query string from `params` (undefined values are left out), e.g. for paging links. */
export function withQuery(base: string, params: Readonly<Record<string, string | undefined>>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) query.set(key, value);
  const text = query.toString();
  return text === '' ? base : `${base}?${text}`;
}
