/**
 * server/process-warnings.ts: while it is on, a process warning is one warn line of the log and
 * Node's default printer (free text on stderr) is not called; once stopped, the listeners there
 * were before are back. With no listener there (Node's `--no-warnings`), nothing is logged.
 */
import { once } from 'node:events';
import t from 'tap';
import { logProcessWarnings } from '../../server/process-warnings.js';
import { recordingLogger } from '../helpers/log-records.js';

t.test('a warning is logged at warn in place of the listeners before, which are back after', async (t) => {
  const before = process.listeners('warning');
  let printed = 0;
  const printer = (): void => {
    printed += 1;
  };
  process.on('warning', printer);
  t.teardown(() => {
    process.off('warning', printer);
  });
  const { logger, records } = recordingLogger();
  const stop = logProcessWarnings(logger);
  const emitted = once(process, 'warning');
  process.emitWarning('the SDK will need a newer Node', { type: 'TestWarning', code: 'TEST_CODE' });
  await emitted;
  t.equal(printed, 0, 'the listener there was before is not called');
  t.match(records, [{ level: 40, msg: 'process warning: TestWarning', warning: { name: 'TestWarning', code: 'TEST_CODE', message: 'the SDK will need a newer Node' } }]);

  stop();
  stop();
  t.same(process.listeners('warning'), [...before, printer], 'the listeners before are back, once each');
  const again = once(process, 'warning');
  process.emitWarning('after', 'TestWarning');
  await again;
  t.equal(printed, 1, 'and called again');
  t.equal(records.length, 1, 'nothing more is logged');
});

t.test('with no listener (Node silenced by --no-warnings), warnings stay silent and are not logged', async (t) => {
  const before = process.listeners('warning');
  process.removeAllListeners('warning');
  t.teardown(() => {
    for (const listener of before) process.on('warning', listener);
  });
  const { logger, records } = recordingLogger();
  const stop = logProcessWarnings(logger);
  t.equal(process.listenerCount('warning'), 0, 'no listener added');
  const seen: Error[] = [];
  const watch = (warning: Error): void => {
    seen.push(warning);
  };
  process.prependListener('warning', watch);
  const emitted = once(process, 'warning');
  process.emitWarning('quiet', 'TestWarning');
  await emitted;
  process.off('warning', watch);
  stop();
  t.equal(seen.length, 1, 'the warning was emitted');
  t.same(records, [], 'and not logged');
});
