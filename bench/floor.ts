// The floors under the burst and the resync. Node's: the calls rundird made before it had
// libc's (paths through /proc/PID/fd, Node's fs). libc's: the calls it makes now, through the
// same koffi module, and the same in C where a compiler is at hand. Nothing else (no inotify,
// no planning, no journal, no records). Measured in the same run as the daemon, so
// that "the daemon takes 2x its floor" holds on a busy machine where the seconds do not, and
// so that a target below the floor is seen to be one.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, fchownSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
const FD = `/proc/${process.pid}/fd`;

/**
 * Private dirs for `count` fresh rundirs under `base` (a tmpfs), as rundird's apply makes them:
 * per rundir open, fstat, readdir; per dir mkdir, open, fstat, fchown, close through the
 * rundir's descriptor (src/effects/safefs.ts mkdirProven). Seconds for the whole burst; the
 * rundirs are made (and owned) beforehand and removed after, outside the clock.
 */
export function burstFloor(base: string, count: number, names: readonly string[], baseUid: number): number {
  const dir = join(base, `floor-burst-${process.hrtime.bigint()}`);
  mkdirSync(dir);
  const rundirs = Array.from({ length: count }, (_, i) => {
    const p = join(dir, String(baseUid + i));
    mkdirSync(p, 0o700);
    return p;
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const uid = baseUid + i;
    const r = openSync(rundirs[i]!, DIR_FLAGS);
    fstatSync(r);
    readdirSync(`${FD}/${r}`);
    for (const n of names) {
      const p = `${FD}/${r}/${n}`;
      mkdirSync(p, 0o700);
      const d = openSync(p, DIR_FLAGS);
      if (fstatSync(d).size !== 40) throw new Error(`floor: ${p} is not a new empty dir`);
      fchownSync(d, uid, uid);
      closeSync(d);
    }
    closeSync(r);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(dir, { recursive: true, force: true });
  return Number(s.toFixed(3));
}

/**
 * The reads of a full resync of live rundirs, as rundird's readRundir makes them (src/world/read.ts):
 * per rundir lstat and readdir, then an lstat of each private dir that is there. Seconds.
 */
export function resyncFloor(root: string, uids: readonly number[], names: readonly string[]): number {
  const t0 = process.hrtime.bigint();
  for (const u of uids) {
    const p = join(root, String(u));
    lstatSync(p);
    const present = new Set(readdirSync(p));
    for (const n of names) if (present.has(n)) lstatSync(join(p, n), { throwIfNoEntry: false });
  }
  return Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
}

/**
 * libc's floor under the same burst: the calls rundird makes now (src/effects/safefs.ts,
 * src/world/read.ts, src/controller/watches.ts), through the same koffi module, in a tight
 * loop. Per rundir: the read (O_PATH open, statx, open ".", getdents64 to the end, two closes),
 * the apply (O_PATH open, statx, open ".", close, fstatfs; per dir mkdirat, openat, statx,
 * fchown, close) and the watches it then needs (the rundir and each private dir: O_PATH open,
 * statx, an inotify watch through Node's fs.watch on the descriptor's /proc path, close).
 */
export async function burstLibcFloor(base: string, count: number, names: readonly string[], baseUid: number): Promise<number> {
  const libc = await import('../src/sys/libc.js');
  const dir = join(base, `floor-libc-${process.hrtime.bigint()}`);
  mkdirSync(dir);
  for (let i = 0; i < count; i++) mkdirSync(join(dir, String(baseUid + i)), 0o700);
  const rootFd = libc.openat(libc.AT_FDCWD, dir, libc.O_RDONLY | libc.O_DIRECTORY);
  const enter = (name: string): number => {
    const p = libc.openat(rootFd, name, libc.O_PATH | libc.O_NOFOLLOW);
    libc.fstat(p);
    const fd = libc.openat(p, '.', libc.O_RDONLY | libc.O_DIRECTORY | libc.O_NONBLOCK);
    libc.close(p);
    return fd;
  };
  const watchers: FSWatcher[] = [];
  const watchAt = (dirfd: number, name: string): number => {
    const p = libc.openat(dirfd, name, libc.O_PATH | libc.O_NOFOLLOW);
    libc.fstat(p);
    try {
      watchers.push(watch(`/proc/self/fd/${p}`, { persistent: true }, () => {}));
    } catch {
      // past fs.inotify.max_user_watches (10,000 rundirs hold 210,000): the daemon meets the same limit
    }
    return p;
  };
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const uid = baseUid + i;
    const name = String(uid);
    const rd = enter(name);
    libc.readdirNames(rd);
    libc.close(rd);
    const r = enter(name);
    libc.fstatfsType(r);
    for (const n of names) {
      // Made under a temporary name, owned, then renamed into place (src/effects/apply.ts).
      const tmp = `.t${n}`;
      libc.mkdirat(r, tmp, 0o700);
      const d = libc.openat(r, tmp, libc.O_RDONLY | libc.O_DIRECTORY | libc.O_NOFOLLOW | libc.O_NONBLOCK);
      if (libc.fstat(d).size !== 40) throw new Error(`floor: ${n} is not a new empty dir`);
      libc.fchown(d, uid, uid);
      libc.renameat2(r, tmp, r, n, libc.RENAME_NOREPLACE);
      libc.close(d);
    }
    libc.close(r);
    const w = watchAt(rootFd, name);
    for (const n of names) libc.close(watchAt(w, n));
    libc.close(w);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const w of watchers) w.close();
  libc.close(rootFd);
  rmSync(dir, { recursive: true, force: true });
  return Number(s.toFixed(3));
}

/** libc's floor under a full resync (src/world/read.ts readRundir): per rundir O_PATH open, statx, open ".", getdents64, then statx of each private dir there. */
export async function resyncLibcFloor(root: string, uids: readonly number[], names: readonly string[]): Promise<number> {
  const libc = await import('../src/sys/libc.js');
  const rootFd = libc.openat(libc.AT_FDCWD, root, libc.O_RDONLY | libc.O_DIRECTORY);
  const t0 = process.hrtime.bigint();
  for (const u of uids) {
    const p = libc.openat(rootFd, String(u), libc.O_PATH | libc.O_NOFOLLOW);
    libc.fstat(p);
    const fd = libc.openat(p, '.', libc.O_RDONLY | libc.O_DIRECTORY | libc.O_NONBLOCK);
    const present = new Set(libc.readdirNames(fd));
    libc.close(fd);
    for (const n of names) if (present.has(n)) libc.statxAt(p, n);
    libc.close(p);
  }
  const s = Number((Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
  libc.close(rootFd);
  return s;
}

/** The same burst as burstLibcFloor in C, where a compiler is at hand (else null): what the calls cost with no FFI at all. */
export function burstCFloor(base: string, count: number, names: readonly string[], baseUid: number): number | null {
  const cc = ['cc', 'gcc'].find((c) => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
  if (!cc) return null;
  const work = mkdtempSync(join(tmpdir(), 'rundird-cfloor-'));
  try {
    writeFileSync(join(work, 'floor.c'), C_FLOOR);
    execFileSync(cc, ['-O2', '-o', join(work, 'floor'), join(work, 'floor.c')]);
    const dir = join(base, `floor-c-${process.hrtime.bigint()}`);
    mkdirSync(dir);
    for (let i = 0; i < count; i++) mkdirSync(join(dir, String(baseUid + i)), 0o700);
    const out = execFileSync(join(work, 'floor'), [dir, String(count), String(baseUid), ...names], { encoding: 'utf8' });
    rmSync(dir, { recursive: true, force: true });
    return Number(Number(out.trim()).toFixed(3));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// The C loop: the same calls as burstLibcFloor, timed with CLOCK_MONOTONIC, seconds on stdout.
const C_FLOOR = String.raw`
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/inotify.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
static int ino_fd;
static int watch_at(int dir, const char *name) {
  struct statx sx;
  char path[64];
  int p = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (p < 0 || statx(p, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0x1fff, &sx) < 0) exit(6);
  snprintf(path, sizeof path, "/proc/self/fd/%d", p);
  inotify_add_watch(ino_fd, path, IN_ALL_EVENTS | IN_ONLYDIR); /* past the watch limit it fails, as the daemon's would */
  return p;
}
static int enter(int root, const char *name) {
  struct statx sx;
  int p = openat(root, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (p < 0 || statx(p, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0x1fff, &sx) < 0) exit(2);
  int fd = openat(p, ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
  close(p);
  return fd;
}
int main(int argc, char **argv) {
  int root = open(argv[1], O_RDONLY | O_DIRECTORY), count = atoi(argv[2]), base = atoi(argv[3]);
  char name[32], buf[32768];
  struct timespec a, b;
  struct statx sx;
  struct statfs sf;
  ino_fd = inotify_init1(IN_CLOEXEC);
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < count; i++) {
    snprintf(name, sizeof name, "%d", base + i);
    int rd = enter(root, name);
    while (getdents64(rd, buf, sizeof buf) > 0) {}
    close(rd);
    int r = enter(root, name);
    fstatfs(r, &sf);
    for (int k = 4; k < argc; k++) {
      char tmp[300];
      snprintf(tmp, sizeof tmp, ".t%s", argv[k]);
      if (mkdirat(r, tmp, 0700) < 0) exit(3);
      int d = openat(r, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (d < 0 || statx(d, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, 0x1fff, &sx) < 0) exit(4);
      if (fchown(d, base + i, base + i) < 0) exit(5);
      if (renameat2(r, tmp, r, argv[k], RENAME_NOREPLACE) < 0) exit(8);
      close(d);
    }
    close(r);
    int w = watch_at(root, name);
    for (int k = 4; k < argc; k++) close(watch_at(w, argv[k]));
    close(w);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
  return 0;
}
`;
