/**
 * The audit log's record shape (server/audit/audit-log.ts): the outcome of an HTTP status, and
 * one log line per record with `audit: true` and a readable message. The HTTP layer's records
 * are checked in test/http/authorization-by-name.test.ts.
 */
import t from 'tap';
import { outcomeOf, writeAudit, type AuditRecord } from '../../server/audit/audit-log.js';

t.test('outcomes: success below 400; denied for 401, 403, 429; failed otherwise', async (t) => {
  for (const status of [200, 201, 202, 304]) t.equal(outcomeOf(status), 'success', String(status));
  for (const status of [401, 403, 429]) t.equal(outcomeOf(status), 'denied', String(status));
  for (const status of [400, 404, 409, 410, 413, 500, 503, 507]) t.equal(outcomeOf(status), 'failed', String(status));
});

t.test('one line per record, with audit: true and every field', async (t) => {
  const lines: Array<{ fields: object; message: string }> = [];
  const log = { info: (fields: object, message: string) => lines.push({ fields, message }) };
  const upload: AuditRecord = { principal: 'alice', action: 'upload', bindle: 'example.com/app/1.0.0', parcel: 'a'.repeat(64), outcome: 'success', status: 200 };
  writeAudit(log, upload);
  writeAudit(log, { principal: null, action: 'create', bindle: null, parcel: null, outcome: 'denied', status: 403 });
  t.same(lines, [
    { fields: { audit: true, ...upload }, message: `audit: alice upload example.com/app/1.0.0@${'a'.repeat(64)} success` },
    {
      fields: { audit: true, principal: null, action: 'create', bindle: null, parcel: null, outcome: 'denied', status: 403 },
      message: 'audit: anonymous create denied',
    },
  ]);
});
