// A line of a UID's timeline (kept, bounded, in its record: controller/record.ts).

export interface TimelineEntry {
  at: string; // ISO time
  event: string;
  detail: string;
}
