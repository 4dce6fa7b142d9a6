// The read-only cache of global facts: the mount table, the snap inventory, snapd's
// connections and logind's users and sessions. Sources refresh it; each refresh says which
// UIDs the change touches; sync(uid) only reads it. Nothing here writes to the filesystem.
import type { Config } from '../config/config.js';
import { filterFor, parseUid, uidSelected } from '../config/config.js';
import { logEvent, type Log } from '../journal/logger.js';
import type { Logind } from '../sources/dbus/logind.js';
import { globToRegExp, matchesAny } from '../world/instances.js';
import type { LinkRule } from '../world/links.js';
import type { LogindFacts } from '../world/logind.js';
import { mountAt, readMounts, type MountSnapshot } from '../world/read.js';
import type { Mount } from '../world/mountinfo.js';
import { Inventory, scanSnapRoot } from '../world/snaps.js';
import type { MountRef } from '../world/types.js';
import type { SnapdFollower } from '../sources/snapdFollower.js';

const NO_LOGIND: LogindFacts = { logind: false, user: null, job: null };

export class Facts {
  mounts: MountSnapshot = { top: new Map(), errors: [] };
  /** Whether the table was read in this turn (a rundir whose device disagrees reads it at most once). */
  private mountsReadThisTurn = false;
  private rootMountId: number | null = null;
  private rootMountKnown = false;
  /** The mount table as of the last hint: what the next one is compared with. */
  private hintTop: ReadonlyMap<string, Mount> | null = null;
  readonly inventory = new Inventory();
  private readonly wantedCache = new Map<number, string[]>();
  private departingNow: Set<string> | null = null;
  logind: Logind | null = null;

  constructor(
    private cfg: Config,
    private readonly log: Log,
    readonly snapd: SnapdFollower,
    private readonly onError: (source: string, e: Error) => void,
  ) {}

  /** A new configuration: what was derived from the old one goes. */
  setConfig(cfg: Config): void {
    this.cfg = cfg;
    this.wantedCache.clear();
  }

  /** The start of a turn: per-turn caches are dropped. */
  newTurn(): void {
    this.mountsReadThisTurn = false;
    this.departingNow = null;
  }

  // ---- mounts --------------------------------------------------------------------------------

  readMountTable(): void {
    this.mountsReadThisTurn = true;
    try {
      this.mounts = readMounts(this.cfg.mountinfo);
      for (const err of this.mounts.errors) this.log.warn({ source: 'mounts' }, err);
    } catch (e) {
      this.onError('mounts', e as Error);
    }
  }

  /** The mount on a rundir; the table is read again (once a turn) when the device disagrees with it. */
  mountAt(path: string, onOwnDevice: boolean): MountRef | null {
    let m = mountAt(this.mounts, path);
    if (onOwnDevice !== (m !== null) && !this.mountsReadThisTurn) {
      this.readMountTable();
      m = mountAt(this.mounts, path);
    }
    return m;
  }

  /** The runtime root was opened anew: its mount is learnt on the next read. */
  forgetRootMount(): void {
    this.rootMountKnown = false;
  }

  /**
   * Reads the mount table after a hint. Returns the UIDs under whose rundir a mount came, went
   * or was replaced since the table of the last hint (the rundir's own mount, or one below it),
   * and whether the runtime root itself got or lost a mount. The work is the table's size, not
   * the number of rundirs: a mount-table change with 10,000 rundirs cost 2-3 ms a time when
   * every UID's last mount was compared.
   */
  refreshMounts(): { uids: Set<number>; rootChanged: boolean } {
    const before = this.hintTop ?? this.mounts.top;
    this.readMountTable();
    const after = this.mounts.top;
    this.hintTop = after;
    const root = this.cfg.runtimeRoot;
    const rootMount = mountAt(this.mounts, root)?.id ?? null;
    let rootChanged = false;
    if (!this.rootMountKnown) {
      this.rootMountKnown = true;
      this.rootMountId = rootMount;
    } else if (rootMount !== this.rootMountId) {
      this.rootMountId = rootMount;
      rootChanged = true;
    }
    const uids = new Set<number>();
    const prefix = root.endsWith('/') ? root : root + '/';
    const look = (point: string) => {
      if (!point.startsWith(prefix) || before.get(point)?.id === after.get(point)?.id) return;
      const uid = parseUid(point.slice(prefix.length).split('/')[0]!);
      if (uid !== null) uids.add(uid);
    };
    for (const point of before.keys()) look(point);
    for (const point of after.keys()) look(point);
    return { uids, rootChanged };
  }

  // ---- snaps ---------------------------------------------------------------------------------

  /** Scans the inventory again (snapd's list, or the snap mount dir). Returns whether it changed. */
  refreshInventory(): boolean {
    let scan: Set<string>;
    try {
      // snapd's list when it has answered (the snap mount dir is the fallback).
      scan = this.snapd.state ? new Set(this.snapd.state.instances) : scanSnapRoot(this.cfg.snapRoot);
    } catch (e) {
      // Keep the last inventory: a transient read error must not make dirs go away.
      this.onError('snap-root', e as Error);
      return false;
    }
    const before = new Set(this.inventory.present);
    const changed = this.inventory.update(scan, Date.now(), this.cfg.snapRemovalGrace * 1000);
    if (!changed) return false;
    this.snapsChanged();
    const added = [...this.inventory.present].filter((i) => !before.has(i));
    const departing = [...before].filter((i) => !this.inventory.present.has(i));
    logEvent(this.log, 'snaps-changed', { added, departing, installed: this.inventory.present.size }, `snap instances: ${this.inventory.present.size} installed` + (added.length ? `, added ${added.join(' ')}` : '') + (departing.length ? `, gone ${departing.join(' ')}` : ''));
    return true;
  }

  /** The grace period of a departing instance ran out. Returns whether anything changed. */
  expireInventory(): boolean {
    const changed = this.inventory.expire(Date.now());
    if (changed) this.snapsChanged();
    return changed;
  }

  /** snapd said something new (instances or connections). */
  snapsChanged(): void {
    this.wantedCache.clear();
    this.departingNow = null;
  }

  departing(): ReadonlySet<string> {
    return (this.departingNow ??= this.inventory.departingSet());
  }

  /** Instances that get a private dir in this UID's rundir; cached until config or inventory change. */
  wantedFor(uid: number): string[] {
    const hit = this.wantedCache.get(uid);
    if (hit) return hit;
    let out: string[] = [];
    if (uidSelected(this.cfg, uid)) {
      const f = filterFor(this.cfg, uid);
      out = [...this.inventory.present].filter((i) => matchesAny(i, f.include) && !matchesAny(i, f.exclude));
    }
    this.wantedCache.set(uid, out);
    return out;
  }

  /** The instances of this UID's private dirs that a rule entitles. */
  entitled(wanted: readonly string[], rule: LinkRule): string[] {
    const globs = rule.to.instances.map(globToRegExp);
    const st = this.snapd.state;
    return wanted.filter((i) => matchesAny(i, globs) || rule.to.plugs.some((p) => st?.plugs.get(i)?.has(p)) || rule.to.slots.some((p) => st?.slots.get(i)?.has(p)));
  }

  // ---- logind --------------------------------------------------------------------------------

  logindFacts(uid: number): LogindFacts {
    return this.logind?.facts(uid) ?? NO_LOGIND;
  }
}
