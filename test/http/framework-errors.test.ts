/**
 * Errors Fastify answers before any route runs (a path whose percent-escapes do not decode) are
 * answered by the API the path belongs to, in its own format: the OCI envelope and version header
 * under /v2, the web UI's error page under /ui, the Bindle error document elsewhere.
 */
import t from 'tap';
import { makeTestApp } from '../helpers/test-app.js';
import { ociError } from '../helpers/oci.js';

t.test('a path that does not decode gets 400 in the format of the API it addresses', async (t) => {
  const ta = await makeTestApp(t);
  const oci = await ta.app.inject({ method: 'GET', url: '/v2/%ff/tags/list' });
  t.equal(oci.statusCode, 400);
  t.match(oci.headers['content-type'], /^application\/json/);
  t.equal(oci.headers['docker-distribution-api-version'], 'registry/2.0');
  t.match(ociError(oci.body).message, /%ff|url/i);
  const head = await ta.app.inject({ method: 'HEAD', url: '/v2/%ff/manifests/1.0.0' });
  t.equal(head.statusCode, 400);
  t.equal(head.body, '', 'HEAD: no body');

  const ui = await ta.app.inject({ method: 'GET', url: '/ui/bindles/%ff/1.0.0' });
  t.equal(ui.statusCode, 400);
  t.match(ui.headers['content-type'], /^text\/html/);
  t.match(ui.headers['content-security-policy'], /default-src 'none'/);
  t.match(ui.body, /<html/i);

  const bindle = await ta.app.inject({ method: 'GET', url: '/v1/_i/%ff/1.0.0', headers: { accept: 'application/json' } });
  t.equal(bindle.statusCode, 400);
  t.equal((JSON.parse(bindle.body) as { code: string }).code, 'bad_request');
  const elsewhere = await ta.app.inject({ method: 'GET', url: '/v2x/%ff', headers: { accept: 'application/json' } });
  t.equal(elsewhere.statusCode, 400, 'a path that only starts like /v2 is not the OCI API');
  t.equal((JSON.parse(elsewhere.body) as { code: string }).code, 'bad_request');
});
