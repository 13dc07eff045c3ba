/**
 * A request with more than one Authorization header is refused with 400 bad_request before any
 * authentication (Node keeps only the first, so the second would be ignored without a word), in
 * the error format of the API it went to: the Bindle API's TOML or JSON body, the OCI envelope
 * under /v2, the web UI's HTML page. The fast lane leaves such a request to Fastify, which refuses
 * it, even when its first header is blank (anonymous on its own).
 */
import t from 'tap';
import TOML from '@iarna/toml';
import { BindleError } from '../../core/errors/bindle-error.js';
import type { Authenticator, Principal } from '../../server/auth/index.js';
import { signedInvoice } from '../helpers/bindles.js';
import { firstResponse, rawExchange } from '../helpers/raw-http.js';
import { listenForRawClients, makeTestApp, storeInvoiceDirect } from '../helpers/test-app.js';

/** Accepts `Bearer good` as alice; records every header it was asked about. */
class RecordingAuthenticator implements Authenticator {
  readonly asked: Array<string | undefined> = [];

  authenticate(header: string | undefined): Promise<Principal | undefined> {
    this.asked.push(header);
    if (header === 'Bearer good') return Promise.resolve({ id: 'alice', kind: 'token' });
    return Promise.reject(new BindleError('unauthenticated', 'bad token'));
  }
}

const NAME = 'example.com/twice';
const INVOICE = `/v1/_i/${NAME}/1.0.0`;

t.test('two Authorization headers are 400 in each API\'s error format, before authentication', async (t) => {
  const authenticator = new RecordingAuthenticator();
  const ta = await makeTestApp(t, { authenticator });
  await storeInvoiceDirect(ta, signedInvoice(NAME, '1.0.0', []));
  // Capitalised: Node's header types allow one value for `authorization`; light-my-request lowercases names.
  const twice = { Authorization: ['Bearer good', 'Bearer other'] };

  const single = await ta.app.inject({ method: 'GET', url: INVOICE, headers: { authorization: 'Bearer good' } });
  t.equal(single.statusCode, 200, 'one header is authenticated as before');
  authenticator.asked.length = 0;

  const read = await ta.app.inject({ method: 'GET', url: INVOICE, headers: twice });
  t.equal(read.statusCode, 400);
  t.same(TOML.parse(read.body), { error: 'the request has 2 Authorization headers: send one, with the credentials to use', code: 'bad_request' });

  const json = await ta.app.inject({ method: 'POST', url: '/v1/_i', headers: { ...twice, accept: 'application/json', 'content-type': 'application/toml' }, payload: 'x' });
  t.equal(json.statusCode, 400, 'a write too');
  t.match(JSON.parse(json.body), { code: 'bad_request', error: /2 Authorization headers/ });

  const blankFirst = await ta.app.inject({ method: 'GET', url: INVOICE, headers: { Authorization: ['', 'Bearer good', 'Bearer bad'] } });
  t.equal(blankFirst.statusCode, 400, 'a blank first header does not make the request anonymous');
  t.match(blankFirst.body, /3 Authorization headers/);

  const oci = await ta.app.inject({ method: 'GET', url: '/v2/', headers: twice });
  t.equal(oci.statusCode, 400, 'under /v2');
  t.match(JSON.parse(oci.body), { errors: [{ message: /2 Authorization headers/ }] }, 'in the OCI error envelope');

  const ui = await ta.app.inject({ method: 'GET', url: '/ui/', headers: twice });
  t.equal(ui.statusCode, 400, 'in the web UI');
  t.match(ui.headers['content-type'], /^text\/html/);
  t.match(ui.body, /2 Authorization headers/);

  t.same(authenticator.asked, [], 'the authenticator was never asked');
});

t.test('the fast lane leaves a request with two Authorization headers to Fastify, which refuses it', async (t) => {
  const ta = await makeTestApp(t, { authenticator: new RecordingAuthenticator() });
  await storeInvoiceDirect(ta, signedInvoice(NAME, '1.0.0', []));
  const port = await listenForRawClients(t, ta);
  const get = (headers: string): Promise<ReturnType<typeof firstResponse>> =>
    rawExchange(port, [`GET ${INVOICE} HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`]).then((r) => firstResponse(r.text));
  t.equal((await get('')).status, 200, 'read once: the index caches it, and the fast lane answers it');
  t.equal((await get('Authorization: \r\n')).status, 200, 'a blank header is anonymous');
  const refused = await get('Authorization: \r\nAuthorization: Bearer good\r\n');
  t.equal(refused.status, 400);
  t.match(refused.body, /2 Authorization headers/);
});

t.test('a second Authorization header is seen after 1500 other fields, and a refusal keeps the connection for the requests behind it', async (t) => {
  const authenticator = new RecordingAuthenticator();
  const ta = await makeTestApp(t, { authenticator });
  await storeInvoiceDirect(ta, signedInvoice(NAME, '1.0.0', []));
  const port = await listenForRawClients(t, ta);
  // Past the ~1000 fields Node keeps by default, within the header size limit.
  const filler = Array.from({ length: 1500 }, (_, i) => `x${i}:y\r\n`).join('');
  const late = firstResponse((await rawExchange(port, [
    `DELETE ${INVOICE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n${filler}Authorization: Bearer other\r\nConnection: close\r\n\r\n`,
  ])).text);
  t.equal(late.status, 400, late.body);
  t.match(late.body, /2 Authorization headers/);
  const encoded = firstResponse((await rawExchange(port, [
    `POST /v1/_i HTTP/1.1\r\nHost: x\r\nContent-Type: application/toml\r\nContent-Length: 2\r\n${filler}Content-Encoding: gzip\r\nConnection: close\r\n\r\nxx`,
  ])).text);
  t.equal(encoded.status, 415, 'so is a Content-Encoding after them');
  t.same(authenticator.asked, [], 'the authenticator was never asked');

  const pipelined = await rawExchange(port, [
    `GET ${INVOICE} HTTP/1.1\r\nHost: x\r\nAuthorization: \r\nAuthorization: Bearer good\r\n\r\n` +
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  ]);
  const statuses = [...pipelined.text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
  t.same(statuses, [400, 200], 'the request behind the refused one (it has no body) is answered');
});
