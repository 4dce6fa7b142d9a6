// Tiny local snaps for the real-snapd scenarios, packed with `snap pack` (no store): a base, a
// snapd snap carrying the system's implicit slots, and app snaps shaped like the field's.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BASE = 'rdbase';

export interface SnapDef {
  name: string;
  yaml: string;
}

const APP = (name: string, plugs: string, slots = '') => `name: ${name}
version: '1'
summary: rundird e2e ${name}
description: a snap shaped like the field's, for rundird's end-to-end tests
base: ${BASE}
confinement: strict
grade: devel
apps:
  run:
    command: bin/run
${plugs ? `plugs:\n${plugs}` : ''}${slots ? `slots:\n${slots}` : ''}`;

export const SNAPS: SnapDef[] = [
  { name: BASE, yaml: `name: ${BASE}\nversion: '1'\nsummary: rundird e2e base\ndescription: an empty base\ntype: base\n` },
  // The system's implicit slots (wayland, audio-playback, desktop …) come with the snapd snap.
  { name: 'snapd', yaml: `name: snapd\nversion: '2.57'\nsummary: rundird e2e snapd\ndescription: implicit system slots\ntype: snapd\n` },
  // A client with wayland, audio-playback and desktop plugs.
  { name: 'client-a', yaml: APP('client-a', '  wayland:\n  audio-playback:\n  desktop:\n') },
  // Shaped like ubuntu-frame: a wayland slot serving clients, and a plug of interface wayland.
  { name: 'frame', yaml: APP('frame', '  wayplug:\n    interface: wayland\n', '  wayland:\n') },
  // Plugs named after link rules, of interface network (auto-connected): names earn nothing.
  { name: 'netpw', yaml: APP('netpw', '  pipewire:\n    interface: network\n  desktop:\n    interface: network\n') },
];

/** Packs the snaps into a new directory; returns it (files NAME.snap). */
export function packSnaps(): string {
  const out = mkdtempSync(join(tmpdir(), 'rundird-snaps-'));
  for (const s of SNAPS) {
    const dir = join(out, `src-${s.name}`);
    mkdirSync(join(dir, 'meta'), { recursive: true });
    writeFileSync(join(dir, 'meta/snap.yaml'), s.yaml);
    if (s.name === 'snapd') {
      mkdirSync(join(dir, 'usr/lib/snapd'), { recursive: true });
      copyFileSync('/usr/lib/snapd/info', join(dir, 'usr/lib/snapd/info'));
    } else if (s.name !== BASE) {
      mkdirSync(join(dir, 'bin'));
      writeFileSync(join(dir, 'bin/run'), '#!/bin/sh\nexec sleep infinity\n');
      chmodSync(join(dir, 'bin/run'), 0o755);
    }
    execFileSync('snap', ['pack', dir, out, `--filename=${s.name}.snap`], { stdio: 'ignore' });
  }
  return out;
}
