// The libc calls Node lacks, typed, through koffi (an FFI for Node-API, shipped prebuilt for
// linux x64, arm64, armhf and riscv64 as per-platform npm packages: nothing is compiled on
// install). The only module that imports koffi. Each call throws a Node-shaped error on failure
// (`code: 'ELOOP'`, `errno: -40`, `syscall: 'openat'`), so the code above reads as it did on
// Node's `fs`.
//
// Why these calls: descriptor-relative ones (`openat`, `mkdirat`, `linkat`, `renameat2`, …) so
// that nothing done inside a user's directory goes through a path (or through /proc, which may
// be mounted hidepid= or not at all); `statx` with AT_STATX_DONT_SYNC, which answers from the
// kernel without asking a FUSE server and tells a mount root from a plain entry; and Unix
// datagram sockets for journald's native protocol and sd_notify (Node has none).
import { createRequire } from 'node:module';
import { getSystemErrorMap } from 'node:util';

type Koffi = typeof import('koffi');
// koffi is CommonJS with a native part found beside it in node_modules: loaded at run time,
// never bundled (scripts/bundle.mjs keeps it external).
const koffi = createRequire(import.meta.url)('koffi') as Koffi;
const lib = koffi.load('libc.so.6');

// Flags, as Linux defines them on every architecture rundird runs on (asm-generic; x86 and arm agree).
export const AT_FDCWD = -100;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;
export const AT_STATX_DONT_SYNC = 0x4000;
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
// O_DIRECTORY and O_NOFOLLOW differ on arm (32 and 64 bit) from x86 and the generic table.
const ARM = process.arch === 'arm' || process.arch === 'arm64';
export const O_DIRECTORY = ARM ? 0o40000 : 0o200000;
export const O_NOFOLLOW = ARM ? 0o100000 : 0o400000;
export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const STATX_ATTR_MOUNT_ROOT = 0x2000;
const STATX_BASIC_STATS = 0x7ff;
const STATX_BTIME = 0x800;
const STATX_MNT_ID = 0x1000;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
export const F_SEAL_WRITE = 8;

// Declared with fixed arguments where libc's are variadic (openat's mode, fcntl's arg): on
// every Linux ABI here an int passed either way lands in the same register, and a variadic
// koffi call parses its types on each call.
const c = {
  openat: lib.func('int openat(int, const char *, int, uint32_t)'),
  close: lib.func('int close(int)'),
  mkdirat: lib.func('int mkdirat(int, const char *, uint32_t)'),
  unlinkat: lib.func('int unlinkat(int, const char *, int)'),
  linkat: lib.func('int linkat(int, const char *, int, const char *, int)'),
  symlinkat: lib.func('int symlinkat(const char *, int, const char *)'),
  renameat2: lib.func('int renameat2(int, const char *, int, const char *, unsigned int)'),
  readlinkat: lib.func('intptr_t readlinkat(int, const char *, _Out_ uint8_t *, size_t)'),
  statx: lib.func('int statx(int, const char *, int, unsigned int, _Out_ uint8_t *)'),
  fchown: lib.func('int fchown(int, uint32_t, uint32_t)'),
  fchmod: lib.func('int fchmod(int, uint32_t)'),
  fstatfs: lib.func('int fstatfs(int, _Out_ uint8_t *)'),
  getdents64: lib.func('intptr_t getdents64(int, _Out_ uint8_t *, size_t)'),
  socket: lib.func('int socket(int, int, int)'),
  bind: lib.func('int bind(int, const uint8_t *, uint32_t)'),
  sendto: lib.func('intptr_t sendto(int, const uint8_t *, size_t, int, const uint8_t *, uint32_t)'),
  memfd_create: lib.func('int memfd_create(const char *, unsigned int)'),
  fcntl: lib.func('int fcntl(int, int, int)'),
  write: lib.func('intptr_t write(int, const uint8_t *, size_t)'),
  flock: lib.func('int flock(int, int)'),
};

// sendmsg's header, for a descriptor passed with SCM_RIGHTS (journald's large records).
const iovec = koffi.struct('rundird_iovec', { base: 'void *', len: 'size_t' });
const msghdr = koffi.struct('rundird_msghdr', {
  name: 'void *',
  namelen: 'uint32_t',
  iov: koffi.pointer(iovec),
  iovlen: 'size_t',
  control: 'void *',
  controllen: 'size_t',
  flags: 'int',
});
const sendmsgC = lib.func('intptr_t sendmsg(int, rundird_msghdr *, int)');
const recvmsgC = lib.func('intptr_t recvmsg(int, _Inout_ rundird_msghdr *, int)');

const SIZEOF_LONG = koffi.sizeof('long');
const SIZEOF_SIZE_T = koffi.sizeof('size_t');

/** The names Node gives errno values ('ENOENT' …), and their messages. */
const ERRORS = getSystemErrorMap();

export interface SysError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
}

/** An error shaped as Node's own: `ENOENT: no such file or directory, openat 'name'`. */
export function sysError(syscall: string, errno: number, path?: string): SysError {
  const [code, text] = ERRORS.get(-errno) ?? [`E${errno}`, `error ${errno}`];
  const e = new Error(`${code}: ${text}, ${syscall}${path !== undefined ? ` '${path}'` : ''}`) as SysError;
  e.code = code;
  e.errno = -errno;
  e.syscall = syscall;
  if (path !== undefined) e.path = path;
  return e;
}

function check(r: number, syscall: string, path?: string): number {
  if (r < 0) throw sysError(syscall, koffi.errno(), path);
  return r;
}

/** A name inside a directory: one component, never '.', '..' or empty (a descriptor call walks no path). */
export function checkName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw Object.assign(new Error(`refusing entry name ${JSON.stringify(name)}`), { code: 'EINVAL' });
  }
  return name;
}

export function openat(dirfd: number, name: string, flags: number, mode = 0): number {
  return check(c.openat(dirfd, name, flags | O_CLOEXEC, mode), 'openat', name);
}

export function close(fd: number): void {
  check(c.close(fd), 'close');
}

export function mkdirat(dirfd: number, name: string, mode: number): void {
  check(c.mkdirat(dirfd, checkName(name), mode), 'mkdirat', name);
}

export function unlinkat(dirfd: number, name: string, flags = 0): void {
  check(c.unlinkat(dirfd, checkName(name), flags), 'unlinkat', name);
}

/** A hard link; never follows a symlink at the source (flags 0). */
export function linkat(olddirfd: number, oldname: string, newdirfd: number, newname: string): void {
  check(c.linkat(olddirfd, checkName(oldname), newdirfd, checkName(newname), 0), 'linkat', newname);
}

export function symlinkat(target: string, dirfd: number, name: string): void {
  check(c.symlinkat(target, dirfd, checkName(name)), 'symlinkat', name);
}

/** renameat2: RENAME_NOREPLACE fails with EEXIST rather than replace; RENAME_EXCHANGE swaps. */
export function renameat2(olddirfd: number, oldname: string, newdirfd: number, newname: string, flags = 0): void {
  check(c.renameat2(olddirfd, checkName(oldname), newdirfd, checkName(newname), flags), 'renameat2', newname);
}

const linkBuf = Buffer.alloc(4096);
export function readlinkat(dirfd: number, name: string): string {
  const n = check(Number(c.readlinkat(dirfd, checkName(name), linkBuf, linkBuf.length)), 'readlinkat', name);
  return linkBuf.toString('utf8', 0, n);
}

const S_IFMT = 0o170000;

/** What statx says of a file; the members rundird reads of Node's fs.Stats, with the same values. */
export class FileStat {
  constructor(
    readonly mode: number,
    readonly uid: number,
    readonly gid: number,
    readonly ino: number,
    readonly dev: number,
    readonly nlink: number,
    readonly size: number,
    readonly rdev: number,
    readonly birthtimeMs: number,
    readonly mtimeMs: number,
    /** The mount it is on (Linux ≥ 5.8), or null where the kernel did not say. */
    readonly mntId: number | null,
    /** The root of a mount: something is mounted here. */
    readonly mountRoot: boolean,
  ) {}
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000;
  }
}

/** glibc's makedev, as libuv (and so Node's st.dev) computes it: the numbers compare equal. */
function makedev(major: number, minor: number): number {
  return (major & 0xfff) * 0x100 + (minor & 0xff) + Math.floor(minor / 0x100) * 0x1000 + Math.floor(major / 0x1000) * 2 ** 44;
}

const u64 = (b: Buffer, off: number): number => b.readUInt32LE(off + 4) * 2 ** 32 + b.readUInt32LE(off);
const msOf = (b: Buffer, off: number): number => (b.readUInt32LE(off + 4) * 2 ** 32 + b.readUInt32LE(off)) * 1000 + b.readUInt32LE(off + 8) / 1e6;

const statxBuf = Buffer.alloc(256);

function decodeStatx(b: Buffer): FileStat {
  const mask = b.readUInt32LE(0);
  const attrs = b.readUInt32LE(8); // the low half holds every attribute rundird reads
  const attrsMask = b.readUInt32LE(56);
  return new FileStat(
    b.readUInt16LE(28),
    b.readUInt32LE(20),
    b.readUInt32LE(24),
    u64(b, 32),
    makedev(b.readUInt32LE(136), b.readUInt32LE(140)),
    b.readUInt32LE(16),
    u64(b, 40),
    makedev(b.readUInt32LE(128), b.readUInt32LE(132)),
    mask & STATX_BTIME ? msOf(b, 80) : 0,
    msOf(b, 112),
    mask & STATX_MNT_ID ? u64(b, 144) : null,
    (attrsMask & STATX_ATTR_MOUNT_ROOT) !== 0 && (attrs & STATX_ATTR_MOUNT_ROOT) !== 0,
  );
}

/**
 * statx(dirfd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC): answered from the kernel's
 * own copy of the attributes, so a FUSE server (or a network filesystem) is never asked, and a
 * mount's root says so. `name` '' is the descriptor itself.
 */
export function statxAt(dirfd: number, name: string): FileStat {
  const flags = AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC | (name === '' ? AT_EMPTY_PATH : 0);
  check(c.statx(dirfd, name === '' ? '' : checkName(name), flags, STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID, statxBuf), 'statx', name);
  return decodeStatx(statxBuf);
}

/** statx of a path, never following its last component (the path's other components are followed). */
export function lstatPath(path: string): FileStat {
  check(c.statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID, statxBuf), 'statx', path);
  return decodeStatx(statxBuf);
}

export const fstat = (fd: number): FileStat => statxAt(fd, '');

export function fchown(fd: number, uid: number, gid: number): void {
  check(c.fchown(fd, uid, gid), 'fchown');
}

export function fchmod(fd: number, mode: number): void {
  check(c.fchmod(fd, mode), 'fchmod');
}

const statfsBuf = Buffer.alloc(256);
/** The filesystem's magic number (statfs(2)'s f_type: a long, the first member). */
export function fstatfsType(fd: number): number {
  check(c.fstatfs(fd, statfsBuf), 'fstatfs');
  return SIZEOF_LONG === 8 ? Number(statfsBuf.readBigInt64LE(0)) : statfsBuf.readInt32LE(0);
}

const direntBuf = Buffer.alloc(32 * 1024);

/**
 * The names in an open directory, read with getdents64 from where its offset stands ('.' and
 * '..' left out): at most `limit` + 1 of them, so that a caller can tell "more than the limit".
 */
export function readdirNames(fd: number, limit = Infinity): string[] {
  const names: string[] = [];
  for (;;) {
    const n = check(Number(c.getdents64(fd, direntBuf, direntBuf.length)), 'getdents64');
    if (n === 0) return names;
    // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name (NUL-terminated).
    for (let off = 0; off < n; ) {
      const reclen = direntBuf.readUInt16LE(off + 16);
      const start = off + 19;
      const end = direntBuf.indexOf(0, start);
      const name = direntBuf.toString('utf8', start, end < 0 || end > off + reclen ? off + reclen : end);
      off += reclen;
      if (name === '.' || name === '..') continue;
      names.push(name);
      if (names.length > limit) return names;
    }
  }
}

/** A struct sockaddr_un for a path, or for an abstract name (`@name`: a leading NUL byte instead). */
export function sockaddrUn(path: string): { addr: Buffer; len: number } {
  const bytes = Buffer.from(path.startsWith('@') ? '\0' + path.slice(1) : path, 'utf8');
  if (bytes.length > 107) throw Object.assign(new Error(`socket path too long (${bytes.length} bytes, at most 107): ${path}`), { code: 'ENAMETOOLONG' });
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  // A path name counts its terminating NUL; an abstract one counts exactly its bytes.
  return { addr, len: 2 + bytes.length + (path.startsWith('@') ? 0 : 1) };
}

/** A non-blocking AF_UNIX datagram socket. */
export function dgramSocket(): number {
  return check(c.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), 'socket');
}

export function bindUnix(fd: number, path: string): void {
  const { addr, len } = sockaddrUn(path);
  check(c.bind(fd, addr, len), 'bind', path);
}

/** One datagram to `to`, without waiting: EAGAIN when the receiver's queue is full. */
export function sendDatagram(fd: number, data: Uint8Array, to: { addr: Buffer; len: number }): void {
  check(Number(c.sendto(fd, data, data.length, MSG_NOSIGNAL | MSG_DONTWAIT, to.addr, to.len)), 'sendto');
}

/** An empty datagram carrying one descriptor (SCM_RIGHTS), as sd_journal_send passes a memfd. */
export function sendDescriptor(fd: number, passFd: number, to: { addr: Buffer; len: number }): void {
  const space = SIZEOF_SIZE_T + 8 + 8; // CMSG_SPACE(sizeof(int)): header (len, level, type), an int, aligned
  const control = Buffer.alloc(space);
  if (SIZEOF_SIZE_T === 8) control.writeBigUInt64LE(BigInt(SIZEOF_SIZE_T + 8 + 4), 0);
  else control.writeUInt32LE(SIZEOF_SIZE_T + 8 + 4, 0);
  control.writeInt32LE(SOL_SOCKET, SIZEOF_SIZE_T);
  control.writeInt32LE(SCM_RIGHTS, SIZEOF_SIZE_T + 4);
  control.writeInt32LE(passFd, SIZEOF_SIZE_T + 8);
  const msg = { name: to.addr, namelen: to.len, iov: null, iovlen: 0, control, controllen: SIZEOF_SIZE_T === 8 ? space : SIZEOF_SIZE_T + 8 + 4, flags: 0 };
  check(Number(sendmsgC(fd, msg, MSG_NOSIGNAL | MSG_DONTWAIT)), 'sendmsg');
}

/**
 * One datagram received without waiting, or null when none is queued; with the descriptor it
 * carried (SCM_RIGHTS), if any. For the tests' journal and notify sockets.
 */
export function recvDatagram(fd: number, buf: Buffer): { length: number; fd: number | null } | null {
  const control = Buffer.alloc(64);
  const msg = { name: null, namelen: 0, iov: [{ base: buf, len: buf.length }], iovlen: 1, control, controllen: control.length, flags: 0 };
  const n = Number(recvmsgC(fd, msg, MSG_DONTWAIT | 0x40000000 /* MSG_CMSG_CLOEXEC */));
  if (n < 0) {
    const errno = koffi.errno();
    if (errno === 11) return null;
    throw sysError('recvmsg', errno);
  }
  const level = control.readInt32LE(SIZEOF_SIZE_T);
  const type = control.readInt32LE(SIZEOF_SIZE_T + 4);
  const passed = msg.controllen > 0 && level === SOL_SOCKET && type === SCM_RIGHTS ? control.readInt32LE(SIZEOF_SIZE_T + 8) : null;
  return { length: n, fd: passed };
}

/**
 * A sealed memfd holding `data`: written whole, then sealed against any change (journald
 * accepts a passed memfd only when sealed), its descriptor returned to the caller to close.
 */
export function sealedMemfd(name: string, data: Uint8Array): number {
  const fd = check(c.memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING), 'memfd_create');
  try {
    for (let off = 0; off < data.length; ) off += check(Number(c.write(fd, data.subarray(off), data.length - off)), 'write');
    check(c.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL), 'fcntl');
    return fd;
  } catch (e) {
    c.close(fd);
    throw e;
  }
}

/** The seals of a memfd (for the tests). */
export function getSeals(fd: number): number {
  return check(c.fcntl(fd, F_GET_SEALS, 0), 'fcntl');
}

const LOCK_EX = 2;
const LOCK_NB = 4;

/** An exclusive flock(2), without waiting: false when another open file description holds it. Released when the process dies. */
export function tryLockExclusive(fd: number): boolean {
  if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return true;
  const errno = koffi.errno();
  if (errno === 11) return false; // EWOULDBLOCK
  throw sysError('flock', errno);
}

/** The major and minor numbers of a device number (glibc's major() and minor(), as makedev above builds them). */
export function devParts(dev: number): { major: number; minor: number } {
  const hi = Math.floor(dev / 2 ** 32);
  const lo = dev % 2 ** 32;
  return { major: ((lo >>> 8) & 0xfff) | (hi & ~0xfff), minor: (lo & 0xff) | ((lo >>> 12) & ~0xff) };
}

/** What `rundird --version` says of the calls underneath. */
export const LIBC_CALLS = `koffi ${koffi.version}: ${Object.keys(c).join(' ')} sendmsg`;
