// The link planner and link rules in the config: pure.
import { describe, expect, it } from 'vitest';
import { planLinks, symlinkValue, type LinkRecord } from '../../src/reconcile/links.js';
import type { LinkCandidate } from '../../src/world/links.js';
import { checkRulePath } from '../../src/world/links.js';
import type { NodeStat } from '../../src/world/types.js';
import { parseConfig, ConfigError } from '../../src/config/config.js';

const U = 1000;
const st = (kind: NodeStat['kind'], ino: number, uid = U): NodeStat => ({ kind, uid, gid: U, mode: 0o700, ino, dev: 1 });
const cand = (over: Partial<LinkCandidate> = {}): LinkCandidate => ({ rule: 'wayland', instance: 'kiosk', source: 'wayland-0', target: 'snap.kiosk/wayland-0', kind: 'hard', exdev: 'symlink', ...over });
const rec = (ino: number): LinkRecord => ({ ino, kind: 'hard', source: 'wayland-0', rule: 'wayland', instance: 'kiosk' });
const plan = (stat: [string, NodeStat | null][], records: [string, LinkRecord][] = [], candidates = [cand()]) => planLinks({ uid: U, candidates, stat: new Map(stat), records: new Map(records) });

describe('link planner', () => {
  it('links a socket whose target is free, once the private dir is there', () => {
    const p = plan([['wayland-0', st('socket', 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', null]]);
    expect(p.actions).toEqual([expect.objectContaining({ op: 'link', sourceIno: 10, replace: false, mkdirs: [], owner: U })]);
    expect(plan([['wayland-0', st('socket', 10)], ['snap.kiosk', null], ['snap.kiosk/wayland-0', null]]).actions).toEqual([]);
  });

  it('replaces its own stale link, leaves a current one, and never touches what it did not make', () => {
    const base: [string, NodeStat | null][] = [['wayland-0', st('socket', 11)], ['snap.kiosk', st('dir', 2)]];
    expect(plan([...base, ['snap.kiosk/wayland-0', st('socket', 10)]], [['snap.kiosk/wayland-0', rec(10)]]).actions).toEqual([expect.objectContaining({ op: 'link', replace: true, sourceIno: 11 })]);
    expect(plan([...base, ['snap.kiosk/wayland-0', st('socket', 11)]], [['snap.kiosk/wayland-0', { ...rec(11) }]]).actions).toEqual([]);
    const p = plan([...base, ['snap.kiosk/wayland-0', st('symlink', 99)]], [['snap.kiosk/wayland-0', rec(10)]]);
    expect(p.problems.map((x) => x.code)).toEqual(['link-target-occupied']);
    expect(p.actions).toEqual([{ op: 'forget', target: 'snap.kiosk/wayland-0' }]);
  });

  it('adopts a link that already is the source (made before a restart), then follows the server', () => {
    const p = plan([['wayland-0', st('socket', 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', st('socket', 10)]]);
    expect(p.actions).toEqual([{ op: 'adopt', target: 'snap.kiosk/wayland-0', record: rec(10) }]);
    expect(p.problems).toEqual([]);
  });

  it('removes its link when the source goes, only while the inode is still its own', () => {
    const p = plan([['wayland-0', null], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', st('socket', 10)]], [['snap.kiosk/wayland-0', rec(10)]]);
    expect(p.actions).toEqual([{ op: 'unlink', target: 'snap.kiosk/wayland-0', ino: 10, why: 'its source is gone' }]);
    // not read this pass (no longer entitled): unlink, checked again by inode in the effects
    expect(plan([], [['snap.kiosk/wayland-0', rec(10)]], []).actions).toEqual([{ op: 'unlink', target: 'snap.kiosk/wayland-0', ino: 10, why: 'no longer entitled' }]);
  });

  it('refuses unsafe sources and parents', () => {
    for (const k of ['symlink', 'dir', 'fifo', 'other'] as const) {
      expect(plan([['wayland-0', st(k, 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', null]]).problems[0]!.code).toBe('link-source-refused');
    }
    expect(plan([['wayland-0', st('socket', 10, 0)], ['snap.kiosk', st('dir', 2)]]).problems[0]!.detail).toContain('never linked across users');
    const deep = cand({ source: 'pulse/native', target: 'snap.kiosk/pulse/native' });
    expect(plan([['pulse/native', st('socket', 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/pulse', st('symlink', 3)]], [], [deep]).problems[0]!.code).toBe('link-parent-refused');
    expect(plan([['pulse/native', st('socket', 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/pulse', null], ['snap.kiosk/pulse/native', null]], [], [deep]).actions[0]).toMatchObject({ mkdirs: ['snap.kiosk/pulse'] });
    expect(plan([['wayland-0', st('socket', 10)], ['snap.kiosk', st('dir', 2, 4243)]]).problems[0]!.code).toBe('link-parent-refused');
  });

  it('writes relative symlink values', () => {
    expect(symlinkValue('wayland-0', 'snap.kiosk/wayland-0')).toBe('../wayland-0');
    expect(symlinkValue('pulse/native', 'snap.kiosk/pulse/native')).toBe('../../pulse/native');
  });
});

describe('link rules in the config', () => {
  const err = (t: string) => {
    try {
      parseConfig(t, 'f');
    } catch (e) {
      return (e as ConfigError).message;
    }
    return 'no error';
  };
  it('reads a rule and refuses bad ones with file, line and key', () => {
    const c = parseConfig('links:\n  - name: x\n    source: "x-*"\n    target: "snap.{instance}/{name}"\n    kind: symlink\n    instances: ["kiosk*"]\n', 'f');
    expect(c.links).toEqual([{ name: 'x', source: 'x-*', target: 'snap.{instance}/{name}', kind: 'symlink', exdev: 'warn', to: { plugs: [], slots: [], instances: ['kiosk*'] } }]);
    expect(parseConfig('links: []\n', 'f').links).toEqual([]);
    expect(err('links:\n  - name: x\n    source: "../etc/passwd"\n    target: "snap.{instance}/p"\n    plugs: [x]\n')).toContain('f:3: key "links[0].source"');
    expect(err('links:\n  - name: x\n    source: "a"\n    target: "b"\n    plugs: [x]\n')).toContain('use {instance}');
    expect(err('links:\n  - name: x\n    source: "a"\n    target: "snap.{instance}/a"\n')).toContain('nobody gets it');
    expect(err('links:\n  - name: x\n    source: "a"\n    target: "snap.{instance}/a"\n    plugs: [x]\n    kind: copy\n')).toContain('hard or symlink');
    expect(checkRulePath('/abs')).toContain('relative');
    expect(checkRulePath('a/*/b')).toContain('last component');
  });
});
