// Real systemd as PID 1 with real logind and D-Bus, in a throw-away systemd-nspawn container
// booted from this machine's own root (non-recursive bind, read-only with a tmpfs overlay).
// Recipe: issue 6. Everything it starts is stopped and removed, also when a test fails.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const PROJECT = resolve(import.meta.dirname, '../..');

/** Why a container cannot be booted here, or null if it can. */
export function cannotBoot(): string | null {
  if (process.geteuid?.() !== 0) return 'not root';
  for (const tool of ['systemd-nspawn', 'unshare', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `no ${tool} (apt-get install systemd-container util-linux)`;
    }
  }
  if (!existsSync('/lib/systemd/systemd')) return 'no systemd on this machine';
  return null;
}

/** The cgroup hierarchies nspawn writes into: the hybrid layout's two, or the unified root. */
function cgroupRoots(): string[] {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup'];
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((p) => existsSync(join(p, 'cgroup.procs')));
}

function removeCgroupTree(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  try {
    rmdirSync(dir);
  } catch {
    // still has processes: the caller kills them first
  }
}

export interface Files {
  /** Host paths bound read-only into the container, by container path. */
  [containerPath: string]: string;
}

export class Container {
  private nspawn: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  leader = 0;
  readonly name = `rundird-e2e-${process.pid}`;
  private readonly machineDir = `/var/lib/machines/${this.name}`;
  private readonly work = mkdtempSync('/tmp/rundird-e2e-');
  private readonly cgroups = cgroupRoots().map((r) => join(r, this.name));
  console = '';

  /** Boots `root` to the e2e's own target (its logind drop-in too), with more files bound in. */
  async bootE2e(extra: Files = {}, root = '/'): Promise<number> {
    const u = join(PROJECT, 'test/e2e/units');
    try {
      return await this.boot({ '/etc/systemd/system/rundird-e2e.target': join(u, 'rundird-e2e.target'), '/etc/systemd/logind.conf.d/e2e.conf': join(u, 'logind-e2e.conf'), ...extra }, 'rundird-e2e.target', 60_000, root);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  /** Boots `root` ('/' is this machine's) to `target` (a unit among the bound files) and resolves once it is active. */
  async boot(files: Files, target: string, timeoutMs = 60_000, root = '/'): Promise<number> {
    const t0 = Date.now();
    mkdirSync(this.machineDir, { recursive: true });
    for (const cg of this.cgroups) mkdirSync(cg, { recursive: true });
    const binds = Object.entries(files).map(([inside, host]) => `--bind-ro=${host}:${inside}`);
    const script = join(this.work, 'boot.sh');
    // In its own cgroup (nspawn's leftovers can then be removed) and its own mount namespace
    // (the bind and the tmpfs over /run, where nspawn keeps its bookkeeping, stay private).
    writeFileSync(
      script,
      [
        'set -e',
        ...this.cgroups.map((cg) => `echo $$ > ${cg}/cgroup.procs`),
        `mount --bind ${root} ${this.machineDir}`,
        'mount -t tmpfs tmpfs /run',
        `exec systemd-nspawn -q -D ${this.machineDir} --volatile=overlay --boot --register=no --keep-unit --bind=${PROJECT}:/project ${binds.join(' ')} systemd.unit=${target}`,
      ].join('\n'),
    );
    this.nspawn = spawn('unshare', ['-m', '--propagation', 'private', 'sh', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.nspawn.stdout!.on('data', (d: Buffer) => (this.console += d.toString()));
    this.nspawn.stderr!.on('data', (d: Buffer) => (this.console += d.toString()));
    this.exited = new Promise((r) => this.nspawn!.once('exit', () => r()));
    while (Date.now() - t0 < timeoutMs) {
      if (this.nspawn.exitCode !== null) throw new Error(`container exited during boot:\n${this.console.slice(-3000)}`);
      if (this.leader && !existsSync(`/proc/${this.leader}`)) this.leader = 0;
      if (!this.leader) this.leader = this.findLeader();
      if (this.leader && this.tryExec(`systemctl is-active --quiet ${target}`)) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`container did not reach ${target} within ${timeoutMs} ms:\n${this.console.slice(-3000)}`);
  }

  /**
   * The container's PID 1: nspawn's child in a PID namespace of its own. nspawn's first child
   * (the "outer child") is briefly its child too, in this PID namespace; taken for the leader,
   * it exits and every nsenter after it fails (a boot "never reached" its target in CI).
   */
  private findLeader(): number {
    const parent = this.nspawn?.pid;
    const ours = readlinkSync('/proc/self/ns/pid');
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        if (ppid === parent && readlinkSync(`/proc/${p}/ns/pid`) !== ours) return Number(p);
      } catch {
        // gone meanwhile
      }
    }
    return 0;
  }

  /** Runs a shell command inside the container (all its namespaces), returns stdout. */
  exec(cmd: string, timeoutMs = 30_000): string {
    return execFileSync('nsenter', ['-t', String(this.leader), '-a', '--', '/bin/sh', '-c', cmd], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  tryExec(cmd: string): boolean {
    try {
      this.exec(cmd);
      return true;
    } catch {
      return false;
    }
  }

  /** Polls cmd until it succeeds; on a timeout the error carries what `diagnose` printed, so a rare failure in CI can be read afterwards. */
  async waitUntil(cmd: string, what: string, timeoutMs = 30_000, diagnose?: string): Promise<number> {
    const t0 = Date.now();
    while (!this.tryExec(cmd)) {
      if (Date.now() - t0 > timeoutMs) {
        let seen = '';
        if (diagnose) {
          try {
            seen = `\n--- ${diagnose}\n${this.exec(`(${diagnose}) 2>&1 || true`)}`;
          } catch (e) {
            seen = `\n(diagnosis failed: ${(e as Error).message})`;
          }
        }
        throw new Error(`timed out waiting for: ${what}${seen}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return Date.now() - t0;
  }

  /** Halts the container (SIGTERM to nspawn), kills its PID 1 if it does not go, and removes every trace. */
  async stop(): Promise<void> {
    if (this.nspawn && this.nspawn.exitCode === null) {
      this.nspawn.kill('SIGTERM');
      const halted = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
      if (!halted && this.leader) {
        try {
          process.kill(this.leader, 'SIGKILL');
        } catch {
          // already gone
        }
        await this.exited;
      }
    }
    // Whatever is left in our cgroups (nspawn's payload and supervisor) is killed, then removed.
    for (const cg of this.cgroups) {
      for (const f of execFileSync('sh', ['-c', `cat $(find ${cg} -name cgroup.procs 2>/dev/null) 2>/dev/null || true`], { encoding: 'utf8' }).split('\n')) {
        if (/^\d+$/.test(f)) {
          try {
            process.kill(Number(f), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    for (const cg of this.cgroups) removeCgroupTree(cg);
    // Never recursive: were the bind of / ever visible here, that would delete the host.
    try {
      rmdirSync(this.machineDir);
    } catch (e) {
      // Gone already: stop() runs twice when a boot fails (bootE2e, then the suite's afterAll).
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') process.stderr.write(`e2e: left ${this.machineDir} in place: ${(e as Error).message}\n`);
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}
