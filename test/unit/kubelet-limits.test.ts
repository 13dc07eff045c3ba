/**
 * Resource limits of module processes (cgroups.ts through runner.ts), with real modules: the
 * grow fixture over a 64 MiB memory limit is OOMKilled while the same module completes under
 * 512 MiB; the spin fixture under a 0.1 CPU limit is throttled (measured by the cgroup's own
 * statistics: throttled periods and CPU time per period, no wall-clock timing). Also the
 * parsing behind cgroup detection and the `none` manager's report of unenforced limits. The
 * cgroup tests skip with the reason where no cgroup hierarchy is writable (not under CI=true).
 */
import t, { type Test } from 'tap';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CPU_PERIOD_USEC, cpuQuotaUsec, noCgroups, parseCgroupMounts, parseFlatKeyed, parseProcCgroup, type CpuStats } from '../../client/kubelet/cgroups.js';
import { startModule, type ModuleExit, type StartOptions } from '../../client/kubelet/runner.js';
import { moduleRuntime, wasm } from '../helpers/kubelet-env.js';

const { runtime, log: runtimeLog } = await moduleRuntime();
const cgroupsMissing = runtime.cgroups.kind === 'none' && process.env.CI !== 'true' ? `no writable cgroups here: ${runtimeLog.join('; ')}` : false;

async function run(t: Test, stem: string, limits: StartOptions['limits']): Promise<{ exit: ModuleExit; log: string }> {
  mkdirSync(t.testdirName, { recursive: true });
  const logPath = join(t.testdirName, `${stem}-${Math.random().toString(16).slice(2)}.log`);
  const fd = openSync(logPath, 'w');
  try {
    const running = await startModule(
      { module: await wasm(stem), args: [`${stem}.wasm`], env: {}, preopens: {}, stdin: 'ignore', stdout: fd, stderr: fd },
      { runtime, name: 'limits-test', ...(limits !== undefined ? { limits } : {}) },
    );
    return { exit: await running.exited, log: readFileSync(logPath, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

t.test('cgroup files and quotas', async (t) => {
  t.same(
    [...parseFlatKeyed('nr_periods 12\nnr_throttled 10\nthrottled_time 900000\n')],
    [['nr_periods', 12], ['nr_throttled', 10], ['throttled_time', 900000]],
  );
  const mounts = parseCgroupMounts(
    [
      'tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0',
      'cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0',
      'cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0',
      'cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0',
    ].join('\n'),
  );
  t.same(mounts, [
    { path: '/sys/fs/cgroup/cpu', version: 1, controllers: ['rw', 'relatime', 'cpu'] },
    { path: '/sys/fs/cgroup/memory', version: 1, controllers: ['rw', 'relatime', 'memory'] },
    { path: '/sys/fs/cgroup/unified', version: 2, controllers: [] },
  ]);
  const own = parseProcCgroup('5:cpu,cpuacct:/a\n4:memory:/process/x\n0::/\n');
  t.same([...own], [['cpu', '/a'], ['cpuacct', '/a'], ['memory', '/process/x'], ['', '/']]);
  t.equal(cpuQuotaUsec(0.1), 10_000);
  t.equal(cpuQuotaUsec(0.0001), 1000, 'never below the kernel minimum');
  t.equal(cpuQuotaUsec(2), 2 * CPU_PERIOD_USEC);
  const none = await noCgroups.create('x', { memoryBytes: 1, cpu: 1, pids: 1 });
  t.same(none.unenforced, ['memory', 'cpu', 'pids'], 'without cgroups every asked-for limit is reported');
});

t.test('a module over its memory limit is OOMKilled', { skip: cgroupsMissing }, async (t) => {
  const over = await run(t, 'grow', { memoryBytes: 64 * 2 ** 20 });
  t.same(over.exit, { exitCode: 137, reason: 'OOMKilled', message: 'the module exceeded its memory limit (67108864 bytes) and was killed by the kernel' });
  t.equal(over.log, '', 'it never got to 256 MiB');
  const under = await run(t, 'grow', { memoryBytes: 512 * 2 ** 20 });
  t.same(under.exit, { exitCode: 0, reason: 'Completed' }, 'the same module fits in 512 MiB');
  t.equal(under.log, 'grew 256 MiB\n');
});

t.test('a busy module with 0.1 CPU is throttled', { skip: cgroupsMissing }, async (t) => {
  const logPath = join(t.testdir(), 'spin.log');
  const fd = openSync(logPath, 'w');
  t.teardown(() => closeSync(fd));
  const running = await startModule(
    { module: await wasm('spin'), args: ['spin.wasm'], env: {}, preopens: {}, stdin: 'ignore', stdout: fd, stderr: fd },
    { runtime, name: 'limits-test', limits: { cpu: 0.1 } },
  );
  t.teardown(() => running.kill());
  let stats: CpuStats | undefined;
  // Bounded: 20 throttled periods take about 2 s at 0.1 CPU; allow far more on a loaded machine.
  for (let i = 0; i < 1200; i++) {
    stats = await running.cgroup.cpuStats();
    if (stats !== undefined && stats.nrThrottled >= 20 && readFileSync(logPath, 'utf8') === 'spinning\n') break;
    await sleep(100);
  }
  await running.kill();
  if (stats === undefined) {
    t.fail('no CPU statistics');
    return;
  }
  t.ok(stats.nrThrottled >= 20, `throttled in ${stats.nrThrottled} of ${stats.nrPeriods} periods (never without a quota)`);
  const share = stats.usageUsec / (stats.nrPeriods * CPU_PERIOD_USEC);
  t.ok(share <= 0.3, `CPU time per period ${share.toFixed(3)} of a core (quota 0.1, generous bound 0.3)`);
  t.ok(stats.throttledUsec > 0);
});
