// A fixture tree that stands in for /proc where the real one cannot be arranged: processes in
// session scopes, user managers and snap services, with environments, fds and a socket table.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface FakeProc {
  pid: number;
  comm?: string;
  uid?: number;
  /** The systemd cgroup path; omitted: a kernel thread (empty cgroup file, no environ). */
  cgroup?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** fd number → link target (`socket:[N]`, a path, `pipe:[N]`). */
  fds?: Record<number, string>;
  netns?: string;
  /** Its mount namespace (`mnt:[N]`), and that namespace's mount table (absent: unreadable). */
  mntns?: string;
  mountinfo?: string;
}

export class ProcFixture {
  constructor(readonly root: string) {
    mkdirSync(join(root, 'net'), { recursive: true });
    writeFileSync(join(root, 'net/unix'), 'Num       RefCount Protocol Flags    Type St Inode Path\n');
  }

  add(p: FakeProc): void {
    const dir = join(this.root, String(p.pid));
    mkdirSync(join(dir, 'fd'), { recursive: true });
    mkdirSync(join(dir, 'ns'));
    mkdirSync(join(dir, 'net'));
    const uid = p.uid ?? 0;
    // As the kernel writes it: a user-space process has VmSize, a kernel thread Kthread: 1 and none.
    const mem = p.cgroup ? 'VmSize:\t   12345 kB\nKthread:\t0\n' : 'Kthread:\t1\n';
    writeFileSync(join(dir, 'status'), `Name:\t${p.comm ?? `p${p.pid}`}\nState:\tS (sleeping)\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t0\t0\t0\t0\n${mem}`);
    writeFileSync(join(dir, 'cgroup'), p.cgroup ? `0::${p.cgroup}\n` : '');
    // A kernel thread's environ cannot be read (ESRCH): here it is missing.
    if (p.cgroup) writeFileSync(join(dir, 'environ'), p.env ? Object.entries(p.env).map(([k, v]) => `${k}=${v}\0`).join('') : '');
    symlinkSync(p.cwd ?? '/', join(dir, 'cwd'));
    for (const [fd, target] of Object.entries(p.fds ?? {})) symlinkSync(target, join(dir, 'fd', fd));
    symlinkSync(p.netns ?? 'net:[4026531840]', join(dir, 'ns/net'));
    symlinkSync(p.mntns ?? 'mnt:[4026531841]', join(dir, 'ns/mnt'));
    if (p.mountinfo !== undefined) writeFileSync(join(dir, 'mountinfo'), p.mountinfo);
  }

  /** A socket table row for the namespace every fixture process is in. */
  socket(inode: number, path: string, listening = true, pids: number[] = []): void {
    const row = `0000000000000000: 00000002 00000000 ${listening ? '00010000' : '00000000'} 0001 01 ${inode} ${path}\n`;
    for (const pid of pids) writeFileSync(join(this.root, String(pid), 'net/unix'), 'Num       RefCount Protocol Flags    Type St Inode Path\n' + row, { flag: 'a' });
    writeFileSync(join(this.root, 'net/unix'), row, { flag: 'a' });
  }
}
