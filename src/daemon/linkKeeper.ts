// Keeps the links of every live rundir: reads what the rules need, plans (pure), applies
// (effects), records what it made, and watches the directories whose entries decide links.
import { join } from 'node:path';
import type { Subscription } from 'rxjs';
import { applyLinks } from '../effects/links.js';
import { logEvent, type Log } from '../journal/logger.js';
import { planLinks, type LinkRecord } from '../reconcile/links.js';
import type { Problem } from '../reconcile/planner.js';
import { watchDir } from '../sources/watchDir.js';
import { readLinkWorld, type LinkRule } from '../world/links.js';

export interface LinkView {
  target: string;
  source: string;
  rule: string;
  instance: string;
  kind: string;
}

export class LinkKeeper {
  /** Per UID: target (rundir-relative) → what rundird made there. In memory only. */
  private readonly records = new Map<number, Map<string, LinkRecord>>();
  private readonly watchers = new Map<number, Map<string, Subscription>>();

  constructor(
    private readonly log: Log,
    /** Something in a watched directory changed: reconcile that UID. */
    private readonly dirty: (uid: number) => void,
  ) {}

  list(uid: number): LinkView[] {
    return [...(this.records.get(uid) ?? new Map<string, LinkRecord>()).entries()].map(([target, r]) => ({ target, source: r.source, rule: r.rule, instance: r.instance, kind: r.kind }));
  }

  /** The rundir went away and took its links with it. */
  forget(uid: number): void {
    this.records.delete(uid);
    this.disarm(uid);
  }

  disarm(uid: number): void {
    for (const w of this.watchers.get(uid)?.values() ?? []) w.unsubscribe();
    this.watchers.delete(uid);
  }

  disarmAll(): void {
    for (const uid of [...this.watchers.keys()]) this.disarm(uid);
  }

  /** Watches the directories inside a rundir whose entries decide links (private dirs, pulse/ …). */
  private arm(uid: number, rundir: string, dirs: Set<string>): void {
    const have = this.watchers.get(uid) ?? new Map<string, Subscription>();
    for (const [d, w] of have) {
      if (!dirs.has(d)) {
        w.unsubscribe();
        have.delete(d);
      }
    }
    for (const d of dirs) {
      if (d === '' || have.has(d)) continue; // the rundir itself has its own watch
      have.set(
        d,
        watchDir(join(rundir, d)).subscribe((e) => {
          if (e.type === 'error') return; // not there (yet): the next pass arms it again
          this.dirty(uid);
        }),
      );
    }
    if (have.size) this.watchers.set(uid, have);
    else this.watchers.delete(uid);
  }

  /** Plans and applies the links of one live rundir. Returns problems and whether to read again. */
  reconcile(uid: number, rundir: string, rootFd: number, rules: LinkRule[], entitled: (rule: LinkRule) => string[]): { problems: Problem[]; stale: boolean } {
    const records = this.records.get(uid) ?? new Map<string, LinkRecord>();
    const world = readLinkWorld(rundir, rules, entitled);
    const p = planLinks({ uid, candidates: world.candidates, stat: world.stat, records });
    const problems: Problem[] = p.problems.map((x) => ({ code: x.code, name: x.target, instance: x.instance, detail: `${rundir}/${x.detail}` }));
    let stale = false;
    if (p.actions.length > 0) {
      for (const o of applyLinks(rootFd, uid, p.actions)) {
        const a = o.action;
        const path = `${rundir}/${a.target}`;
        if (!o.ok) {
          if (o.retry) stale = true;
          else if (a.op === 'link' && o.code === 'EXDEV') problems.push({ code: 'link-exdev', name: a.target, instance: a.instance, detail: `${path}: ${a.source} is on another filesystem; a hard link is impossible and the rule allows no symlink` });
          else if (a.op !== 'forget' && a.op !== 'adopt') problems.push({ code: 'link-failed', name: a.target, instance: a.op === 'link' ? a.instance : null, detail: `${path}: ${o.code} ${o.detail ?? ''}` });
          if (a.op === 'unlink' && o.code === 'ENOTOURS') records.delete(a.target);
          continue;
        }
        if (a.op === 'link' && o.record) {
          records.set(a.target, o.record);
          logEvent(this.log, a.replace ? 'link-replaced' : 'link-created', { uid, path, source: `${rundir}/${a.source}`, instance: a.instance, rule: a.rule, kind: o.record.kind, fell_back: o.fellBack || undefined }, `${a.replace ? 'relinked' : 'linked'} ${path} → ${a.source}${o.fellBack ? ' (symlink: another filesystem)' : ''}`);
        } else if (a.op === 'unlink') {
          const r = records.get(a.target);
          records.delete(a.target);
          logEvent(this.log, 'link-removed', { uid, path, instance: r?.instance, rule: r?.rule, why: a.why }, `removed ${path}: ${a.why}`);
        } else if (a.op === 'adopt') records.set(a.target, a.record);
        else records.delete(a.target);
      }
    }
    if (records.size) this.records.set(uid, records);
    else this.records.delete(uid);
    this.arm(uid, rundir, world.dirs);
    return { problems, stale };
  }
}
