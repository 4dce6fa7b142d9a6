// Every MESSAGE_ID has a catalog entry and every entry an id; journalctl itself compiles the file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENTS } from '../../src/journal/events.js';

const CATALOG = resolve(import.meta.dirname, '../../systemd/rundird.catalog');
const text = readFileSync(CATALOG, 'utf8');
const entryIds = [...text.matchAll(/^-- ([0-9a-f]{32})$/gm)].map((m) => m[1]!);
const codeIds = Object.values(EVENTS).map((e) => e.id);

describe('the journald catalog', () => {
  it('has an entry for every MESSAGE_ID in the code, and no entry without one', () => {
    expect(codeIds.every((id) => /^[0-9a-f]{32}$/.test(id))).toBe(true);
    expect(new Set(codeIds).size).toBe(codeIds.length);
    expect(new Set(entryIds).size).toBe(entryIds.length);
    expect([...entryIds].sort()).toEqual([...codeIds].sort());
    // every "-- " header is a well-formed id line (a typo would hide an entry)
    expect(text.match(/^-- .*$/gm)!.length).toBe(entryIds.length);
  });

  it('every entry has a subject and a body', () => {
    for (const chunk of text.split(/^-- [0-9a-f]{32}$/m).slice(1)) {
      expect(chunk).toMatch(/^\nSubject: .+\n/);
      expect(chunk.split('\n\n').slice(1).join('').trim().length).toBeGreaterThan(40);
    }
  });

  it('compiles with journalctl --update-catalog and lists every id', () => {
    const root = mkdtempSync(join(tmpdir(), 'rundird-catalog-'));
    try {
      mkdirSync(join(root, 'usr/lib/systemd/catalog'), { recursive: true });
      copyFileSync(CATALOG, join(root, 'usr/lib/systemd/catalog/rundird.catalog'));
      execFileSync('journalctl', [`--root=${root}`, '--update-catalog']);
      const listed = execFileSync('journalctl', [`--root=${root}`, '--list-catalog'], { encoding: 'utf8' });
      const ids = listed.split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
      expect(ids.sort()).toEqual([...codeIds].sort());
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
