/**
 * The web UI, one Fastify plugin: `/` redirects to `/ui/`, the search page (`/ui/?q=&v=&yanked=&page=`),
 * the invoice page (`/ui/bindles/{name}/{version}`) and the stylesheet (`/ui/static/style-<digest>.css`).
 * Requests are authenticated and authorized by the API's own hook (server/auth/request-auth.ts);
 * besides, every bindle is shown only if the authorizer lets the principal read its name, so an
 * authorizer that restricts reads by name hides a bindle from lists and its page answers 404, as
 * if it did not exist. Errors are rendered as HTML pages by this scope's handler. Every reply
 * carries a Content-Security-Policy that allows no script, frames or plugins.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BindleError, isBindleError } from '../../core/errors/bindle-error.js';
import { formatId, parseId } from '../../core/ids/bindle-id.js';
import type { Authenticator, Authorizer } from '../auth/types.js';
import { authorizeBindleName, registerRequestAuth } from '../auth/request-auth.js';
import { evaluatePreconditions } from '../http/conditional.js';
import { prepareErrorReply } from '../http/error-handler.js';
import { onlyParams, parseBool, parseInteger, single, type QueryParams } from '../http/request-parsing.js';
import { parseQuery } from '../routes/query-routes.js';
import type { BindleService } from '../service/bindle-service.js';
import type { Html } from './html.js';
import {
  UI_HOME, UI_PREFIX, renderErrorPage, renderInvoicePage, renderSearchPage, type SearchForm, type SiteInfo,
} from './pages.js';
import { STYLESHEET, STYLESHEET_DIGEST, STYLESHEET_FILE } from './stylesheet.js';

export interface WebUiOptions {
  readonly service: BindleService;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  /** The server's version, shown in the page header. */
  readonly version: string;
}

/** Bindles per search page. */
export const PAGE_SIZE = 25;
const MAX_PAGE = 1_000_000;

/** No script, frames, plugins or foreign resources: the pages are plain HTML with one stylesheet. */
export const UI_CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const PAGE_HEADERS = {
  'content-security-policy': UI_CONTENT_SECURITY_POLICY,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  // Pages depend on who asks and on what is stored now.
  'cache-control': 'private, no-cache',
} as const;

type UiRequest = FastifyRequest<{ Params: { '*': string }; Querystring: QueryParams }>;

function sendPage(reply: FastifyReply, status: number, page: Html): FastifyReply {
  return reply.code(status).headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(page.toString());
}

/** Whether the authorizer lets the request's principal read bindle `name` (a refusal hides it). */
function mayRead(request: FastifyRequest, name: string): boolean {
  try {
    authorizeBindleName(request, 'read', name);
    return true;
  } catch (err) {
    if (isBindleError(err) && (err.code === 'forbidden' || err.code === 'unauthenticated')) return false;
    throw err;
  }
}

/** Any error as the web UI's error page. */
function sendErrorPage(site: SiteInfo, err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const bindleError = prepareErrorReply(err, request, reply);
  const message = bindleError.code === 'internal' ? 'Something went wrong on the server; its log says what.' : bindleError.message;
  return sendPage(reply, bindleError.status, renderErrorPage(site, bindleError.status, message));
}

/**
 * The web UI's answer to an error Fastify met under `/ui` before any route ran (a path that does
 * not decode): its error page, as for its own errors. `version` as in WebUiOptions.
 */
export function uiFrameworkError(version: string): (err: unknown, request: FastifyRequest, reply: FastifyReply) => void {
  const site: SiteInfo = { version };
  return (err, request, reply) => {
    void sendErrorPage(site, err, request, reply);
  };
}

function uiRoutes(ui: FastifyInstance, opts: WebUiOptions): void {
  const { service } = opts;
  const site: SiteInfo = { version: opts.version };
  registerRequestAuth(ui, opts);

  ui.setErrorHandler((err: unknown, request, reply) => sendErrorPage(site, err, request, reply));
  ui.setNotFoundHandler((request, reply) =>
    sendPage(reply, 404, renderErrorPage(site, 404, `There is no page at ${request.url}.`)));

  ui.get('/', async (request: UiRequest, reply) => {
    const params = request.query;
    onlyParams(params, ['q', 'v', 'yanked', 'page']);
    const form: SearchForm = {
      q: single(params, 'q') ?? '',
      v: single(params, 'v') ?? '',
      yanked: parseBool('yanked', single(params, 'yanked'), false),
    };
    const page = parseInteger('page', single(params, 'page'), 1, 1, MAX_PAGE);
    let rendered: Html;
    let status = 200;
    try {
      const query = parseQuery({
        q: form.q, v: form.v, yanked: String(form.yanked), o: String((page - 1) * PAGE_SIZE), l: String(PAGE_SIZE),
      });
      const result = await service.query(query);
      const invoices = result.invoices.map((stored) => stored.invoice).filter((inv) => mayRead(request, inv.bindle.name));
      rendered = renderSearchPage(site, { form, invoices, page, more: result.more });
    } catch (err) {
      if (!isBindleError(err) || err.code !== 'invalid_query') throw err;
      status = 400;
      rendered = renderSearchPage(site, { form, invoices: [], page, more: false, error: err.message });
    }
    return sendPage(reply, status, rendered);
  });

  ui.get('/bindles/*', async (request: UiRequest, reply) => {
    onlyParams(request.query, []);
    const id = parseId(request.params['*']);
    // Refused and absent look the same, so a page never tells that a hidden bindle exists.
    const notFound = new BindleError('not_found', `bindle ${formatId(id)} not found`);
    if (!mayRead(request, id.name)) throw notFound;
    const stored = await service.getInvoice(id, true).catch((err: unknown) => {
      throw isBindleError(err) && err.code === 'not_found' ? notFound : err;
    });
    const report = service.signatureReport(stored.invoice);
    return sendPage(reply, 200, renderInvoicePage(site, { invoice: stored.invoice, yanked: stored.yanked, report }));
  });

  const etag = `"${STYLESHEET_DIGEST}"`;
  ui.get(`/static/${STYLESHEET_FILE}`, (request, reply) => {
    reply.headers({
      'cache-control': 'public, max-age=31536000, immutable',
      etag,
      'x-content-type-options': 'nosniff',
    });
    if (evaluatePreconditions(request.headers, etag) === 'not_modified') return reply.code(304).send();
    return reply.code(200).type('text/css; charset=utf-8').send(STYLESHEET);
  });
}

/** Registers the web UI on `app` (at `/` and `/ui/`); register it with `app.register`. */
export function webUi(app: FastifyInstance, opts: WebUiOptions, done: (err?: Error) => void): void {
  app.get('/', (_request, reply) => reply.redirect(UI_HOME, 302));
  app.register((ui, _options, uiDone) => {
    uiRoutes(ui, opts);
    uiDone();
  }, { prefix: UI_PREFIX });
  done();
}
