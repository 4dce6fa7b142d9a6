// The link planner and link rules in the config: pure.
import { describe, expect, it } from 'vitest';
import { checkRuleGraph, expandLinks, planLinks, symlinkValue, type DirRecord, type LinkCandidate, type LinkRecord } from '../../src/reconcile/links.js';
import { DEFAULT_LINK_RULES, checkRulePath, type LinkRule } from '../../src/world/links.js';
import type { NodeStat } from '../../src/world/types.js';
import { parseConfig, ConfigError } from '../../src/config/config.js';

const U = 1000;
const st = (kind: NodeStat['kind'], ino: number, uid = U): NodeStat => ({ kind, uid, gid: U, mode: 0o700, ino, dev: 1 });
const cand = (over: Partial<LinkCandidate> = {}): LinkCandidate => ({ rule: 'wayland', instance: 'kiosk', source: 'wayland-0', target: 'snap.kiosk/wayland-0', kind: 'hard', exdev: 'symlink', via: null, ...over });
const rec = (ino: number): LinkRecord => ({ ino, kind: 'hard', source: 'wayland-0', rule: 'wayland', instance: 'kiosk' });
const plan = (stat: [string, NodeStat | null][], records: [string, LinkRecord][] = [], candidates = [cand()], dirs: [string, DirRecord][] = [], privdirsMade: [string, { owner: number; group: number }][] = []) =>
  planLinks({ uid: U, candidates, stat: new Map(stat), links: new Map(records), dirs: new Map(dirs), privdirsMade: new Map(privdirsMade) });

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

  it('counts a target that already is the source, but not made by rundird, as satisfied: never taken over', () => {
    // Adopting it (as before) let a server rule claim a user's own socket and later delete it.
    const p = plan([['wayland-0', st('socket', 10)], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', st('socket', 10)]]);
    expect(p.actions).toEqual([]);
    expect(p.problems).toEqual([]);
  });

  it('links into a private dir the same plan makes', () => {
    const p = plan([['wayland-0', st('socket', 10)], ['snap.kiosk', null], ['snap.kiosk/wayland-0', null]], [], [cand()], [], [['snap.kiosk', { owner: U, group: 77 }]]);
    expect(p.actions).toEqual([expect.objectContaining({ op: 'link', owner: U, group: 77 })]);
  });

  it('removes the directories it made once no link needs them, deepest first, only while they are its own', () => {
    const dirs: [string, DirRecord][] = [['snap.kiosk/pulse', { ino: 5, dev: 1, instance: 'kiosk' }], ['snap.kiosk/pulse/deep', { ino: 6, dev: 1, instance: 'kiosk' }]];
    const r: LinkRecord = { ino: 10, kind: 'hard', source: 'pulse/native', rule: 'pulseaudio', instance: 'kiosk' };
    const p = plan([['pulse/native', null], ['snap.kiosk/pulse', st('dir', 5)], ['snap.kiosk/pulse/deep', st('dir', 6)], ['snap.kiosk/pulse/native', st('socket', 10)]], [['snap.kiosk/pulse/native', r]], [], dirs);
    expect(p.actions).toEqual([
      { op: 'unlink', target: 'snap.kiosk/pulse/native', ino: 10, why: 'its source is gone' },
      { op: 'rmdir', dir: 'snap.kiosk/pulse/deep', ino: 6, dev: 1, instance: 'kiosk' },
      { op: 'rmdir', dir: 'snap.kiosk/pulse', ino: 5, dev: 1, instance: 'kiosk' },
    ]);
    // Replaced by the user: forgotten, never removed.
    expect(plan([['snap.kiosk/pulse', st('dir', 9)]], [], [], [dirs[0]!]).actions).toEqual([{ op: 'forget-dir', dir: 'snap.kiosk/pulse' }]);
  });

  it('removes its link when the source goes, only while the inode is still its own', () => {
    const p = plan([['wayland-0', null], ['snap.kiosk', st('dir', 2)], ['snap.kiosk/wayland-0', st('socket', 10)]], [['snap.kiosk/wayland-0', rec(10)]]);
    expect(p.actions).toEqual([{ op: 'unlink', target: 'snap.kiosk/wayland-0', ino: 10, why: 'its source is gone' }]);
    // no candidate any more (no longer entitled): unlink, checked again by inode in the effects
    expect(plan([['wayland-0', st('socket', 10)], ['snap.kiosk/wayland-0', st('socket', 10)]], [['snap.kiosk/wayland-0', rec(10)]], []).actions).toEqual([{ op: 'unlink', target: 'snap.kiosk/wayland-0', ino: 10, why: 'no longer entitled' }]);
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
    // Out of a directory that is not the user's, or not a directory: applying would refuse it at every sync.
    const out = cand({ source: 'snap.frame/wayland-9', target: 'wayland-9' });
    const from = (parent: NodeStat) => plan([['snap.frame', parent], ['snap.frame/wayland-9', st('socket', 10)], ['wayland-9', null]], [], [out]);
    expect(from(st('dir', 2, 0))).toMatchObject({ actions: [], problems: [{ code: 'link-source-refused', detail: 'snap.frame/wayland-9: snap.frame belongs to UID 0, not 1000; not linking out of it' }] });
    expect(from(st('symlink', 2))).toMatchObject({ actions: [], problems: [{ code: 'link-source-refused', detail: 'snap.frame/wayland-9: snap.frame is a symlink, not a directory; not linking out of it' }] });
    expect(from(st('dir', 2)).actions).toMatchObject([{ op: 'link', source: 'snap.frame/wayland-9', target: 'wayland-9' }]);
  });

  it('writes relative symlink values', () => {
    expect(symlinkValue('wayland-0', 'snap.kiosk/wayland-0')).toBe('../wayland-0');
    expect(symlinkValue('pulse/native', 'snap.kiosk/pulse/native')).toBe('../../pulse/native');
  });
});

describe('link expansion: chains resolve to the real source', () => {
  const frame = (plugs: Record<string, string[]>, slots: Record<string, string[]>) => (rule: LinkRule) =>
    ['frame', 'client'].filter((i) => rule.to.plugs.some((p) => plugs[i]?.includes(p)) || rule.to.slots.some((p) => slots[i]?.includes(p)));
  const ubuntuFrame = frame({ frame: ['wayland'], client: ['wayland'] }, { frame: ['wayland'] });
  const expand = (listing: Record<string, string[]>, ours: string[] = []) =>
    expandLinks({ rules: DEFAULT_LINK_RULES, entitled: ubuntuFrame, list: (d) => listing[d] ?? null, ours: (p) => ours.includes(p) })
      .candidates.map((c) => `${c.source} -> ${c.target}`)
      .sort();

  it('the host compositor: its socket into both snaps; the link in the server snap is never a source', () => {
    expect(expand({ '': ['wayland-0', 'snap.frame', 'snap.client'], 'snap.frame': ['wayland-0'], 'snap.client': [] }, ['snap.frame/wayland-0'])).toEqual(['wayland-0 -> snap.client/wayland-0', 'wayland-0 -> snap.frame/wayland-0']);
  });

  it('the server snap: its socket out into the rundir, then into its client, from the real source', () => {
    expect(expand({ '': ['snap.frame', 'snap.client', 'wayland-9'], 'snap.frame': ['wayland-9'], 'snap.client': [] }, ['wayland-9'])).toEqual(['snap.frame/wayland-9 -> snap.client/wayland-9', 'snap.frame/wayland-9 -> wayland-9']);
    // before the first link out exists, the chain is planned all the same
    expect(expand({ '': ['snap.frame', 'snap.client'], 'snap.frame': ['wayland-9'], 'snap.client': [] })).toEqual(['snap.frame/wayland-9 -> snap.client/wayland-9', 'snap.frame/wayland-9 -> wayland-9']);
  });

  it('refuses rule graphs that would grow without end; the shipped defaults pass', () => {
    expect(checkRuleGraph(DEFAULT_LINK_RULES)).toBeNull();
    const grow: LinkRule[] = [
      { name: 'in', source: 'w-*', target: 'snap.{instance}/w-{name}', kind: 'hard', exdev: 'warn', to: { plugs: ['x'], slots: [], instances: [] } },
      { name: 'out', source: 'snap.{instance}/w-*', target: '{name}', kind: 'hard', exdev: 'warn', to: { plugs: ['x'], slots: [], instances: [] } },
    ];
    expect(checkRuleGraph(grow)?.rules.sort()).toEqual(['in', 'out']);
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
    expect(err('links:\n  - name: in\n    source: "w-*"\n    target: "snap.{instance}/w-{name}"\n    plugs: [x]\n  - name: out\n    source: "snap.{instance}/w-*"\n    target: "{name}"\n    plugs: [x]\n')).toMatch(/f:2: key "links": the rules .*"in".*form a cycle/);
    expect(checkRulePath('/abs')).toContain('relative');
    expect(checkRulePath('a/*/b')).toContain('last component');
  });
});
