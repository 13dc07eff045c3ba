/**
 * `GET /v2/_catalog` (the distribution-spec extension, as the CNCF registry serves it): the
 * repository names (bindle names with an invoice, yanked ones too, that are OCI names) the
 * requester may pull, in byte order, paged with `n` and `last` and a `Link` to the next page;
 * a bad `n` is PAGINATION_NUMBER_INVALID; the names are read from the index, so another replica
 * lists the same.
 */
import t from 'tap';
import { BindleError } from '../../core/errors/bindle-error.js';
import { StaticTokenAuthenticator, tokenDigest } from '../../server/auth/index.js';
import { sha256 } from '../helpers/bindles.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';
import { SecretReads, ociError, pushThroughV1 } from '../helpers/oci.js';

interface Catalog {
  repositories: string[];
  link: string | undefined;
}

async function catalog(ta: TestApp, query = '', headers: Record<string, string> = {}): Promise<Catalog> {
  const res = await ta.app.inject({ method: 'GET', url: `/v2/_catalog${query}`, headers });
  if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('application/json')) {
    throw new Error(`catalog: ${res.statusCode} ${String(res.headers['content-type'])} ${res.body}`);
  }
  const link = res.headers.link;
  return { repositories: (JSON.parse(res.body) as { repositories: string[] }).repositories, link: typeof link === 'string' ? link : undefined };
}

t.test('an empty registry lists no repositories', async (t) => {
  const ta = await makeTestApp(t);
  const res = await ta.app.inject({ method: 'GET', url: '/v2/_catalog' });
  t.equal(res.statusCode, 200);
  t.same(JSON.parse(res.body), { repositories: [] });
  t.equal(res.headers.link, undefined);
  const head = await ta.app.inject({ method: 'HEAD', url: '/v2/_catalog' });
  t.equal(head.statusCode, 200, 'HEAD as GET');
});

t.test('the repositories in byte order, each once, yanked ones too, OCI names only; paged with n, last and Link; seen by another replica', async (t) => {
  const ta = await makeTestApp(t);
  for (const [name, version] of [
    ['example.com/b', '1.0.0'], ['example.com/b', '1.1.0'], ['example.com/a', '1.0.0'], ['example.com/a-z', '1.0.0'],
    ['zeta', '0.1.0'], ['Upper.example/App', '1.0.0'], ['example.com/yanked', '1.0.0'],
  ] as const) {
    await pushThroughV1(ta, name, version, [{ name: 'p.txt', data: Buffer.from(`${name} ${version}`) }]);
  }
  await ta.service.yank({ name: 'example.com/yanked', version: '1.0.0' });
  const blob = Buffer.from('a blob pushed to a name without a bindle');
  const uploaded = await ta.app.inject({ method: 'POST', url: `/v2/example.com/links/only/blobs/uploads/?digest=sha256:${sha256(blob)}`, payload: blob });
  t.equal(uploaded.statusCode, 201, 'a blob linked in a name without a bindle: no repository yet (its tags/list is NAME_UNKNOWN)');
  const all = ['example.com/a', 'example.com/a-z', 'example.com/b', 'example.com/yanked', 'zeta'];
  t.same((await catalog(ta)).repositories, all, 'a name outside the OCI grammar is not listed (it is not reachable over OCI)');
  const replica = await makeTestApp(t, { dir: ta.dir });
  t.same((await catalog(replica)).repositories, all, 'another replica lists the same');

  const first = await catalog(ta, '?n=2');
  t.same(first.repositories, all.slice(0, 2));
  t.equal(first.link, '</v2/_catalog?n=2&last=example.com%2Fa-z>; rel="next"');
  const second = await catalog(ta, '?n=2&last=example.com%2Fa-z');
  t.same(second.repositories, all.slice(2, 4));
  t.equal(second.link, '</v2/_catalog?n=2&last=example.com%2Fyanked>; rel="next"');
  const third = await catalog(ta, '?n=2&last=example.com%2Fyanked');
  t.same(third.repositories, ['zeta']);
  t.equal(third.link, undefined, 'no Link on the last page');
  t.same((await catalog(ta, '?n=5')).link, undefined, 'nor when the page holds exactly the rest');
  t.same((await catalog(ta, '?last=example.com%2Fb')).repositories, all.slice(3), 'last alone');
  t.same((await catalog(ta, '?last=example.com%2Fc')).repositories, all.slice(3), 'last need not be a repository');
  t.same((await catalog(ta, '?n=0')).repositories, [], 'n=0: an empty page');
  for (const bad of ['-1', 'x', '10001', '1.5']) {
    const res = await ta.app.inject({ method: 'GET', url: `/v2/_catalog?n=${bad}` });
    t.equal(res.statusCode, 400, `n=${bad}`);
    t.equal(ociError(res.body).code, 'PAGINATION_NUMBER_INVALID');
  }
});

t.test('only the repositories the requester may pull are listed, and pages stay full', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest('ci-token')}\nroot:${tokenDigest('root-token')}\n`, 'test'),
    authorizer: new SecretReads(),
  });
  for (const name of ['alpha', 'secret/one', 'secret/two', 'secret/zz', 'tango', 'zulu']) {
    await pushThroughV1(ta, name, '1.0.0', [{ name: 'p.txt', data: Buffer.from(name) }]);
  }
  const open = ['alpha', 'tango', 'zulu'];
  t.same((await catalog(ta)).repositories, open, 'anonymous');
  t.same((await catalog(ta, '', { authorization: 'Bearer ci-token' })).repositories, open, 'a principal without the grant');
  t.same((await catalog(ta, '', { authorization: 'Bearer root-token' })).repositories, ['alpha', 'secret/one', 'secret/two', 'secret/zz', 'tango', 'zulu'], 'one with it');
  const page = await catalog(ta, '?n=2');
  t.same(page.repositories, ['alpha', 'tango'], 'the hidden names do not leave a page short');
  t.equal(page.link, '</v2/_catalog?n=2&last=tango>; rel="next"');
  const last = await catalog(ta, '?n=1&last=tango');
  t.same(last.repositories, ['zulu']);
  t.equal(last.link, undefined);
  const hiddenTail = await catalog(ta, '?n=1&last=alpha');
  t.same(hiddenTail.repositories, ['tango'], 'past the hidden names');
});

t.test('a registry that refuses anonymous reads refuses the anonymous catalog with its challenge', async (t) => {
  const ta = await makeTestApp(t, {
    authenticator: StaticTokenAuthenticator.parse(`ci:${tokenDigest('ci-token')}\n`, 'test'),
    authorizer: { authorize: (principal) => { if (principal === undefined) throw new BindleError('unauthenticated', 'credentials needed'); } },
  });
  const res = await ta.app.inject({ method: 'GET', url: '/v2/_catalog' });
  t.equal(res.statusCode, 401);
  t.equal(ociError(res.body).code, 'UNAUTHORIZED');
  t.equal((await ta.app.inject({ method: 'GET', url: '/v2/_catalog', headers: { authorization: 'Bearer ci-token' } })).statusCode, 200);
});
