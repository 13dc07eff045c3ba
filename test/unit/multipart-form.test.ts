/**
 * core/codec/multipart-form.ts: a body built whole (formBody) or from a MultipartForm's pieces is
 * multipart/form-data that a multipart parser (@fastify/busboy, as the server and the client use
 * it) reads back part for part, byte for byte, with each part's head as given; nothing a part's
 * head is built from can add a header line.
 */
import { Busboy } from '@fastify/busboy';
import t from 'tap';
import { formBody, MultipartForm } from '../../core/codec/multipart-form.js';

interface ReadPart {
  name: string;
  filename: string;
  type: string;
  data: Buffer;
}

/** The file parts of a multipart body as busboy reads them. */
function partsOf(body: Buffer, contentType: string): Promise<ReadPart[]> {
  return new Promise((resolve, reject) => {
    const parts: ReadPart[] = [];
    const parser = Busboy({ headers: { 'content-type': contentType } });
    parser.on('file', (name, stream, filename, _encoding, type) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => parts.push({ name, filename, type, data: Buffer.concat(chunks) }));
    });
    parser.on('error', reject);
    parser.on('finish', () => resolve(parts));
    parser.end(body);
  });
}

t.test('a body built whole reads back, part for part, as file parts', async (t) => {
  const parts = [
    { name: 'a'.repeat(64), filename: 'a'.repeat(64), mediaType: 'application/octet-stream', data: Buffer.from('alpha') },
    { name: 'b'.repeat(64), filename: 'b'.repeat(64), mediaType: 'text/plain', data: Buffer.alloc(0) },
    { name: 'c'.repeat(64), filename: 'c.dat', mediaType: 'application/wasm', data: Buffer.from('\r\n--bindle-\r\n--\r\n binary \0\xff', 'latin1') },
  ];
  const { body, contentType } = formBody(parts);
  t.match(contentType, /^multipart\/form-data; boundary=bindle-[0-9a-f]{32}$/);
  const read = await partsOf(body, contentType);
  t.same(read.map(({ name, filename, type }) => [name, filename, type]), parts.map(({ name, filename, mediaType }) => [name, filename, mediaType]), 'one file part per parcel, in order, as named');
  read.forEach(({ name, data }, i) => t.ok(data.equals(parts[i]?.data ?? Buffer.alloc(1)), `${name.slice(0, 1)}: the same bytes`));
});

t.test('a part full of the boundary\'s prefix reads back', async (t) => {
  const data = Buffer.from('--bindle-'.repeat(1000));
  const { body, contentType } = formBody([{ name: 'x', filename: 'x', mediaType: 'application/octet-stream', data }]);
  const boundary = /boundary=(\S+)$/.exec(contentType)?.[1] ?? '';
  t.notOk(data.includes(boundary), 'the boundary is not in the data');
  t.ok((await partsOf(body, contentType))[0]?.data.equals(data), 'the bytes read back');
});

t.test('a form streamed from its pieces: heads with lengths, the end of each part, the closing line', async (t) => {
  const form = new MultipartForm('fixed-boundary');
  t.equal(form.contentType, 'multipart/form-data; boundary=fixed-boundary');
  const one = Buffer.from('one');
  const head = form.head({ name: 'n', filename: 'n.dat', mediaType: 'text/plain; charset=utf-8', size: one.length });
  t.equal(
    head.toString(),
    '--fixed-boundary\r\nContent-Disposition: form-data; name="n"; filename="n.dat"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\n',
  );
  const body = Buffer.concat([head, one, form.partEnd, form.closing]);
  t.same(await partsOf(body, form.contentType), [{ name: 'n', filename: 'n.dat', type: 'text/plain', data: one }]);
});

t.test('nothing in a part head adds a header line', async (t) => {
  const form = new MultipartForm();
  const head = form
    .head({ name: 'a"\r\nX-Injected: 1', filename: 'b"\nX-Injected: 2', mediaType: 'text/plain\r\nX-Injected: 3' })
    .toString();
  t.notMatch(head, /\r\nX-Injected|\nX-Injected/, 'no CR or LF from a name, a filename or a media type');
  t.match(head, 'name="a%22%0D%0AX-Injected: 1"; filename="b%22%0AX-Injected: 2"', 'quotes and line breaks escaped as browsers do');
  t.match(head, 'Content-Type: application/octet-stream\r\n\r\n', 'a media type that is not a valid header value is not sent');
});
