// `npm run test:http-backends` (chained in `npm test`): runs the HTTP test layer (test/http/) a
// second time, on the postgres+s3 backend pair (BINDLE_TEST_BACKENDS, test/helpers/test-backends.ts),
// when the test services are configured. Without them it prints why it skips and succeeds,
// except under CI=true, where missing services fail the run.
import { spawnSync } from 'node:child_process';

const needed = ['BINDLE_TEST_POSTGRES_URL', 'BINDLE_TEST_S3_ENDPOINT'];
const missing = needed.filter((name) => (process.env[name] ?? '') === '');
if (missing.length > 0) {
  const reason = `${missing.join(' and ')} unset: start the services with scripts/services/test-services.sh up and export what it prints`;
  if (process.env.CI === 'true') {
    console.error(`test:http-backends: CI=true needs PostgreSQL and S3: ${reason}`);
    process.exit(1);
  }
  console.log(`test:http-backends: SKIP the HTTP tests on postgres+s3 (${reason})`);
  process.exit(0);
}
console.log('test:http-backends: the HTTP tests on the postgres+s3 backend pair');
const run = spawnSync('tap', ['test/http/'], { stdio: 'inherit', env: { ...process.env, BINDLE_TEST_BACKENDS: 'postgres+s3' } });
if (run.error !== undefined) throw run.error;
process.exit(run.status ?? 1);
