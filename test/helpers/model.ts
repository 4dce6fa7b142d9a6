// A model of one rundir for property tests: nodes by rundir-relative path, hard links as
// shared inode numbers, and a model of the effects that mirrors their checks (src/effects/):
// a plan applied here behaves as it would on disk, so that planning again can be compared.
import type { Outcome } from '../../src/effects/apply.js';
import type { LinkOutcome } from '../../src/effects/links.js';
import type { LinkAction } from '../../src/reconcile/links.js';
import type { Action } from '../../src/reconcile/planner.js';
import { parentOf, type RundirIO } from '../../src/world/links.js';
import { OVERFULL } from '../../src/world/read.js';
import type { NodeKind, NodeStat } from '../../src/world/types.js';

export const DEV = 7;

export class ModelRundir implements RundirIO {
  readonly nodes = new Map<string, NodeStat>();
  private nextIno = 100;
  readonly root: NodeStat;

  /** The entry limit (config max-entries) the reader applies: more gives OVERFULL. */
  maxEntries = Infinity;

  constructor(readonly uid: number, readonly gid: number) {
    this.root = { kind: 'dir', uid, gid, mode: 0o700, ino: 1, dev: DEV };
  }

  ino(): number {
    return this.nextIno++;
  }

  /** lstat: null where a parent is missing or not a directory (ENOENT, ENOTDIR). */
  lstat(rel: string): NodeStat | null {
    if (rel === '') return this.root;
    for (let d = parentOf(rel); d !== ''; d = parentOf(d)) if (this.nodes.get(d)?.kind !== 'dir') return null;
    return this.nodes.get(rel) ?? null;
  }

  readdir(rel: string): string[] | null | typeof OVERFULL {
    const all = this.entries(rel);
    return all !== null && all.length > this.maxEntries ? OVERFULL : all;
  }

  private entries(rel: string): string[] | null {
    if (rel !== '' && this.lstat(rel)?.kind !== 'dir') return null;
    const out: string[] = [];
    for (const p of this.nodes.keys()) if (parentOf(p) === rel) out.push(p.slice(rel === '' ? 0 : rel.length + 1));
    return out;
  }

  children(rel: string): number {
    return this.entries(rel)?.length ?? 0;
  }

  /** Puts a node at a path, making missing parents as the user's directories; false if a parent is not a directory. */
  put(rel: string, kind: NodeKind, uid = this.uid, ino = this.ino()): boolean {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      const n = this.nodes.get(d);
      if (!n) this.nodes.set(d, { kind: 'dir', uid: this.uid, gid: this.gid, mode: 0o700, ino: this.ino(), dev: DEV });
      else if (n.kind !== 'dir') return false;
    }
    this.removeTree(rel);
    this.nodes.set(rel, { kind, uid, gid: this.gid, mode: kind === 'dir' ? 0o700 : 0o600, ino, dev: DEV });
    return true;
  }

  removeTree(rel: string): void {
    for (const p of [...this.nodes.keys()]) if (p === rel || p.startsWith(rel + '/')) this.nodes.delete(p);
  }

  snapshot(): Map<string, NodeStat> {
    return new Map([...this.nodes].map(([k, v]) => [k, { ...v }]));
  }

  // ---- the effects, modelled ---------------------------------------------------------------

  applyPrivdir(a: Action, selfUid: number): Outcome {
    const fail = (code: string, retry = false): Outcome => ({ action: a, ok: false, code, detail: code, retry });
    if (a.op === 'forget') return { action: a, ok: true };
    const n = this.nodes.get(a.name);
    if (a.op === 'mkdir') {
      if (n) return fail('EEXIST', true);
      const ino = this.ino();
      this.nodes.set(a.name, { kind: 'dir', uid: a.owner, gid: a.group, mode: 0o700, ino, dev: DEV });
      return { action: a, ok: true, record: { ino, dev: DEV } };
    }
    if (a.op === 'fix') {
      if (!n || n.kind !== 'dir' || n.ino !== a.ino) return fail('ESTALE', true);
      if (n.uid !== a.owner && n.uid !== selfUid) return fail('EPERM');
      this.nodes.set(a.name, { ...n, uid: a.owner, gid: a.group, mode: 0o700 });
      return { action: a, ok: true };
    }
    if (!n) return { action: a, ok: true };
    if (n.kind !== 'dir' || n.ino !== a.ino || n.dev !== a.dev) return fail('ESTALE');
    if (this.children(a.name) > 0) return fail('ENOTEMPTY');
    this.nodes.delete(a.name);
    return { action: a, ok: true };
  }

  applyLink(a: LinkAction, uid: number): LinkOutcome {
    const fail = (code: string, retry = false, made: LinkOutcome['made'] = []): LinkOutcome => ({ action: a, ok: false, code, detail: code, retry, made });
    if (a.op === 'forget' || a.op === 'forget-dir') return { action: a, ok: true };
    if (a.op === 'unlink' || a.op === 'rmdir') {
      const path = a.op === 'unlink' ? a.target : a.dir;
      for (let d = parentOf(path); d !== ''; d = parentOf(d)) {
        const n = this.nodes.get(d);
        if (!n) return { action: a, ok: true };
        if (n.kind !== 'dir' || n.uid !== uid) return fail(n.kind === 'dir' ? 'EPERM' : 'ELOOP');
      }
      const n = this.nodes.get(path);
      if (!n) return { action: a, ok: true };
      if (a.op === 'unlink') {
        if (n.ino !== a.ino) return fail('ENOTOURS');
        this.nodes.delete(path);
        return { action: a, ok: true };
      }
      if (n.kind !== 'dir' || n.ino !== a.ino || n.dev !== a.dev) return fail('ENOTOURS');
      if (this.children(path) > 0) return fail('ENOTEMPTY');
      this.nodes.delete(path);
      return { action: a, ok: true };
    }
    // link: walk the source's directories (the UID's), then the target's (made where planned)
    const made: NonNullable<LinkOutcome['made']> = [];
    for (let d = parentOf(a.source); d !== ''; d = parentOf(d)) {
      const n = this.nodes.get(d);
      if (!n) return fail('ENOENT', true);
      if (n.kind !== 'dir' || n.uid !== uid) return fail(n.kind === 'dir' ? 'EPERM' : 'ELOOP');
    }
    const tparts = a.target.split('/');
    for (let i = 1; i < tparts.length; i++) {
      const d = tparts.slice(0, i).join('/');
      const n = this.nodes.get(d);
      if (!n) {
        if (!a.mkdirs.includes(d)) return fail('ENOENT', true, made);
        const ino = this.ino();
        this.nodes.set(d, { kind: 'dir', uid: a.owner, gid: a.group, mode: 0o700, ino, dev: DEV });
        made.push([d, { ino, dev: DEV, instance: a.instance }]);
        continue;
      }
      if (n.kind !== 'dir' || n.uid !== a.owner) return fail(n.kind === 'dir' ? 'EPERM' : 'ELOOP', false, made);
    }
    const src = this.nodes.get(a.source);
    if (!src || src.ino !== a.sourceIno || src.uid !== uid || (src.kind !== 'socket' && src.kind !== 'file')) return fail('ECHANGED', true, made);
    const record = { kind: a.kind, source: a.source, rule: a.rule, instance: a.instance };
    if (a.kind === 'hard') {
      const now = this.nodes.get(a.target);
      if (!(a.replace && now && now.ino === a.sourceIno)) this.nodes.set(a.target, { ...src });
      return { action: a, ok: true, made, record: { ...record, ino: src.ino } };
    }
    const ino = this.ino();
    this.nodes.set(a.target, { kind: 'symlink', uid: 0, gid: 0, mode: 0o777, ino, dev: DEV });
    return { action: a, ok: true, made, record: { ...record, ino } };
  }
}
