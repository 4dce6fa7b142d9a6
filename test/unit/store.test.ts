// The records file: what is written, parse() reads back exactly; a file assembled from
// per-UID entries kept between saves is the document the whole records make.
import { describe, expect, it } from 'vitest';
import { assemble, parse, serializeUid, STORE_VERSION, type Kept } from '../../src/controller/store.js';
import { emptyMade, type Made } from '../../src/controller/record.js';

function made(seed: number, withLink = false): Made {
  const m = emptyMade();
  m.rundir = { ino: 1000 + seed, dev: 45 };
  for (let i = 0; i < 3; i++) m.privdirs.set(`snap.app${i}`, { ino: 5000 + seed * 10 + i, dev: 45 });
  if (withLink) {
    m.links.set('snap.app0/wayland-0', { ino: 9000 + seed, kind: 'hard', source: 'wayland-0', rule: 'wayland', instance: 'app0' });
    m.dirs.set('snap.app0/pulse', { ino: 9500 + seed, dev: 45, instance: 'app0' });
  }
  return m;
}

/** The whole file as one JSON document of every record worth keeping (what the controller assembles from kept entries). */
function serialize(runtimeRoot: string, kept: ReadonlyMap<number, Kept>): string {
  const uids: Record<string, unknown> = {};
  for (const [uid, k] of kept) {
    const e = serializeUid(k);
    if (e !== null) uids[uid] = JSON.parse(e);
  }
  return JSON.stringify({ version: STORE_VERSION, runtimeRoot, uids });
}

describe('records file', () => {
  const kept = new Map<number, Kept>([
    [1000, { made: made(1, true), covered: null }],
    [1001, { made: emptyMade(), covered: made(2) }],
    [1002, { made: emptyMade(), covered: null }], // nothing worth keeping: left out
    [0, { made: made(3), covered: made(4, true) }],
  ]);

  it('reads back exactly what was written, and leaves out a UID with nothing worth keeping', () => {
    const back = parse(serialize('/run/user', kept), '/run/user');
    expect([...back.keys()].sort((a, b) => a - b)).toEqual([0, 1000, 1001]);
    for (const uid of [0, 1000, 1001]) expect(back.get(uid)).toEqual(kept.get(uid));
  });

  it('assembled from entries kept between saves, it is the file serialize() writes', () => {
    const entries = [...kept].map(([uid, k]) => [uid, serializeUid(k)] as const).filter((e): e is readonly [number, string] => e[1] !== null);
    const text = assemble('/run/user', entries);
    expect(JSON.parse(text)).toEqual(JSON.parse(serialize('/run/user', kept)));
    expect(parse(text, '/run/user')).toEqual(parse(serialize('/run/user', kept), '/run/user'));
  });

  it('names the runtime root it was written for, quoted as JSON', () => {
    const odd = '/run/us"er\\x';
    expect(parse(serialize(odd, kept), odd).size).toBe(3);
    expect(() => parse(serialize(odd, kept), '/run/user')).toThrow(/written for runtime root/);
  });
});
