/**
 * Uploads whose clients stop part-way (issue 13): over real connections to the app, each such
 * upload holds at most one batch of the size the process's upload budget gives while that many
 * are open, not a 1 MiB batch each; and the budget is free again once their connections close.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import t from 'tap';

import type { Invoice } from '../../schema/index.js';
import { renderInvoice } from '../../core/codec/invoice-codec.js';
import { signInvoice } from '../../core/signing/sign.js';
import { processUploadBudget } from '../../server/storage/parcel-upload.js';
import { creatorKey } from '../helpers/bindles.js';
import { settled } from '../helpers/stopped-readers.js';
import { listenForRawClients, makeTestApp } from '../helpers/test-app.js';

const UPLOADS = 24;
const DECLARED = 4 << 20;
const SENT = (1 << 20) - 1024;

async function until(condition: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  for (const start = Date.now(); !condition(); ) {
    if (Date.now() - start > timeoutMs) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

t.test('clients that stop part-way through their uploads leave less than a batch each held', async (t) => {
  const ta = await makeTestApp(t);
  const port = await listenForRawClients(t, ta);
  const digests = Array.from({ length: UPLOADS }, () => randomBytes(32).toString('hex'));
  const unsigned: Invoice = {
    bindleVersion: '1.0.0',
    bindle: { name: 'example.com/stalled', version: '1.0.0' },
    parcel: digests.map((sha256, i) => ({ label: { sha256, size: DECLARED, name: `part-${i}.bin`, mediaType: 'application/octet-stream' } })),
  };
  const created = await ta.app.inject({
    method: 'POST', url: '/v1/_i', headers: { 'content-type': 'application/toml' }, payload: renderInvoice(signInvoice(unsigned, 'creator', creatorKey())),
  });
  t.equal(created.statusCode, 202, created.body);

  const sockets: Socket[] = [];
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  for (const sha256 of digests) {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(`POST /v1/_i/example.com/stalled/1.0.0@${sha256} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${DECLARED}\r\n\r\n`);
    sockets.push(socket);
  }
  t.ok(await until(() => processUploadBudget.open === UPLOADS), `all ${UPLOADS} uploads are receiving (${processUploadBudget.open} open)`);
  const batch = processUploadBudget.size(1 << 20);
  t.ok(batch < 1 << 20, `with ${UPLOADS} open the budget gives batches of ${batch} bytes`);
  const body = randomBytes(SENT);
  for (const socket of sockets) socket.write(body);
  const held = await settled(() => processUploadBudget.held, 500, 30_000);
  t.ok(held <= UPLOADS * batch, `the stopped uploads hold ${held} bytes, within one batch each (1 MiB batches: ~${UPLOADS * SENT})`);

  for (const socket of sockets) socket.destroy();
  t.ok(await until(() => processUploadBudget.open === 0 && processUploadBudget.held === 0), 'their connections closed: nothing open or held');
  const health = await ta.app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
});
