import { describe, expect, it } from 'vitest';
import { formatDoctor } from '../../src/cli/rundirctl.js';

describe('rundirctl doctor', () => {
  const rundir = (uid: number, problems: number, leftOut = 0) => ({
    uid,
    path: `/run/user/${uid}`,
    problems: Array.from({ length: problems }, (_, i) => ({ code: 'privdir-foreign-owner', name: `snap.s${i}`, instance: `s${i}`, detail: `/run/user/${uid}/snap.s${i} is owned by uid 0` })),
    problemsLeftOut: leftOut,
  });
  const doc = (rundirs: unknown[]) => ({ uid: null, mode: 'logind', warnings: [], reliants: [], rundirs, lastScan: null });

  it('says what rundird left alone, a few per rundir and a few rundirs, and where the rest is', () => {
    const out = formatDoctor(doc([rundir(1000, 1), rundir(1001, 0), rundir(1002, 7, 3), ...Array.from({ length: 25 }, (_, i) => rundir(2000 + i, 1))]));
    expect(out).toContain('! UID 1000: left alone in /run/user/1000:\n    privdir-foreign-owner: /run/user/1000/snap.s0 is owned by uid 0');
    expect(out).not.toContain('UID 1001:');
    expect(out.match(/^ {4}privdir-foreign-owner: \/run\/user\/1002\//gm)).toHaveLength(5);
    expect(out).toContain('    … and 5 more (rundirctl status --json)');
    expect(out.match(/^! UID /gm)).toHaveLength(20);
    expect(out).toContain('  … and 7 more rundirs with things left alone (rundirctl status).');
    // Nothing left alone: nothing said of it.
    expect(formatDoctor(doc([rundir(1001, 0)]))).not.toContain('left alone');
  });
});
