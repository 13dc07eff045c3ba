/**
 * The benchmarks on PostgreSQL + S3 (issue 13: "report the same figures beside SQLite + file"):
 * a quick run with BINDLE_BENCH_BACKENDS=sqlite+file,postgres+s3 of the cases that start servers
 * of their own reports each of their figures once per backend, the postgres+s3 one marked
 * (`<id>.postgres+s3`, `[postgres+s3]`) and without a target (the targets are the default
 * backend's); uploads and the download there are also measured beside the S3 service itself,
 * and the download beside a bare Node server streaming the object from it;
 * `--out <prefix>` puts the report in <prefix>.json and <prefix>.md. Needs the test
 * services (scripts/services/test-services.sh up), like the other postgres+s3 tests: skipped
 * without them, failed under CI=true.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { QUICK_SIZES } from '../../bench/lib/context.js';
import type { BenchReport } from '../../bench/lib/results.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { postgresUrl } from '../helpers/postgres.js';
import { s3TestService } from '../helpers/s3-service.js';

const run = promisify(execFile);

// One quick bench run of five cases on two backends: ~2.5 min alone, more beside other test files.
t.setTimeout(900_000);

// Each of these plans the file as skipped when its service is missing: ask for S3 only when PostgreSQL is there.
const pg = postgresUrl(t);
const s3 = pg === undefined ? undefined : s3TestService(t);

if (pg !== undefined && s3 !== undefined) {
  t.test('upload, download, parcel-get, rss and push-get report every figure on postgres+s3 beside sqlite+file', async (t) => {
    const out = join(t.testdir(), 'report');
    const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'run.js'), '--quick', '--only', 'upload,download,parcel-get,rss,push-get', '--out', out], {
      cwd: REPO_ROOT,
      env: { ...process.env, BINDLE_BENCH_BACKENDS: 'sqlite+file,postgres+s3' },
      maxBuffer: 16 * 2 ** 20,
      timeout: 840_000,
    });
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    t.equal(readFileSync(`${out}.md`, 'utf8'), stdout, 'the Markdown report is what the run printed');
    t.same(report.skipped.filter((s) => s.case !== 'rss'), [], 'nothing but rss skipped (it needs 4 GiB of free disk)');
    const byId = new Map(report.figures.map((f) => [f.id, f]));
    // The upload figures that only sqlite+file has: against the ceilings of a local disk.
    const localOnly = ['upload', 'upload.sha256', 'upload.fsync-write', 'upload.vs-receive'];
    for (const id of localOnly) {
      t.ok(byId.get(id), `${id}: on sqlite+file`);
      t.notOk(byId.get(`${id}.postgres+s3`), `${id}: not on postgres+s3`);
    }
    // And those that only postgres+s3 has: against the S3 service itself.
    const s3Only = ['upload.small-vs-s3', 'upload.vs-s3'];
    for (const id of s3Only) {
      const figure = byId.get(`${id}.postgres+s3`);
      t.notOk(byId.get(id), `${id}: not on sqlite+file`);
      t.match(figure?.baseline?.title, /straight to the S3 service/, `${id}: on postgres+s3, beside the S3 service`);
      t.ok((figure?.baseline?.value.runs.length ?? 0) > 0 && figure?.baseline?.value.runs.every((x) => x > 0), `${id}: the S3 service measured`);
    }
    t.match(byId.get('download.postgres+s3')?.baseline?.title, /^bare Node streaming it from S3/, 'download on postgres+s3: beside a bare Node server streaming the object from S3');
    t.match(byId.get('download')?.baseline?.title, /^bare Node \(1 MiB chunks\)/, 'download on sqlite+file: beside bare Node reading the file');
    const s3Peer = byId.get('download.postgres+s3')?.peers?.find((p) => /the S3 service itself/.test(p.title));
    t.ok(s3Peer !== undefined && s3Peer.value.runs.every((x) => x > 0), 'download on postgres+s3: the S3 service itself measured beside it');
    t.notOk(byId.get('download')?.peers?.some((p) => /S3/.test(p.title)), 'download on sqlite+file: no S3 peer');
    const both = ['upload.vs-bare', 'upload.small', 'upload.small-vs-durable', 'upload.small-durability', 'download', 'parcel-get', 'parcel-head'];
    const ids = [...both, ...(report.skipped.length === 0 ? ['rss.idle', 'rss', 'rss.modules'] : []), 'cli.push', 'cli.get'];
    for (const id of ids) {
      const own = byId.get(id);
      const other = byId.get(`${id}.postgres+s3`);
      t.ok(own, `${id}: on sqlite+file`);
      t.ok(other, `${id}: on postgres+s3 too`);
      t.equal(other?.target, undefined, `${id}: the postgres+s3 figure has no target of its own`);
      t.equal(other?.title, `${own?.title ?? ''} [postgres+s3]`, `${id}: marked in its title`);
      t.ok((other?.value.runs.length ?? 0) > 0 && other?.value.runs.every((x) => Number.isFinite(x) && x > 0), `${id}: measured on postgres+s3`);
    }
    // Where this environment sets NODE_EXTRA_CA_CERTS, the idle readings again without it: on sqlite+file only, no target.
    const extraCa = process.env.NODE_EXTRA_CA_CERTS !== undefined && report.skipped.length === 0 ? ['rss.idle-without-extra-ca'] : [];
    for (const id of extraCa) {
      const figure = byId.get(id);
      t.ok(figure !== undefined && figure.value.runs.every((x) => x > 0), `${id}: measured on sqlite+file`);
      t.match(figure?.baseline?.title, /without NODE_EXTRA_CA_CERTS/, `${id}: beside a bare server started without it too`);
      t.equal(figure?.target, undefined, `${id}: no target`);
      t.notOk(byId.get(`${id}.postgres+s3`), `${id}: not on postgres+s3`);
    }
    // The upload figures take their own, even number of rounds, each contender once per round.
    const uploads = report.figures.filter((f) => f.id.startsWith('upload') && f.id !== 'upload.sha256' && f.id !== 'upload.fsync-write');
    for (const f of uploads) {
      t.equal(f.value.runs.length, QUICK_SIZES.uploadRuns, `${f.id}: ${QUICK_SIZES.uploadRuns} rounds`);
      t.equal(f.baseline?.value.runs.length, QUICK_SIZES.uploadRuns, `${f.id}: its baseline measured in the same rounds`);
    }
    const targets = report.figures.filter((f) => f.target !== undefined).map((f) => f.id);
    t.same(targets.filter((id) => id.endsWith('.postgres+s3')), [], 'targets only on sqlite+file');
    t.equal(report.figures.length, ids.length * 2 + localOnly.length + s3Only.length + extraCa.length, 'no other figures');
  });
}
