// rundirctl plot: a kiosk's night as an SVG that is well-formed (xmllint) and renders (rsvg-convert).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { plotSvg } from '../../src/cli/plot.js';
import { stamp } from '../../src/cli/rundirctl.js';
import { hasCommand } from '../helpers/sandbox.js';

// A root kiosk's night: a root SSH login mounts a tmpfs over its plain rundir, the logout purges
// it, rescue restores the socket; the warnings in between.
const at = (s: number) => new Date(Date.UTC(2026, 11, 8, 1, 0, s)).toISOString();
const NIGHT = {
  uid: 0,
  path: '/run/user/0',
  timeline: [
    { at: at(0), event: 'state-live', detail: 'absent → live' },
    { at: at(1), event: 'reliant-without-linger', detail: 'ubuntu-frame.service' },
    { at: at(2), event: 'rescue-kept', detail: 'wayland-0 (ubuntu-frame.service)' },
    { at: at(60), event: 'user-new', detail: 'logind: UserNew' },
    { at: at(60), event: 'job-start', detail: 'systemd: start job 41 queued for user-runtime-dir@0.service' },
    { at: at(60), event: 'state-starting', detail: 'a tmpfs start is queued over the plain directory' },
    { at: at(61), event: 'sockets-hidden-by-mount', detail: 'wayland-0 <hidden> & "quoted"' },
    { at: at(61), event: 'state-live', detail: 'starting → live' },
    { at: at(61), event: 'rescue-shown', detail: 'wayland-0' },
    { at: at(300), event: 'state-closing', detail: 'after session c1 (sshd, from 10.0.0.2)' },
    { at: at(310), event: 'state-stopping', detail: 'closing → stopping' },
    { at: at(310), event: 'rundir-purged-under-services', detail: 'ubuntu-frame.service' },
    { at: at(310), event: 'state-absent', detail: 'stopping → absent' },
    { at: at(310), event: 'rescue-restored', detail: 'the rundir made again' },
    { at: at(311), event: 'state-live', detail: 'absent → live' },
  ],
};

const haveTools = (hasCommand('xmllint') && hasCommand('rsvg-convert')) || !!process.env.CI;

describe('rundirctl plot', () => {
  const svg = plotSvg(NIGHT, new Date(Date.parse(at(400))), (iso) => stamp(iso, true));

  it('draws the states as bands and every other event as a named mark, escaped', () => {
    expect(svg.match(/<rect x="[\d.]+" y="62"/g)).toHaveLength(7); // seven state entries, seven bands
    for (const e of ['reliant-without-linger', 'sockets-hidden-by-mount', 'rundir-purged-under-services', 'rescue-restored', 'job-start']) expect(svg).toContain(`>${e}</text>`);
    expect(svg).toMatch(/fill="#c62828" transform="[^"]*">rundir-purged-under-services</); // a warning, in red
    expect(svg).toContain('wayland-0 &lt;hidden&gt; &amp; &quot;quoted&quot;');
    expect(svg).toContain('2026-12-08 01:00:00.000 UTC');
    expect(svg).not.toMatch(/<script/);
  });

  it.skipIf(!haveTools)('is well-formed (xmllint) and renders (rsvg-convert) (needs libxml2-utils and librsvg2-bin)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rundird-plot-'));
    try {
      writeFileSync(join(dir, 'night.svg'), svg);
      const lint = spawnSync('xmllint', ['--noout', join(dir, 'night.svg')], { encoding: 'utf8' });
      expect(lint.status, lint.stderr).toBe(0);
      const png = spawnSync('rsvg-convert', ['-o', join(dir, 'night.png'), join(dir, 'night.svg')], { encoding: 'utf8' });
      expect(png.status, png.stderr).toBe(0);
      expect(statSync(join(dir, 'night.png')).size).toBeGreaterThan(5000);
      expect(readFileSync(join(dir, 'night.png')).subarray(1, 4).toString()).toBe('PNG');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
