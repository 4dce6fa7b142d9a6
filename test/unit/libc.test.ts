// The libc module (koffi): each call against Node's own answer for the same thing, and the
// errors in Node's shape, so that the code above it reads as it did on node:fs.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { constants, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as libc from '../../src/sys/libc.js';
import { parseMountInfo } from '../../src/world/mountinfo.js';

let base = '';
let dirfd = -1;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'rundird-libc-'));
  dirfd = libc.openat(libc.AT_FDCWD, base, libc.O_RDONLY | libc.O_DIRECTORY);
});
afterEach(() => {
  libc.close(dirfd);
  rmSync(base, { recursive: true, force: true });
});

describe('libc', () => {
  it('uses the open(2) flags of this architecture', () => {
    expect([libc.O_DIRECTORY, libc.O_NOFOLLOW, libc.O_NONBLOCK, libc.O_CREAT, libc.O_EXCL]).toEqual([constants.O_DIRECTORY, constants.O_NOFOLLOW, constants.O_NONBLOCK, constants.O_CREAT, constants.O_EXCL]);
  });

  it('statx says what lstat says, for a file, a directory, a symlink and a socket', async () => {
    writeFileSync(join(base, 'f'), 'hello');
    mkdirSync(join(base, 'd'));
    symlinkSync('/etc', join(base, 'l'));
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(join(base, 's'), r));
    try {
      for (const name of ['f', 'd', 'l', 's']) {
        const want = lstatSync(join(base, name));
        const got = libc.statxAt(dirfd, name);
        expect({ ino: got.ino, dev: got.dev, mode: got.mode, uid: got.uid, gid: got.gid, nlink: got.nlink, size: got.size, btime: got.birthtimeMs, mtime: got.mtimeMs }, name).toEqual({
          ino: want.ino,
          dev: want.dev,
          mode: want.mode,
          uid: want.uid,
          gid: want.gid,
          nlink: want.nlink,
          size: want.size,
          btime: want.birthtimeMs,
          mtime: want.mtimeMs,
        });
        expect([got.isFile(), got.isDirectory(), got.isSymbolicLink(), got.isSocket()], name).toEqual([want.isFile(), want.isDirectory(), want.isSymbolicLink(), want.isSocket()]);
        expect(got.mountRoot).toBe(false);
      }
    } finally {
      server.close();
    }
  });

  it("says a mount's root is one, with the mount table's id for it", () => {
    const table = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'));
    const proc = table.mounts.filter((m) => m.mountPoint === '/proc').at(-1)!;
    const st = libc.lstatPath('/proc');
    expect(st.mountRoot).toBe(true);
    expect(st.mntId).toBe(proc.id);
    expect(libc.lstatPath('/proc/self').mountRoot).toBe(false);
  });

  it("throws Node's errors: code, errno, syscall and the name", () => {
    symlinkSync('/etc', join(base, 'l'));
    const errOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        const x = e as libc.SysError;
        return { code: x.code, errno: x.errno, syscall: x.syscall, message: x.message };
      }
      return null;
    };
    expect(errOf(() => libc.openat(dirfd, 'none', libc.O_RDONLY))).toEqual({ code: 'ENOENT', errno: -2, syscall: 'openat', message: "ENOENT: no such file or directory, openat 'none'" });
    expect(errOf(() => libc.openat(dirfd, 'l', libc.O_RDONLY | libc.O_NOFOLLOW))?.code).toBe('ELOOP');
    libc.mkdirat(dirfd, 'd', 0o700);
    expect(errOf(() => libc.mkdirat(dirfd, 'd', 0o700))?.code).toBe('EEXIST');
    expect(errOf(() => libc.mkdirat(dirfd, '..', 0o700))).toMatchObject({ code: 'EINVAL' });
    expect(errOf(() => libc.unlinkat(dirfd, 'a/b'))).toMatchObject({ code: 'EINVAL' });
    expect(errOf(() => libc.statxAt(dirfd, ''))).toBeNull(); // '' is the descriptor itself
  });

  it('renames without replacing, or swaps, at once', () => {
    writeFileSync(join(base, 'a'), 'A');
    writeFileSync(join(base, 'b'), 'B');
    expect(() => libc.renameat2(dirfd, 'a', dirfd, 'b', libc.RENAME_NOREPLACE)).toThrow(/EEXIST/);
    libc.renameat2(dirfd, 'a', dirfd, 'b', libc.RENAME_EXCHANGE);
    expect([readFileSync(join(base, 'a'), 'utf8'), readFileSync(join(base, 'b'), 'utf8')]).toEqual(['B', 'A']);
    libc.renameat2(dirfd, 'a', dirfd, 'c', libc.RENAME_NOREPLACE);
    expect(readdirSync(base).sort()).toEqual(['b', 'c']);
  });

  it('links, symlinks and reads a link through descriptors', () => {
    writeFileSync(join(base, 'src'), 'x');
    libc.linkat(dirfd, 'src', dirfd, 'hard');
    expect(lstatSync(join(base, 'hard')).ino).toBe(lstatSync(join(base, 'src')).ino);
    libc.symlinkat('../elsewhere', dirfd, 'soft');
    expect(libc.readlinkat(dirfd, 'soft')).toBe('../elsewhere');
    libc.unlinkat(dirfd, 'hard');
    libc.mkdirat(dirfd, 'sub', 0o700);
    libc.unlinkat(dirfd, 'sub', libc.AT_REMOVEDIR);
    expect(readdirSync(base).sort()).toEqual(['soft', 'src']);
  });

  it('lists a directory, stopping one past a limit', () => {
    for (let i = 0; i < 500; i++) writeFileSync(join(base, `entry-${i}-${'x'.repeat(100)}`), '');
    for (const [limit, want] of [[Infinity, 500], [10, 11]] as const) {
      const fd = libc.openat(dirfd, '.', libc.O_RDONLY | libc.O_DIRECTORY);
      try {
        const names = libc.readdirNames(fd, limit);
        expect(names).toHaveLength(want);
        if (limit === Infinity) expect(names.sort()).toEqual(readdirSync(base).sort());
      } finally {
        libc.close(fd);
      }
    }
  });

  it('addresses path and abstract sockets as the kernel counts them', () => {
    expect(libc.sockaddrUn('/run/x').len).toBe(2 + 6 + 1);
    expect(libc.sockaddrUn('@abc').len).toBe(2 + 1 + 3);
    expect(libc.sockaddrUn('@abc').addr.subarray(2, 6)).toEqual(Buffer.from('\0abc'));
    expect(() => libc.sockaddrUn('/' + 'x'.repeat(120))).toThrow(/too long/);
  });

  it('sends a datagram, and a sealed memfd with SCM_RIGHTS; a full receiver says EAGAIN', () => {
    const rx = libc.dgramSocket();
    const tx = libc.dgramSocket();
    try {
      libc.bindUnix(rx, join(base, 'rx.sock'));
      const to = libc.sockaddrUn(join(base, 'rx.sock'));
      libc.sendDatagram(tx, Buffer.from('hello'), to);
      const buf = Buffer.alloc(64);
      expect(libc.recvDatagram(rx, buf)).toEqual({ length: 5, fd: null });
      expect(buf.toString('utf8', 0, 5)).toBe('hello');
      const mfd = libc.sealedMemfd('test', Buffer.from('in a memfd'));
      libc.sendDescriptor(tx, mfd, to);
      libc.close(mfd);
      const got = libc.recvDatagram(rx, buf)!;
      expect(got.fd).not.toBeNull();
      expect(libc.getSeals(got.fd!)).toBe(libc.F_SEAL_SEAL | libc.F_SEAL_SHRINK | libc.F_SEAL_GROW | libc.F_SEAL_WRITE);
      expect(readFileSync(`/proc/self/fd/${got.fd}`, 'utf8')).toBe('in a memfd');
      libc.close(got.fd!);
      expect(libc.recvDatagram(rx, buf)).toBeNull();
      let code = '';
      for (let i = 0; i < 10_000 && code === ''; i++) {
        try {
          libc.sendDatagram(tx, Buffer.from('fill'), to);
        } catch (e) {
          code = (e as libc.SysError).code;
        }
      }
      expect(code).toBe('EAGAIN');
    } finally {
      libc.close(rx);
      libc.close(tx);
    }
  });
});
