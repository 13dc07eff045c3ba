/**
 * The per-request loggers and request ids of server/http/request-logger.ts, wired by
 * server/app.ts: what a request logs is written as before (bound to its `reqId`, at the levels in
 * force), at a level that drops a request's logging nothing is built or written for it, and
 * request ids have Fastify's default form.
 */
import t, { type Test } from 'tap';
import { lazyChildLoggerFactory, requestIdSource } from '../../server/http/request-logger.js';
import { recordingLogger, type LogRecord } from '../helpers/log-records.js';
import { makeTestApp, type TestApp } from '../helpers/test-app.js';

async function appLogging(t: Test, level: string): Promise<{ ta: TestApp; records: LogRecord[] }> {
  const { logger, records } = recordingLogger(level);
  return { ta: await makeTestApp(t, { logger }), records };
}

t.test('at info every request is logged, bound to its request id', async (t) => {
  const { ta, records } = await appLogging(t, 'info');
  const reply = await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/missing/1.0.0' });
  t.equal(reply.statusCode, 404);
  const messages = records.map((r) => r.msg);
  t.ok(messages.includes('incoming request') && messages.includes('request completed'), `the access log lines (${messages.join(', ')})`);
  const failed = records.find((r) => r.msg === 'request failed');
  t.equal(failed?.code, 'not_found', 'the route\'s own log line');
  const ids = new Set(records.filter((r) => r.msg !== undefined && r.reqId !== undefined).map((r) => r.reqId));
  t.equal(ids.size, 1, 'one request id on all of them');
  t.equal(records.filter((r) => r.reqId === undefined).length, 0, 'no line without it');
});

t.test('request ids: Fastify\'s default form, one counter per source, given to Fastify\'s requests', async (t) => {
  const next = requestIdSource();
  const ids = Array.from({ length: 40 }, () => next());
  t.same(ids.slice(0, 3), ['req-1', 'req-2', 'req-3'], 'req- and a counter from 1');
  t.equal(ids[35], 'req-10', 'in base 36');
  t.equal(new Set(ids).size, 40, 'each one new');
  t.equal(requestIdSource()(), 'req-1', 'another source counts on its own');
  const { ta, records } = await appLogging(t, 'info');
  await ta.app.inject({ method: 'GET', url: '/healthz' });
  await ta.app.inject({ method: 'GET', url: '/healthz' });
  t.same([...new Set(records.map((r) => r.reqId))], ['req-1', 'req-2'], 'the app\'s requests are numbered by its source');
});

t.test('at warn a request that logs nothing at warn writes nothing; a warning is bound to its request id', async (t) => {
  const { ta, records } = await appLogging(t, 'warn');
  ta.app.get('/warns', (request, reply) => {
    request.log.warn({ detail: 1 }, 'careful');
    request.log.info('dropped');
    return reply.send('ok');
  });
  t.equal((await ta.app.inject({ method: 'GET', url: '/v1/_i/example.com/missing/1.0.0' })).statusCode, 404);
  t.same(records, [], 'nothing written');
  t.equal((await ta.app.inject({ method: 'GET', url: '/warns' })).statusCode, 200);
  t.equal(records.length, 1, 'only the warning');
  t.match(records[0], { msg: 'careful', detail: 1, level: 40 });
  t.type(records[0]?.reqId, 'string', 'bound to the request id');
});

t.test('the lazy logger builds the child on first use, with the same bindings, level and children', (t) => {
  const { logger, records } = recordingLogger('warn');
  let built = 0;
  const parent = Object.assign(Object.create(logger) as typeof logger, {
    child: (...args: Parameters<typeof logger.child>) => {
      built++;
      return logger.child(...args);
    },
  });
  const lazy = lazyChildLoggerFactory.call(undefined as never, parent, { reqId: 'req-1' }, {}, undefined as never);
  t.equal(lazy.level, 'warn', 'the parent\'s level');
  lazy.info('dropped');
  lazy.debug('dropped');
  t.equal(built, 0, 'no child for a dropped line');
  lazy.error({ n: 2 }, 'kept %s', 'here');
  t.equal(built, 1, 'built for the first line written');
  lazy.warn('again');
  t.equal(built, 1, 'and only once');
  lazy.child({ sub: true }).warn('from a child');
  t.match(records, [
    { msg: 'kept here', n: 2, reqId: 'req-1', level: 50 },
    { msg: 'again', reqId: 'req-1' },
    { msg: 'from a child', reqId: 'req-1', sub: true },
  ]);
  lazy.level = 'debug';
  lazy.debug('now kept');
  t.match(records.at(-1), { msg: 'now kept', reqId: 'req-1', level: 20 });
  t.equal(logger.level, 'warn', 'the parent keeps its level');
  const withLevel = lazyChildLoggerFactory.call(undefined as never, logger, { reqId: 'req-2' }, { level: 'error' }, undefined as never);
  t.equal(withLevel.level, 'error', 'a route level gives pino\'s own child');
  t.end();
});
