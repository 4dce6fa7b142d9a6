// The snap inventory from the snap mount dir: an instance is installed when
// SNAP_ROOT/INSTANCE/current exists (snapd points it at the active revision).
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseInstanceName } from './instances.js';

export function scanSnapRoot(snapRoot: string): Set<string> {
  const out = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(snapRoot);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out; // no snapd on this system
    throw e;
  }
  for (const n of names) {
    if (!parseInstanceName(n)) continue;
    try {
      lstatSync(join(snapRoot, n, 'current'));
      out.add(n);
    } catch {
      // no current revision: not installed (or being removed)
    }
  }
  return out;
}

/**
 * Instances present, departing (gone from the scan, still within the grace period, because a
 * refresh unlinks and relinks `current`) and removed (gone for good). Pure apart from the clock
 * the caller passes in.
 */
export class Inventory {
  readonly present = new Set<string>();
  readonly departing = new Map<string, number>();
  readonly removed = new Set<string>();

  /** Returns whether anything the planner sees changed. */
  update(scan: ReadonlySet<string>, now: number, graceMs: number): boolean {
    let changed = false;
    for (const i of scan) {
      if (!this.present.has(i)) {
        this.present.add(i);
        changed = true;
      }
      if (this.departing.delete(i)) changed = true;
      if (this.removed.delete(i)) changed = true;
    }
    for (const i of [...this.present]) {
      if (scan.has(i)) continue;
      this.present.delete(i);
      this.departing.set(i, now + graceMs);
      changed = true;
    }
    return this.expire(now) || changed;
  }

  expire(now: number): boolean {
    let changed = false;
    for (const [i, deadline] of this.departing) {
      if (deadline > now) continue;
      this.departing.delete(i);
      this.removed.add(i);
      changed = true;
    }
    return changed;
  }

  nextDeadline(): number | null {
    let min: number | null = null;
    for (const d of this.departing.values()) if (min === null || d < min) min = d;
    return min;
  }

  departingSet(): Set<string> {
    return new Set(this.departing.keys());
  }
}
