/**
 * The audit log at every log level (server/audit/audit-log.ts): a server told to log only
 * warnings still writes one audit record per write, as an `info` line carrying the request's
 * id, and nothing about reads; a server at `silent` writes nothing at all; at `info` each record
 * carries the same request id as Fastify's request lines.
 */
import t, { type Test } from 'tap';
import type { LevelWithSilent } from 'pino';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { auditSinkOf } from '../../server/audit/audit-log.js';
import { sha256, signedInvoice } from '../helpers/bindles.js';
import { makeTestApp } from '../helpers/test-app.js';
import { recordingLogger } from '../helpers/log-records.js';

const data = Buffer.from('audited at every level');
const parcel = sha256(data);
const id = 'example.com/audited/1.0.0';

/** A create, an upload, a refused upload (wrong bytes), a read and a yank, on a test app logging at `level`. */
async function writesAt(t: Test, level: LevelWithSilent): Promise<Record<string, unknown>[]> {
  const { logger, records: lines } = recordingLogger(level);
  const ta = await makeTestApp(t, { logger });
  const created = await ta.app.inject({
    method: 'POST',
    url: '/v1/_i',
    headers: { 'content-type': 'application/toml' },
    payload: renderInvoice(signedInvoice('example.com/audited', '1.0.0', [{ name: 'a.txt', data }])),
  });
  t.equal(created.statusCode, 202, created.body);
  const url = `/v1/_i/${id}@${parcel}`;
  t.equal((await ta.app.inject({ method: 'POST', url, payload: Buffer.from('not the bytes of the label') })).statusCode, 400);
  t.equal((await ta.app.inject({ method: 'POST', url, payload: data })).statusCode, 200);
  t.equal((await ta.app.inject({ method: 'GET', url })).statusCode, 200);
  t.equal((await ta.app.inject({ method: 'DELETE', url: `/v1/_i/${id}` })).statusCode, 200);
  return lines;
}

const EXPECTED = [
  { action: 'create', bindle: id, parcel: null, outcome: 'success', status: 202 },
  { action: 'upload', bindle: id, parcel, outcome: 'failed', status: 400 },
  { action: 'upload', bindle: id, parcel, outcome: 'success', status: 200 },
  { action: 'yank', bindle: id, parcel: null, outcome: 'success', status: 200 },
];

const auditsOf = (lines: Record<string, unknown>[]) =>
  lines.filter((l) => l.audit === true).map(({ action, bindle, parcel, outcome, status }) => ({ action, bindle, parcel, outcome, status }));

for (const level of ['warn', 'error', 'fatal'] as const) {
  t.test(`at ${level}: every write is audited, as an info line with its request id; nothing else is logged`, async (t) => {
    const lines = await writesAt(t, level);
    t.same(auditsOf(lines), EXPECTED);
    t.ok(
      lines.every((l) => l.audit === true && l.level === 30 && typeof l.reqId === 'string' && typeof l.msg === 'string' && l.msg.startsWith('audit: ')),
      'only audit records, each an info line with a request id',
    );
    t.equal(new Set(lines.map((l) => l.reqId)).size, lines.length, 'one record per request');
  });
}

t.test('at silent: nothing is written, audit records included', async (t) => {
  t.same(await writesAt(t, 'silent'), []);
});

t.test('at info: each audit record carries the request id of the lines Fastify writes for its request', async (t) => {
  const lines = await writesAt(t, 'info');
  t.same(auditsOf(lines), EXPECTED);
  for (const audit of lines.filter((l) => l.audit === true)) {
    const requestLines = lines.filter((l) => l.reqId === audit.reqId && l.audit !== true).map((l) => l.msg);
    t.equal(requestLines[0], 'incoming request', `${String(audit.msg)}: the request's first line`);
    t.equal(requestLines.at(-1), 'request completed', `${String(audit.msg)}: the request's last line`);
  }
});

t.test("auditSinkOf: through the request's logger at info and more verbose, one info child at quieter levels, none when silent", async (t) => {
  const record = { principal: 'alice', action: 'upload', bindle: id, parcel, outcome: 'success', status: 200 } as const;
  const written = (lines: Record<string, unknown>[]) => lines.map(({ level: n, reqId, audit, action, msg }) => ({ level: n, reqId, audit, action, msg }));
  const expected = [{ level: 30, reqId: 'req-7', audit: true, action: 'upload', msg: `audit: alice upload ${id}@${parcel} success` }];
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const) {
    const { logger, records: lines } = recordingLogger(level);
    const request = { id: 'req-7', log: logger.child({ reqId: 'req-7' }) };
    const sink = auditSinkOf(logger);
    sink?.(request, record);
    request.log.info('an info line of the request');
    const audits = lines.filter((l) => l.audit === true);
    t.same(written(audits), expected, `${level}: the record, with the request id first among its fields`);
    t.match(JSON.stringify(audits[0]), /^\{"level":30,"time":\d+,"pid":\d+,"hostname":"[^"]*","reqId":"req-7","audit":true,/, `${level}: fields in order`);
    t.equal(lines.length, level === 'warn' || level === 'error' || level === 'fatal' ? 1 : 2, `${level}: the request's other info lines as its level says`);
    t.equal(request.log.level, level, `${level}: the request's logger keeps its level`);
  }
  t.equal(auditSinkOf(recordingLogger('silent').logger), undefined, 'silent');
});
