/**
 * The test runner's own set-up: which module loaders every test process starts with. On Node 20
 * each `module.register` loader that talks to the main thread over a MessageChannel adds a way for
 * the main thread to block for good while modules load (nodejs/node#50948 names exactly tap's mock
 * and processinfo loaders together). A CI run lost a whole test file the way such a hang looks: no output, no
 * answer to tap's SIGALRM, killed after 300 s. No test mocks modules, so tap's mock plugin is off
 * (package.json `tap.plugin`), and this checks that it stays off. tap takes the loaders from its
 * last build, and a run that finds the plugin list changed rebuilds only for the next run, so
 * `npm install` (prepare) and `npm test` run `tap build` first.
 */
import t from 'tap';

t.test('test processes start without the mock loader', async (t) => {
  const loaders = process.execArgv.filter((arg) => arg.startsWith('--import') || arg.startsWith('--loader'));
  t.ok(loaders.some((arg) => arg.includes('@tapjs/typescript')), 'loaders found in execArgv (the check below looks at the right list)');
  t.notOk(loaders.some((arg) => arg.includes('@tapjs/mock')), `no @tapjs/mock loader: ${loaders.join(' ')}`);
});
