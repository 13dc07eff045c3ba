/**
 * Resource limits for module processes, with Linux control groups: one cgroup per container run
 * under the kubelet's own cgroup (`<own>/bindle-kubelet/<name>`), holding a memory limit
 * (`resources.limits.memory`: the module's linear memory plus the runtime), a CPU quota
 * (`resources.limits.cpu`) and a pids limit. Both hierarchies are handled: cgroup v2 (one
 * unified mount with `memory`, `cpu` and `pids` enabled) and cgroup v1 (a mount per controller;
 * CPU time is read from `cpuacct`). `detectCgroups` picks the implementation; where no
 * controller is writable the `none` implementation runs modules without limits and every
 * container says which limits it could not enforce (the runner logs them).
 */
import { mkdir, readFile, rmdir, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a container may use. Absent fields are not limited. */
export interface ResourceLimits {
  /** Bytes of memory (resident memory and page cache of every process of the container). */
  memoryBytes?: number;
  /** CPU share in cores, e.g. 0.1 for `100m`. */
  cpu?: number;
  /** Processes and threads. */
  pids?: number;
}

/** CPU use of a container, from the cgroup's own statistics. */
export interface CpuStats {
  /** CPU time used, in microseconds. */
  usageUsec: number;
  /** Enforcement periods (of `CPU_PERIOD_USEC`) in which the container was runnable, with a quota set. */
  nrPeriods: number;
  /** Enforcement periods in which the quota ran out. */
  nrThrottled: number;
  /** Time spent throttled, in microseconds. */
  throttledUsec: number;
}

/**
 * One container run's cgroup. Contract: `procsFiles` are the `cgroup.procs` files a process
 * writes its own pid to (before it execs the runtime) to be placed under every limit at once;
 * `oomKilled` is true once the kernel's OOM killer ended a process of this cgroup for its memory
 * limit; `killAll` sends SIGKILL to every process still in it; `remove` deletes it once empty
 * (after `killAll`), never throws, and the other methods must not be used afterwards.
 */
export interface ContainerCgroup {
  readonly procsFiles: readonly string[];
  /** Limits that were asked for but are not enforced (e.g. `memory` without a memory controller). */
  readonly unenforced: readonly string[];
  oomKilled(): Promise<boolean>;
  /** Undefined when CPU accounting is not available. */
  cpuStats(): Promise<CpuStats | undefined>;
  killAll(): Promise<void>;
  remove(): Promise<void>;
}

/**
 * Creates container cgroups. Contract: `create` makes a new, empty cgroup named `name` (unique
 * among live containers; DNS-label characters and dots) with `limits` applied, or throws when
 * the hierarchy refuses; `kind` says which hierarchy is in use, `none` when limits cannot be
 * enforced at all (then every asked-for limit is listed in `unenforced`).
 */
export interface CgroupManager {
  readonly kind: 'v1' | 'v2' | 'none';
  create(name: string, limits: ResourceLimits): Promise<ContainerCgroup>;
}

/** The CFS period the CPU quota is expressed in (the kernel's default). */
export const CPU_PERIOD_USEC = 100_000;
/** The kernel's smallest CFS quota. */
const MIN_CPU_QUOTA_USEC = 1000;
/** Directory under the kubelet's cgroup that holds container cgroups. */
export const KUBELET_CGROUP = 'bindle-kubelet';
const CGROUP2_MAGIC = 0x63677270;

function asked(limits: ResourceLimits): string[] {
  return [
    ...(limits.memoryBytes !== undefined ? ['memory'] : []),
    ...(limits.cpu !== undefined ? ['cpu'] : []),
    ...(limits.pids !== undefined ? ['pids'] : []),
  ];
}

/** The CFS quota for `cpu` cores, in microseconds per `CPU_PERIOD_USEC`. */
export function cpuQuotaUsec(cpu: number): number {
  return Math.max(MIN_CPU_QUOTA_USEC, Math.round(cpu * CPU_PERIOD_USEC));
}

/** A manager that enforces nothing. */
export const noCgroups: CgroupManager = {
  kind: 'none',
  create(_name: string, limits: ResourceLimits): Promise<ContainerCgroup> {
    return Promise.resolve({
      procsFiles: [],
      unenforced: asked(limits),
      oomKilled: () => Promise.resolve(false),
      cpuStats: () => Promise.resolve(undefined),
      killAll: () => Promise.resolve(),
      remove: () => Promise.resolve(),
    });
  },
};

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `key value` lines (cpu.stat, memory.events, memory.oom_control) as numbers. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/u);
    if (key !== undefined && key !== '' && value !== undefined) out.set(key, Number(value));
  }
  return out;
}

async function pidsIn(dir: string): Promise<number[]> {
  const text = (await readText(join(dir, 'cgroup.procs'))) ?? '';
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

function killPids(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Removes cgroup directories (deepest first), retrying while the last processes are reaped. */
async function removeDirs(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await rmdir(dir);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || attempt === 49) break;
        killPids(await pidsIn(dir));
        await sleep(20);
      }
    }
  }
}

/** cgroup v1: a directory per controller. */
class V1Cgroup implements ContainerCgroup {
  readonly procsFiles: string[];
  readonly unenforced: string[];
  readonly #dirs: Map<string, string>;

  constructor(dirs: Map<string, string>, unenforced: string[]) {
    this.#dirs = dirs;
    this.procsFiles = [...dirs.values()].map((d) => join(d, 'cgroup.procs'));
    this.unenforced = unenforced;
  }

  async oomKilled(): Promise<boolean> {
    const dir = this.#dirs.get('memory');
    if (dir === undefined) return false;
    const control = parseFlatKeyed((await readText(join(dir, 'memory.oom_control'))) ?? '');
    return (control.get('oom_kill') ?? 0) > 0;
  }

  async cpuStats(): Promise<CpuStats | undefined> {
    const cpu = this.#dirs.get('cpu');
    const acct = this.#dirs.get('cpuacct');
    if (cpu === undefined || acct === undefined) return undefined;
    const stat = parseFlatKeyed((await readText(join(cpu, 'cpu.stat'))) ?? '');
    const usageNs = Number((await readText(join(acct, 'cpuacct.usage'))) ?? 'NaN');
    if (!Number.isFinite(usageNs)) return undefined;
    return { usageUsec: usageNs / 1000, nrPeriods: stat.get('nr_periods') ?? 0, nrThrottled: stat.get('nr_throttled') ?? 0, throttledUsec: (stat.get('throttled_time') ?? 0) / 1000 };
  }

  async killAll(): Promise<void> {
    for (const dir of this.#dirs.values()) killPids(await pidsIn(dir));
  }

  async remove(): Promise<void> {
    await this.killAll();
    await removeDirs([...this.#dirs.values()]);
  }
}

/** cgroup v2: one directory. */
class V2Cgroup implements ContainerCgroup {
  readonly procsFiles: string[];
  readonly unenforced: string[];
  readonly #dir: string;

  constructor(dir: string, unenforced: string[]) {
    this.#dir = dir;
    this.procsFiles = [join(dir, 'cgroup.procs')];
    this.unenforced = unenforced;
  }

  async oomKilled(): Promise<boolean> {
    const events = parseFlatKeyed((await readText(join(this.#dir, 'memory.events'))) ?? '');
    return (events.get('oom_kill') ?? 0) > 0;
  }

  async cpuStats(): Promise<CpuStats | undefined> {
    const text = await readText(join(this.#dir, 'cpu.stat'));
    if (text === undefined) return undefined;
    const stat = parseFlatKeyed(text);
    return { usageUsec: stat.get('usage_usec') ?? 0, nrPeriods: stat.get('nr_periods') ?? 0, nrThrottled: stat.get('nr_throttled') ?? 0, throttledUsec: stat.get('throttled_usec') ?? 0 };
  }

  async killAll(): Promise<void> {
    try {
      await writeFile(join(this.#dir, 'cgroup.kill'), '1');
    } catch {
      killPids(await pidsIn(this.#dir));
    }
  }

  async remove(): Promise<void> {
    await this.killAll();
    await removeDirs([this.#dir]);
  }
}

/** A cgroup mount: where it is and (v1) which controllers it carries. */
interface CgroupMount {
  path: string;
  version: 1 | 2;
  controllers: string[];
}

/** The cgroup mounts in a /proc/self/mounts text. */
export function parseCgroupMounts(mounts: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mounts.split('\n')) {
    const [, path, type, options] = line.split(' ');
    if (path === undefined || options === undefined) continue;
    const unescaped = path.replace(/\\(\d{3})/gu, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (type === 'cgroup2') out.push({ path: unescaped, version: 2, controllers: [] });
    if (type === 'cgroup') out.push({ path: unescaped, version: 1, controllers: options.split(',') });
  }
  return out;
}

/** A process's cgroup paths from a /proc/<pid>/cgroup text: controller → path (`''` for v2). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const path = line.slice(second + 1);
    for (const controller of line.slice(first + 1, second).split(',')) out.set(controller, path);
  }
  return out;
}

const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids'] as const;

class V1Manager implements CgroupManager {
  readonly kind = 'v1';
  /** controller → the kubelet's directory for container cgroups. */
  readonly #bases: Map<string, string>;

  constructor(bases: Map<string, string>) {
    this.#bases = bases;
  }

  async create(name: string, limits: ResourceLimits): Promise<ContainerCgroup> {
    const dirs = new Map<string, string>();
    const unenforced: string[] = [];
    const cgroup = (): V1Cgroup => new V1Cgroup(dirs, unenforced);
    try {
      for (const [controller, base] of this.#bases) {
        const dir = join(base, name);
        await mkdir(dir);
        dirs.set(controller, dir);
      }
      const memory = dirs.get('memory');
      if (limits.memoryBytes !== undefined) {
        if (memory === undefined) unenforced.push('memory');
        else {
          await writeFile(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
          // With swap accounting, swap counts too (otherwise a module could swap past its limit).
          await writeFile(join(memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)).catch(() => undefined);
        }
      }
      const cpu = dirs.get('cpu');
      if (limits.cpu !== undefined) {
        if (cpu === undefined) unenforced.push('cpu');
        else {
          await writeFile(join(cpu, 'cpu.cfs_period_us'), String(CPU_PERIOD_USEC));
          await writeFile(join(cpu, 'cpu.cfs_quota_us'), String(cpuQuotaUsec(limits.cpu)));
        }
      }
      const pids = dirs.get('pids');
      if (limits.pids !== undefined) {
        if (pids === undefined) unenforced.push('pids');
        else await writeFile(join(pids, 'pids.max'), String(limits.pids));
      }
      return cgroup();
    } catch (err) {
      await cgroup().remove();
      throw err;
    }
  }
}

class V2Manager implements CgroupManager {
  readonly kind = 'v2';
  readonly #base: string;
  readonly #controllers: Set<string>;

  constructor(base: string, controllers: Set<string>) {
    this.#base = base;
    this.#controllers = controllers;
  }

  async create(name: string, limits: ResourceLimits): Promise<ContainerCgroup> {
    const dir = join(this.#base, name);
    await mkdir(dir);
    const unenforced: string[] = [];
    const cgroup = new V2Cgroup(dir, unenforced);
    try {
      const set = async (controller: string, file: string, value: string | undefined): Promise<void> => {
        if (value === undefined) return;
        if (!this.#controllers.has(controller)) unenforced.push(controller);
        else await writeFile(join(dir, file), value);
      };
      await set('memory', 'memory.max', limits.memoryBytes === undefined ? undefined : String(limits.memoryBytes));
      if (limits.memoryBytes !== undefined && this.#controllers.has('memory')) {
        await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
      }
      await set('cpu', 'cpu.max', limits.cpu === undefined ? undefined : `${cpuQuotaUsec(limits.cpu)} ${CPU_PERIOD_USEC}`);
      await set('pids', 'pids.max', limits.pids === undefined ? undefined : String(limits.pids));
      return cgroup;
    } catch (err) {
      await cgroup.remove();
      throw err;
    }
  }
}

async function isCgroup2(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === CGROUP2_MAGIC;
  } catch {
    return false;
  }
}

/** Where to look; tests and embedders can point at another process's view. */
export interface CgroupDetectOptions {
  mountsText?: string;
  procCgroupText?: string;
}

/**
 * Finds a writable cgroup hierarchy for container cgroups under the kubelet's own cgroup and
 * creates `<own>/bindle-kubelet` in it. cgroup v2 is used when `/sys/fs/cgroup` is the unified
 * hierarchy and the kubelet's directory can delegate `memory`, `cpu` and `pids`; otherwise the
 * v1 controller mounts that are writable. `log` hears what could not be set up. Returns
 * `noCgroups` when nothing is usable (e.g. not root, or no cgroup filesystem).
 */
export async function detectCgroups(log: (message: string) => void, opts: CgroupDetectOptions = {}): Promise<CgroupManager> {
  const mounts = parseCgroupMounts(opts.mountsText ?? (await readText('/proc/self/mounts')) ?? '');
  const own = parseProcCgroup(opts.procCgroupText ?? (await readText('/proc/self/cgroup')) ?? '');
  const unified = mounts.find((m) => m.version === 2 && m.path === '/sys/fs/cgroup');
  if (unified !== undefined && (await isCgroup2(unified.path))) {
    const v2 = await setUpV2(unified.path, own.get('') ?? '/', log);
    if (v2 !== undefined) return v2;
  }
  const bases = new Map<string, string>();
  for (const controller of V1_CONTROLLERS) {
    const mount = mounts.find((m) => m.version === 1 && m.controllers.includes(controller));
    if (mount === undefined) continue;
    const base = join(mount.path, own.get(controller) ?? '/', KUBELET_CGROUP);
    try {
      await mkdir(base, { recursive: true });
      bases.set(controller, base);
    } catch (err) {
      log(`cgroup v1 ${controller} controller at ${mount.path} is not writable: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (bases.size === 0) return noCgroups;
  return new V1Manager(bases);
}

async function setUpV2(root: string, ownPath: string, log: (message: string) => void): Promise<CgroupManager | undefined> {
  const own = join(root, ownPath);
  const base = join(own, KUBELET_CGROUP);
  try {
    const available = new Set(((await readText(join(own, 'cgroup.controllers'))) ?? '').trim().split(/\s+/u));
    const wanted = ['memory', 'cpu', 'pids'].filter((c) => available.has(c));
    // Controllers must be enabled on the way down; a cgroup with processes of its own cannot
    // delegate them (the "no internal processes" rule), which is then reported.
    await writeFile(join(own, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    await mkdir(base, { recursive: true });
    await writeFile(join(base, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    return new V2Manager(base, new Set(wanted));
  } catch (err) {
    log(`cgroup v2 at ${own} cannot delegate controllers to ${KUBELET_CGROUP}/: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}
