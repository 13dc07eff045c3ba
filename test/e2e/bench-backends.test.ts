/**
 * The benchmarks on PostgreSQL + S3 (issue 13: "report the same figures beside SQLite + file"):
 * a quick run with BINDLE_BENCH_BACKENDS=sqlite+file,postgres+s3 of the cases that start servers
 * of their own reports each of their figures once per backend, the postgres+s3 one marked
 * (`<id>.postgres+s3`, `[postgres+s3]`) and without a target (the targets are the default
 * backend's); `--out <prefix>` puts the report in <prefix>.json and <prefix>.md. Needs the test
 * services (scripts/services/test-services.sh up), like the other postgres+s3 tests: skipped
 * without them, failed under CI=true.
 */
import t from 'tap';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { BenchReport } from '../../bench/lib/results.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { postgresUrl } from '../helpers/postgres.js';
import { s3TestService } from '../helpers/s3-service.js';

const run = promisify(execFile);

// One quick bench run of three cases on two backends: ~100 s alone, more beside other test files.
t.setTimeout(600_000);

const pg = postgresUrl(t);
const s3 = s3TestService(t);

if (pg !== undefined && s3 !== undefined) {
  t.test('parcel-get, rss and push-get report every figure on postgres+s3 beside sqlite+file', async (t) => {
    const out = join(t.testdir(), 'report');
    const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'run.js'), '--quick', '--only', 'parcel-get,rss,push-get', '--out', out], {
      cwd: REPO_ROOT,
      env: { ...process.env, BINDLE_BENCH_BACKENDS: 'sqlite+file,postgres+s3' },
      maxBuffer: 16 * 2 ** 20,
      timeout: 540_000,
    });
    const report = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as BenchReport;
    t.equal(readFileSync(`${out}.md`, 'utf8'), stdout, 'the Markdown report is what the run printed');
    t.same(report.skipped.filter((s) => s.case !== 'rss'), [], 'nothing but rss skipped (it needs 4 GiB of free disk)');
    const ids = ['parcel-get', 'parcel-head', ...(report.skipped.length === 0 ? ['rss.idle', 'rss'] : []), 'cli.push', 'cli.get'];
    const byId = new Map(report.figures.map((f) => [f.id, f]));
    for (const id of ids) {
      const own = byId.get(id);
      const other = byId.get(`${id}.postgres+s3`);
      t.ok(own?.target, `${id}: on sqlite+file, with its target`);
      t.ok(other, `${id}: on postgres+s3 too`);
      t.equal(other?.target, undefined, `${id}: the postgres+s3 figure has no target of its own`);
      t.equal(other?.title, `${own?.title ?? ''} [postgres+s3]`, `${id}: marked in its title`);
      t.ok((other?.value.runs.length ?? 0) > 0 && other?.value.runs.every((x) => Number.isFinite(x) && x > 0), `${id}: measured on postgres+s3`);
    }
    t.equal(report.figures.length, ids.length * 2, 'no other figures');
  });
}
