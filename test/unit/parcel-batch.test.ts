/**
 * server/http/parcel-batch.ts's readParcelParts on its own: small parts are stored side by side,
 * at most PARTS_IN_FLIGHT at once, a large part alone after the ones before it, the reply keeps
 * the order of the parts, and a failure is reported once nothing is being stored any more. The
 * memory the process's batches hold is bounded, and all of it is given back.
 */
import { Readable } from 'node:stream';
import t from 'tap';
import { formBody } from '../../core/codec/multipart-form.js';
import { BUFFERED_PART_BYTES, PartMemory, partMemory, PARTS_IN_FLIGHT, readParcelParts } from '../../server/http/parcel-batch.js';
import { BindleError } from '../../core/errors/bindle-error.js';
import { sha256 } from '../helpers/bindles.js';

/** A batch upload's body of `datas`, one part each named by its sha256. */
const batchBody = (datas: readonly Buffer[]): { body: Buffer; contentType: string } =>
  formBody(datas.map((data) => ({ name: sha256(data), filename: sha256(data), mediaType: 'application/octet-stream', data })));

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function drain(data: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of data) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A store that records how many parts it stores at once, and each part's bytes. */
function recordingStore(opts: { failOn?: string } = {}) {
  const seen = new Map<string, Buffer>();
  const state = { active: 0, most: 0, largeStartedWith: [] as number[], activeAtEnd: -1 };
  const store = async (sha: string, data: Readable): Promise<'created'> => {
    state.active += 1;
    state.most = Math.max(state.most, state.active);
    try {
      const bytes = await drain(data);
      if (bytes.length > BUFFERED_PART_BYTES) state.largeStartedWith.push(state.active);
      await sleep(15);
      if (sha === opts.failOn) throw new BindleError('digest_mismatch', 'wrong bytes');
      seen.set(sha, bytes);
      return 'created';
    } finally {
      state.active -= 1;
    }
  };
  return { store, seen, state };
}

const small = Array.from({ length: 12 }, (_, i) => Buffer.from(`small part ${i}`));
const large = Buffer.alloc(BUFFERED_PART_BYTES + 5000, 3);

t.test('small parts side by side, at most PARTS_IN_FLIGHT; a large one alone; the order kept', async (t) => {
  const datas = [...small.slice(0, 6), large, ...small.slice(6)];
  const { body, contentType } = batchBody(datas);
  const { store, seen, state } = recordingStore();
  const reply = await readParcelParts(Readable.from([body]), contentType, store);
  t.same(reply, { created: datas.map((d) => sha256(d)), existing: [] }, 'every part, in order');
  t.equal(state.most, PARTS_IN_FLIGHT, `at most ${PARTS_IN_FLIGHT} stored at once, and that many`);
  t.same(state.largeStartedWith, [1], 'the large part was stored alone');
  for (const d of datas) t.ok(seen.get(sha256(d))?.equals(d), 'the same bytes');
  t.equal(partMemory.held, 0, 'the memory is given back');
});

t.test('with no memory left for more, small parts are streamed one at a time', async (t) => {
  const { body, contentType } = batchBody(small);
  const { store, state } = recordingStore();
  const memory = new PartMemory(BUFFERED_PART_BYTES);
  const reply = await readParcelParts(Readable.from([body]), contentType, store, memory);
  t.same(reply.created, small.map((d) => sha256(d)), 'every part, in order');
  t.equal(state.most, 1, 'one at a time');
  t.equal(memory.held, 0, 'the memory is given back');
});

t.test('a failing part is reported once the parts stored beside it have settled', async (t) => {
  const { body, contentType } = batchBody(small);
  const { store, state } = recordingStore({ failOn: sha256(small[2] ?? Buffer.alloc(0)) });
  const failed = readParcelParts(Readable.from([body]), contentType, store).then(
    () => undefined,
    (err: unknown) => {
      state.activeAtEnd = state.active;
      return err;
    },
  );
  const err = await failed;
  t.match(err, { code: 'digest_mismatch', message: /^part 3: wrong bytes \(\d+ other part\(s\) of this request are stored\)$/ });
  t.equal(state.activeAtEnd, 0, 'nothing was being stored any more');
  t.equal(partMemory.held, 0, 'the memory is given back');
});
