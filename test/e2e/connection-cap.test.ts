/**
 * The connection cap of a started server (server/http/connection-limit.ts): the server process
 * resolves it with its config, from `--max-connections` or else from its open-file limit, applies
 * it and logs it in its start-up line.
 */
import t from 'tap';
import { defaultMaxConnections, openFileLimit } from '../../server/http/connection-limit.js';
import { startServerProcess } from '../helpers/server-process.js';

/** The `maxConnections` of the server's start-up line. */
function loggedCap(output: string): number | undefined {
  const match = /"maxConnections":(\d+)/.exec(output);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

t.test('a server started without --max-connections caps connections from its open-file limit', async (t) => {
  const server = await startServerProcess(t);
  // The child runs under the same hard open-file limit, which Node raises its soft limit to.
  t.equal(loggedCap(server.output()), defaultMaxConnections(openFileLimit()));
});

t.test('--max-connections sets the cap', async (t) => {
  const server = await startServerProcess(t, { args: ['--max-connections', '7'] });
  t.equal(loggedCap(server.output()), 7);
});
