// Each UID's recent lifecycle events, bounded, for the status API and tests.

export interface TimelineEntry {
  at: string; // ISO time
  event: string;
  detail: string;
}

export class Timelines {
  private readonly byUid = new Map<number, TimelineEntry[]>();
  constructor(private readonly limit = 64) {}

  add(uid: number, event: string, detail: string, at = new Date()): void {
    let t = this.byUid.get(uid);
    if (!t) this.byUid.set(uid, (t = []));
    t.push({ at: at.toISOString(), event, detail });
    if (t.length > this.limit) t.splice(0, t.length - this.limit);
  }

  get(uid: number): TimelineEntry[] {
    return [...(this.byUid.get(uid) ?? [])];
  }
}
