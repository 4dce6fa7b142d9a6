// A FUSE connection whose server never reads /dev/fuse: any request that reaches the mount
// hangs for as long as the holder lives (SIGKILL is the only way out of such a wait).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

export interface HangingFuse {
  holder: ChildProcess;
  /** Takes the mount off (lazily) and ends the connection: any request still waiting fails. */
  close(): void;
}

/** Mounts a FUSE filesystem that never answers on `dir`, owned by uid:gid, allow_other (root only). */
export async function mountHangingFuse(dir: string, uid: number, gid: number): Promise<HangingFuse> {
  const holder = spawn('sh', ['-c', `exec 3<>/dev/fuse && mount -t fuse -o fd=3,rootmode=40000,user_id=${uid},group_id=${gid},allow_other nofs ${dir} && echo mounted && exec sleep 120`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r, j) => {
    holder.stdout!.on('data', (b: Buffer) => b.toString().includes('mounted') && r());
    holder.on('exit', (c) => j(new Error(`mount failed (${c})`)));
  });
  return {
    holder,
    close() {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      } catch {
        // not mounted
      }
      holder.kill('SIGKILL');
    },
  };
}
