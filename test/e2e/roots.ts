// The roots the end-to-end suite boots: this machine's own (systemd 252 on Debian 12) and a
// minimal Debian trixie (systemd 257) made with debootstrap, so that every scenario runs
// against systemd before and after 256. The trixie root is built once per machine and kept
// under /var/cache/rundird-e2e (about 40 s and 370 MB here); a half-built one is never used.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Root {
  name: string;
  /** The directory booted; '/' is this machine's own root. */
  dir: string;
  systemd: number;
}

const CACHE = '/var/cache/rundird-e2e';
/** What the root holds; a change here builds a new one. */
const TRIXIE_PACKAGES = 'systemd,systemd-sysv,dbus,libpam-systemd,passwd,util-linux,login,nodejs';
const MIRROR = 'http://deb.debian.org/debian';

function systemdVersion(dir: string): number {
  const out = execFileSync('chroot', [dir, 'systemctl', '--version'], { encoding: 'utf8' });
  return Number(/^systemd (\d+)/.exec(out)?.[1] ?? 0);
}

export function hostRoot(): Root {
  return { name: 'host', dir: '/', systemd: systemdVersion('/') };
}

/** The trixie root, built if it is not there yet. Throws, saying why, if it cannot be built. */
export function trixieRoot(): Root {
  const stamp = Buffer.from(TRIXIE_PACKAGES).toString('base64url').slice(0, 16);
  const dir = join(CACHE, `trixie-${stamp}`);
  if (!existsSync(join(dir, '.complete'))) {
    try {
      execFileSync('sh', ['-c', 'command -v debootstrap'], { stdio: 'ignore' });
    } catch {
      throw new Error('no debootstrap (apt-get install debootstrap)');
    }
    mkdirSync(CACHE, { recursive: true });
    const tmp = `${dir}.partial-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      execFileSync('debootstrap', ['--variant=minbase', `--include=${TRIXIE_PACKAGES}`, 'trixie', tmp, MIRROR], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      const err = (e as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join(' ') ?? (e as Error).message;
      throw new Error(`debootstrap trixie failed: ${err}`);
    }
    // The container's own machine id is made at its first boot (an empty file).
    writeFileSync(join(tmp, 'etc/machine-id'), '');
    writeFileSync(join(tmp, '.complete'), `${new Date().toISOString()} ${TRIXIE_PACKAGES}\n`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  }
  readFileSync(join(dir, '.complete'));
  return { name: 'trixie', dir, systemd: systemdVersion(dir) };
}
